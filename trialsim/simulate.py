"""Simulate one batch of trials end to end: population -> allocation -> outcomes -> (flow) -> observed -> tests.

Every trial draws its patients and their covariates once, allocates them with the design's scheme,
then generates each endpoint component (links first) given arm and covariates. Each component draws
from its own random stream (:mod:`trialsim.rng`), so adding or removing one leaves the others' values
unchanged. The result is per-trial statistics (:class:`~trialsim.analysis.registry.TrialStats`) for
every (endpoint, test) and per-arm estimates; nothing is summarised here.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any, Callable, Hashable

import numpy as np

from trialsim.analysis import registry as tests
from trialsim.analysis.continuous import by_rows, nan_mean, nan_median
from trialsim.analysis.registry import TrialStats
from trialsim.config.flow import DAYS_PER_MONTH
from trialsim.config.schema import Scenario
from trialsim.designs.allocation import allocation_sequence, scheme
from trialsim.endpoints.base import Analysed, PatientContext, Status
from trialsim.flow.run import FlowBatch, simulate_flow
from trialsim.followup import FollowUpDraws, draw_follow_up
from trialsim.model import Model, build_model
from trialsim.population import draw_covariates
from trialsim.rng import Streams


@dataclass
class PatientTable:
    """Everything about the patients of a batch (for replay): covariates, arms, latent and observed values."""

    covariates: dict[str, np.ndarray]
    treated: np.ndarray
    latent: dict[str, dict[str, np.ndarray]]
    follow_up: FollowUpDraws
    status: Status
    observed: dict[str, np.ndarray]


@dataclass
class LookStats:
    """The monitored (endpoint, test) analysed at each look on the first ``patients[k]`` patients enrolled.

    ``stats[k]``: per-trial statistics at look k; ``months``: (n_looks, n_trials) calendar month at which the
    look's patients have all been assessed, and ``enrolled``: patients enrolled by then (the look's patients
    plus those still in follow-up); both from the flow, None without a [flow].
    """

    endpoint: str
    test: str
    fractions: tuple[float, ...]
    patients: np.ndarray
    stats: list[TrialStats]
    months: np.ndarray | None
    enrolled: np.ndarray | None = None


@dataclass
class LookCounts:
    """Events and analysable patients per arm at each look, arrays (n_looks, n_trials), of a binary endpoint."""

    endpoint: str
    fractions: tuple[float, ...]
    patients: np.ndarray
    events_control: np.ndarray
    n_control: np.ndarray
    events_treatment: np.ndarray
    n_treatment: np.ndarray
    months: np.ndarray | None


@dataclass
class TrialBatch:
    """Per-trial results of one batch of simulated trials."""

    model: Model
    n_trials: int
    stats: dict[tuple[str, str], TrialStats]  # (endpoint, test) -> per-trial statistics
    arm_estimates: dict[tuple[str, str, str], np.ndarray]  # (endpoint, arm or "contrast", statistic) -> (n_trials,)
    flow: dict[str, np.ndarray] | None = None  # per-trial calendar and counts
    flow_batch: FlowBatch | None = None
    patients: PatientTable | None = None
    interim: LookStats | None = None  # the monitored test at each interim look ([interim])
    safety: LookCounts | None = None  # events per arm at each safety review ([safety])
    # (n_control, n_treatment) -> per-trial statistics of each trial's first patients of each arm (nested sizes)
    nested: dict[tuple[int, int], dict[tuple[str, str], TrialStats]] | None = None

    @property
    def event_log(self):
        return None if self.flow_batch is None else self.flow_batch.event_log


def simulate_trials(scenario: Scenario, n_sims: int, *, streams: Streams, keep_patients: bool = False,
                    event_log: bool = False, nested: tuple[tuple[int, int], ...] = (), tested: bool = True) -> TrialBatch:
    """Simulate ``n_sims`` trials of ``scenario`` on the random streams of one block, or of consecutive blocks
    (``streams.sizes``; each trial then gets its block's own numbers), vectorised over trials.

    ``nested``: smaller ``(n_control, n_treatment)`` sizes also analysed on each trial's first patients of each
    arm (:func:`nesting_problem` says when that is a trial of those sizes); their statistics are ``batch.nested``.
    ``tested=False``: the patients only (with ``keep_patients``), no test run and no estimate (``batch.stats`` and
    ``batch.arm_estimates`` empty): for what reads the patients' values alone.
    """
    model = build_model(scenario)
    d = scenario.design
    if nested:
        problem = nesting_problem(scenario, nested)
        if problem is not None:
            raise ValueError(f"nested sizes cannot be analysed here: {problem}")
    n = d.n_control + d.n_treatment
    keys = DrawKeys(model, streams, n_sims)
    covariates = keys.get(keys.covariates, lambda: draw_covariates(scenario.population, n_sims, n, streams=streams))
    chosen = scheme(scenario.allocation.scheme)

    def allocate():
        score = model.section(model.selection_component).risk_score(covariates) if chosen.uses_score else None
        return allocation_sequence(scenario.allocation, n_trials=n_sims, n_control=d.n_control, n_treatment=d.n_treatment,
                                   rng=streams("allocation"), covariates=covariates, strata=model.strata, score=score)

    treated = keys.get(keys.allocation, allocate)
    ctx = PatientContext(n_sims, n, covariates, treated, model.prevalence, assessor_masked=d.assessor_is_masked)
    for cid in model.order:
        ctx.latent[cid] = keys.generated(cid, lambda: model.section(cid).generate(cid, ctx, streams))
    fu = scenario.follow_up
    event = model.section(fu.death_event).event_values(ctx.latent[fu.death_event]) if fu.death_event else None
    follow = FollowUpDraws(*keys.get(keys.follow_up, lambda: _fields(draw_follow_up(fu, ctx, event, streams=streams))))
    flow_batch = arm_order = None
    if scenario.flow is None:
        status = Status(attended=~follow.died & ~follow.misses_visit, died=follow.died)
    else:
        arm_order = ArmOrder(treated)  # the flow's per-arm rows <-> positions, sorted once per block
        status, flow_batch = _through_flow(scenario, model, ctx, follow, arm_order, streams=streams, event_log=event_log)
    observed: dict[str, np.ndarray] = {}
    for cid in model.order:
        observed.update(model.section(cid).observe(cid, ctx, ctx.latent[cid], status))
    fixed = chosen.fixed_sizes(scenario.allocation, d.n_control, d.n_treatment)
    split = ArmSplit(treated, d.n_control, fixed=fixed, same_arms=chosen.same_arms)
    parts = streams.sizes
    stats, estimates = analyse(model, observed, split, covariates=covariates, parts=parts) if tested else ({}, {})
    inner = {size: analyse(model, observed, split.prefix(*size), covariates=covariates, parts=parts)[0]
             for size in nested} or None
    flow = None if flow_batch is None else {k: np.asarray(v, dtype=float) for k, v in flow_batch.per_trial().items()}
    patients = PatientTable(covariates, treated, ctx.latent, follow, status, observed) if keep_patients else None
    looks = scenario.interim is not None or scenario.safety is not None
    assessed = arm_order.to_positions(flow_batch.t_visit, np.nan) if looks and flow_batch is not None else None
    interim = safety = None
    if scenario.interim is not None:
        interim = analyse_looks(model, observed, split, scenario.interim, assessed)
        if flow_batch is not None:
            enrolled_at = arm_order.to_positions(flow_batch.t_enrolled, np.nan) / DAYS_PER_MONTH
            interim.enrolled = (enrolled_at[None, :, :] <= interim.months[:, :, None]).sum(axis=-1).astype(float)
    if scenario.safety is not None:
        safety = count_looks(model, observed, split, scenario.safety, assessed)
    return TrialBatch(model, n_sims, stats, estimates, flow, flow_batch, patients, interim, safety, inner)


SHIPPED = "trialsim."  # the package whose own plug-ins are trusted: by the memo (DrawKeys.component), by batches (groupable)


def groupable(scenario: Scenario) -> bool:
    """Whether several blocks of the scenario may be simulated in one batch (``Streams(..., sizes=...)``), each trial
    getting the numbers of its block simulated alone: trialsim's own endpoint families and allocation schemes draw
    every value trials first or patient-major (what :class:`~trialsim.rng.BlockDraws` joins), and compute each
    trial's values from its own draws; tests that promise no more are run per block (:func:`analyse`). Not with a
    flow (its draws go on until every trial of the block has its patients), interim or safety looks."""
    if scenario.flow is not None or scenario.interim is not None or scenario.safety is not None:
        return False
    model = build_model(scenario)
    own = [type(model.section(cid)).__module__ for cid in model.order]
    own.append(scheme(scenario.allocation.scheme).sequence.__module__)
    return all(m.startswith(SHIPPED) for m in own)


class DrawKeys:
    """What each generation step of a batch is computed from, as a key of the streams' memo (``streams.memo``).

    A key names the block (seed, block, trials), the config sections the step reads and the keys of the values it
    reads: the covariates read the population; the allocation the covariates, the allocation section, the arm sizes,
    the strata and the selection endpoint's risk model; a component (:class:`~trialsim.endpoints.base.EndpointFamily`,
    which reads its own section, the covariates, arms and prevalences, the assessor's masking and the values of its
    ``links()``) those; the follow-up its section and the death event's values. Equal keys are then equal values:
    a grid point that changes one endpoint's effect draws every other step from the memo (:mod:`trialsim.memo`).
    Without a memo every step is computed.

    Only trialsim's own families are trusted to read nothing else. A plug-in family gets the whole patient context
    and could read another component's values without declaring the link, so it has no key (None: computed every
    time), and neither has any step that reads its values (a family linked to it, the follow-up of its deaths).
    """

    def __init__(self, model: Model, streams: Streams, n_trials: int):
        sc = model.scenario
        d = sc.design
        self.model, self.memo = model, streams.memo
        self._components: dict[str, tuple | None] = {}
        if self.memo is None:  # nothing to look up (every single-scenario run): no key is built on the hot path
            self.covariates = self.allocation = self.follow_up = None
            return
        block = (streams.key, int(n_trials), d.n_control + d.n_treatment)
        self.covariates = ("covariates", block, _token(sc.population))
        selection = model.section(model.selection_component) if scheme(sc.allocation.scheme).uses_score else None
        self.allocation = ("allocation", self.covariates, _token(sc.allocation), d.n_control, d.n_treatment,
                           model.strata, _token(selection))
        death = sc.follow_up.death_event
        death_key = self.component(death) if death else None
        self.follow_up = None if death and death_key is None else (
            "follow_up", self.allocation, _token(sc.follow_up), death_key)

    def component(self, cid: str) -> tuple | None:
        """The key of component ``cid``'s values; None where they may read what no key names (see above), or
        without a memo."""
        if self.memo is None:
            return None
        if cid not in self._components:
            section = self.model.section(cid)
            links = tuple(self.component(link) for link in section.links())
            trusted = type(section).__module__.startswith(SHIPPED) and all(k is not None for k in links)
            self._components[cid] = ("component", cid, self.allocation, _token(section),
                                     self.model.scenario.design.assessor_is_masked, links) if trusted else None
        return self._components[cid]

    def get(self, key: Hashable | None, make: Callable[[], Any]) -> Any:
        """The value of ``key`` from the memo (computed and kept on a miss); computed when there is no memo or no key."""
        return make() if self.memo is None or key is None else self.memo.get(key, make)

    def generated(self, cid: str, make: Callable[[], Any]) -> Any:
        """Component ``cid``'s values (:meth:`get` of its :meth:`component` key)."""
        return self.get(self.component(cid), make)


