"""vision.quality: a look at a face counts only when it is big enough, sharp and turned to the camera."""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from firmware_sim.faces import FACES_DIR
from vision.faces import FaceBox, FaceEngine, load_rgb
from vision.quality import MAX_YAW, MIN_SHARPNESS, look_quality


@cache
def obama() -> tuple[npt.NDArray[np.uint8], FaceBox]:
    rgb = load_rgb(str(FACES_DIR / "obama.jpg"))
    (box,) = FaceEngine().detect(rgb)
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8), box


def frontal(box: FaceBox, *, nose_dx: float = 0.0, nose_y: float = 0.55) -> FaceBox:
    """``box`` with 5 landmarks of a face: eyes level, the nose ``nose_dx`` eye distances off the middle and
    ``nose_y`` of the way from the eyes to the mouth."""
    w, h = box.width, box.height
    ex1, ex2, ey = box.left + 0.3 * w, box.left + 0.7 * w, box.top + 0.4 * h
    my = box.top + 0.8 * h
    eye = ex2 - ex1
    nose = ((ex1 + ex2) / 2 + nose_dx * eye, ey + nose_y * (my - ey))
    marks = ((ex1, ey), (ex2, ey), nose, (ex1 + 0.05 * w, my), (ex2 - 0.05 * w, my))
    return FaceBox(box.left, box.top, box.right, box.bottom, box.score, marks)


def test_a_sharp_frontal_face_counts() -> None:
    grey, box = obama()
    q = look_quality(grey, frontal(box))
    assert q.ok, q.reason
    assert q.sharpness > 2 * MIN_SHARPNESS
    assert q.yaw == pytest.approx(0.0, abs=1e-6) and q.pitch == pytest.approx(0.55, abs=1e-6)


def test_a_dark_face_is_not_called_blurred_for_being_dark() -> None:
    grey, box = obama()
    dark = np.asarray(grey * 0.2, dtype=np.uint8)  # night: a fifth of the light, same detail
    assert look_quality(dark, box).ok


@pytest.mark.parametrize("sigma", [6.0, 10.0])  # on a 259-px face: 1.5 and 2.5 px at 64 px
def test_a_blurred_face_does_not_count(sigma: float) -> None:
    grey, box = obama()
    blurred = np.asarray(cv2.GaussianBlur(grey, (0, 0), sigma), dtype=np.uint8)
    q = look_quality(blurred, box)
    assert not q.ok and q.reason.startswith("blurred")


def test_a_flat_region_does_not_count() -> None:
    q = look_quality(np.full((300, 300), 90, dtype=np.uint8), FaceBox(100, 100, 200, 200))
    assert q.sharpness == 0.0 and q.reason.startswith("blurred")


@pytest.mark.parametrize("dx", [MAX_YAW + 0.05, -(MAX_YAW + 0.05)])
def test_a_face_turned_away_does_not_count(dx: float) -> None:
    grey, box = obama()
    q = look_quality(grey, frontal(box, nose_dx=dx))
    assert not q.ok and q.reason.startswith("turned away")
    assert q.yaw == pytest.approx(dx, abs=1e-6)


def test_a_tilted_head_is_not_turned_away() -> None:
    grey, box = obama()
    f = frontal(box)
    assert f.landmarks is not None
    cx, cy = box.center
    a = np.deg2rad(25)  # the whole face rotated in the image plane (roll)
    marks = tuple(
        (cx + (x - cx) * np.cos(a) - (y - cy) * np.sin(a), cy + (x - cx) * np.sin(a) + (y - cy) * np.cos(a))
        for x, y in f.landmarks
    )
    q = look_quality(grey, FaceBox(box.left, box.top, box.right, box.bottom, box.score, marks))
    assert q.ok, q.reason
    assert q.yaw == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("nose_y", "way"), [(0.1, "up"), (0.95, "down")])
def test_a_face_looking_up_or_down_does_not_count(nose_y: float, way: str) -> None:
    grey, box = obama()
    q = look_quality(grey, frontal(box, nose_y=nose_y))
    assert q.reason.startswith(f"looking {way}")


def test_without_landmarks_pose_is_not_judged() -> None:
    grey, box = obama()
    q = look_quality(grey, box)
    assert q.yaw is None and q.pitch is None and q.ok


def test_a_face_under_the_smallest_size_does_not_count() -> None:
    grey, box = obama()
    q = look_quality(grey, box, min_px=box.height + 1)
    assert not q.ok and q.reason == f"face {box.height} px, under {box.height + 1}"
