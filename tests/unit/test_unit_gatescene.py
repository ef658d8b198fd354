"""firmware_sim.gatescene: synthetic gate scenes, their ground truth, and that real detectors agree with it."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware_sim.gatescene import (
    DOOR_INSIDE,
    DOOR_LINE,
    LIGHTINGS,
    SCENES,
    Crossing,
    FrameTruth,
    GateScene,
    PersonTruth,
    build_scene,
    side_of_line,
    write_video,
)
from vision.faces import Embedding, FaceBox, FaceEngine, Image, load_rgb

W, H = 1280, 720
LINE_Y = DOOR_LINE[0][1] * H
# the realistic length of a signed visitor pass (SC1.<claims>.<signature>), as the cloud hands it out
LONG_TOKEN = "SC1." + "eyJwaWQiOiJwLTAwMDEyMzQ1Njc4OSIsInNpdGUiOiJoZXBpbmci" * 5 + "." + "A1b2C3d4E5f6G7h8" * 5


@pytest.fixture(scope="module")
def scenes() -> dict[str, GateScene]:
    """Every registered scene at its defaults (building one renders nothing)."""
    return {name: build_scene(name) for name in SCENES}


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


def rgb_of(bgr: np.ndarray) -> Image:
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def photo_embedding(engine: FaceEngine, scene: GateScene, identity: str) -> Embedding:
    """The embedding of the photo the scene cut ``identity``'s head from."""
    photo = scene.sources[identity]
    rgb = load_rgb(str(photo.path))
    boxes = sorted(engine.detect(rgb, upsample=1 if photo.face_index else 0), key=lambda b: b.left)
    return engine.embed(rgb, boxes[photo.face_index])


def at_door(scene: GateScene, identity: str) -> list[FrameTruth]:
    """Frames where ``identity`` stands still at the door, face fully visible."""
    out = []
    truths = scene.frame_truths()
    for prev, ft in itertools.pairwise(truths):
        for pt in ft.persons:
            before = [q for q in prev.persons if q.pid == pt.pid]
            if pt.identity == identity and pt.face_visible and before and before[0].feet == pt.feet:
                out.append(ft)
    return out


def crossings_from_feet(truths: list[FrameTruth], fps: float) -> list[Crossing]:
    """The door crossings recomputed from the per-frame feet (the module doc's definition)."""
    last: dict[int, float] = {}
    out: list[Crossing] = []
    x_lo, x_hi = DOOR_LINE[0][0] * W, DOOR_LINE[1][0] * W
    for ft in truths:
        for pt in ft.persons:
            fx, fy = pt.feet
            prev = last.get(pt.pid)
            if prev is not None and x_lo <= fx <= x_hi:
                before = side_of_line((fx, prev), DOOR_LINE, (W, H)) == DOOR_INSIDE
                now = side_of_line((fx, fy), DOOR_LINE, (W, H)) == DOOR_INSIDE
                if now != before:
                    out.append(Crossing(round(ft.index / fps, 6), pt.pid, "in" if now else "out"))
            last[pt.pid] = fy
    return out


# --- the door line -------------------------------------------------------------------------------------------------


def test_the_inside_is_below_the_door_line_and_is_the_right_hand_side() -> None:
    assert DOOR_LINE == ((0.05, 0.82), (0.95, 0.82))
    assert DOOR_INSIDE == "right"
    assert side_of_line((640, LINE_Y + 5)) == "right"
    assert side_of_line((640, LINE_Y - 5)) == "left"
    assert side_of_line((640, LINE_Y)) is None
    # a line drawn the other way round swaps the sides
    assert side_of_line((640, LINE_Y + 5), (DOOR_LINE[1], DOOR_LINE[0])) == "left"


# --- truth without rendering ---------------------------------------------------------------------------------------


def test_every_scene_has_one_truth_per_frame_and_its_expected_outcome(scenes: dict[str, GateScene]) -> None:
    expected = {  # name: (grants, inward crossings, tailgating, stranger, attack)
        "resident_approach": (("obama",), 1, False, False, False),
        "stranger": ((), 0, False, True, False),
        "tailgater": (("obama",), 2, True, False, False),
        "two_residents": (("obama", "biden"), 2, False, False, False),
        "visitor_qr": ((), 1, False, False, False),
        "photo_attack": ((), 0, False, False, True),
        "screen_attack": ((), 0, False, False, True),
        "empty": ((), 0, False, False, False),
    }
    assert set(expected) == set(SCENES)
    for name, scene in scenes.items():
        truths = scene.frame_truths()
        assert len(truths) == scene.n_frames, name
        assert [ft.index for ft in truths] == list(range(scene.n_frames))
        assert scene.size == (W, H) and scene.fps == 25.0
        grants, n_in, tailgating, stranger, attack = expected[name]
        t = scene.truth
        assert (t.name, t.lighting, t.residents) == (name, "day", ("obama", "biden"))
        assert t.expected_grants == grants, name
        assert [c.direction for c in t.crossings] == ["in"] * n_in, name
        assert (t.expect_tailgating, t.expect_stranger, t.attack) == (tailgating, stranger, attack), name
        assert (t.qr_token is not None) == (name == "visitor_qr")
    assert not any(ft.persons for ft in scenes["empty"].frame_truths())


