"""vision.openset: false accept rates per comparison and per stranger at a gate of N residents."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vision.faces import normalise
from vision.openset import far_at, gaps, stranger_accept, threshold_for


def test_no_impostor_within_the_threshold_is_bounded_by_the_exact_binomial() -> None:
    est = far_at([0.6, 0.7, 0.8] * 100, 0.4)  # 300 comparisons, none accepted
    assert (est.n, est.accepted, est.observed) == (300, 0, 0.0)
    assert est.upper95 == pytest.approx(1 - 0.05 ** (1 / 300))  # about 3/n (the rule of three)
    assert est.upper95 == pytest.approx(3 / 300, rel=0.01)


def test_accepted_impostors_are_counted_and_bounded_above_the_observed_rate() -> None:
    impostor = [0.35] * 5 + [0.7] * 995
    est = far_at(impostor, 0.4)
    assert (est.accepted, est.observed) == (5, 0.005)
    assert 0.005 < est.upper95 < 0.012
    assert far_at(impostor, 0.35).accepted == 5  # at the threshold counts as within it


def test_the_fit_is_the_normal_tail() -> None:
    rng = np.random.default_rng(0)
    impostor = list(rng.normal(0.6, 0.05, 20_000))
    est = far_at(impostor, 0.45)  # three standard deviations under the mean
    assert est.fitted == pytest.approx(0.00135, rel=0.1)


def test_a_stranger_facing_n_residents() -> None:
    assert stranger_accept(0.0, 10_000) == 0.0
    assert stranger_accept(1e-4, 1) == pytest.approx(1e-4)
    assert stranger_accept(1e-4, 1_000) == pytest.approx(1 - (1 - 1e-4) ** 1_000)
    assert stranger_accept(1e-4, 10_000) == pytest.approx(1 - math.exp(-1), rel=1e-3)
    assert stranger_accept(1.0, 3) == 1.0
    with pytest.raises(ValueError):
        stranger_accept(1.5, 3)


def test_the_threshold_for_a_target_shrinks_as_the_gallery_grows() -> None:
    rng = np.random.default_rng(1)
    impostor = list(rng.normal(0.6, 0.05, 5_000))
    t100, t10k = threshold_for(impostor, 100, 0.001), threshold_for(impostor, 10_000, 0.001)
    assert t10k < t100 < 0.6
    # and at that threshold the fit gives exactly the target back
    assert stranger_accept(far_at(impostor, t100).fitted, 100) == pytest.approx(0.001, rel=1e-6)
    with pytest.raises(ValueError):
        threshold_for(impostor, 0, 0.001)


def test_too_few_impostors_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        far_at([0.5], 0.4)


def unit(*xs: float) -> np.ndarray:
    v = np.zeros(8, dtype=np.float32)
    v[: len(xs)] = xs
    return normalise(v)


def test_gaps_are_each_photos_lead_over_the_nearest_other_person() -> None:
    a1, a2 = unit(1, 0.1), unit(1, -0.1)
    b = unit(0, 1)
    out = gaps({"a": [a1, a2], "b": [b]})
    mean_a = normalise(np.mean(np.stack([a1, a2]), axis=0))
    assert mean_a[0] == pytest.approx(1.0)
    # a1 against its other photo (a2) and against b's mean; b has one photo: no gap of its own
    expect = [
        float(np.linalg.norm(a1 - b) - np.linalg.norm(a1 - a2)),
        float(np.linalg.norm(a2 - b) - np.linalg.norm(a2 - a1)),
    ]
    assert out == pytest.approx(expect)


def test_a_models_stranger_risk_grows_with_the_gallery_and_falls_with_the_threshold() -> None:
    from sc.contracts.commands import EmbeddingModel
    from vision.openset import IMPOSTOR_FIT, stranger_risk

    dlib, onnx = EmbeddingModel.DLIB_RESNET_V1, EmbeddingModel.FACEPLUGIN_FR_FEATURE
    assert set(IMPOSTOR_FIT) == set(EmbeddingModel)
    assert stranger_risk(dlib, 0.40, 0) == 0.0
    assert stranger_risk(dlib, 0.40, 10) < stranger_risk(dlib, 0.40, 100) < stranger_risk(dlib, 0.40, 1000)
    assert stranger_risk(dlib, 0.30, 1000) < 0.01 < stranger_risk(dlib, 0.40, 1000)
    assert stranger_risk(onnx, 1.00, 1000) < 1e-4  # the model whose impostors sit far from its threshold
