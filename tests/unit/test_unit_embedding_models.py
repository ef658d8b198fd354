"""Every embedding knows its model: the contract, a gate's gallery, the gate's config and its start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from edge.gate.gallery import Gallery, GalleryError, decode_embedding, encode_embedding
from edge.gate.service import GateService
from sc.config.schema import Gate
from sc.contracts.commands import EMBEDDING_DIMS, EmbeddingModel, GalleryPutArgs
from sc.contracts.messages import ContractError
from vision.models import ModelError

DLIB, ONNX = EmbeddingModel.DLIB_RESNET_V1, EmbeddingModel.FACEPLUGIN_FR_FEATURE


def unit(dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_a_gallery_put_says_its_model_and_carries_that_many_numbers() -> None:
    args = GalleryPutArgs(resident="r-1", model=ONNX, embedding=encode_embedding(unit(512), ONNX), version=1)
    assert decode_embedding(args.embedding, args.model).shape == (512,)
    old = GalleryPutArgs.model_validate({"resident": "r-1", "embedding": encode_embedding(unit(128)), "version": 1})
    assert old.model is DLIB  # a command from before models were named is dlib's
    with pytest.raises(ValueError, match="embedding has 512 bytes, 2048 expected for faceplugin-fr-feature"):
        GalleryPutArgs(resident="r-1", model=ONNX, embedding=encode_embedding(unit(128)), version=1)
    with pytest.raises(ValueError, match="Input should be 'dlib-resnet-v1' or 'faceplugin-fr-feature'"):
        GalleryPutArgs.model_validate({"resident": "r", "model": "arcface", "embedding": "x" * 684, "version": 1})
    assert EMBEDDING_DIMS == {DLIB: 128, ONNX: 512}
    assert issubclass(ContractError, ValueError)


def test_a_gate_refuses_another_models_embedding_and_searches_only_its_own(tmp_path: Path) -> None:
    path = tmp_path / "gallery.db"
    onnx = Gallery(path, model=ONNX)
    with pytest.raises(GalleryError) as other:
        onnx.put("r-1", "A", unit(128), version=1, model=DLIB)
    assert str(other.value) == (
        "this gate recognises faces with faceplugin-fr-feature: a dlib-resnet-v1 embedding cannot be compared with "
        "its residents (enrol with the gate's model)"
    )
    with pytest.raises(GalleryError, match="a faceplugin-fr-feature embedding is 512 finite numbers"):
        onnx.put("r-1", "A", unit(128), version=1)
    assert onnx.put("r-1", "A", unit(512), version=1, model=ONNX) is True
    assert onnx.digest() == {"r-1": 1} and len(onnx.index()) == 1 and onnx.index().matrix.shape == (1, 512)
    onnx.close()
    # the gate's model changed back: its old residents are not searched, and the cloud sees them missing
    dlib = Gallery(path, model=DLIB)
    assert dlib.digest() == {} and len(dlib) == 0 and dlib.index().matrix.shape == (0, 128)
    assert dlib.put("r-1", "A", unit(128), version=2) is True
    assert dlib.digest() == {"r-1": 2} and dlib.index().search(unit(128)) is not None
    dlib.close()


def test_a_gallery_from_before_models_were_named_is_dlibs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE residents (id TEXT PRIMARY KEY, name TEXT NOT NULL, embedding BLOB NOT NULL, "
        "version INTEGER NOT NULL, updated REAL NOT NULL); CREATE TABLE tombstones (id TEXT PRIMARY KEY, version "
        "INTEGER NOT NULL);"
    )
    db.execute("INSERT INTO residents VALUES ('r-old', 'Old', ?, 5, 0)", (unit(128).astype("<f4").tobytes(),))
    db.commit()
    db.close()
    g = Gallery(path)
    assert g.digest() == {"r-old": 5} and g.index().ids == ["r-old"]
    g.close()


def test_a_gate_says_its_model_and_its_threshold_is_the_models_unless_set() -> None:
    base = {"id": "north", "name": "North", "location": "g1", "gateway": "gw-b"}
    assert Gate.model_validate(base).face_model is DLIB
    assert Gate.model_validate(base).match_threshold == 0.40
    assert Gate.model_validate({**base, "face_model": ONNX.value}).match_threshold == 1.00
    assert Gate.model_validate({**base, "face_model": ONNX.value, "threshold": 0.9}).match_threshold == 0.9


def test_a_gates_open_set_margin_is_the_models_unless_set_and_reaches_the_pipeline() -> None:
    from pydantic import ValidationError

    from edge.gate.pipeline import VisionSettings

    base = {"id": "north", "name": "North", "location": "g1", "gateway": "gw-b"}
    assert Gate.model_validate(base).match_margin == 0.04
    onnx = Gate.model_validate({**base, "face_model": ONNX.value})
    assert onnx.match_margin == 0.10
    assert VisionSettings.from_gate(onnx).margin == 0.10 and VisionSettings.from_gate(onnx).threshold == 1.00
    assert Gate.model_validate({**base, "margin": 0.0}).match_margin == 0.0  # the rule switched off
    with pytest.raises(ValidationError, match="margin"):
        Gate.model_validate({**base, "margin": -0.1})


def test_a_gate_whose_model_files_are_missing_does_not_start(tmp_path: Path) -> None:
    gate = Gate.model_validate(
        {"id": "north", "name": "North", "location": "g1", "gateway": "gw-b", "face_model": ONNX.value}
    )
    with pytest.raises(
        ModelError, match=r"model yunet-2023mar is not installed .* run `python -m vision.models fetch`"
    ):
        GateService(gate=gate, site="test", base_dir=tmp_path, var_dir=tmp_path, emit=lambda *a: None,
                    models_dir=tmp_path / "no-models")  # fmt: skip


def test_enrolment_makes_one_embedding_per_model_of_the_site_from_the_same_photos() -> None:
    from cloud.gates.enrolment import Enroller, PhotoError, embedding_bytes, site_models
    from firmware_sim.faces import identities
    from harness import DATA
    from sc.config.loader import load_site_config

    site = load_site_config(DATA / "site.yaml").site
    assert site_models(site) == [DLIB]  # the test site's gates are dlib's
    onnx_site = site.model_copy(update={"gates": [g.model_copy(update={"face_model": ONNX}) for g in site.gates[:1]]})
    assert site_models(onnx_site) == [ONNX]
    photos = [(p.path.name, p.path.read_bytes()) for p in identities()["obama"][:2]]
    vecs = Enroller([DLIB, ONNX]).embeddings(photos)
    assert {m: v.shape for m, v in vecs.items()} == {DLIB: (128,), ONNX: (512,)}
    assert len(embedding_bytes(vecs[ONNX], ONNX)) == 2048
    with pytest.raises(ValueError, match="a dlib-resnet-v1 embedding has 128 values, not 512"):
        embedding_bytes(vecs[ONNX], DLIB)
    group = identities()["t1-0"][0].path
    with pytest.raises(PhotoError, match=r"^photo 1 \(t1.jpg\): 6 faces in the photo"):
        Enroller([DLIB, ONNX]).embeddings([(group.name, group.read_bytes())])
