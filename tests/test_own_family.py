"""A family registered from outside the package (here, this test module) runs end to end.

Nothing in trialsim/ knows it: the config schema accepts its section because it is registered, the
engine generates, observes and analyses it through the family protocol, the power table and the
console name it, and its true effect feeds bias and coverage.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pytest
from pydantic import Field
from scipy.stats import poisson

from tests.conftest import DEFAULT_CONFIG
from trialsim.analysis.analytic import t_test_power
from trialsim.api import run
from trialsim.config.loader import ConfigError, load_scenario, to_raw, validate, with_values
from trialsim.endpoints.base import Analysed, BinaryLaw, EffectParameter, EndpointFamily, PatientContext, Status
from trialsim.endpoints.registry import family_names, register
from trialsim.memo import BlockMemo
from trialsim.registry import ENDPOINT_FAMILIES
from trialsim.report.console import run_summary
from trialsim.rng import Streams, patient_draws
from trialsim.simulate import simulate_trials


@register
class PoissonCount(EndpointFamily):
    """A count per patient (e.g. episodes of delirium), Poisson with a mean per arm, analysed as continuous."""

    family: Literal["poisson_count"] = "poisson_count"

    label: str = Field("", max_length=200, description="Endpoint label; empty = the section id.")
    mean_control: float = Field(gt=0.0, le=1000.0, description="Mean count in the control arm.")
    rate_ratio: float = Field(1.0, gt=0.0, le=100.0, description="Mean count treated / control.")
    tests: tuple[str, ...] = Field(("welch", "mann_whitney"), description="Analyses of the count.")

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        effect = EffectParameter(f"endpoints.{cid}.rate_ratio", "rate ratio", "ratio", 1.0, self.rate_ratio)
        return (Analysed(cid, cid, "continuous", self.label or cid, "episodes", "identity", self.tests, effect),)

    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        u = patient_draws(streams("endpoint", cid), "random", ctx.n_trials, ctx.n_patients)
        mean = np.where(ctx.treated, self.mean_control * self.rate_ratio, self.mean_control)
        return {"count": poisson.ppf(u, mean)}

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        return {cid: status.in_hospital(latent["count"].astype(float))}

    def true_effect(self, cid: str, name: str, estimand: str, model) -> float | None:
        return self.mean_control * (self.rate_ratio - 1.0) if estimand == "difference" else None


CONFIG = """
name = "delirium_counts"
primary = "delirium"

[design]
control_name = "usual care"
treatment_name = "melatonin"
n_control = 40
n_treatment = 40

[allocation]
scheme = "permuted_block"
block_size = 4

[[population.covariates]]
name = "age_over_75"
prevalence = 0.4

[endpoints.delirium]
family = "poisson_count"
label = "Episodes of delirium in the first week"
mean_control = 2.0
rate_ratio = 0.6

[endpoints.fall]
family = "plain_binary"
label = "Fall in hospital"
rate_control = 0.2
effect = 0.5
measured_at_visit = false
tests = ["fisher", "chi2"]

[follow_up]
p_missing_visit = 0.0
p_death = 0.0
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("own") / "delirium.toml"
    path.write_text(CONFIG)
    return path


def test_the_family_is_registered_and_validated_like_the_shipped_ones(config_file):
    assert "poisson_count" in family_names() and ENDPOINT_FAMILIES.get("poisson_count") is PoissonCount
    sc = load_scenario(config_file)
    assert isinstance(sc.endpoints["delirium"], PoissonCount) and sc.endpoints["delirium"].tests == ("welch", "mann_whitney")
    with pytest.raises(ConfigError, match="endpoints.delirium.mean_control = -1.0 is not allowed"):
        load_scenario(config_file, ["endpoints.delirium.mean_control=-1.0"])
    with pytest.raises(ConfigError, match="unknown key; allowed keys here: family, label, mean_control, rate_ratio, tests"):
        load_scenario(config_file, ["endpoints.delirium.dispersion=2"])
    with pytest.raises(ConfigError, match="test 'fisher' does not apply to the continuous endpoint 'delirium'"):
        load_scenario(config_file, ['endpoints.delirium.tests=["fisher"]'])


def test_the_family_runs_end_to_end(config_file):
    result = run(load_scenario(config_file), n_sims=4_000, seed=3, n_jobs=1)
    frame = result.to_frame()
    rows = frame[(frame.endpoint == "delirium") & (frame.method == "monte_carlo")].set_index("test")
    assert list(rows.index) == ["welch", "mann_whitney"] and rows.primary.all()
    assert frame.iloc[0].endpoint == "delirium"
    welch = rows.loc["welch"]
    # 40 vs 40, means 2.0 vs 1.2 (variances 2.0 and 1.2): d = 0.8 / sqrt(1.6), about 80% by the noncentral t
    assert abs(welch.power - t_test_power(0.8 / np.sqrt(1.6), 40, 40)) < 4 * welch.mc_se + 0.01
    assert welch.label == "Episodes of delirium in the first week"
    assert welch.true_effect == pytest.approx(-0.8)
    assert abs(welch.bias) < 4 * welch.bias_se
    assert abs(welch.coverage - 0.95) < 4 * welch.coverage_se + 0.005
    # the shipped secondary beside it keeps its exact figure
    assert len(frame[(frame.endpoint == "fall") & (frame.method == "exact")]) == 2
    text = run_summary(result)
    assert "PRIMARY ENDPOINT: Episodes of delirium in the first week" in text
    assert "expected mean usual care 2" in text and "(rate ratio 0.6, a planning assumption)" in text


