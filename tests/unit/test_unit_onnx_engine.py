"""vision/onnx.py on real photos: YuNet's boxes and landmarks, the aligned crop, 512-d embeddings that tell
people apart on the same scale as its threshold, and enrolment's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.faces import identities
from vision.faces import EnrolmentError, FaceBox, load_rgb
from vision.onnx import ARCFACE_112, OnnxFaceEngine

THRESHOLD = 1.0  # cosine 0.5: bench/face_models.py


@pytest.fixture(scope="module")
def engine() -> OnnxFaceEngine:
    return OnnxFaceEngine()


def photo(name: str, i: int = 0) -> np.ndarray:
    return load_rgb(str(identities()[name][i].path))


def test_one_face_with_its_five_landmarks_inside_its_box(engine: OnnxFaceEngine) -> None:
    rgb = photo("obama")
    [box] = engine.detect(rgb)
    assert box.landmarks is not None and len(box.landmarks) == 5 and box.score > 0.8
    (lx, ly), (rx, _) = box.landmarks[0], box.landmarks[1]
    assert box.left < lx < rx < box.right and box.top < ly < box.bottom  # the eyes, left before right
    # found at half the size, in the same full-frame pixels
    [half] = engine.detect(rgb, scale=0.5)
    assert half.iou(box) > 0.8


def test_the_group_photo_has_six_faces_and_enrolment_refuses_it(engine: OnnxFaceEngine) -> None:
    rgb = photo("t1-0")
    assert len(engine.detect(rgb)) == 6
    with pytest.raises(EnrolmentError, match=r"^6 faces in the photo: use a photo of the resident alone$"):
        engine.enrolment_embedding(rgb)
    with pytest.raises(EnrolmentError, match=r"^no face found in the photo"):
        engine.enrolment_embedding(np.zeros((300, 300, 3), dtype=np.uint8))


def test_the_aligned_crop_puts_the_eyes_where_the_recogniser_expects_them(engine: OnnxFaceEngine) -> None:
    rgb = photo("obama")
    [box] = engine.detect(rgb)
    crop = engine.aligned(rgb, box)
    assert crop.shape == (112, 112, 3)
    [again] = engine.detect(np.ascontiguousarray(np.pad(crop, ((56, 56), (56, 56), (0, 0)), mode="edge")))
    assert again.landmarks is not None
    eyes = np.asarray(again.landmarks[:2]) - 56
    assert np.abs(eyes - ARCFACE_112[:2]).max() < 6  # within a few pixels of the template


def test_the_same_person_is_close_and_others_far_on_its_threshold(engine: OnnxFaceEngine) -> None:
    obama = [engine.enrolment_embedding(photo("obama", i))[0] for i in range(3)]
    others = [engine.enrolment_embedding(photo(n))[0] for n in ("biden", "hopper", "hanks")]
    assert all(v.shape == (512,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5 for v in obama + others)
    same = [float(np.linalg.norm(a - b)) for i, a in enumerate(obama) for b in obama[i + 1 :]]
    apart = [float(np.linalg.norm(a - b)) for a in obama for b in others]
    assert max(same) < THRESHOLD < min(apart), (same, apart)


def test_a_box_without_landmarks_is_found_again(engine: OnnxFaceEngine) -> None:
    rgb = photo("obama")
    [box] = engine.detect(rgb)
    bare = FaceBox(box.left, box.top, box.right, box.bottom)  # from a tracker, say
    assert float(np.linalg.norm(engine.embed(rgb, bare) - engine.embed(rgb, box))) < 1e-5
    # a box a few pixels off (another detector, another frame) gives nearly the same embedding
    off = FaceBox(box.left + 6, box.top - 5, box.right + 4, box.bottom - 3)
    assert float(np.linalg.norm(engine.embed(rgb, off) - engine.embed(rgb, box))) < 0.25 * THRESHOLD
