"""An ordinal grade at a follow-up procedure, compared with a baseline grade (family ``ordinal_grade``).

Per patient: a grade (index 0 = best) drawn from ``probs``, or from ``probs_after_event`` when the
linked event (``event``, e.g. the leak) occurred; a baseline grade from ``baseline_probs``; and the
procedure is missed with ``p_missing`` among patients who attended the visit. Treatment can act on
the grade directly through a proportional-odds ``treatment_odds_ratio``. A section ``<cid>`` analyses
three endpoints: ``<cid>_grade`` (ordinal), ``<cid>_abnormal`` (grade ``abnormal_from`` or worse) and
``<cid>_worse_than_baseline`` (binary).

Odds-ratio convention: for every cut between grades, the odds of a grade *better* than the cut,
``P(G < k) / P(G >= k)``, are multiplied by ``treatment_odds_ratio`` in the treatment arm. So
OR > 1 moves treated patients towards better (lower-index) grades, OR < 1 towards worse ones, and
OR = 1 leaves the grade law alone. The Mann-Whitney estimate, P(treatment < control) + ties / 2,
then exceeds 1/2 for OR > 1.

Defaults are the registered exosome/LAR trial's 1-month colonoscopy with sources [n] = section n of
shared/clinical_evidence.md.
"""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from trialsim.config.base import MISSING_MAX, Text
from trialsim.endpoints.assessor import GradeAssessorBias, assessor_uniforms
from trialsim.endpoints.base import Analysed, BinaryLaw, EffectParameter, EndpointFamily, PatientContext, Status, check_simplex, binary_contrast
from trialsim.endpoints.registry import register
from trialsim.labels import upper_first
from trialsim.rng import Streams, patient_major, trials_first


def proportional_odds(probs, odds_ratio: float) -> np.ndarray:
    """Grade probabilities after multiplying the odds of a better grade, at every cut, by ``odds_ratio``.

    Grades are ordered best first. With cumulative ``F_k = P(G <= k)``, the new ``F_k`` has odds
    ``odds_ratio * F_k / (1 - F_k)``; grades of probability 0 at either end stay at 0.
    """
    p = np.asarray(probs, dtype=float)
    if odds_ratio == 1.0:
        return p
    cum = np.cumsum(p)[:-1]
    shifted = odds_ratio * cum / (1.0 - cum + odds_ratio * cum)
    return np.diff(np.concatenate(([0.0], shifted, [1.0])))


