"""Open-set 1:N, in figures: what a threshold means for a stranger at a gate with N residents enrolled.

A gate compares every face with every resident, so a stranger is let in if *any* resident is within the
threshold (and, with the margin rule, clearly nearer than the second best). With a false accept rate ``p`` per
comparison, a stranger facing ``N`` residents is let in with probability ``1 - (1 - p) ** N``, about ``N p``: a
threshold that is safe for 10 residents is not for 1,000. The functions here turn a model's measured impostor
distances into:

- :func:`far_at`: the false accept rate per comparison at a threshold, counted (with a 95 % upper bound,
  which is what a handful of faces can promise) and from a normal fit to the impostor distances (which
  extrapolates into the tail no sample this small reaches; a model assumption, stated as such);
- :func:`stranger_accept`: per stranger at a gate of ``N`` residents;
- :func:`threshold_for`: the threshold that keeps a stranger's chance under a target at ``N`` residents,
  from the fit;
- :func:`gaps`: each genuine look's lead over the second-best resident, from which a margin is proposed.

``sc gate report`` and ``bench/face_models.py`` print these; docs/face-models.md records them per model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist, fmean, stdev

import numpy as np

from sc.contracts.commands import EmbeddingModel

from .faces import Embedding, normalise

__all__ = [
    "GATE_SIZES",
    "IMPOSTOR_FIT",
    "FarEstimate",
    "far_at",
    "gaps",
    "stranger_accept",
    "stranger_risk",
    "threshold_for",
]

#: The gallery sizes the reports speak of: a stairwell, a community, a street's worth of communities.
GATE_SIZES = (100, 1_000, 10_000)

#: Each model's impostor distances as measured by bench/face_models.py (mean, standard deviation) on the 110
#: real faces of the registry packages, 4,144 impostor pairs (docs/face-models.md, 2026-12-04): what a gate
#: knows of its model's tail when it has no photos of its own residents to measure.
IMPOSTOR_FIT: dict[EmbeddingModel, tuple[float, float]] = {
    EmbeddingModel.DLIB_RESNET_V1: (0.616, 0.066),
    EmbeddingModel.FACEPLUGIN_FR_FEATURE: (1.402, 0.071),
}


@dataclass(frozen=True, slots=True)
class FarEstimate:
    """The false accept rate per comparison at ``threshold``, from ``n`` impostor comparisons."""

    threshold: float
    n: int
    accepted: int  # impostor comparisons within the threshold
    upper95: float  # the one-sided 95 % upper bound on the rate (exact binomial for 0, Wilson's otherwise)
    fitted: float  # the normal fit's tail mass under the threshold

    @property
    def observed(self) -> float:
        return self.accepted / self.n if self.n else math.nan


def far_at(impostor: Sequence[float], threshold: float) -> FarEstimate:
    """The false accept rate per comparison at ``threshold`` from impostor distances (at least 2)."""
    n = len(impostor)
    if n < 2:
        raise ValueError(f"{n} impostor distance(s): at least 2 are needed")
    k = sum(1 for d in impostor if d <= threshold)
    if k == 0:
        upper = 1.0 - 0.05 ** (1.0 / n)  # exact: the rate at which n misses in a row happen 5 % of the time
    else:
        z = NormalDist().inv_cdf(0.95)
        p = k / n
        centre = p + z * z / (2 * n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        upper = min(1.0, (centre + half) / (1 + z * z / n))
    fit = NormalDist(fmean(impostor), max(stdev(impostor), 1e-9))
    return FarEstimate(threshold, n, k, upper, fit.cdf(threshold))


def stranger_accept(far: float, residents: int) -> float:
    """The chance that a stranger is within the threshold of at least one of ``residents`` (independent
    comparisons at ``far`` each): an upper bound with the margin rule, which only refuses more."""
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"a rate is 0..1 (got {far})")
    return -math.expm1(residents * math.log1p(-far)) if far < 1.0 else 1.0


def stranger_risk(model: EmbeddingModel, threshold: float, residents: int) -> float:
    """A stranger's chance of being let in at a gate of ``residents`` of ``model`` at ``threshold``, by the
    model's measured impostor fit (:data:`IMPOSTOR_FIT`)."""
    mean, sd = IMPOSTOR_FIT[model]
    return stranger_accept(NormalDist(mean, sd).cdf(threshold), residents) if residents > 0 else 0.0


def threshold_for(impostor: Sequence[float], residents: int, target: float) -> float:
    """The largest threshold at which, by the normal fit to ``impostor``, a stranger facing ``residents`` is let
    in with probability at most ``target``."""
    if not 0.0 < target < 1.0 or residents < 1:
        raise ValueError(f"target must be in 0..1 and residents at least 1 (got {target}, {residents})")
    per_comparison = -math.expm1(math.log1p(-target) / residents)
    fit = NormalDist(fmean(impostor), max(stdev(impostor), 1e-9))
    return fit.inv_cdf(per_comparison)


def gaps(people: Mapping[str, Sequence[Embedding]]) -> list[float]:
    """For each photo of a person with several: how much nearer their own (other photos') mean is than the
    nearest other person's mean; the margin rule refuses a resident whose gap is under the margin."""
    means = {p: normalise(np.mean(np.stack(list(v)), axis=0).astype(np.float32)) for p, v in people.items() if v}
    out: list[float] = []
    for person, vecs in people.items():
        others = [m for q, m in means.items() if q != person]
        if len(vecs) < 2 or not others:
            continue
        for i, v in enumerate(vecs):
            own = normalise(np.mean(np.stack([u for j, u in enumerate(vecs) if j != i]), axis=0).astype(np.float32))
            nearest = min(float(np.linalg.norm(v - m)) for m in others)
            out.append(nearest - float(np.linalg.norm(v - own)))
    return out
