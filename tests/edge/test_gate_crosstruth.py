"""Crossings counted by hand against the gate's counter: the truth file, the matching, ``sc gate replay --truth``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.gate.crosstruth import CrossingTruth, TruthCrossing, TruthError, compare_crossings, load_truth
from edge.gate.gallery import Gallery
from edge.gate.pipeline import GateOutcome
from firmware_sim.gatescene import DOOR_INSIDE, DOOR_LINE, build_scene, write_video
from harness import sc_command


def truth(*crossings: tuple[float, str, int], tolerance: float = 1.0) -> CrossingTruth:
    return CrossingTruth.model_validate({
        "line": {"a": [0.1, 0.8], "b": [0.9, 0.8], "inside": "right"}, "tolerance_s": tolerance,
        "crossings": [{"t": t, "direction": d, "people": p} for t, d, p in crossings],
    })  # fmt: skip


def crossing(t: float, direction: str, people: int = 1) -> GateOutcome:
    return GateOutcome(100.0 + t, "crossing", 1, direction=direction, people=people)  # type: ignore[arg-type]


def test_each_counted_crossing_matches_the_nearest_found_one_of_its_direction_once() -> None:
    found = [crossing(1.2, "in"), crossing(1.4, "in", 2), crossing(5.0, "out"), crossing(9.0, "in")]
    found.append(GateOutcome(103.0, "entry", 2))  # not a crossing: ignored
    r = compare_crossings(found, truth((1.0, "in", 1), (1.5, "in", 2), (5.2, "in", 1), (7.0, "out", 1)), start=100.0)
    j = r.to_json()
    assert j["crossings"] == {"true": 4, "found": 4, "matched": 2, "missed": 2, "invented": 2}
    # 1.0 takes 1.2 (nearest), 1.5 takes 1.4; 5.2 "in" does not take 5.0 "out"; 7.0 is 2 s from 5.0
    assert [(c.t, round(t, 3), p) for c, t, p in r.matched] == [(1.0, 1.2, 1), (1.5, 1.4, 2)]
    assert j["missed"] == [{"t": 5.2, "direction": "in", "people": 1}, {"t": 7.0, "direction": "out", "people": 1}]
    assert j["invented"] == [{"t": 5.0, "direction": "out", "people": 1}, {"t": 9.0, "direction": "in", "people": 1}]
    assert j["people"] == {"true": 5, "found": 5, "right_count": 2}


def test_the_tolerance_decides_what_is_the_same_crossing() -> None:
    found = [crossing(2.0, "out")]
    assert compare_crossings(found, truth((1.0, "out", 1)), start=100.0).to_json()["crossings"]["matched"] == 1
    tight = compare_crossings(found, truth((1.0, "out", 1), tolerance=0.5), start=100.0).to_json()
    assert tight["crossings"] == {"true": 1, "found": 1, "matched": 0, "missed": 1, "invented": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON (line 1"),
        ('{"crossings": []}', "line: Field required"),
        ('{"line": {"a": [0.1, 0.5], "b": [1.5, 0.5]}, "crossings": []}', "line.b"),
        ('{"line": {"a": [0.1, 0.5], "b": [0.9, 0.5]}, "crossings": [{"t": 1, "direction": "up"}]}',
         "crossings.0.direction"),
        ('{"line": {"a": [0.1, 0.5], "b": [0.9, 0.5]}, "crossings": [], "extra": 1}', "extra: Extra inputs"),
    ],
)  # fmt: skip
def test_a_bad_truth_file_says_where(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "t.json"
    f.write_text(text)
    with pytest.raises(TruthError, match=r"t\.json: ") as err:
        load_truth(f)
    assert message in str(err.value)
    with pytest.raises(TruthError, match="No such file"):
        load_truth(tmp_path / "missing.json")


def sc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*sc_command(), *args], capture_output=True, text=True, timeout=600)


def test_replay_with_the_truth_of_a_scene_finds_its_crossings_on_the_truths_line(tmp_path: Path) -> None:
    scene = build_scene("two_residents", lighting="day", seed=0)
    video = write_video(scene, tmp_path / "two.avi")
    counted = {
        "video": "two.avi",
        "line": {"a": list(DOOR_LINE[0]), "b": list(DOOR_LINE[1]), "inside": DOOR_INSIDE},
        "crossings": [{"t": c.t, "direction": c.direction, "people": 1} for c in scene.truth.crossings],
    }
    assert [c["direction"] for c in counted["crossings"]] == ["in", "in"]  # type: ignore[index]
    (tmp_path / "truth.json").write_text(json.dumps(counted))
    db = tmp_path / "gallery.db"
    Gallery(db).close()
    r = sc("gate", "replay", str(video), "--gallery", str(db), "--truth", str(tmp_path / "truth.json"))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    found = [x for x in lines if x.get("what") == "crossing"]
    report = lines[-1]["truth"]
    # the line came from the truth file: without one, the replay counts nothing at all
    assert len(found) == report["crossings"]["found"] >= 1
    assert report["crossings"]["true"] == 2
    assert report["crossings"]["matched"] + report["crossings"]["missed"] == 2
    assert report["crossings"]["matched"] + report["crossings"]["invented"] == len(found)
    assert report["crossings"]["matched"] >= 1


def test_replay_refuses_a_bad_truth_file(tmp_path: Path) -> None:
    video = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (320, 240))
    for _ in range(3):
        writer.write(np.full((240, 320, 3), 120, dtype=np.uint8))
    writer.release()
    (tmp_path / "bad.json").write_text('{"line": {"a": [0, 0], "b": [0.01, 0.01]}, "crossings": []}')
    db = tmp_path / "gallery.db"
    Gallery(db).close()
    r = sc("gate", "replay", str(video), "--gallery", str(db), "--truth", str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "--truth: " in r.stderr and "the same point" in r.stderr


def test_the_truth_crossing_model_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TruthCrossing(t=-1.0, direction="in")
    with pytest.raises(ValueError):
        TruthCrossing(t=1.0, direction="in", people=0)
