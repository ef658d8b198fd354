"""The installer's gate tools: ``sc gate enroll`` / ``report`` / ``replay`` on real photos, and the distance report."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge.gate.gallery import Gallery
from edge.gate.tools import distance_report
from firmware_sim.faces import FACES_DIR
from harness import REPO, sc_command
from vision.faces import EMBEDDING_DIM, FaceEngine, load_rgb, normalise

Vec = npt.NDArray[np.float32]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(sc_command(*args), capture_output=True, text=True, cwd=REPO, timeout=120)


def photo(name: str) -> str:
    return str(FACES_DIR / name)


def grey_jpeg(path: Path) -> Path:
    assert cv2.imwrite(str(path), np.full((480, 640, 3), 128, dtype=np.uint8))
    return path


# --------------------------------------------------------------------------- sc gate enroll


def test_enroll_two_photos_of_one_person(tmp_path: Path) -> None:
    db = tmp_path / "gate" / "gallery.db"
    r = sc("gate", "enroll", "--gallery", str(db), "--resident", "r-obama", "--name", "Barack Obama",
           photo("obama.jpg"), photo("obama2.jpg"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"  {photo('obama.jpg')}: face 259x259 px"
    assert lines[1] == f"  {photo('obama2.jpg')}: face 311x310 px"
    assert lines[-1] == f"enrolled r-obama into {db} (1 residents)"
    g = Gallery(db)
    try:
        assert list(g.digest()) == ["r-obama"]
        index = g.index()
    finally:
        g.close()
    assert index.names == ["Barack Obama"]
    # the enrolled embedding recognises a third photo of him, and not somebody else
    engine = FaceEngine()
    third, _ = engine.enrolment_embedding(load_rgb(photo("obama3.jpg")))
    other, _ = engine.enrolment_embedding(load_rgb(photo("biden.jpg")))
    m = index.search(third)
    assert m is not None and m.resident == "r-obama" and m.distance < 0.4
    m = index.search(other)
    assert m is not None and m.distance > 0.5


def test_enroll_a_second_resident_into_the_same_gallery(tmp_path: Path) -> None:
    db = tmp_path / "gallery.db"
    assert sc("gate", "enroll", "--gallery", str(db), "--resident", "r-1", photo("obama.jpg")).returncode == 0
    r = sc("gate", "enroll", "--gallery", str(db), "--resident", "r-2", "--name", "Grace Hopper",
           photo("grace_hopper.jpg"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"enrolled r-2 into {db} (2 residents)"


def test_a_photo_without_a_face_is_not_enrolled(tmp_path: Path) -> None:
    db = tmp_path / "gallery.db"
    grey = grey_jpeg(tmp_path / "wall.jpg")
    r = sc("gate", "enroll", "--gallery", str(db), "--resident", "r-1", str(grey))
    assert r.returncode == 1
    assert "not enrolled: no usable photo" in r.stderr and "no face" in r.stderr and str(grey) in r.stderr
    assert "enrolled r-1" not in r.stdout
    g = Gallery(db)
    assert len(g) == 0
    g.close()


def test_a_group_photo_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "gallery.db"
    r = sc("gate", "enroll", "--gallery", str(db), "--resident", "r-1", photo("t1.jpg"))
    assert r.returncode == 1
    assert "6 faces in the photo: use a photo of the resident alone" in r.stderr


def test_a_bad_photo_among_good_ones_is_skipped_with_a_note(tmp_path: Path) -> None:
    db = tmp_path / "gallery.db"
    grey = grey_jpeg(tmp_path / "wall.jpg")
    r = sc("gate", "enroll", "--gallery", str(db), "--resident", "r-1", photo("obama.jpg"), str(grey))
    assert r.returncode == 0, r.stderr
    assert f"  {grey}: no face found in the photo" in r.stdout
    assert r.stdout.splitlines()[-1] == f"enrolled r-1 into {db} (1 residents)"


def test_enroll_explains_what_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    r = sc("gate", "enroll", "--gallery", str(tmp_path / "g.db"), "--resident", "r-1", str(missing))
    assert r.returncode == 2 and f"{missing}: no such file" in r.stderr
    r = sc("gate", "enroll", "--resident", "r-1", photo("obama.jpg"))
    assert r.returncode == 2 and "say which gallery: --gallery FILE, or --config and --gate" in r.stderr
    r = sc("gate", "enroll", "--gate", "north", "--resident", "r-1", photo("obama.jpg"))
    assert r.returncode == 2 and "--config and --gate go together" in r.stderr
    assert not (tmp_path / "g.db").exists()


# --------------------------------------------------------------------------- sc gate report


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("people")
    for person, files in {
        "obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"],
        "biden": ["biden.jpg"],
        "hopper": ["grace_hopper.jpg"],
    }.items():
        (root / person).mkdir()
        for f in files:
            shutil.copy(FACES_DIR / f, root / person / f)
    (root / "obama" / "notes.txt").write_text("not a photo")  # ignored
    return root


def test_report_separates_people_and_proposes_a_threshold_between(photo_folder: Path, tmp_path: Path) -> None:
    plot = tmp_path / "distances.png"
    r = sc("gate", "report", str(photo_folder), "--plot", str(plot), "--threshold", "0.4")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == f"wrote {plot}"
    report = json.loads(lines[0])
    genuine, impostor = report["genuine"], report["impostor"]
    assert genuine["n"] == 3  # obama's three photos, each against the other two
    assert impostor["n"] == 3 * 2 + 1 * 2 + 1 * 2  # every photo against each other person
    assert genuine["min"] <= genuine["p50"] <= genuine["max"] < impostor["min"] <= impostor["p50"] <= impostor["max"]
    assert genuine["max"] < report["proposed_threshold"] < impostor["min"]
    thresholds = [row["threshold"] for row in report["table"]]
    assert thresholds == [round(0.30 + 0.02 * i, 2) for i in range(16)]
    for row in report["table"]:
        if row["threshold"] >= genuine["max"]:
            assert row["tar"] == 1.0
        if row["threshold"] < impostor["min"]:
            assert row["far"] == 0.0
    data = plot.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    img = cv2.imread(str(plot))
    assert img is not None and img.shape == (385, 770, 3)  # 7 x 3.5 inches at 110 dpi


def test_report_says_what_the_threshold_means_at_a_gate_of_many_residents(photo_folder: Path) -> None:
    r = sc("gate", "report", str(photo_folder), "--residents", "500", "--target", "0.01")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[0])
    o = report["open_set"]
    far = o["far_per_comparison"]
    assert far["impostor_pairs"] == 10 and far["accepted"] == 0 and far["observed"] == 0.0
    assert far["upper95"] == float(f"{1 - 0.05 ** (1 / 10):.3g}")  # 10 pairs can only promise under 26 %
    assert [row["residents"] for row in o["stranger_let_in"]] == [100, 500, 1000, 10000]
    fitted = [row["fitted"] for row in o["stranger_let_in"]]
    bound = [row["upper95"] for row in o["stranger_let_in"]]
    assert fitted == sorted(fitted)  # more residents: more chances for a stranger
    assert bound == [1.0] * 4  # 10 impostor pairs promise nothing at a gate of 100 (1 - (1 - 0.26) ** 100)
    assert (o["residents"], o["target"], o["threshold_for_target"]) == (500, 0.01, None)  # 10 pairs: too few to fit
    # obama's three photos each lead the nearest other person by far more than dlib's margin (0.04)
    assert report["gaps"]["n"] == 3 and report["gaps"]["min"] > 0.1
    assert report["proposed_margin"] == pytest.approx(0.04 * report["proposed_threshold"] / 0.40, abs=1e-3)
    bad = sc("gate", "report", str(photo_folder), "--target", "2")
    assert bad.returncode == 2 and "--target" in bad.stderr


def test_report_with_the_onnx_model_proposes_a_threshold_on_its_scale(photo_folder: Path) -> None:
    r = sc("gate", "report", str(photo_folder), "--model", "faceplugin-fr-feature")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[0])
    genuine, impostor = report["genuine"], report["impostor"]
    assert genuine["max"] < report["proposed_threshold"] < impostor["min"]
    assert 0.6 < report["proposed_threshold"] <= 1.5  # not dlib's cap of 0.6: its distances are larger
    thresholds = [row["threshold"] for row in report["table"]]
    assert thresholds[0] == 0.75 and thresholds[-1] == 1.5  # dlib's 0.30..0.60, scaled by 1.00 / 0.40


def test_report_needs_two_people_and_a_folder(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    shutil.copy(FACES_DIR / "obama.jpg", tmp_path / "only" / "a.jpg")
    r = sc("gate", "report", str(tmp_path))
    assert r.returncode == 2 and "need photos of at least two people" in r.stderr
    r = sc("gate", "report", str(tmp_path / "only" / "a.jpg"))
    assert r.returncode == 2 and "not a folder" in r.stderr


# --------------------------------------------------------------------------- sc gate replay


def test_replay_of_an_empty_doorway_prints_only_the_summary(tmp_path: Path) -> None:
    video = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(15):
        writer.write(rng.normal(120, 3, (240, 320, 3)).clip(0, 255).astype(np.uint8))
    writer.release()
    db = tmp_path / "gallery.db"
    Gallery(db).close()
    r = sc("gate", "replay", str(video), "--gallery", str(db), "--door-line", "0.05,0.8,0.95,0.8")
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    summary = json.loads(line)["summary"]
    assert summary["frames"] == 15 and summary["residents"] == 0 and summary["embeddings"] == 0
    r = sc("gate", "replay", str(tmp_path / "missing.mp4"), "--gallery", str(db))
    assert r.returncode == 2 and "missing.mp4: no such file" in r.stderr
    r = sc("gate", "replay", str(video), "--gallery", str(db), "--door-line", "0.1,0.8")
    assert r.returncode == 2 and "--door-line wants x1,y1,x2,y2" in r.stderr


# --------------------------------------------------------------------------- distance_report, by hand


def plane(*components: tuple[int, float]) -> Vec:
    """A 128-d vector with the given (axis, value) components, the rest zero."""
    v = np.zeros(EMBEDDING_DIM, dtype=np.float64)
    for axis, value in components:
        v[axis] = value
    return np.asarray(v, dtype=np.float32)


def pair_apart(gap: float) -> list[Vec]:
    """Two unit vectors symmetric about e0, ``gap`` apart (their normalised mean is e0)."""
    s = gap / 2
    c = math.sqrt(1 - s * s)
    return [plane((0, c), (1, s)), plane((0, c), (1, -s))]


def towards(distance: float) -> Vec:
    """A unit vector ``distance`` away from e0 (in the e0/e2 plane)."""
    cos = 1 - distance * distance / 2
    return plane((0, cos), (2, math.sqrt(1 - cos * cos)))


def test_distance_report_halfway_between_the_genuine_and_the_closest_impostor() -> None:
    a = pair_apart(0.2)  # genuine: each photo against the other, 0.2
    b = towards(0.55)  # 0.55 from A's mean (e0)
    report = distance_report({"a": a, "b": [b]})
    assert report.genuine == pytest.approx([0.2, 0.2], abs=1e-6)
    cross = math.sqrt(2 - 2 * math.sqrt(1 - 0.01) * (1 - 0.55**2 / 2))  # each of A's photos against b: 0.5577
    assert report.impostor == pytest.approx([cross, cross, 0.55], abs=1e-6)
    assert report.proposed == pytest.approx((0.2 + 0.55) / 2, abs=1e-6)  # 0.375 < 0.55 - 0.03
    rows = {t: (tar, far) for t, tar, far in report.rows}
    assert sorted(rows) == [round(0.30 + 0.02 * i, 2) for i in range(16)]
    assert rows[0.3] == (1.0, 0.0)
    assert rows[0.54] == (1.0, 0.0)
    assert rows[0.56] == (1.0, 1.0)  # 0.55 and 0.5577 are both under 0.56
    j = report.to_json()
    assert j["proposed_threshold"] == 0.375
    assert j["genuine"] == {"n": 2, "min": pytest.approx(0.2, abs=1e-6), "p50": pytest.approx(0.2, abs=1e-6),
                            "max": pytest.approx(0.2, abs=1e-6)}  # fmt: skip
    assert j["impostor"]["n"] == 3 and j["impostor"]["min"] == pytest.approx(0.55, abs=1e-6)
    assert j["table"][0] == {"threshold": 0.3, "tar": 1.0, "far": 0.0}


def test_distance_report_keeps_a_margin_below_the_closest_impostor() -> None:
    report = distance_report({"a": pair_apart(0.44), "b": [towards(0.46)]})
    assert report.genuine == pytest.approx([0.44, 0.44], abs=1e-6)
    assert min(report.impostor) == pytest.approx(0.46, abs=1e-6)
    assert report.proposed == pytest.approx(0.46 - 0.03, abs=1e-6)  # halfway (0.45) is too close to 0.46
    assert distance_report({"a": pair_apart(0.44), "b": [towards(0.46)]}, margin=0.005).proposed == pytest.approx(
        0.45, abs=1e-6
    )


def test_distance_report_never_proposes_more_than_0_6() -> None:
    report = distance_report({"a": pair_apart(0.2), "b": [plane((3, 1.0))]})
    assert report.impostor == pytest.approx([math.sqrt(2)] * 3, abs=1e-6)
    assert report.proposed == 0.6


def test_distance_report_holds_the_threshold_under_the_open_set_one_for_the_gates_size() -> None:
    # a with two photos 0.35 apart, and 40 people of one photo each scattered around a's mean (e0) at about 0.55 from it
    rng = np.random.default_rng(3)
    people = {"a": pair_apart(0.35)}
    for i in range(40):
        v = plane((0, 1.0)) + rng.normal(0.0, 0.05, EMBEDDING_DIM).astype(np.float32)
        people[f"p{i}"] = [normalise(v)]
    few = distance_report(people, residents=10)
    many = distance_report(people, residents=10_000)
    assert len(few.impostor) >= 30 and few.open_set_threshold is not None and many.open_set_threshold is not None
    assert many.open_set_threshold < few.open_set_threshold
    # 10 residents: halfway between a's photos and the closest impostor; 10,000: the open-set threshold, lower
    assert few.proposed < few.open_set_threshold
    assert many.proposed == pytest.approx(many.open_set_threshold, abs=1e-9) and many.proposed < few.proposed
    o = many.to_json()["open_set"]
    assert o["residents"] == 10_000 and o["threshold_for_target"] == round(many.open_set_threshold, 3)
    # at the proposed threshold, by the fit, a stranger facing 10,000 residents is let in at the target
    at_10k = next(r for r in o["stranger_let_in"] if r["residents"] == 10_000)["fitted"]
    assert at_10k == pytest.approx(0.001, rel=0.01)
    assert few.to_json()["open_set"]["threshold_for_target"] > o["threshold_for_target"]


def test_the_proposed_margin_never_refuses_a_resident_of_the_photos() -> None:
    # b is nearer a's mean than a's photos are to each other: they lead b by only 0.006, the margin is half that
    a = pair_apart(0.2)
    b = towards(0.18)
    report = distance_report({"a": a, "b": [b]})
    assert min(report.gaps) == pytest.approx(min(float(np.linalg.norm(v - b)) for v in a) - 0.2, abs=1e-6)
    assert report.proposed_margin == pytest.approx(0.5 * min(report.gaps), abs=1e-6) and report.proposed_margin < 0.01


def test_distance_report_with_one_photo_each_or_one_person() -> None:
    one_each = distance_report({"a": [plane((0, 1.0))], "b": [towards(0.5)]})
    assert one_each.genuine == []
    assert one_each.impostor == pytest.approx([0.5, 0.5], abs=1e-6)
    assert one_each.proposed == pytest.approx((0.3 + 0.5) / 2, abs=1e-6)  # no genuine pairs: 0.3 assumed
    assert all(tar == 0.0 for _, tar, _ in one_each.rows)
    assert one_each.to_json()["genuine"] == {}
    alone = distance_report({"a": pair_apart(0.2)})
    assert alone.impostor == []
    assert alone.proposed == pytest.approx((0.2 + 0.6) / 2, abs=1e-6)  # no impostor: 0.6 assumed
    assert all(far == 0.0 for _, _, far in alone.rows)