@register
class OrdinalGrade(EndpointFamily):
    """An ordinal grade at a visit procedure (e.g. colonoscopy), possibly worse after a linked event."""

    family: Literal["ordinal_grade"] = "ordinal_grade"

    label: Text = Field("Anastomosis grade at 1-month colonoscopy", min_length=1, max_length=200, description="Endpoint label [0].")
    grades: tuple[Annotated[Text, Field(min_length=1, max_length=30)], ...] = Field(("intact", "minor", "defect", "stricture"), min_length=2, max_length=20,
                                    description="Ordered grades, best first [4].")
    probs: tuple[float, ...] = Field(
        (0.88, 0.08, 0.01, 0.03),
        description="Grade probabilities (without the linked event, if any); ASSUMPTION (stricture 7.8% mostly after 1 month) [4].",
    )
    probs_after_event: tuple[float, ...] = Field(
        (0.15, 0.25, 0.50, 0.10),
        description="Grade probabilities after the linked event (used only with `event`); ASSUMPTION (48% of leaks unhealed at 12 months, Borstlap) [4].",
    )
    event: str | None = Field(None, description="Id of the event endpoint whose occurrence switches to `probs_after_event` (e.g. 'leak_1m'); none = no link.")
    baseline_probs: tuple[float, ...] = Field(
        (1.0, 0.0, 0.0, 0.0),
        description="Grade at the baseline (preoperative) procedure; ASSUMPTION: normal, so any abnormal finding is new [4].",
    )
    abnormal_from: str = Field("defect", description="Grades from this one on count as abnormal (dehiscence or stricture) [4].")
    p_missing: float = Field(0.10, ge=0.0, le=MISSING_MAX,
                             description="Chance the procedure is not done for a patient who attended the visit; ASSUMPTION (invasive, patients travel) [6].")
    treatment_odds_ratio: float = Field(
        1.0, ge=0.01, le=100.0,
        description="Direct proportional-odds effect of treatment: odds of a better grade multiplied by it at every cut (>1 = better); ASSUMPTION none [8].",
    )
    assessor_bias: GradeAssessorBias = Field(
        default_factory=GradeAssessorBias,
        description="How an endoscopist who knows the arm grades the procedure; applies only when design.assessor_masked "
                    "is false; ASSUMPTION none.",
    )
    tests: tuple[str, ...] = Field(("mann_whitney",), max_length=10, description="Tests of the grade (Mann-Whitney on grade indices).")
    dichotomised_tests: tuple[str, ...] = Field(("fisher",), max_length=10, description="Tests of 'abnormal' and of 'worse than baseline' [9].")

    @model_validator(mode="after")
    def _shapes(self):
        k = len(self.grades)
        if len(set(self.grades)) != k:
            raise ValueError(f"grades must be distinct, got {list(self.grades)}")
        for name in ("probs", "probs_after_event", "baseline_probs"):
            values = getattr(self, name)
            if len(values) != k:
                raise ValueError(f"{name} has {len(values)} values but there are {k} grades {list(self.grades)}")
            check_simplex(values, name)
        if self.abnormal_from not in self.grades:
            raise ValueError(f"abnormal_from = {self.abnormal_from!r} is not one of the grades {list(self.grades)}")
        return self

    @property
    def abnormal_index(self) -> int:
        return self.grades.index(self.abnormal_from)

    # ------------------------------------------------------------------------------ structure
    def links(self) -> tuple[str, ...]:
        return () if self.event is None else (self.event,)

    def analysed(self, cid: str) -> tuple[Analysed, ...]:
        effect = EffectParameter(f"endpoints.{cid}.treatment_odds_ratio", "grade odds ratio (better grade)", "ratio", 1.0,
                                 self.treatment_odds_ratio, benefit=1.0)  # > 1: better grades
        procedure = upper_first(cid.replace("_", " "))
        return (
            Analysed(f"{cid}_grade", cid, "ordinal", self.label, "grade", "identity", self.tests, effect, measured_at_visit=True),
            Analysed(f"{cid}_abnormal", cid, "binary", f"{procedure} {self.abnormal_from} or worse", "patients", "identity",
                     self.dichotomised_tests, effect, measured_at_visit=True, summary="rate"),
            Analysed(f"{cid}_worse_than_baseline", cid, "binary", f"{procedure} worse than baseline", "patients", "identity",
                     self.dichotomised_tests, effect, measured_at_visit=True, summary="rate"),
        )

    def visit_procedure_missing(self) -> float:
        return self.p_missing

    def without_visit_loss(self, cid: str) -> dict:
        return {f"endpoints.{cid}.p_missing": 0.0}

    # ------------------------------------------------------------------------------- patients
    def _cumulative(self, after_event: bool, treated: bool) -> np.ndarray:
        probs = self.probs_after_event if after_event else self.probs
        p = proportional_odds(probs, self.treatment_odds_ratio) if treated else np.asarray(probs, dtype=float)
        return np.cumsum(p)[:-1]

    def generate(self, cid: str, ctx: PatientContext, streams: Streams) -> dict[str, np.ndarray]:
        rng = streams("endpoint", cid)
        s, n = ctx.shape
        u = patient_major(rng, "random", s, n, extra=(3,))  # grade, baseline grade, procedure missed
        u_grade, u_baseline, missing_u = (trials_first(u[..., k]) for k in range(3))  # one plane at a time: cheaper
        after = ctx.latent[self.event]["event"].astype(bool) if self.event is not None else np.zeros(ctx.shape, bool)
        treated = np.asarray(ctx.treated, dtype=bool)
        # each patient's law is one of four (event state x arm): law = 2 * event + treated
        law = np.add(after, after, dtype=np.intp)
        law += treated
        cum = np.array([self._cumulative(ev, tr) for ev in (False, True) for tr in (False, True)])  # (law, cut)
        # inverse CDF, as draw_categorical: the number of cuts at or below the uniform (an exact integer count)
        grade = np.zeros(ctx.shape, dtype=np.intp)
        for cut in cum.T:
            grade += np.take(cut, law) <= u_grade
        baseline = np.searchsorted(np.cumsum(self.baseline_probs)[:-1], u_baseline, side="right")
        latent = {"grade": grade, "baseline": baseline, "missing_u": missing_u}
        return latent | assessor_uniforms(cid, ctx, streams, self.assessor_bias)

    def observe(self, cid: str, ctx: PatientContext, latent: dict[str, np.ndarray], status: Status) -> dict[str, np.ndarray]:
        if status.procedure_done is not None:
            done = status.procedure_done
        else:
            done = status.attended & (latent["missing_u"] >= self.p_missing)
        if status.enrolled is not None:
            done = done & status.enrolled
        grade = latent["grade"]
        if "assessor_u" in latent:  # an unmasked endoscopist grades (its uniforms are drawn only then)
            grade = self.assessor_bias.record(grade, np.asarray(ctx.treated, dtype=bool), latent["assessor_u"])
        return {
            f"{cid}_grade": np.where(done, grade, np.nan),
            f"{cid}_abnormal": np.where(done, grade >= self.abnormal_index, np.nan),
            f"{cid}_worse_than_baseline": np.where(done, grade > latent["baseline"], np.nan),
        }

    # ----------------------------------------------------------------------------------- laws
    def grade_states(self, arm: str, model, *, recorded: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
        """``(done, probs)``: P(state and procedure done) and the grade law of each event state in ``arm``.

        ``recorded``: the grades as an unmasked assessor records them (its bias applied where the design's
        assessor is not masked); False gives the true grades (for the true effect).

        States are (no event, event) with an event link, one state without. None when the joint law
        of the grade and death is not known in closed form (death linked to another event than ours).
        """
        fu = model.scenario.follow_up
        treated = arm == "treatment"
        if self.event is None:
            weights, laws = [1.0], [self.probs]
            if fu.death_event is None:
                alive = [1.0 - fu.p_death]
            else:  # the grade is independent of the death event: only P(alive) matters
                states = model.alive_by_event(fu.death_event, arm)
                if states is None:
                    return None
                alive = [float(np.dot(states[0], states[1]))]
        else:
            p = model.event_probability(self.event, arm)
            if p is None:
                return None
            weights, laws = [1.0 - p, p], [self.probs, self.probs_after_event]
            if fu.death_event is None:
                alive = [1.0 - fu.p_death] * 2
            elif fu.death_event == self.event:
                alive = model.alive_by_event(self.event, arm)[1]
            else:
                return None
        probs = np.array([proportional_odds(q, self.treatment_odds_ratio) if treated else np.asarray(q, float) for q in laws])
        if recorded and treated and not model.scenario.design.assessor_is_masked:
            probs = self.assessor_bias.recorded_law(probs)
        done = np.asarray(weights) * np.asarray(alive) * (1.0 - fu.p_missing_visit) * (1.0 - self.p_missing)
        return done, probs

    def binary_law(self, cid: str, name: str, arm: str, model, *, recorded: bool = True) -> BinaryLaw | None:
        states = self.grade_states(arm, model, recorded=recorded)
        if states is None:
            return None
        done, probs = states
        if name == f"{cid}_abnormal":
            p_event_by_state = probs[:, self.abnormal_index:].sum(axis=1)
        elif name == f"{cid}_worse_than_baseline":
            k = len(self.grades)
            worse = np.greater.outer(np.arange(k), np.arange(k))  # [grade, baseline]
            p_event_by_state = probs @ worse @ np.asarray(self.baseline_probs)
        else:
            return None
        p_done = float(done.sum())
        return BinaryLaw(float(done @ p_event_by_state) / p_done, 1.0 - p_done)

    def grade_law(self, arm: str, model, *, recorded: bool = True) -> np.ndarray | None:
        """The grade probabilities among patients whose procedure was done, in ``arm`` (as recorded, or true)."""
        states = self.grade_states(arm, model, recorded=recorded)
        if states is None:
            return None
        done, probs = states
        return done @ probs / done.sum()

    def true_effect(self, cid: str, name: str, estimand: str, model) -> float | None:
        # the truth is of the true grades: an unmasked assessor's grading shows as bias
        if name == f"{cid}_grade" and estimand == "p_treatment_lower":
            g_c, g_t = self.grade_law("control", model, recorded=False), self.grade_law("treatment", model, recorded=False)
            if g_c is None or g_t is None:
                return None
            lower = np.less.outer(np.arange(len(g_t)), np.arange(len(g_c)))  # [treatment grade, control grade]
            return float(g_t @ lower @ g_c + 0.5 * g_t @ g_c)
        if name != f"{cid}_grade":
            c = self.binary_law(cid, name, "control", model, recorded=False)
            t = self.binary_law(cid, name, "treatment", model, recorded=False)
            return binary_contrast(estimand, c, t)
        return None
