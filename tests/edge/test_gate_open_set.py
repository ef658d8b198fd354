"""A gate warns when its gallery outgrows what its face model holds at its threshold, and shows it in health."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edge.gate.gallery import encode_embedding
from edge.gate.service import GateService
from sc.config.schema import Gate
from sc.contracts.commands import GalleryPutArgs
from vision.faces import normalise


def service(tmp_path: Path, **gate: object) -> GateService:
    g = Gate.model_validate({"id": "north", "name": "North", "location": "g1", "gateway": "gw-b", **gate})
    return GateService(gate=g, site="test", base_dir=tmp_path, var_dir=tmp_path, emit=lambda *a: None)


def put(svc: GateService, n: int, rng: np.random.Generator) -> None:
    for i in range(n):
        vec = normalise(rng.normal(size=128).astype(np.float32))
        svc.gallery_put(GalleryPutArgs(resident=f"r-{i}", name=f"R {i}", embedding=encode_embedding(vec), version=1))


def test_a_gallery_grown_past_the_models_safe_size_is_warned_about_once_per_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svc = service(tmp_path)  # dlib at 0.40: 1 % per stranger from 19 residents, 10 % from 198
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING, logger="edge.gate.service"):
        put(svc, 10, rng)
        assert caplog.records == []
        assert svc.health()["open_set"]["residents"] == 10 and svc.health()["open_set"]["stranger_risk"] < 0.01
        put(svc, 30, rng)
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1  # passed 1 %: said once, not at every resident after
        assert warned[0].startswith("gate=north: 19 residents at threshold 0.40 (dlib-resnet-v1)")
        assert "a stranger is let in about 1.0% of visits" in warned[0]
        assert "sc gate report photos/ --residents 19" in warned[0]
    assert 0.01 < svc.health()["open_set"]["stranger_risk"] < 0.1
    svc.close()


def test_a_gate_at_a_safe_threshold_says_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    svc = service(tmp_path, threshold=0.30)
    with caplog.at_level(logging.WARNING, logger="edge.gate.service"):
        put(svc, 40, np.random.default_rng(1))
    assert caplog.records == []
    o = svc.health()["open_set"]
    assert (o["residents"], o["threshold"]) == (40, 0.30) and 0.0 < o["stranger_risk"] < 0.01
    svc.close()


def test_a_gate_started_on_a_big_gallery_warns_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    svc = service(tmp_path)
    put(svc, 200, np.random.default_rng(2))
    svc.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge.gate.service"):
        again = service(tmp_path)
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith("gate=north: 200 residents at threshold 0.40")
    again.close()
