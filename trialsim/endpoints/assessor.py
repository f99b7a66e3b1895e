"""Assessor bias: what an outcome assessor who knows the arm records, for subjectively judged endpoints.

An unmasked assessor may under-call events in the treated arm or over-call them in control (a binary
judgement), or call a treated patient's grade one better than it is (an ordinal judgement). A family
with a judged endpoint holds one of the sections below as ``assessor_bias``; the bias applies only when
the design's assessor is not masked (``design.assessor_masked``, derived from ``design.masking``).

The misclassification uniforms come from the component's own stream ``("endpoint", cid, "assessor")``
and are drawn only when the bias applies, so a masked design draws exactly what it drew before.
Each family applies the same maps to its exact law (``binary_law``) as to its simulated values, and
keeps its *true* effect the unbiased one, so the bias column of the power table shows what masking
protects.

Defaults are 0: no assessor bias is assumed (ASSUMPTION; shared/clinical_evidence.md has no figure).
For scale, Hróbjartsson et al. 2012 (BMJ 344:e1119) found non-masked assessors of binary outcomes
exaggerated odds ratios by 36% on average (ratio of odds ratios 0.64, 95% CI 0.43-0.96).
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from trialsim.config.base import StrictModel
from trialsim.endpoints.base import PatientContext
from trialsim.rng import Streams, patient_draws

BIAS_MAX = 0.95  # beyond this nearly every judgement is wrong: a data error, not a bias
_SCALE = ("ASSUMPTION (none assumed); for scale, unmasked assessors exaggerated odds ratios by 36% on average "
          "[hrobjartsson2012]. Applied only when design.assessor_masked is false.")


class EventAssessorBias(StrictModel):
    """Misclassification of a judged event by an assessor who knows the arm."""

    p_undercall_treatment: float = Field(
        0.0, ge=0.0, le=BIAS_MAX,
        description=f"Chance a found event in the treated arm is recorded as none. {_SCALE}",
    )
    p_overcall_control: float = Field(
        0.0, ge=0.0, le=BIAS_MAX,
        description=f"Chance a patient without a found event in the control arm is recorded as having one. {_SCALE}",
    )

    @property
    def active(self) -> bool:
        return self.p_undercall_treatment > 0.0 or self.p_overcall_control > 0.0

    def recorded_probability(self, p_event: float, arm: str) -> float:
        """P(recorded event) from P(found event) in ``arm``: ``p (1 - u)`` treated, ``p + (1 - p) o`` control."""
        if arm == "treatment":
            return p_event * (1.0 - self.p_undercall_treatment)
        return p_event + (1.0 - p_event) * self.p_overcall_control

    def record(self, found: np.ndarray, treated: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Recorded events (bool) from found events, arms and one uniform per patient.

        The two errors touch disjoint patients (found-and-treated, not-found-and-control), so one
        uniform per patient serves both.
        """
        under = treated & found & (u < self.p_undercall_treatment)
        over = ~treated & ~found & (u < self.p_overcall_control)
        return (found & ~under) | over


class GradeAssessorBias(StrictModel):
    """Grading by an assessor who knows the arm: treated patients' grades called one better."""

    p_better_grade_treatment: float = Field(
        0.0, ge=0.0, le=BIAS_MAX,
        description=f"Chance a treated patient's grade (other than the best) is recorded one grade better. {_SCALE}",
    )

    @property
    def active(self) -> bool:
        return self.p_better_grade_treatment > 0.0

    def recorded_law(self, probs: np.ndarray) -> np.ndarray:
        """Recorded grade probabilities (best first, last axis) of treated patients from their true ones.

        ``q_g = (1 - b) p_g + b p_(g+1)`` for g > 0 and ``q_0 = p_0 + b p_1``.
        """
        p = np.asarray(probs, dtype=float)
        b = self.p_better_grade_treatment
        moved = b * p[..., 1:]
        out = p.copy()
        out[..., 1:] -= moved
        out[..., :-1] += moved
        return out

    def record(self, grade: np.ndarray, treated: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Recorded grade indices from true ones (0 = best), arms and one uniform per patient."""
        better = treated & (grade > 0) & (u < self.p_better_grade_treatment)
        return grade - better


def assessor_uniforms(cid: str, ctx: PatientContext, streams: Streams, bias: EventAssessorBias | GradeAssessorBias
                      ) -> dict[str, np.ndarray]:
    """``{"assessor_u": uniforms}`` when ``bias`` applies to this batch (assessor unmasked, bias set), else ``{}``.

    Drawn patient-major from the component's own ``assessor`` stream, so the endpoint's other draws
    (and every other component's) are the same with and without the bias.
    """
    if ctx.assessor_masked or not bias.active:
        return {}
    return {"assessor_u": patient_draws(streams("endpoint", cid, "assessor"), "random", ctx.n_trials, ctx.n_patients)}