def _token(section) -> Hashable:
    """A config section as part of a key: itself (equal sections are equal keys), or its JSON where it holds a dict
    (pydantic hashes no dict field)."""
    try:
        hash(section)
    except TypeError:
        return (type(section).__qualname__, section.model_dump_json())
    return section


def _fields(follow: FollowUpDraws) -> tuple:
    return tuple(getattr(follow, f.name) for f in fields(follow))  # not dataclasses.astuple: it deep-copies the arrays


def nesting_problem(scenario: Scenario, sizes) -> str | None:
    """Why the first ``n_control`` control and ``n_treatment`` treatment patients (in enrolment order) of a trial
    of ``scenario`` are not a trial of those sizes for each ``(n_control, n_treatment)`` in ``sizes``; None when
    they are.

    They are when every trial has exactly its target arm sizes, the arms do not depend on the patients (no
    covariate or risk-score allocation) and nothing depends on a patient's place in the enrolment order (no
    [flow] calendar, no interim or safety looks): each arm's patients are then independent draws given the arm,
    and any first few of them are distributed as the whole arm of the smaller trial. They are not the same
    draws as a trial simulated at that size (where other positions fall in each arm), so results agree in law,
    not in bits.
    """
    d, alloc = scenario.design, scenario.allocation
    chosen = scheme(alloc.scheme)
    if chosen.uses_covariates or chosen.uses_score:
        return f"allocation scheme {alloc.scheme!r} depends on the patients' covariates"
    for name in ("flow", "interim", "safety"):
        if getattr(scenario, name) is not None:
            return f"the scenario has a [{name}] section (patients depend on their place in the enrolment order)"
    if not chosen.fixed_sizes(alloc, d.n_control, d.n_treatment):
        return f"allocation scheme {alloc.scheme!r} does not fill {d.n_control} + {d.n_treatment} exactly"
    for n_c, n_t in sizes:
        if not (1 <= n_c <= d.n_control and 1 <= n_t <= d.n_treatment):
            return f"nested size {n_c} + {n_t} is not within the trial's {d.n_control} + {d.n_treatment}"
        if not chosen.fixed_sizes(alloc, n_c, n_t):
            return f"allocation scheme {alloc.scheme!r} does not fill {n_c} + {n_t} exactly"
    return None


