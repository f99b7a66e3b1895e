"""Allocation schemes that look at the patients' baseline covariates.

* ``stratified_block``: randomised permuted blocks within each stratum (a combination of the listed
  binary covariates), each block holding control:treatment in ``ratio``.
* ``minimisation``: Pocock-Simon minimisation over the listed covariates' margins.
* ``selected``: not randomised: the surgeons choose who gets the new product, favouring (or avoiding)
  patients by their baseline risk score (a selection effect).

The sequential schemes loop over enrolment positions (a patient's arm depends on those enrolled before)
and are vectorised across trials. Every draw is made patient-major (:func:`trialsim.rng.patient_draws`),
so a trial's first patients get the same arms whatever its size.
"""
from __future__ import annotations

import numpy as np

from trialsim.config.schema import AllocationConfig
from trialsim.designs.allocation import Scheme, always, register
from trialsim.rng import patient_draws


def stratum_codes(covariates: dict[str, np.ndarray], strata: tuple[str, ...], shape: tuple[int, int]) -> np.ndarray:
    """Stratum of each patient, ``sum_j x_j 2^j`` over the binary covariates ``strata`` (int, ``shape``)."""
    code = np.zeros(shape, dtype=np.int64)
    for j, name in enumerate(strata):
        code += (np.asarray(covariates[name]) > 0.5).astype(np.int64) << j
    return code


def stratified_block(covariates: dict[str, np.ndarray], strata: tuple[str, ...], *, n_trials: int, n_patients: int,
                     block_size: int, ratio: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Permuted blocks within strata: the k-th patient of a stratum takes the k-th place of its stratum's blocks.

    Each stratum's block is drawn as an urn without replacement (the patient goes to treatment with
    chance = treatment places left / places left in the block), which is a uniformly random order of the
    block; a block refills when its last place is taken.

    Parameters
    ----------
    covariates : dict
        Binary covariates, arrays (n_trials, n_patients) in enrolment order.
    strata : tuple of str
        The covariates whose combinations form the strata.
    n_trials, n_patients : int
        Shape of the result.
    block_size : int
        Places in a block; a multiple of ``sum(ratio)``.
    ratio : tuple of int
        control:treatment within each block.
    rng : numpy.random.Generator
        One uniform per patient, drawn patient-major.

    Returns
    -------
    numpy.ndarray
        Bool (n_trials, n_patients), True = treatment.
    """
    if block_size % sum(ratio):
        raise ValueError(f"block_size {block_size} must be a multiple of sum(ratio) = {sum(ratio)}")
    code = stratum_codes(covariates, strata, (n_trials, n_patients))
    u = patient_draws(rng, "random", n_trials, n_patients)
    per_block = block_size * ratio[1] // sum(ratio)
    places = np.full((n_trials, 2 ** len(strata)), block_size)
    places_t = np.full((n_trials, 2 ** len(strata)), per_block)
    rows = np.arange(n_trials)
    out = np.empty((n_trials, n_patients), dtype=bool)
    for i in range(n_patients):
        s = code[:, i]
        left, left_t = places[rows, s], places_t[rows, s]
        treat = u[:, i] * left < left_t
        out[:, i] = treat
        left, left_t = left - 1, left_t - treat
        full = left == 0
        places[rows, s] = np.where(full, block_size, left)
        places_t[rows, s] = np.where(full, per_block, left_t)
    return out


def minimisation(covariates: dict[str, np.ndarray], strata: tuple[str, ...], *, n_trials: int, n_patients: int,
                 ratio: tuple[int, int], p_minimise: float, imbalance: str, rng: np.random.Generator) -> np.ndarray:
    """Pocock-Simon minimisation over the margins of the binary covariates ``strata``.

    For the next patient, and each arm a in turn, the patient is added to a in thought; for each covariate,
    the counts of the patient's level in the two arms, each divided by its arm's ratio part, differ by
    ``d``; the imbalance of arm a is the sum over covariates of ``|d|`` (``"range"``) or ``d^2 / 4``
    (``"variance"``, the population variance of two values). The patient joins the arm of smaller
    imbalance with chance ``p_minimise``, the other arm otherwise; on a tie, the arm is drawn with the
    ratio's chances (so the first patient, and every patient when ``strata`` is empty, is simply
    randomised). Pocock SJ, Simon R (1975) Biometrics 31:103-115. With an unequal ratio this keeps
    the ratio only roughly (about 65% treatment at 1:2 with two covariates and 30 patients): weighted
    minimisation drifts towards 1:1 (Kuznetsova OM, Tymofyeyev Y (2012) Stat Med 31:701-723).

    Parameters
    ----------
    covariates : dict
        Binary covariates, arrays (n_trials, n_patients) in enrolment order.
    strata : tuple of str
        The covariates to balance.
    n_trials, n_patients : int
        Shape of the result.
    ratio : tuple of int
        Target control:treatment; counts are weighted by its inverse.
    p_minimise : float
        Chance of following the minimising arm, in [0.5, 1].
    imbalance : {"range", "variance"}
        The imbalance criterion per covariate.
    rng : numpy.random.Generator
        Two uniforms per patient (tie coin, follow or not), drawn patient-major.

    Returns
    -------
    numpy.ndarray
        Bool (n_trials, n_patients), True = treatment.
    """
    if not 0.0 <= p_minimise <= 1.0:
        raise ValueError(f"p_minimise must be in [0, 1], got {p_minimise}")
    if imbalance not in ("range", "variance"):
        raise ValueError(f"imbalance must be 'range' or 'variance', got {imbalance!r}")
    k = len(strata)
    level = np.stack([(np.asarray(covariates[n]) > 0.5).astype(np.int64) for n in strata], axis=-1) if k else \
        np.zeros((n_trials, n_patients, 0), dtype=np.int64)
    u = patient_draws(rng, "random", n_trials, n_patients, extra=(2,))
    counts = np.zeros((n_trials, k, 2, 2), dtype=np.int64)  # covariate, level, arm (0 control, 1 treatment)
    w_c, w_t = ratio
    p_treatment = w_t / (w_c + w_t)
    rows, cov = np.arange(n_trials)[:, None], np.arange(k)[None, :]
    out = np.empty((n_trials, n_patients), dtype=bool)
    for i in range(n_patients):
        lv = level[:, i, :]
        c = counts[rows, cov, lv]  # (n_trials, k, arm): counts of this patient's levels
        # d * w_c * w_t = c_t * w_c - c_c * w_t: integers, so ties are exact
        base = c[..., 1] * w_c - c[..., 0] * w_t
        d_if_control, d_if_treatment = base - w_t, base + w_c
        if imbalance == "range":
            g_c, g_t = np.abs(d_if_control).sum(axis=1), np.abs(d_if_treatment).sum(axis=1)
        else:
            g_c, g_t = (d_if_control ** 2).sum(axis=1), (d_if_treatment ** 2).sum(axis=1)
        minimising = g_t < g_c
        follow = u[:, i, 1] < p_minimise
        treat = np.where(g_t == g_c, u[:, i, 0] < p_treatment, np.where(follow, minimising, ~minimising))
        out[:, i] = treat
        counts[rows, cov, lv, treat.astype(np.int64)[:, None]] += 1
    return out


def selected(score: np.ndarray, *, n_treatment: int, odds_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Non-randomised allocation with a selection effect: ``n_treatment`` patients chosen by risk score.

    The model: among a trial's enrolled patients, the surgeons pick the treated ones one at a time, each
    time patient i among those not yet picked with chance proportional to ``w_i = odds_ratio ** score_i``
    (successive sampling without replacement). So the odds of being picked next, between two patients,
    is ``odds_ratio`` to the power of their score difference; ``odds_ratio`` < 1 favours low-risk
    patients, 1 is a random choice of ``n_treatment`` patients. Drawn as the Gumbel top-k: the
    ``n_treatment`` largest ``log w_i + G_i`` with G_i standard Gumbel, which has exactly this law
    (Kool, van Hoof & Welling 2019, ICML, "Stochastic beams and where to find them", eq. 5).

    Parameters
    ----------
    score : numpy.ndarray
        Risk score of each patient (n_trials, n_patients): log-odds linear predictor of the risk model.
    n_treatment : int
        Patients to treat in every trial (the arm sizes are as designed).
    odds_ratio : float
        Odds ratio of being chosen per unit of score.
    rng : numpy.random.Generator
        One Gumbel draw per patient, patient-major.

    Returns
    -------
    numpy.ndarray
        Bool (n_trials, n_patients), True = treatment.
    """
    n_trials, n_patients = np.shape(score)
    if not 0 <= n_treatment <= n_patients:
        raise ValueError(f"n_treatment must be in [0, {n_patients}], got {n_treatment}")
    if not odds_ratio > 0:
        raise ValueError(f"odds_ratio must be positive, got {odds_ratio}")
    key = np.log(odds_ratio) * np.asarray(score, dtype=float) + patient_draws(rng, "gumbel", n_trials, n_patients)
    chosen = np.argsort(-key, axis=1, kind="stable")[:, :n_treatment]
    out = np.zeros((n_trials, n_patients), dtype=bool)
    np.put_along_axis(out, chosen, True, axis=1)
    return out