def test_crossings_are_exactly_where_the_feet_cross_the_line(scenes: dict[str, GateScene]) -> None:
    for name, scene in scenes.items():
        assert tuple(crossings_from_feet(scene.frame_truths(), scene.fps)) == scene.truth.crossings, name


def test_the_tailgater_crosses_one_to_one_and_a_half_seconds_after_the_resident(scenes: dict[str, GateScene]) -> None:
    scene = scenes["tailgater"]
    first, second = scene.truth.crossings
    roles = {pt.pid: pt.role for ft in scene.frame_truths() for pt in ft.persons}
    assert (roles[first.pid], roles[second.pid]) == ("resident", "tailgater")
    assert 1.0 <= second.t - first.t <= 1.5
    # the follower never shows a recognisable face and never stops
    follower = [pt for ft in scene.frame_truths() for pt in ft.persons if pt.role == "tailgater"]
    assert not any(pt.face_visible for pt in follower)
    assert len({pt.feet for pt in follower}) == len(follower)
    # two residents come in well apart
    a, b = scenes["two_residents"].truth.crossings
    assert a.pid != b.pid and b.t - a.t > 3.0


def test_people_stop_at_the_door_with_a_big_whole_face_then_leave_through_the_bottom(
    scenes: dict[str, GateScene],
) -> None:
    for name, identity in (("resident_approach", "obama"), ("two_residents", "biden"), ("stranger", "hopper")):
        scene = scenes[name]
        stops = at_door(scene, identity)
        assert len(stops) >= 25, name  # a second or more, standing still
        for ft in stops:
            (pt,) = [p for p in ft.persons if p.identity == identity]
            assert pt.face_box is not None
            left, top, right, bottom = pt.face_box
            assert 150 <= bottom - top <= 260
            assert left >= 0 and top >= 0 and right <= W
            assert 0.73 * H <= pt.feet[1] <= 0.75 * H < LINE_Y  # the loiterer shuffles a little
    # the resident starts small and high up, and goes out through the bottom edge
    seen = [pt for ft in scenes["resident_approach"].frame_truths() for pt in ft.persons]
    assert seen[0].feet[1] < 0.45 * H and seen[0].body_box[3] - seen[0].body_box[1] < 0.2 * H
    assert seen[-1].feet[1] > H and not seen[-1].face_visible
    # the stranger walks away up the frame: back turned, no face
    away = scenes["stranger"].frame_truths()[-20].persons
    assert away and all(pt.face_box is None for pt in away)


def test_props_have_their_boxes(scenes: dict[str, GateScene]) -> None:
    qr = [ft for ft in scenes["visitor_qr"].frame_truths() if ft.qr_box is not None]
    assert 2.3 * 25 <= len(qr) <= 2.6 * 25  # held up for ~2.5 s
    for ft in qr:
        assert ft.qr_box is not None
        assert 160 <= ft.qr_box[2] - ft.qr_box[0] <= 260
    for name in ("photo_attack", "screen_attack"):
        held = [ft for ft in scenes[name].frame_truths() if ft.attack_box is not None]
        assert len(held) > 5 * 25, name
        # the attacker's own face is behind the photo/screen all that time
        assert all(pt.face_box is None for ft in held for pt in ft.persons)


def test_identities_and_lighting_can_be_chosen() -> None:
    scene = build_scene("tailgater", lighting="night", residents=("biden",), stranger="t1-3", seed=4)
    assert scene.truth.residents == ("biden",) and scene.truth.expected_grants == ("biden",)
    assert scene.truth.lighting == "night"
    assert {pt.identity for ft in scene.frame_truths() for pt in ft.persons} == {"biden", "t1-3"}
    assert set(LIGHTINGS) == {"day", "dusk", "night", "backlight"}
    with pytest.raises(ValueError, match="unknown identity"):
        build_scene("stranger", stranger="nobody")
    with pytest.raises(ValueError, match="one of the residents"):
        build_scene("stranger", stranger="obama")
    with pytest.raises(ValueError, match="unknown scene"):
        build_scene("parade")
    with pytest.raises(ValueError, match="unknown lighting"):
        build_scene("empty", lighting="disco")


# --- rendering -----------------------------------------------------------------------------------------------------


def test_rendering_is_deterministic_per_seed(scenes: dict[str, GateScene]) -> None:
    scene = scenes["resident_approach"]
    i = at_door(scene, "obama")[0].index
    frame, truth = scene.render(i)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    assert truth == scene.frame_truths()[i]
    again, _ = build_scene("resident_approach").render(i)
    assert again.tobytes() == frame.tobytes()
    other, _ = build_scene("resident_approach", seed=1).render(i)
    assert other.tobytes() != frame.tobytes()
    first, first_truth = next(iter(scene.frames()))
    assert first.tobytes() == scene.render(0)[0].tobytes() and first_truth.index == 0
    with pytest.raises(IndexError):
        scene.render(scene.n_frames)


