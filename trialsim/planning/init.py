"""Starting configs for ``trialsim init``: a commented template for a new trial, or the registered trial.

``blank``: a randomised two-arm trial with a binary primary endpoint and a continuous secondary one,
every value a placeholder that loads and runs, each line saying what to put there and where such a
number comes from. ``registered``: the shipped config of the registered trial
(:data:`trialsim.planning.bench.DEFAULT_CONFIG`, every assumption with its source), copied as it is.
"""
from __future__ import annotations

from pathlib import Path

from trialsim.config.loader import load_scenario
from trialsim.planning.bench import DEFAULT_CONFIG
from trialsim.registry import ALLOCATION_SCHEMES

TEMPLATES = ("blank", "registered")

BLANK = '''\
# A new two-arm trial for trialsim. Every value below is a PLACEHOLDER: replace it with your own and say
# where each number comes from in the comment beside it (author, journal, year, DOI or PMID; or ASSUMPTION).
# Check it:   trialsim show THIS_FILE          (every key with its default and description)
# Run it:     trialsim run THIS_FILE           (power of every endpoint and test, by simulation and exactly)
# Plan it:    trialsim samplesize THIS_FILE --power 0.8 0.9    and    trialsim report THIS_FILE --out report/
# Without a config: trialsim solve proportions --p-control 0.2 --risk-ratio 0.6 --power 0.8

name = "my_trial"                  # identifier: letters, digits and '_'
title = "Intervention vs control: FILL IN"
description = "One or two sentences: population, intervention, comparator, primary endpoint."
primary = "primary_event"         # the endpoint id (below) of the primary analysis

[design]
control_name = "control"           # label of the control arm
treatment_name = "intervention"    # label of the experimental arm
n_control = 50                     # patients randomised to control: FILL IN
n_treatment = 50                   # patients randomised to the intervention: FILL IN
masking = "double"                 # none | single | double | triple | quadruple
alpha = 0.05                       # two-sided significance level

[allocation]
# ALLOCATION SCHEMES
scheme = "permuted_block"          # one of the schemes above (their settings: see `trialsim show`)
block_size = 4                     # a multiple of sum(ratio)
ratio = [1, 1]                     # control : intervention

# Baseline covariates, drawn once per patient (delete the block if the endpoints use none)
[[population.covariates]]
name = "high_risk"
prevalence = 0.3                   # share of eligible patients with it: FILL IN (source)
source = "FILL IN"

# Primary: a binary event (plain_binary: a marginal rate per arm, optional covariate odds ratios)
[endpoints.primary_event]
family = "plain_binary"
label = "Primary event within 30 days"   # FILL IN
rate_control = 0.20                # event rate in the control arm: FILL IN (source)
effect_measure = "risk_ratio"      # risk_ratio | odds_ratio | risk_difference | rate
effect = 0.6                       # the effect you plan for: FILL IN (ASSUMPTION or source)
p_missing = 0.0                    # chance the outcome is missing for a reason other than the follow-up visit
measured_at_visit = true           # assessed at the follow-up visit (lost with it)
tests = ["fisher", "chi2"]         # the first is the primary analysis; also "boschloo"

[[endpoints.primary_event.risk_factors]]
covariate = "high_risk"
odds_ratio = 2.0                   # FILL IN (source); the arms stay calibrated to their marginal rates
source = "FILL IN"

# Secondary: a continuous measurement (plain_continuous; scale = "log" for a log-normal marker)
[endpoints.marker]
family = "plain_continuous"
label = "Marker on day 3"          # FILL IN
unit = "mg/L"
scale = "log"                      # identity: mean and SD; log: median (geometric mean) and SD of the logs
mean_control = 100.0               # control median (log scale) or mean: FILL IN (source)
sd = 0.6                           # SD of the logs (log scale) or SD: FILL IN (source)
effect = 0.8                       # ratio of geometric means (log) or difference (identity): FILL IN
p_missing = 0.05                   # sample not taken: FILL IN
measured_at_visit = false          # measured in hospital, not at the follow-up visit
tests = ["welch_log", "mann_whitney"]

[follow_up]
p_missing_visit = 0.03             # chance a living patient misses the follow-up visit: FILL IN
p_death = 0.01                     # death before the visit: FILL IN (source)
horizon_days = 30.0                # day of the follow-up visit

[run]
n_sims = 10000                     # simulated trials; Monte Carlo SE of a power near 50% is 0.5 points
seed = 12345                       # any integer; recorded with every result
n_jobs = -1                        # all cores; results do not depend on it
'''


def template_text(template: str = "blank") -> str:
    """The text of a starting config: ``"blank"`` (a new trial) or ``"registered"`` (the registered trial)."""
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {', '.join(TEMPLATES)}, got {template!r}")
    if template == "blank":
        return BLANK.replace("# ALLOCATION SCHEMES\n", allocation_schemes_comment())
    if not DEFAULT_CONFIG.is_file():
        raise ValueError(f"the registered trial's config ({DEFAULT_CONFIG}) is not here: it ships with a trialsim checkout, "
                         "not with an installed wheel")
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    return (f"# Copied by `trialsim init --template registered` from {DEFAULT_CONFIG.name} (trialsim's registered trial).\n"
            + text)


def allocation_schemes_comment() -> str:
    """The template's list of allocation schemes: every registered one (a plug-in's too) with its label."""
    schemes = ALLOCATION_SCHEMES.items()
    width = max(len(name) for name, _ in schemes)
    return "# scheme: how patients are assigned to the arms, one of\n" + "".join(
        f"#   {name:<{width}}  {scheme.label}\n" for name, scheme in schemes)


def write_template(path: str | Path, template: str = "blank", *, force: bool = False) -> Path:
    """Write a starting config to ``path`` and check that it loads; refuses to overwrite unless ``force``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder: give a config file's name in it, e.g. {str(path / 'my_trial.toml')!r}")
    if path.suffix != ".toml":
        raise ValueError(f"{str(path)!r}: a config is a .toml file")
    if path.exists() and not force:
        raise ValueError(f"{str(path)!r} exists; choose another name, or overwrite it with --force")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"cannot write {str(path)!r}: {str(blocking)!r} is a file, not a folder")
    text = template_text(template)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    load_scenario(path)  # a template that does not load is a bug, not the user's problem
    return path
