"""vision/models.py: a model file is used only when it is there and is the one its package shipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vision.models import DEFAULT_DIR, MODELS, ModelError, fetch, model_path


def test_every_model_is_installed_by_setup_and_checks_out() -> None:
    for m in MODELS.values():
        path = model_path(m.id)
        assert path == DEFAULT_DIR / m.file and path.stat().st_size == m.size


def test_an_unknown_missing_or_changed_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"^no model 'arcface' \(known: faceplugin-fr-feature, "):
        model_path("arcface", tmp_path)
    with pytest.raises(ModelError) as missing:
        model_path("yunet-2023mar", tmp_path)
    assert str(missing.value) == (
        f"model yunet-2023mar is not installed ({tmp_path / 'face_detection_yunet_2023mar.onnx'} missing): "
        "run `python -m vision.models fetch`"
    )
    bad = tmp_path / "face_detection_yunet_2023mar.onnx"
    shutil.copy(DEFAULT_DIR / bad.name, bad)
    with bad.open("r+b") as f:  # one byte changed
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(ModelError, match=r"is not the yunet-2023mar model .*delete it and run"):
        model_path("yunet-2023mar", tmp_path)


def test_fetch_keeps_a_good_file_and_replaces_a_changed_one(tmp_path: Path) -> None:
    good = tmp_path / MODELS["yunet-2023mar"].file
    shutil.copy(DEFAULT_DIR / good.name, good)
    before = good.stat().st_mtime_ns
    assert fetch(tmp_path, ids=["yunet-2023mar"]) == [good]
    assert good.stat().st_mtime_ns == before  # checked, not fetched again
