"""The Bayesian go / no-go rule and its exact operating characteristics for binary endpoints.

For every (endpoint, test) whose statistics carry posterior probabilities (the Bayesian tests of
:mod:`trialsim.analysis.bayes`), each simulated trial ends in one of three decisions about running
a confirmatory trial, from the scenario's ``[bayes]`` section (the dual-criterion frameworks of
Lalonde et al. 2007 and Frewer et al. 2016):

* ``go``: P(meaningful benefit | data) >= ``go_threshold``;
* ``no_go``: P(any benefit | data) < ``nogo_benefit`` or P(meaningful benefit | data) < ``nogo_meaningful``;
* ``inconclusive``: neither.

The config refuses no-go thresholds at or above the go threshold, and a meaningful benefit is a
benefit, so the three are exclusive. The rule also reports each trial's P(benefit), P(meaningful
benefit) and predictive probability of success (averaged in decisions.csv). Without a ``[bayes]``
section it returns nothing.

:func:`exact_go_nogo` gives the same probabilities for a binary endpoint exactly: a finite sum over
the analysable counts (Binomial(n, 1 - p_missing) per arm) and the events among them
(Binomial(m, p_event)), with the laws the endpoint family gives (``Model.binary_law``).
"""
from __future__ import annotations

import numpy as np

from trialsim.analysis.bayes import beta_binomial_posterior
from trialsim.config.bayes import BayesConfig
from trialsim.config.schema import Scenario
from trialsim.decide import Decisions, register
from trialsim.designs.allocation import scheme
from trialsim.model import build_model
from trialsim.simulate import TrialBatch

DECISIONS = ("go", "no_go", "inconclusive")
POSTERIOR = ("p_benefit", "p_meaningful", "ppos")
# Terms of the exact sum below this probability are dropped (their total is below ~1e-12).
NEGLIGIBLE = 1e-15
MAX_TABLES = 20_000_000  # (control, treatment) outcome pairs one exact sum may hold in memory


def classify(p_benefit, p_meaningful, config: BayesConfig) -> dict[str, np.ndarray]:
    """The go / no-go / inconclusive decision of each trial from its posterior probabilities."""
    p_benefit, p_meaningful = np.asarray(p_benefit), np.asarray(p_meaningful)
    go = p_meaningful >= config.go_threshold
    no_go = (p_benefit < config.nogo_benefit) | (p_meaningful < config.nogo_meaningful)
    return {"go": go, "no_go": no_go & ~go, "inconclusive": ~go & ~no_go}


def go_nogo(batch: TrialBatch, decisions: Decisions) -> dict[tuple[str, str, str], np.ndarray]:
    """Per trial and (endpoint, Bayesian test): go, no_go, inconclusive (bool) and the posterior numbers."""
    config = batch.model.scenario.bayes
    if config is None:
        return {}
    out: dict[tuple[str, str, str], np.ndarray] = {}
    for (endpoint, test), s in batch.stats.items():
        if not set(POSTERIOR) <= s.extra.keys():
            continue
        for name, values in classify(s.extra["p_benefit"], s.extra["p_meaningful"], config).items():
            out[(endpoint, test, name)] = values
        for name in POSTERIOR:
            out[(endpoint, test, name)] = s.extra[name]
    return out


register("go_nogo", go_nogo)


# ------------------------------------------------------------------------------------------- exact
def _arm_outcomes(n: int, p_event: float, p_missing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (analysable m, events x) of an arm of ``n`` with its probability, negligible ones dropped."""
    m = np.arange(n + 1)
    from scipy import stats  # here, not at the top: workers load every rule, and scipy.stats costs ~0.5 s
    w_m = stats.binom.pmf(m, n, 1.0 - p_missing)
    mm, xx = np.meshgrid(m, m, indexing="ij")
    possible = xx <= mm
    weight = np.where(possible, w_m[:, None] * stats.binom.pmf(xx, mm, p_event), 0.0)
    keep = possible & (weight > NEGLIGIBLE)
    return mm[keep], xx[keep], weight[keep]


def exact_go_nogo(scenario: Scenario, endpoint: str | None = None, *, alpha: float | None = None) -> dict[str, float] | None:
    """Exact probabilities of go / no-go / inconclusive (and the expected posterior numbers) for a binary endpoint.

    Parameters
    ----------
    scenario : Scenario
        Fixed arm sizes and no ``[flow]`` (arm sizes must not be random); its ``[bayes]`` section
        (defaults without one) sets the priors and thresholds.
    endpoint : str, optional
        An analysed binary endpoint; default the primary.
    alpha : float, optional
        Level of the credible interval (does not change the decisions); default the design's.

    Returns
    -------
    dict or None
        ``{"go", "no_go", "inconclusive", "p_benefit", "p_meaningful", "ppos"}``: probabilities and
        expectations over all outcomes of the trial; None when the endpoint's law is not known exactly
        (a flow, random arm sizes, a family without ``binary_law``).
    """
    model = build_model(scenario)
    d = scenario.design
    name = endpoint or model.primary.name
    if model.endpoint(name).kind != "binary":
        raise ValueError(f"endpoint {name!r} is not binary: exact go / no-go probabilities need event counts")
    if scenario.flow is not None or not scheme(scenario.allocation.scheme).fixed_sizes(scenario.allocation, d.n_control,
                                                                                        d.n_treatment):
        return None
    law_c, law_t = model.binary_law(name, "control"), model.binary_law(name, "treatment")
    if law_c is None or law_t is None:
        return None
    config = scenario.bayes or BayesConfig()
    m_c, x_c, w_c = _arm_outcomes(d.n_control, law_c.p_event, law_c.p_missing)
    m_t, x_t, w_t = _arm_outcomes(d.n_treatment, law_t.p_event, law_t.p_missing)
    if m_c.size * m_t.size > MAX_TABLES:
        raise ValueError(f"an exact sum over {m_c.size * m_t.size:,} outcome pairs is too large (at most "
                         f"{MAX_TABLES:,}); simulate this design instead")
    post = beta_binomial_posterior(x_c[:, None], m_c[:, None], x_t[None, :], m_t[None, :], config=config,
                                   alpha=d.alpha if alpha is None else alpha)
    weight = w_c[:, None] * w_t[None, :]
    out = {k: float((weight * v).sum()) for k, v in classify(post.p_benefit, post.p_meaningful, config).items()}
    out.update({k: float((weight * getattr(post, k)).sum()) for k in POSTERIOR})
    total = float(weight.sum())  # 1 minus the dropped terms: normalise so the decisions sum to 1
    return {k: v / total for k, v in out.items()}