# ------------------------------------------------------------------------------------------ looks
def look_sizes(fractions, n_patients: int) -> np.ndarray:
    """Patients analysed at each look: the first ``round(t * n)`` in enrolment order (at least 1)."""
    return np.maximum(1, np.rint(np.asarray(fractions, dtype=float) * n_patients).astype(int))


def _first(values: np.ndarray, m: int) -> np.ndarray:
    """Positions m and later blanked (NaN = not analysable): the look sees only the first m patients."""
    out = values.astype(float, copy=True)
    out[..., m:] = np.nan
    return out


def _look_months(assessed: np.ndarray | None, sizes: np.ndarray) -> np.ndarray | None:
    """Month at which the first m patients have all been assessed (the last of their visit times; patients
    without a visit, e.g. lost or dead, do not hold a look back)."""
    if assessed is None:
        return None
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (nobody assessed yet) give NaN
        return np.stack([np.nanmax(assessed[:, :m], axis=1) for m in sizes]) / DAYS_PER_MONTH


def analyse_looks(model: Model, observed: dict[str, np.ndarray], split: ArmSplit, interim, assessed=None) -> LookStats:
    """The monitored (endpoint, test) of ``[interim]`` at each look, on the first patients enrolled.

    Later positions are blanked with NaN (the test kernels skip NaN), so every trial's look is analysed
    at once; the test runs at the design's alpha (its decision is not used: the boundaries decide).
    """
    endpoint = interim.endpoint or model.primary.name
    test = interim.test or model.endpoint(endpoint).tests[0]
    x = observed[endpoint]
    sizes = look_sizes(interim.looks, x.shape[-1])
    spec = tests.get(test)
    alpha = model.scenario.design.alpha
    per_look = [spec.run(*split.arms(_first(x, m)), alpha) for m in sizes]
    return LookStats(endpoint, test, tuple(interim.looks), sizes, per_look, _look_months(assessed, sizes))