def _never(config: AllocationConfig, n_control: int, n_treatment: int) -> bool:
    return False


register(Scheme("stratified_block", "randomised, permuted blocks within strata", True,
                lambda config, *, n_trials, n_control, n_treatment, covariates, rng, strata:
                stratified_block(covariates, strata, n_trials=n_trials, n_patients=n_control + n_treatment,
                                 block_size=config.block_size, ratio=config.ratio, rng=rng),
                _never, uses_covariates=True, uses_blocks=True, settings=("block_size", "ratio", "strata")))
register(Scheme("minimisation", "minimisation (Pocock-Simon) over baseline covariates", True,
                lambda config, *, n_trials, n_control, n_treatment, covariates, rng, strata:
                minimisation(covariates, strata, n_trials=n_trials, n_patients=n_control + n_treatment, ratio=config.ratio,
                             p_minimise=config.p_minimise, imbalance=config.imbalance, rng=rng),
                _never, uses_covariates=True, settings=("ratio", "strata", "p_minimise", "imbalance")))
register(Scheme("selected", "selected by the surgeons on baseline risk (not randomised)", False,
                lambda config, *, n_trials, n_control, n_treatment, covariates, rng, strata, score:
                selected(score, n_treatment=n_treatment, odds_ratio=config.selection_odds_ratio, rng=rng),
                always, uses_covariates=True, uses_score=True,
                settings=("strata", "selection_odds_ratio", "selection_endpoint")))