def test_a_resident_at_the_door_is_found_and_recognised_by_the_gate_face_engine(
    scenes: dict[str, GateScene], engine: FaceEngine
) -> None:
    scene = scenes["resident_approach"]
    stops = at_door(scene, "obama")
    ref = photo_embedding(engine, scene, "obama")
    for ft in (stops[0], stops[-1]):
        frame, truth = scene.render(ft.index)
        (pt,) = truth.persons
        assert pt.face_box is not None
        rgb = rgb_of(frame)
        boxes = engine.detect(rgb)
        (box,) = [b for b in boxes if b.iou(FaceBox(*pt.face_box)) > 0.5]
        assert float(np.linalg.norm(engine.embed(rgb, box) - ref)) < 0.40


def test_a_stranger_at_the_door_is_a_face_but_not_the_resident(
    scenes: dict[str, GateScene], engine: FaceEngine
) -> None:
    scene = scenes["stranger"]
    ft = at_door(scene, "hopper")[0]
    frame, truth = scene.render(ft.index)
    (pt,) = truth.persons
    assert pt.face_box is not None
    rgb = rgb_of(frame)
    (box,) = [b for b in engine.detect(rgb) if b.iou(FaceBox(*pt.face_box)) > 0.5]
    vec = engine.embed(rgb, box)
    obama = photo_embedding(engine, scenes["resident_approach"], "obama")
    assert float(np.linalg.norm(vec - obama)) > 0.45
    assert float(np.linalg.norm(vec - photo_embedding(engine, scene, "hopper"))) < 0.40


@pytest.mark.parametrize("token", [None, LONG_TOKEN])
def test_the_visitors_qr_pass_decodes_off_the_frame(token: str | None) -> None:
    import zxingcpp

    scene = build_scene("visitor_qr", qr_token=token)
    assert scene.truth.qr_token == (token if token is not None else scene.truth.qr_token)
    held = [ft for ft in scene.frame_truths() if ft.qr_box is not None]
    for ft in (held[0], held[len(held) // 2]):
        frame, truth = scene.render(ft.index)
        assert truth.qr_box is not None
        found = zxingcpp.read_barcodes(frame)
        assert [r.text for r in found] == [scene.truth.qr_token]
        # where zxing found it is where the truth says it is
        pos = found[0].position
        xs = [p.x for p in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)]
        ys = [p.y for p in (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)]
        left, top, right, bottom = truth.qr_box
        assert left - 6 <= min(xs) and max(xs) <= right + 6 and top - 6 <= min(ys) and max(ys) <= bottom + 6


def test_the_empty_scene_changes_only_by_noise_and_flicker(scenes: dict[str, GateScene]) -> None:
    scene = scenes["empty"]
    a, _ = scene.render(10)
    b, _ = scene.render(11)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert 0.3 < float(diff.mean()) < 3.0  # alive (noise), but nothing moves
    assert float(np.percentile(diff, 99.9)) < 25


def test_night_is_dark_and_grey_and_backlight_darkens_the_person() -> None:
    i = 230  # the resident stands at the door
    day, truth = build_scene("resident_approach").render(i)
    night, _ = build_scene("resident_approach", lighting="night").render(i)
    back, _ = build_scene("resident_approach", lighting="backlight").render(i)
    assert night.mean() < 0.4 * day.mean()
    b, g, r = (night[..., c].astype(np.int16) for c in range(3))
    assert float(np.abs(b - r).mean()) < 2.0 and float(np.abs(g - r).mean()) < 2.0
    (pt,) = truth.persons
    assert pt.face_box is not None and pt.face_visible
    left, top, right, bottom = pt.face_box
    assert back[top:bottom, left:right].mean() < 0.7 * day[top:bottom, left:right].mean()


def test_write_video_round_trips_through_videocapture(tmp_path: Path) -> None:
    scene = build_scene("empty", size=(320, 180), fps=10.0)
    path = write_video(scene, tmp_path / "empty.avi")
    cap = cv2.VideoCapture(str(path))
    try:
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    assert len(frames) == scene.n_frames
    first, _ = scene.render(0)
    assert frames[0].shape == (180, 320, 3)
    assert float(np.abs(frames[0].astype(np.int16) - first.astype(np.int16)).mean()) < 4.0


def test_person_truth_is_in_frame_pixels(scenes: dict[str, GateScene]) -> None:
    for ft in scenes["two_residents"].frame_truths():
        for pt in ft.persons:
            assert isinstance(pt, PersonTruth)
            left, top, right, bottom = pt.body_box
            assert 0 <= left < right <= W and 0 <= top < bottom <= H
            if pt.face_box is not None:
                fl, ft_, fr, fb = pt.face_box
                assert 0 <= fl < fr <= W and 0 <= ft_ < fb <= H
                if pt.face_visible:
                    assert fb - ft_ >= 100