@register
class CoinEvent(EndpointFamily):
    """A binary event per patient with a risk per arm: a plug-in family with a binary law (so exact answers)."""

    family: Literal["coin_event"] = "coin_event"

    label: str = Field("", max_length=200, description="Endpoint label; empty = the section id.")
    rate_control: float = Field(gt=0.0, lt=1.0, description="Event risk in the control arm.")
    risk_ratio: float = Field(1.0, gt=0.0, le=5.0, description="Event risk treated / control.")
    tests: tuple[str, ...] = Field(("fisher",), description="Analyses of the event.")

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        effect = EffectParameter(f"endpoints.{cid}.risk_ratio", "risk ratio", "ratio", 1.0, self.risk_ratio)
        return (Analysed(cid, cid, "binary", self.label or cid, "patients", "identity", self.tests, effect),)

    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        u = patient_draws(streams("endpoint", cid), "random", ctx.n_trials, ctx.n_patients)
        return {"event": (u < np.where(ctx.treated, self.rate_control * self.risk_ratio, self.rate_control)).astype(float)}

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        return {cid: latent["event"]}

    def binary_law(self, cid: str, name: str, arm: str, model) -> BinaryLaw:
        return BinaryLaw(self.rate_control * (self.risk_ratio if arm == "treatment" else 1.0), 0.0)


def test_a_plug_in_familys_exact_mde_is_computed_every_time_never_kept(tmp_path, monkeypatch):
    """A plug-in family's law can change under the same package version: its exact MDE is never kept on disk, while
    a shipped family's is (the same test, the same sizes)."""
    from trialsim import cache
    from trialsim.planning.mde import minimal_detectable_effects

    monkeypatch.setenv(cache.ENV_DIR, str(tmp_path / "cache"))
    monkeypatch.delenv(cache.ENV_SWITCH, raising=False)
    path = tmp_path / "coin.toml"
    path.write_text(CONFIG.replace('family = "poisson_count"', 'family = "coin_event"')
                    .replace("mean_control = 2.0", "rate_control = 0.3").replace("rate_ratio = 0.6", "risk_ratio = 0.5"))
    sc = load_scenario(path)
    pairs = [("delirium", "fisher"), ("fall", "fisher")]
    table = minimal_detectable_effects(sc, pairs=pairs, simulate=False, seed=1).to_frame()
    assert table["method"].tolist() == ["exact", "exact"] and table["reachable"].all()
    assert len(list((tmp_path / "cache").glob("exact-mde-*.npz"))) == 1  # the shipped family's only
    again = minimal_detectable_effects(sc, pairs=pairs, simulate=False, seed=1).to_frame()
    assert again.equals(table)


def test_a_plug_in_familys_values_are_never_taken_from_the_block_memo(config_file):
    # A plug-in family may read what it does not declare (another component's values in ctx.latent): the memo that
    # effect grids share draws through keeps only trialsim's own families' values, and the shipped one beside it.
    sc = load_scenario(config_file)
    memo = BlockMemo()
    calls = []
    original = PoissonCount.generate

    def counted(self, cid, ctx, streams):
        calls.append(cid)
        return original(self, cid, ctx, streams)

    PoissonCount.generate = counted
    try:
        for _ in range(2):
            simulate_trials(sc, 100, streams=Streams(5, 0, memo=memo))
    finally:
        PoissonCount.generate = original
    assert calls == ["delirium", "delirium"]  # computed both times
    kept = {key[1] for key in memo._entries if key[0] == "component"}  # noqa: SLF001
    assert kept == {"fall"}  # the shipped family's values were kept (and read the second time)


@register
class EchoEvent(EndpointFamily):
    """A plug-in event that copies another component's values without declaring the link (it may: it gets the whole
    patient context), so nothing that reads it can be taken from the memo either."""

    family: Literal["echo_event"] = "echo_event"
    is_event: ClassVar[bool] = True
    source: str = "leak_1m"

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        return ()

    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        leak = ctx.latent[self.source]  # read, not declared in links()
        return {"event": np.asarray(leak["event"]), "day": np.asarray(leak["day"]), "grade": np.asarray(leak["grade"])}

    def event_values(self, latent: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(latent)

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        return {}


@pytest.mark.parametrize("reads_it", ["endpoints.los_days.event", "follow_up.death_event"])
def test_what_reads_a_plug_in_familys_values_is_never_taken_from_the_block_memo(reads_it):
    # found by review: the plug-in's own values were computed every time, but a shipped family linked to it (or the
    # follow-up of its deaths) was still keyed as if its values could not change, and came back from the memo
    raw = to_raw(load_scenario(DEFAULT_CONFIG))
    raw["endpoints"]["echo"] = {"family": "echo_event"}
    section, key = reads_it.rsplit(".", 1)
    node = raw
    for part in section.split("."):
        node = node[part]
    node[key] = "echo"
    base = validate(raw)
    memo = BlockMemo()
    for effect in (0.5, 0.05):  # a grid over the leak's effect: the echo's values change with it
        sc = with_values(base, {"endpoints.leak_1m.effect": effect})
        shared = simulate_trials(sc, 300, streams=Streams(7, 1, memo=memo), keep_patients=True)
        alone = simulate_trials(sc, 300, streams=Streams(7, 1), keep_patients=True)
        for pair, stats in alone.stats.items():
            np.testing.assert_array_equal(shared.stats[pair].pvalue, stats.pvalue, err_msg=f"{pair} at {effect}")
    assert memo.hits > 0  # what does not read the echo is still shared (the covariates, the markers' levels)