def count_looks(model: Model, observed: dict[str, np.ndarray], split: ArmSplit, safety, assessed=None) -> LookCounts:
    """Events and analysable patients per arm of ``[safety]``'s binary endpoint at each review."""
    endpoint = safety.endpoint or model.primary.name
    x = observed[endpoint]
    sizes = look_sizes(safety.looks, x.shape[-1])
    looks = np.stack([_first(x, m) for m in sizes])  # (n_looks, n_trials, n_patients)
    control, treatment = split.arms(looks)
    counts = [(np.nansum(arm, axis=-1), np.count_nonzero(~np.isnan(arm), axis=-1).astype(float))
              for arm in (control, treatment)]
    return LookCounts(endpoint, tuple(safety.looks), sizes, counts[0][0], counts[0][1], counts[1][0], counts[1][1],
                      _look_months(assessed, sizes))


# ------------------------------------------------------------------------------------------ arms
class ArmSplit:
    """Split per-position arrays ``(..., n_trials, n_patients)`` into the control and treatment arms.

    Deterministic schemes (every trial the same arms) take columns; schemes with fixed arm sizes
    gather each trial's patients in position order; others keep every position and blank the other
    arm with NaN (tests ignore NaN, so each trial is analysed at its own arm sizes).

    ``same_arms``: whether the scheme gives every trial the same arms (:attr:`Scheme.same_arms`). False: never columns,
    even where every trial of the batch happens to have the same arms (a batch of one trial), so that a trial's
    layout, and the bits of its sums, never depend on the other trials of its batch; None: columns wherever every row of
    ``treated`` is the same.
    """

    def __init__(self, treated: np.ndarray, n_control: int, *, fixed: bool, same_arms: bool | None = None):
        self.mode = "mask"
        identical = bool(treated.shape[0]) and bool((treated == treated[0]).all())
        if identical and same_arms is not False:
            idx_c, idx_t = np.flatnonzero(~treated[0]), np.flatnonzero(treated[0])
            self.mode = "columns"
            self.columns = (_as_slice(idx_c), _as_slice(idx_t))
        elif fixed:
            order = np.argsort(treated, axis=1, kind="stable")
            self.mode = "gather"
            self.order = (order[:, :n_control], order[:, n_control:])
        self.treated = treated

    def prefix(self, n_control: int, n_treatment: int) -> "ArmSplit":
        """The split of each trial's first ``n_control`` control and first ``n_treatment`` treatment patients, in
        enrolment order (a split with fixed arm sizes only)."""
        if self.mode == "mask":
            raise ValueError("a split whose arm sizes vary between trials has no nested sizes")
        out = object.__new__(ArmSplit)
        out.mode, out.treated = self.mode, self.treated
        if self.mode == "columns":
            n = self.treated.shape[1]
            c, t = (np.arange(n)[cols] for cols in self.columns)
            out.columns = (_as_slice(c[:n_control]), _as_slice(t[:n_treatment]))
        else:
            out.order = (self.order[0][:, :n_control], self.order[1][:, :n_treatment])
        return out

    def arms(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.mode == "columns":
            return x[..., self.columns[0]], x[..., self.columns[1]]
        if self.mode == "gather":
            shape = x.shape[:-2]
            oc = np.broadcast_to(self.order[0], shape + self.order[0].shape)
            ot = np.broadcast_to(self.order[1], shape + self.order[1].shape)
            return np.take_along_axis(x, oc, axis=-1), np.take_along_axis(x, ot, axis=-1)
        return np.where(self.treated, np.nan, x), np.where(self.treated, x, np.nan)


def _as_slice(idx: np.ndarray):
    if idx.size and (np.diff(idx) == 1).all():
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


# --------------------------------------------------------------------------------------- analyses
def analyse(model: Model, observed: dict[str, np.ndarray], split: ArmSplit, *, alpha: float | None = None,
            covariates: dict[str, np.ndarray] | None = None, parts: tuple[int, ...] | None = None,
            ) -> tuple[dict[tuple[str, str], TrialStats], dict[tuple[str, str, str], np.ndarray]]:
    """Every (endpoint, test) of the model on observed values, and the per-arm estimates.

    Endpoints are stacked into one ``(n_endpoints, n_trials, n_patients)`` array per arm, so the
    endpoints that share a stacked test (e.g. the 17 cytokine endpoints) are tested in one call.
    Tests that adjust for baseline covariates (``TestSpec.needs_covariates``) also get the covariates
    of ``model.adjust_for``, split by arm as the outcomes: ``(n_trials, n_arm, n_covariates)`` per arm.
    ``parts``: the trials are consecutive blocks of these sizes; a test that does not promise each trial its own
    bits whatever else shares the call (``TestSpec.trialwise_up_to``) is called once per block (:func:`_run_test`).
    """
    alpha = model.scenario.design.alpha if alpha is None else alpha
    eps = model.analysed
    by_test: dict[str, list[Analysed]] = {}
    for a in eps:
        for t in a.tests:
            by_test.setdefault(t, []).append(a)
    stacked = {t: members for t, members in by_test.items() if _stacks(tests.get(t), members)}
    order = _stack_order(eps, stacked)
    arms = _ArmsInStackOrder(observed, [eps[i].name for i in order], split)
    by_patient = None  # long arms: every sum over patients runs along the rows
    control = treatment = None  # the stacked arms, when a test or the long arms need them
    if not all(by_rows(x) for x in arms.endpoint(0)):
        by_patient = arms.patient_major()  # (n_arm, n_endpoints, n_trials)
    else:
        control, treatment = arms.stacked()
    adjusting = None
    if any(tests.get(t).needs_covariates for a in eps for t in a.tests):
        if covariates is None:
            raise ValueError("adjusted tests need the patients' covariates")
        shape = arms.endpoint(0)[0].shape[:1] + (split.treated.shape[1],)
        z = np.stack([covariates[n] for n in model.adjust_for]) if model.adjust_for else np.zeros((0,) + shape)
        adjusting = tuple(np.moveaxis(arm, 0, -1) for arm in split.arms(z))
    row = {eps[i].name: k for k, i in enumerate(order)}
    if by_patient is None:
        means = [nan_mean(x)[:2] for x in (control, treatment)]  # shared with the tests and the arm estimates
    else:
        means = [nan_mean(np.moveaxis(cols, 0, -1), cols)[:2] for cols in by_patient]
    stats: dict[tuple[str, str], TrialStats] = {}
    for t, members in by_test.items():
        spec = tests.get(t)
        if t in stacked:
            members = sorted(members, key=lambda a: row[a.name])  # in stack order: res.take(i) is members[i]
            rows = _rows([row[a.name] for a in members])
            if spec.any_layout:  # patient-major views: the test sums over patients without copying first
                shared = {"means": tuple((n[rows], mean[rows]) for n, mean in means)} if spec.takes_means else {}
                inputs = (control[rows], treatment[rows]) if by_patient is None else \
                    (np.moveaxis(arm[:, rows], 0, -1) for arm in by_patient)
                res = _run_test(spec, tuple(inputs), alpha, parts, **shared)
            else:
                control, treatment = arms.stacked()
                res = _run_test(spec, (control[rows], treatment[rows]), alpha, parts)
            for i, a in enumerate(members):
                stats[(a.name, t)] = res.take(i)
            continue
        for a in members:  # one call per endpoint: settings from the scenario (priors ...), covariates
            extra = dict(spec.options(model, a)) if spec.options is not None else {}
            if spec.needs_covariates:
                extra["covariates"] = adjusting
            if spec.takes_means:
                extra["means"] = tuple((n[row[a.name]], mean[row[a.name]]) for n, mean in means)
            stats[(a.name, t)] = _run_test(spec, arms.endpoint(row[a.name]), alpha, parts, **extra)
    ordered = {(a.name, t): stats[(a.name, t)] for a in eps for t in a.tests}
    per_endpoint = [arms.endpoint(k) for k in range(len(order))]
    return ordered, arm_estimates(eps, [c for c, _ in per_endpoint], [t for _, t in per_endpoint],
                                  rows=[row[a.name] for a in eps], means=means)


def _run_test(spec, arms: tuple[np.ndarray, np.ndarray], alpha: float, parts: tuple[int, ...] | None,
              **kwargs) -> TrialStats:
    """``spec.run`` on both arms (trials on the second last axis); where the trials are several blocks (``parts``)
    and the test does not promise trial-wise bits at these arm sizes, once per block, the results joined."""
    if parts is None or len(parts) == 1 or max(x.shape[-1] for x in arms) <= spec.trialwise_up_to:
        return spec.run(*arms, alpha, **kwargs)
    out, start = [], 0
    for size in parts:
        part = slice(start, start + size)
        start += size
        options = {name: _trials_of(name, value, part) for name, value in kwargs.items()}
        out.append(spec.run(*(x[..., part, :] for x in arms), alpha, **options))
    return TrialStats.concatenate(out)


def _trials_of(name: str, value, part: slice):
    """The trials ``part`` of a keyword argument of a test's ``run`` (the runner's own: means and covariates)."""
    if name == "means":  # ((n, mean) per arm), trials last
        return tuple((n[..., part], mean[..., part]) for n, mean in value)
    if name == "covariates":  # (n_trials, n_arm, n_covariates) per arm
        return tuple(z[part] for z in value)
    return value  # settings read from the scenario


class _ArmsInStackOrder:
    """The observed values of the endpoints (in stack order) split by arm, built as each use needs them.

    ``endpoint(k)``: one endpoint's arms as ``split.arms`` gives them, the layout of a row of the stacked arms
    (for the columns of a deterministic split: views). ``stacked()``: the stacked arms
    ``(n_endpoints, n_trials, n_arm)``. ``patient_major()``: each arm ``(n_arm, n_endpoints, n_trials)``,
    contiguous, copied straight from each endpoint's arms (no stacked copy first).
    """

    def __init__(self, observed: dict[str, np.ndarray], names: list[str], split: ArmSplit):
        self.observed, self.names, self.split = observed, names, split
        self._endpoints: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._stacked = None

    def endpoint(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._endpoints:
            self._endpoints[k] = self.split.arms(self.observed[self.names[k]])
        return self._endpoints[k]

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        if self._stacked is None:
            self._stacked = self.split.arms(np.stack([self.observed[n] for n in self.names]))
        return self._stacked

    def patient_major(self) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for arm in (0, 1):
            first = self.endpoint(0)[arm]
            columns = np.empty((first.shape[-1], len(self.names)) + first.shape[:-1])
            for k in range(len(self.names)):
                x = self.endpoint(k)[arm]
                columns[:, k] = x.T if x.ndim == 2 else np.moveaxis(x, -1, 0)  # (np.moveaxis costs 10 us a call)
            out.append(columns)
        return out[0], out[1]


def _stacks(spec, members: list[Analysed]) -> bool:
    """Whether the test runs once on all its endpoints, stacked."""
    return spec.stacked and len(members) > 1 and spec.options is None and not spec.needs_covariates


def _stack_order(eps: tuple[Analysed, ...], stacked: dict[str, list[Analysed]]) -> list[int]:
    """The endpoints' order in the stacked arrays: sorted by the stacked tests they take (in test order, takers
    first), so that each stacked test's endpoints are usually one slice, which its patient-major rows are as a
    view instead of a copy (any order gives the same results: every statistic is per endpoint row)."""
    takes = [tuple(a.name not in {m.name for m in members} for members in stacked.values()) for a in eps]
    return sorted(range(len(eps)), key=lambda i: takes[i])  # stable: declaration order within a group


def _rows(idx: list[int]):
    return slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx


def arm_estimates(eps: tuple[Analysed, ...], control: np.ndarray, treatment: np.ndarray, *,
                  rows: list[int] | None = None,
                  means: list[tuple[np.ndarray, np.ndarray]] | None = None) -> dict[tuple[str, str, str], np.ndarray]:
    """Per-trial arm summaries (rate, geometric mean, median, mean grade), analysable counts and contrasts.

    Contrasts: the risk difference (treatment - control) of binary endpoints and the log ratio of
    geometric means of log-scale endpoints (summarised as exp of its mean: a geometric mean ratio).
    ``control`` and ``treatment`` may also be lists of one array per row. ``rows``: the row of
    each endpoint of ``eps`` in the stacked arrays (default: in order). ``means``: each arm's analysable counts and
    means (:func:`~trialsim.analysis.continuous.nan_mean`), when the caller has them.
    """
    out: dict[tuple[str, str, str], np.ndarray] = {}
    parts = {}
    for k, (arm, x) in enumerate((("control", control), ("treatment", treatment))):
        n, mean = nan_mean(x)[:2] if means is None else means[k]
        parts[arm] = (n.astype(float), mean, x)  # every endpoint's counts converted at once (exact)
    rows = range(len(eps)) if rows is None else rows
    with np.errstate(over="ignore", invalid="ignore"):
        contrast = parts["treatment"][1] - parts["control"][1]  # element by element: each row's bits
        for i, a in zip(rows, eps):
            for arm in ("control", "treatment"):
                n, mean, x = parts[arm]
                if a.summary == "median":
                    value, stat = nan_median(x[i]), "median"
                elif a.kind == "binary":
                    value, stat = mean[i], "rate"
                elif a.kind == "ordinal":
                    value, stat = mean[i], "mean_grade"
                else:
                    value, stat = mean[i], "mean"
                if a.scale == "log":
                    value, stat = np.exp(value), ("geometric_mean" if stat == "mean" else stat)
                out[(a.name, arm, stat)] = value
                out[(a.name, arm, "n_analysable")] = n[i]
            mc, mt = parts["control"][1][i], parts["treatment"][1][i]
            if a.kind == "binary":
                out[(a.name, "contrast", "risk_difference")] = contrast[i]
                out[(a.name, "control", "any_event")] = (mc > 0).astype(float)
                out[(a.name, "treatment", "any_event")] = (mt > 0).astype(float)
            elif a.scale == "log":
                out[(a.name, "contrast", "log_ratio")] = contrast[i]
    return out


# ------------------------------------------------------------------------------------------- flow
def _through_flow(scenario: Scenario, model: Model, ctx: PatientContext, follow: FollowUpDraws, arm_order: "ArmOrder", *,
                  streams: Streams,
                  event_log: bool) -> tuple[Status, FlowBatch]:
    """The SimPy flow on the allocated patients: who is enrolled, seen at the visit, has the procedure.

    The flow works per arm (the k-th patient allocated to an arm is its row k); positions are mapped
    to arm rows and back.
    """
    d = scenario.design
    stays = (model.section(c).flow_inputs(ctx.latent[c]) for c in model.order)
    stay = next((s for s in stays if s is not None), None)
    if stay is None:
        raise ValueError("a [flow] needs a length-of-stay endpoint (a family with hospital-stay inputs, e.g. 'duration')")
    fu = scenario.follow_up
    event_cid = fu.death_event or next((c for c in model.order if model.section(c).is_event), None)
    day = (model.section(event_cid).event_values(ctx.latent[event_cid])["day"] if event_cid is not None
           else np.full(ctx.shape, np.nan))
    per_position = {"stay_days": stay["stay_days"], "event_day": day, "event_extra_days": stay["event_extra_days"],
                    "died": follow.died.astype(float), "death_day": follow.death_day}
    treated = ctx.treated
    outcomes = {arm: {k: np.take_along_axis(v, order, axis=1) for k, v in per_position.items()}
                for arm, order in (("control", arm_order.control), ("treatment", arm_order.treatment))}
    p_procedure = next((p for c in model.order if (p := model.section(c).visit_procedure_missing()) is not None), 0.0)
    batch = simulate_flow(scenario.flow, n_control=d.n_control, n_treatment=d.n_treatment, outcomes=outcomes,
                          p_missing_visit=fu.p_missing_visit, p_missing_procedure=p_procedure, is_treatment=treated,
                          rng=streams("flow"), event_log=event_log, engine=scenario.run.flow_engine)

    enrolled = arm_order.to_positions(batch.enrolled, False)
    status = Status(attended=arm_order.to_positions(batch.visit_attended, False) & ~follow.died,
                    died=follow.died & enrolled, enrolled=enrolled,
                    procedure_done=arm_order.to_positions(batch.procedure_done, False))
    return status, batch


class ArmOrder:
    """Each trial's enrolment positions sorted by arm (stable): ``control`` lists the control positions first, in
    position order, ``treatment`` the treatment positions first. Built once per block; the flow's per-arm rows
    (the k-th patient of an arm is its row k) go back to positions with :meth:`to_positions`."""

    def __init__(self, treated: np.ndarray):
        self.treated = treated
        self.control = np.argsort(treated, axis=1, kind="stable")
        self.treatment = np.argsort(~treated, axis=1, kind="stable")
        self.n_control = (~treated).sum(axis=1, keepdims=True)
        self.in_treatment = np.take_along_axis(treated, self.treatment, axis=1)

    def to_positions(self, by_arm: dict[str, np.ndarray], fill) -> np.ndarray:
        out = np.full(self.treated.shape, fill, dtype=np.result_type(by_arm["control"], type(fill)))
        k = np.arange(self.treated.shape[1])[None, :]
        np.put_along_axis(out, self.control, np.where(k < self.n_control, by_arm["control"], fill), axis=1)
        current = np.take_along_axis(out, self.treatment, axis=1)
        np.put_along_axis(out, self.treatment, np.where(self.in_treatment, by_arm["treatment"], current), axis=1)
        return out
