"""``sc gate calibrate``: the counter's scale learnt from a camera's footage, its crossings, and a preview."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge.gate.calibrate import estimate_person_height
from harness import sc_command

W, H = 640, 480
LINE = ((0.5, 0.1), (0.5, 0.9))  # vertical, across people walking left to right


def walkers(height: int, people: int = 3, frames_each: int = 40) -> Iterator[npt.NDArray[np.uint8]]:
    """An empty scene, then ``people`` dark upright blocks ``height`` px tall (0.4 as wide) walking left to right
    across the middle of the frame, one after the other."""
    rng = np.random.default_rng(5)

    def empty() -> npt.NDArray[np.uint8]:
        f = np.full((H, W, 1), 150, dtype=np.int16) + rng.integers(-3, 4, (H, W, 1))
        return np.repeat(f.clip(0, 255).astype(np.uint8), 3, axis=2)

    for _ in range(40):
        yield empty()
    w = int(0.4 * height)
    for p in range(people):
        y1 = 300 + 20 * p
        for k in range(frames_each):
            f = empty()
            x = 150 + k * 9
            f[y1 - height : y1, x : x + w] = 40
            yield f
    for _ in range(10):
        yield empty()


@pytest.mark.parametrize("height", [60, 120])
def test_the_height_of_people_at_the_line_is_learnt(height: int) -> None:
    est = estimate_person_height(walkers(height), LINE)
    assert est.person_height == pytest.approx(height / H, rel=0.1)
    assert est.samples >= 20 and est.quartiles is not None


def test_too_few_people_at_the_line_is_no_estimate() -> None:
    far = ((0.95, 0.0), (0.95, 0.05))  # a line in a corner nobody walks through
    est = estimate_person_height(walkers(60), far)
    assert est.person_height is None and est.samples == 0


def sc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*sc_command(), *args], capture_output=True, text=True, timeout=600)


def test_calibrate_prints_the_door_line_to_configure_and_the_crossings_at_that_scale(tmp_path: Path) -> None:
    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (W, H))
    for f in walkers(60):
        writer.write(f)
    writer.release()
    png = tmp_path / "preview.png"
    r = sc("gate", "calibrate", str(video), "--door-line", "0.5,0.1,0.5,0.9", "--inside", "left", "--preview", str(png))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == f"wrote {png}"
    first, *rest = [json.loads(x) for x in lines[:-1]]
    assert first["person_height"] == pytest.approx(60 / H, rel=0.1)
    crossings = [x for x in rest if x.get("what") == "crossing"]
    summary = rest[-1]["summary"]
    # three people walk left to right: into the right side, which is inside ("left" of a->b pointing down)
    assert [c["direction"] for c in crossings] == ["in", "in", "in"]
    assert summary["people"] == {"in": 3, "out": 0} and summary["crossings"] == 3
    assert summary["door_line"] == {"a": [0.5, 0.1], "b": [0.5, 0.9], "inside": "left",
                                    "person_height": first["person_height"]}  # fmt: skip
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (H, W, 3)


def test_calibrate_refuses_bad_arguments(tmp_path: Path) -> None:
    r = sc("gate", "calibrate", str(tmp_path / "none.avi"), "--door-line", "0.5,0.1,0.5,0.9")
    assert r.returncode == 2 and "none.avi: no such file" in r.stderr
    r = sc("gate", "calibrate", str(tmp_path / "none.avi"), "--door-line", "0.5,0.1,1.5,0.9")
    assert r.returncode == 2 and "fractions of the frame" in r.stderr
    r = sc("gate", "calibrate", str(tmp_path / "none.avi"), "--door-line", "0.5,0.1,0.5,0.9", "--inside", "up")
    assert r.returncode == 2 and "--inside is left or right" in r.stderr
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all")
    r = sc("gate", "calibrate", str(junk), "--door-line", "0.5,0.1,0.5,0.9")
    assert r.returncode == 2 and "not a video OpenCV can read" in r.stderr
    (tmp_path / "bad.json").write_text("{")
    r = sc("gate", "calibrate", str(junk), "--door-line", "0.5,0.1,0.5,0.9", "--truth", str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "--truth: " in r.stderr and "not JSON" in r.stderr
