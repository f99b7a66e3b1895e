"""Decision rules of interim looks: group-sequential stopping for efficacy/futility, and stopping for harm.

``group_sequential`` ([interim]): per trial, the monitored test's z at each look (from its one-sided
p-value in the direction of benefit, :func:`trialsim.analysis.group_sequential.one_sided_z`) is compared
with the design's bounds; the trial stops at the first look whose z is at or above the efficacy bound
(reject H0) or below the futility bound. Outcomes, keyed (endpoint, test, outcome):

- ``reject``: rejects as the trial would actually run (futility stops honoured): power, or the type I
  error of the design as run (at most alpha, lower with futility);
- ``reject_nonbinding``: rejects at some look when futility is ignored (the type I error that non-binding
  futility guarantees to keep at alpha, and what regulators count);
- ``stop_efficacy_look<k>``, ``stop_futility_look<k>``: the trial stops at look k for that reason;
- ``patients``: patients analysed at the stopping look (the expected sample size; patients enrolled
  while the last ones are followed up are not counted); with a [flow]: ``patients_enrolled``, patients
  enrolled by the stopping look (those counted plus the overrun still in follow-up), ``duration_months``,
  the calendar month of the stopping look, and ``month_look<k>`` the month of each look;
- ``efficacy_z_look<k>`` / ``futility_z_look<k>``: the bounds used (constants, for the record).

``harm`` ([safety]): at each safety review the treated arm's events are compared with a boundary
(``HARM_METHODS``: exact binomial test against a reference rate, or the Bayesian posterior probability
that the treated event rate is the higher); outcomes (endpoint, method, ``stop_harm_look<k>``) for the
first review that stops and ``stop_harm`` overall. The harm rule does not interact with the efficacy rule
(each is reported as if alone).
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from scipy import special

from trialsim.analysis import group_sequential as gs
from trialsim.config.interim import InterimConfig
from trialsim.decide import Decisions, register
from trialsim.simulate import LookCounts, TrialBatch

Outcomes = dict[tuple[str, str, str], np.ndarray]

# [interim].efficacy -> bounds at (looks, one-sided alpha, Hwang-Shih-DeCani gamma)
EFFICACY: dict[str, Callable[[tuple[float, ...], float, float], gs.Boundaries]] = {
    "obf_spending": lambda t, a, g: gs.spending_bounds(t, a, "obf"),
    "pocock_spending": lambda t, a, g: gs.spending_bounds(t, a, "pocock"),
    "hsd_spending": lambda t, a, g: gs.spending_bounds(t, a, "hsd", g),
    "obrien_fleming": lambda t, a, g: gs.classical_bounds(t, a, "obrien_fleming"),
    "pocock": lambda t, a, g: gs.classical_bounds(t, a, "pocock"),
}


# [interim.futility].kind -> the efficacy bounds with non-binding futility bounds added
FUTILITY: dict[str, Callable[[gs.Boundaries, object], gs.Boundaries]] = {
    "z": lambda b, f: gs.with_futility_z(b, f.z),
    "beta_spending": lambda b, f: gs.with_beta_spending(b, f.beta, f.drift, f.spending, f.hsd_gamma),
    "conditional_power": lambda b, f: gs.with_conditional_power(b, f.conditional_power, f.drift),
}


@functools.lru_cache(maxsize=64)
def _bounds_from_json(interim_json: str, alpha: float) -> gs.Boundaries:
    # keyed on the section's JSON: a frozen section holding lists is not hashable itself
    cfg = InterimConfig.model_validate_json(interim_json)
    looks = tuple(cfg.looks)
    bounds = EFFICACY[cfg.efficacy](looks, alpha, cfg.hsd_gamma)
    f = cfg.futility
    if f is None:
        return bounds
    return FUTILITY[f.kind](bounds, f)


def design_bounds(interim, design_alpha: float) -> gs.Boundaries:
    """The boundaries of an ``[interim]`` section (one-sided alpha: its own, or half the design's two-sided alpha)."""
    alpha = interim.alpha if interim.alpha is not None else design_alpha / 2.0
    return _bounds_from_json(interim.model_dump_json(), alpha)


def first_stop(cross_efficacy: np.ndarray, cross_futility: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per trial, the first look that stops (the last look when none does), and whether it stopped for
    efficacy or futility there. Inputs (n_looks, n_trials) bool; outputs (n_trials,)."""
    stop = cross_efficacy | cross_futility
    any_stop = stop.any(axis=0)
    look = np.where(any_stop, stop.argmax(axis=0), stop.shape[0] - 1)
    at = np.take_along_axis(cross_efficacy, look[None, :], axis=0)[0]
    return look, any_stop & at, any_stop & ~at


def group_sequential(batch: TrialBatch, decisions: Decisions) -> Outcomes:
    """Stop at the first look crossing a bound; see the module docstring for the outcomes."""
    looks = batch.interim
    if looks is None:
        return {}
    scenario = batch.model.scenario
    cfg = scenario.interim
    bounds = design_bounds(cfg, scenario.design.alpha)
    z = np.stack([gs.one_sided_z(s.pvalue, s.estimate, benefit=cfg.benefit) for s in looks.stats])
    with np.errstate(invalid="ignore"):  # NaN z (nothing analysable yet) crosses nothing
        cross_eff = z >= bounds.efficacy[:, None]
        cross_fut = z < bounds.futility[:, None]
    look, efficacy, futility = first_stop(cross_eff, cross_fut)
    k_max = bounds.n_looks
    out: Outcomes = {}

    def put(name: str, values) -> None:
        out[(looks.endpoint, looks.test, name)] = np.asarray(values)

    put("reject", efficacy)
    put("reject_nonbinding", cross_eff.any(axis=0))
    for k in range(k_max):
        put(f"stop_efficacy_look{k + 1}", efficacy & (look == k))
        if cfg.futility is not None and k < k_max - 1:
            put(f"stop_futility_look{k + 1}", futility & (look == k))
    put("patients", looks.patients[look].astype(float))
    if looks.months is not None:
        put("duration_months", np.take_along_axis(looks.months, look[None, :], axis=0)[0])
        put("patients_enrolled", np.take_along_axis(looks.enrolled, look[None, :], axis=0)[0])
        for k in range(k_max):
            put(f"month_look{k + 1}", looks.months[k])
    n = batch.n_trials
    for k in range(k_max):  # an infinite bound (nothing spent at that look) is no stop: not recorded
        if np.isfinite(bounds.efficacy[k]):
            put(f"efficacy_z_look{k + 1}", np.full(n, bounds.efficacy[k]))
        if cfg.futility is not None and k < k_max - 1 and np.isfinite(bounds.futility[k]):
            put(f"futility_z_look{k + 1}", np.full(n, bounds.futility[k]))
    return out


# -------------------------------------------------------------------------------------- harm
def harm_binomial(counts: LookCounts, cfg) -> np.ndarray:
    """Exact one-sided binomial test of the treated events against ``reference_rate`` at ``level`` per look:
    stop when P(X >= x | n_treated, reference_rate) <= level. (n_looks, n_trials) bool."""
    x, n = counts.events_treatment, counts.n_treatment
    with np.errstate(invalid="ignore"):
        from scipy import stats  # here, not at the top: workers load every rule, and scipy.stats costs ~0.5 s
        tail = stats.binom.sf(x - 1, n, cfg.reference_rate)
    return (n > 0) & (tail <= cfg.level)


def prob_treatment_higher(x_t, n_t, x_c, n_c, prior_t=(1.0, 1.0), prior_c=(1.0, 1.0), *, nodes: int = 128) -> np.ndarray:
    """P(p_treatment > p_control | data) with independent Beta priors and binomial likelihoods.

    ``E_t[F_c(p_t)] = integral_0^1 F_c(Q_t(u)) du``: Gauss-Legendre in the treated posterior's quantile
    ``u`` (bounded and smooth for any posterior, however sharp; 128 nodes are within 2e-6 of adaptive
    quadrature up to 400 per arm), evaluated once per distinct count tuple.
    """
    x_t, n_t, x_c, n_c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x_t, n_t, x_c, n_c)))
    keys = np.stack([x_t.ravel(), n_t.ravel(), x_c.ravel(), n_c.ravel()], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    g, w = np.polynomial.legendre.leggauss(nodes)
    u, w = (g + 1.0) / 2.0, w / 2.0
    a_t = prior_t[0] + unique[:, 0:1]
    b_t = prior_t[1] + unique[:, 1:2] - unique[:, 0:1]
    a_c = prior_c[0] + unique[:, 2:3]
    b_c = prior_c[1] + unique[:, 3:4] - unique[:, 2:3]
    q = special.betaincinv(a_t, b_t, u[None, :])
    values = special.betainc(a_c, b_c, q) @ w
    return values[inverse.ravel()].reshape(x_t.shape)


def harm_bayes(counts: LookCounts, cfg) -> np.ndarray:
    """Stop when P(p_treatment > p_control | data) > ``threshold`` (Beta priors). (n_looks, n_trials) bool."""
    p = prob_treatment_higher(counts.events_treatment, counts.n_treatment, counts.events_control, counts.n_control,
                              tuple(cfg.prior_treatment), tuple(cfg.prior_control))
    return (counts.n_treatment > 0) & (counts.n_control > 0) & (p > cfg.threshold)


# [safety].method -> per-look stop for harm
HARM_METHODS: dict[str, Callable[[LookCounts, object], np.ndarray]] = {"binomial": harm_binomial, "bayes": harm_bayes}


def harm(batch: TrialBatch, decisions: Decisions) -> Outcomes:
    """Stop for harm at the first safety review whose treated events cross the boundary."""
    counts = batch.safety
    if counts is None:
        return {}
    cfg = batch.model.scenario.safety
    cross = HARM_METHODS[cfg.method](counts, cfg) & (counts.events_treatment >= cfg.min_events)
    look, stopped, _ = first_stop(cross, np.zeros_like(cross))
    out: Outcomes = {(counts.endpoint, cfg.method, "stop_harm"): stopped}
    for k in range(cross.shape[0]):
        out[(counts.endpoint, cfg.method, f"stop_harm_look{k + 1}")] = stopped & (look == k)
    d = batch.model.scenario.design
    out[(counts.endpoint, cfg.method, "patients")] = np.where(stopped, counts.patients[look],
                                                              d.n_control + d.n_treatment).astype(float)
    if counts.months is not None:
        out[(counts.endpoint, cfg.method, "month_of_stop")] = np.where(
            stopped, np.take_along_axis(counts.months, look[None, :], axis=0)[0], np.nan)
    return out


register("group_sequential", group_sequential)
register("harm", harm)
