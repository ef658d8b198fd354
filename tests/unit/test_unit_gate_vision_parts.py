"""The gate's vision parts on synthetic and real frames: motion gating, face tracks, the door-line counter, liveness."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from edge.gate.counting import Crossing, LineCounter
from edge.gate.gallery import GalleryIndex
from edge.gate.motion import MotionDetector, small_grey
from edge.gate.pipeline import GateOutcome
from edge.gate.tracking import FaceTracker
from firmware_sim.faces import FACES_DIR
from vision.faces import FaceBox, FaceEngine, load_rgb
from vision.liveness import frame_around_face

Frame = npt.NDArray[np.uint8]
W, H = 640, 480


def noisy_grey(rng: np.random.Generator, level: int = 140, noise: float = 6.0) -> Frame:
    f = rng.normal(level, noise, (H, W, 1)).clip(0, 255).astype(np.uint8)
    return np.repeat(f, 3, axis=2)


# --------------------------------------------------------------------------- motion


def test_small_grey_keeps_the_aspect_ratio() -> None:
    g = small_grey(np.zeros((480, 640, 3), dtype=np.uint8), 160)
    assert g.shape == (120, 160) and g.dtype == np.uint8
    assert small_grey(np.zeros((720, 1280, 3), dtype=np.uint8), 160).shape == (90, 160)


def test_static_noisy_frames_are_not_motion_after_the_first() -> None:
    rng = np.random.default_rng(1)
    md = MotionDetector()
    first = md.update(noisy_grey(rng))
    assert first.moving and first.fraction == 1.0 and first.box == (0, 0, W, H)  # no background yet
    for _ in range(30):
        r = md.update(noisy_grey(rng))
        assert not r.moving and r.box is None
        assert r.fraction < md.min_fraction


def test_slow_lighting_drift_is_not_motion() -> None:
    rng = np.random.default_rng(2)
    md = MotionDetector()
    md.update(noisy_grey(rng, 100))
    for level in range(100, 160, 1):  # dusk to dawn, one grey level per frame
        assert not md.update(noisy_grey(rng, level)).moving


def test_a_moving_rectangle_is_motion_with_a_box_around_it() -> None:
    rng = np.random.default_rng(3)
    md = MotionDetector()
    for _ in range(10):
        md.update(noisy_grey(rng))
    for step in range(8):
        f = noisy_grey(rng)
        x0, y0 = 100 + 30 * step, 200
        f[y0 : y0 + 80, x0 : x0 + 60] = 30
        r = md.update(f)
        assert r.moving and r.box is not None
        left, top, right, bottom = r.box
        assert left <= x0 and top <= y0 and right >= x0 + 60 and bottom >= y0 + 80, (r.box, x0)
        assert right - left < 400 and bottom - top < 120  # around the rectangle (and where it just was)
        assert 0.01 < r.fraction < 0.2


# --------------------------------------------------------------------------- face tracks


def box(x: int, y: int, size: int = 100) -> FaceBox:
    return FaceBox(x, y, x + size, y + size, 1.0)


def test_a_face_moving_smoothly_keeps_its_track() -> None:
    tr = FaceTracker()
    ids = set()
    for i in range(20):
        seen = tr.update([box(100 + 8 * i, 150 + 3 * i)], i * 0.04)
        assert len(seen) == 1
        ids.add(seen[0].id)
    assert ids == {1}
    (track,) = tr.tracks.values()
    assert track.hits == 20 and track.first_t == 0.0 and track.last_t == pytest.approx(0.76)
    assert track.box == box(100 + 8 * 19, 150 + 3 * 19)
    assert len(track.history) == 20 and track.age == pytest.approx(0.76)


def test_a_face_that_grows_fast_with_the_same_centre_stays_the_same_track() -> None:
    tr = FaceTracker()
    (a,) = tr.update([box(200, 200)], 0.0)
    near = FaceBox(130, 130, 370, 370)  # the same centre, 2.4 times the size: IoU 10000 / 57600 = 0.17
    assert near.iou(a.box) < tr.min_iou
    (b,) = tr.update([near], 0.2)
    assert b.id == a.id == 1 and b.hits == 2
    (c,) = tr.update([box(420, 180)], 0.4)  # IoU 0 and the centre 220 px away (0.6 x 240 = 144): somebody else
    assert c.id == 2


def test_two_faces_far_apart_are_two_tracks_that_keep_their_ids() -> None:
    tr = FaceTracker()
    first = tr.update([box(50, 100), box(450, 120)], 0.0)
    assert [t.id for t in first] == [1, 2]
    for i in range(1, 15):
        seen = tr.update([box(450 - 5 * i, 120), box(50 + 5 * i, 100)], i * 0.05)  # listed the other way round
        by_id = {t.id: t.box for t in seen}
        assert by_id == {1: box(50 + 5 * i, 100), 2: box(450 - 5 * i, 120)}
    assert sorted(tr.tracks) == [1, 2]


def test_tracks_expire_after_max_idle_s() -> None:
    tr = FaceTracker(max_idle_s=1.5)
    tr.update([box(50, 100), box(450, 120)], 0.0)
    tr.update([box(455, 120)], 1.0)  # only the second one is still seen
    assert tr.expire(1.5) == []  # 1.5 s idle is not more than max_idle_s
    gone = tr.expire(1.6)
    assert [t.id for t in gone] == [1]
    assert sorted(tr.tracks) == [2]
    assert [t.id for t in tr.expire(2.6)] == [2]
    assert tr.tracks == {}
    (new,) = tr.update([box(50, 100)], 3.0)
    assert new.id == 3  # ids are never reused


# --------------------------------------------------------------------------- the door-line counter

LINE = ((0.05, 0.82), (0.95, 0.82))
PERSON_FRAC = LineCounter(LINE, "right").person_width_frac  # one person's width at the door line, share of the frame


def background(rng: np.random.Generator) -> Frame:
    f = np.full((H, W, 1), 140, dtype=np.int16) + rng.integers(-3, 4, (H, W, 1))
    return np.repeat(f.clip(0, 255).astype(np.uint8), 3, axis=2)


def walk(
    path: list[tuple[float, float]],
    *,
    inside: str = "right",
    line: tuple[tuple[float, float], tuple[float, float]] = LINE,
    persons: float = 0.7,
    height: int = 200,
    width: float | None = None,
    person_height: float | None = None,
) -> list[Crossing]:
    """A dark rectangle ``persons`` people wide, its feet (bottom centre) at each point of ``path``, at 25 fps,
    after 40 frames of empty doorway for the background model; then 30 empty frames again."""
    width = width if width is not None else persons * PERSON_FRAC * W
    rng = np.random.default_rng(7)
    lc = LineCounter(line, inside, person_height=person_height)  # type: ignore[arg-type]
    out: list[Crossing] = []

    def frames() -> Iterator[Frame]:
        for _ in range(40):
            yield background(rng)
        for x, y in path:
            f = background(rng)
            if x >= 0:  # x < 0: nobody in view
                f[int(y) - height : int(y), max(0, int(x - width / 2)) : int(x + width / 2)] = 30
            yield f
        for _ in range(30):
            yield background(rng)

    for n, f in enumerate(frames()):
        out += lc.update(f, n / 25)
    return out


# feet from y=250 down to the bottom edge (y=480, out of the view there): across y = 0.82 * 480 = 393.6
DOWN = [(320.0, 250.0 + 10 * k) for k in range(24)]


def test_walking_down_across_the_line_is_one_crossing_in() -> None:
    (c,) = walk(DOWN)
    assert (c.direction, c.people, c.track) == ("in", 1, 1)
    # counted once the feet are past the line: from the frame they reach y=400 (first past 393.6), a few at most
    assert (40 + 15) / 25 - 0.001 <= c.t <= (40 + 18) / 25


def test_walking_up_across_the_line_is_one_crossing_out() -> None:
    # a shorter block: walking away, the rows at its feet stay dark longest and a flat 200-px block has them learnt
    # into the background (its feet jump back up, not a passage) before it has been across for confirm_s
    (c,) = walk(DOWN[::-1], height=120)
    assert (c.direction, c.people) == ("out", 1)
    assert (40 + 7) / 25 - 0.001 <= c.t <= (40 + 10) / 25  # from the frame the feet are at y=390, above the line


def test_the_inside_side_decides_the_direction() -> None:
    assert [c.direction for c in walk(DOWN, inside="left")] == ["out"]
    assert [c.direction for c in walk(DOWN[::-1], inside="left", height=120)] == ["in"]


def test_a_small_person_far_from_a_high_camera_is_counted_at_the_scale_the_config_gives() -> None:
    # 48 px tall, 18 wide in a 640 x 480 frame (a person seen from high up, 1/10 of the frame): under the door
    # camera's smallest blob, so not counted at its default scale; counted with person_height 1/10
    small = dict(height=48, width=18.0)
    assert walk(DOWN, **small) == []  # type: ignore[arg-type]
    (c,) = walk(DOWN, **small, person_height=48 / 480)  # type: ignore[arg-type]
    assert (c.direction, c.people) == ("in", 1)


def test_two_small_people_side_by_side_are_two_at_the_scale_the_config_gives() -> None:
    (c,) = walk(DOWN, height=48, width=2 * 18.0 + 4, person_height=48 / 480)
    assert (c.direction, c.people) == ("in", 2)


def test_person_height_sets_the_working_scale_once_the_frame_size_is_known() -> None:
    lc = LineCounter(LINE, "right", person_height=0.125)
    assert lc.width == 320  # not yet: the default until the first frame
    lc.update(np.full((480, 640, 3), 140, dtype=np.uint8), 0.0)
    # a person 1/8 of the frame tall is 40 px tall in the working copy: 320 px high, 427 wide
    assert lc.width == 427 and lc.size == (427, 320)
    assert lc.person_width_frac == pytest.approx(0.4 * 0.125 * 480 / 640)
    assert lc.min_area_frac == pytest.approx(0.25 * 0.4 * 0.125**2 * 480 / 640)


def test_walking_along_the_line_is_no_crossing() -> None:
    assert walk([(100.0 + 12 * k, 0.72 * H) for k in range(35)]) == []  # above the line, parallel to it
    assert walk([(560.0 - 12 * k, 0.92 * H) for k in range(35)]) == []  # below it


def test_crossing_beyond_the_end_of_the_line_is_no_crossing() -> None:
    short = ((0.05, 0.82), (0.3, 0.82))  # the door is on the left; the person walks down at x = 0.5
    assert walk(DOWN, line=short) == []
    assert len(walk([(100.0, y) for _, y in DOWN], line=short)) == 1  # within the segment


def test_one_in_then_one_out_elsewhere_on_the_door_are_two_crossings() -> None:
    back = [(480.0, y) for _, y in DOWN[::-1]]
    crossings = walk(DOWN + [(-1000.0, 0.0)] * 10 + back)  # ten frames with nobody, then out on the right side
    assert [(c.direction, c.people) for c in crossings] == [("in", 1), ("out", 1)]
    assert crossings[0].track != crossings[1].track


def test_a_blob_two_and_a_half_people_wide_counts_as_several() -> None:
    assert 3.05 * PERSON_FRAC < 0.95  # the widest blob here still fits in the frame
    (c,) = walk(DOWN, persons=2.5)
    assert c.direction == "in"
    assert c.people in (2, 3)  # width / person width = 2.5, rounded
    (two,) = walk(DOWN, persons=2.05)
    assert two.people == 2
    (three,) = walk(DOWN, persons=3.05)
    assert three.people == 3
    (wide_one,) = walk(DOWN, persons=1.4)
    assert wide_one.people == 1  # under 1.6 person widths: one (broad) person


def test_a_blob_that_crosses_and_stays_across_is_counted_once() -> None:
    stay = DOWN[:17] + [DOWN[16]] * 25  # feet past the line from frame 15 (y=400), standing at y=410 for 1 s
    (c,) = walk(stay)
    assert (c.direction, c.people) == ("in", 1)
    assert abs(c.t - (40 + 16) / 25) < 0.001  # the first frame clear of the band (y=410)


def test_a_blob_that_crosses_and_leaves_over_the_far_edge_at_once_is_counted() -> None:
    # across the line for only 0.2 s (frames 15-20: y=400..450) before its feet jump to the bottom edge and it is
    # gone: shorter than confirm_s, counted because it left the view on the far side
    fast = DOWN[:21] + [(320.0, 480.0)] * 2
    (c,) = walk(fast)
    assert (c.direction, c.people) == ("in", 1)
    assert abs(c.t - (40 + 16) / 25) < 0.001  # the first frame clear of the band (y=410)


def test_a_blob_that_crosses_and_jumps_back_is_no_crossing() -> None:
    # a photo lowered over the line and raised again: the bottom of the blob goes past the line for 0.16 s, then
    # jumps back 120 px (further than a blob may move between frames: a new blob) and stays above the line
    assert walk(DOWN[:19] + [(320.0, 300.0)] * 40) == []


def test_a_blob_that_crosses_and_vanishes_short_of_the_edge_is_no_crossing() -> None:
    # across for 0.16 s (y=400..430), then gone while still 50 px above the bottom edge
    assert walk(DOWN[:19]) == []
    # the same with the feet across for 0.44 s (past confirm_s) before it vanishes: counted
    (c,) = walk(DOWN[:15] + [(320.0, 410.0)] * 12)
    assert c.direction == "in"


def test_a_blob_that_touches_the_near_edge_only_is_no_crossing() -> None:
    # a tall blob whose top touches the top edge (the near side of the line) and whose feet are 0.16 s past the
    # line when it vanishes: the top edge is not on the far side
    assert walk(DOWN[:19], height=440) == []


# --------------------------------------------------------------------------- liveness: a frame around the face


@cache
def obama() -> tuple[Frame, FaceBox]:
    rgb = load_rgb(str(FACES_DIR / "obama.jpg"))
    (face,) = FaceEngine().detect(rgb)
    return rgb, face


def textured_wall(seed: int) -> Frame:
    """A busy background with no straight lines: overlapping soft discs and noise."""
    rng = np.random.default_rng(seed)
    wall = np.full((1080, 1440), 110, dtype=np.uint8)
    for _ in range(400):
        centre = (int(rng.integers(0, 1440)), int(rng.integers(0, 1080)))
        cv2.circle(wall, centre, int(rng.integers(8, 60)), int(rng.integers(40, 220)), -1, lineType=cv2.LINE_AA)
    wall = np.asarray(cv2.GaussianBlur(wall, (0, 0), 2), dtype=np.uint8)
    noisy = np.clip(wall + rng.normal(0, 6, wall.shape), 0, 255).astype(np.uint8)
    return np.asarray(cv2.cvtColor(noisy, cv2.COLOR_GRAY2RGB), dtype=np.uint8)


def held_up_photo(seed: int, *, border: int) -> Frame:
    """The photo around Obama's face, printed with a white ``border``, held up in front of a wall."""
    rgb, f = obama()
    crop = rgb[f.top - f.height // 2 : f.bottom + int(0.6 * f.height), f.left - f.width // 2 : f.right + f.width // 2]
    if border:
        white = (255, 255, 255)
        crop = np.asarray(cv2.copyMakeBorder(crop, border, border, border, border, cv2.BORDER_CONSTANT, value=white))
    scene = textured_wall(seed)
    scene[150 : 150 + crop.shape[0], 300 : 300 + crop.shape[1]] = crop
    return scene


def grey_and_face(rgb: Frame) -> tuple[Frame, FaceBox]:
    (face,) = FaceEngine().detect(rgb)
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8), face


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_photo_with_a_white_border_held_up_to_the_camera_is_caught(seed: int) -> None:
    grey, face = grey_and_face(held_up_photo(seed, border=24))
    reason = frame_around_face(grey, face)
    assert reason is not None
    # the paper's edges above and on both sides at least (its bottom edge may be lost in the hand's shadow)
    assert reason.startswith(
        (
            "straight edges around the face on 4 sides (bottom, left, right, top)",
            "straight edges around the face on 3 sides (left, right, top)",
        )
    ), reason


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_same_face_without_a_frame_around_it_passes(seed: int) -> None:
    """The face blended into the wall through a soft oval (a head, not a rectangle of paper)."""
    _, f = obama()
    photo = held_up_photo(seed, border=0)
    wall = textured_wall(seed)
    mask = np.zeros(wall.shape[:2], dtype=np.float32)
    # the face's centre in the scene (the crop starts half a face above and left of the box)
    cx, cy = 300 + f.width // 2 + f.width // 2, 150 + f.height // 2 + f.height // 2
    cv2.ellipse(mask, (cx, cy), (int(0.7 * f.width), int(0.9 * f.height)), 0, 0, 360, 1.0, -1)
    soft = cv2.GaussianBlur(mask, (0, 0), 12)[..., None]
    head = (photo * soft + wall * (1 - soft)).astype(np.uint8)
    grey, face = grey_and_face(head)
    assert abs(face.center[0] - cx) < 20 and abs(face.center[1] - cy) < 20
    assert frame_around_face(grey, face) is None


def test_the_original_photo_has_no_frame_around_the_face() -> None:
    rgb, face = obama()
    assert frame_around_face(np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8), face) is None


def test_a_face_box_off_the_frame_is_no_reason() -> None:
    grey = np.zeros((100, 100), dtype=np.uint8)
    assert frame_around_face(grey, FaceBox(200, 200, 260, 260)) is None  # an empty region


# --------------------------------------------------------------------------- the pipeline's timing of embeddings


class ScriptedEngine(FaceEngine):
    """A face engine without models: ``detect`` returns the box scripted for the current frame, ``embed`` a unit
    vector at the scripted distance from the resident's embedding (and both record what they were asked)."""

    def __init__(self, boxes: dict[int, FaceBox], distances: dict[int, float]) -> None:  # no models loaded
        self.boxes = boxes
        self.distances = distances
        self.frame = 0
        self.scales: set[float] = set()
        self.embedded: list[int] = []  # frames an embedding was taken on

    def detect(
        self,
        rgb: Frame,
        *,
        scale: float = 1.0,
        roi: tuple[int, int, int, int] | None = None,
        upsample: int = 0,
        min_score: float = 0.0,
        low_light: bool = False,
    ) -> list[FaceBox]:
        self.scales.add(scale)
        box = self.boxes.get(self.frame)
        return [] if box is None else [box]

    def embed(self, rgb: Frame, box: FaceBox) -> npt.NDArray[np.float32]:
        self.embedded.append(self.frame)
        d = self.distances[self.frame]
        cos = 1.0 - d * d / 2.0  # |q - e0|^2 = 2 - 2 cos
        q = np.zeros(128, dtype=np.float32)
        q[0], q[1] = cos, np.sqrt(1.0 - cos * cos)
        return q


RESIDENT = np.zeros((1, 128), dtype=np.float32)
RESIDENT[0, 0] = 1.0


def face(height: int, score: float) -> FaceBox:
    return FaceBox(300, 100, 300 + height, 100 + height, score)


def run_pipeline(
    boxes: dict[int, FaceBox],
    distances: dict[int, float],
    frames: int = 16,
    grey: int = 140,
    *,
    sharp: bool = True,
    index: GalleryIndex | None = None,
    outcomes: list[GateOutcome] | None = None,
) -> tuple[list[tuple[int, str, str | None]], ScriptedEngine]:
    """The pipeline (threshold 0.40, min_face_px 120 (not the default 108, for round numbers): decisions from
    100 px) on plain frames (grey level ``grey``: under 80 is a dark face) with a rectangle moving along the bottom
    (motion, far from the face) and a fine texture where the face is (``sharp``; without it the face's region is
    flat: a blurred look); (frame, what, person) of each outcome (and the outcomes themselves in ``outcomes``)."""
    from edge.gate.pipeline import GatePipeline, VisionSettings

    engine = ScriptedEngine(boxes, distances)
    index = index if index is not None else GalleryIndex(["r-a"], ["A"], RESIDENT)
    gallery = index
    pipe = GatePipeline(settings=VisionSettings(min_face_px=120), engine=engine, gallery=lambda: gallery)
    texture = np.random.default_rng(7).integers(-25, 26, size=(140, 140, 1))
    out: list[tuple[int, str, str | None]] = []
    for k in range(frames):
        engine.frame = k
        f = np.full((H, W, 3), grey, dtype=np.uint8)
        if sharp:
            f[90:230, 290:430] = (grey + texture).clip(0, 255).astype(np.uint8)
        f[400:460, 20 + 12 * k : 80 + 12 * k] = 30 if grey > 100 else 200
        found = pipe.process(f, k * 0.04)
        if outcomes is not None:
            outcomes.extend(found)
        out += [(k, o.what, o.person) for o in found]
    return out, engine


def approaching(first: int, score: float, last_small: int = 9, frames: int = 16) -> dict[int, FaceBox]:
    """A face one detector step under the decision size (92 px) from ``first``, at it (109 px) after ``last_small``.

    The moving area is searched for new faces on odd frames (``search_every`` 2): ``first`` odd is found at once.
    """
    return {k: face(92, score) if k <= last_small else face(109, 1.5) for k in range(first, frames)}


def test_the_detector_runs_at_the_scale_where_its_smallest_face_is_the_decision_size() -> None:
    # min_face_px 120, decisions within one 1.2x detector step of it (100 px): 80 px (dlib's smallest) / 100 px
    _, engine = run_pipeline(approaching(1, 1.5), {1: 0.2})
    assert engine.scales == {0.8}


def test_a_clear_look_on_the_approach_is_embedded_then_and_the_door_opens_on_the_first_frame_big_enough() -> None:
    out, engine = run_pipeline(approaching(1, 1.5), {1: 0.2})
    assert engine.embedded == [1]  # on the approach (92 px), not on the decision frame
    assert out == [(10, "entry", "r-a")]  # the first frame at 109 px: detection only, no embedding


def test_an_unclear_view_on_the_approach_is_not_embedded_before_the_decision_size() -> None:
    out, engine = run_pipeline(approaching(1, 0.6), {10: 0.2})  # detector score under approach_score (1.0)
    assert engine.embedded == [10]
    assert out == [(10, "entry", "r-a")]


@pytest.mark.parametrize("early", [0.37, 0.45])
def test_a_match_near_the_threshold_on_the_approach_is_looked_at_again_at_the_decision_size(early: float) -> None:
    # 0.37: inside the threshold (0.40) but not by approach_margin (0.05); 0.45: just outside it
    out, engine = run_pipeline(approaching(1, 1.5), {1: early, 10: 0.2})
    assert engine.embedded == [1, 10]
    assert out == [(10, "entry", "r-a")]


def test_nobody_near_on_the_approach_is_a_stranger_without_a_second_embedding() -> None:
    out, engine = run_pipeline(approaching(1, 1.5), {1: 0.7})
    assert engine.embedded == [1]
    assert out == [(10, "unknown", None)]


def test_a_face_already_big_enough_is_still_big_enough_when_its_box_drops_one_detector_step() -> None:
    # 109 px on a poor view (embedded, then a better one awaited), then 92 px (the detector's rounding) on a
    # better view: looked at again and decided there, not when the box happens to come back to 109 px
    boxes = approaching(1, 0.5) | {10: face(109, 0.2), 11: face(92, 0.3), 12: face(92, 0.3)}
    out, engine = run_pipeline(boxes, {10: 0.2, 11: 0.2})
    assert engine.embedded == [10, 11]
    assert out == [(11, "entry", "r-a")]


# --------------------------------------------------------------------------- open set: fusion, margin, quality


def test_looks_on_both_sides_of_the_threshold_are_fused_and_the_face_is_not_let_in_on_its_best_one() -> None:
    # 0.45 on the approach (just outside), 0.39 at the decision size (just inside): their mean is outside
    # (looked at for a while, in case a closer look settles it: the face does not come closer)
    out, engine = run_pipeline(approaching(1, 1.5, frames=100), {1: 0.45, 10: 0.39}, frames=100)
    assert engine.embedded == [1, 10]
    assert [what for _, what, _ in out] == ["unknown"]


def test_two_looks_that_agree_are_fused_into_a_grant() -> None:
    out, engine = run_pipeline(approaching(1, 1.5), {1: 0.37, 10: 0.30})
    assert engine.embedded == [1, 10]
    assert out == [(10, "entry", "r-a")]


def between_two_residents(d_a: float, d_b: float) -> GalleryIndex:
    """Residents A (at distance ``d_a`` from the scripted looks) and B (``d_b``, on the far side of the look)."""
    theta = 2 * np.arcsin(d_a / 2)  # the look's angle from A, in the plane of the first two axes
    theta_b = theta + 2 * np.arcsin(d_b / 2)
    b = np.zeros(128, dtype=np.float32)
    b[0], b[1] = np.cos(theta_b), np.sin(theta_b)
    return GalleryIndex(["r-a", "r-b"], ["A", "B"], np.stack([RESIDENT[0], b]))


def test_a_face_between_two_residents_within_the_margin_is_neither() -> None:
    # A at 0.30, B at 0.32: both within the threshold (0.40), 0.02 apart, under the margin (0.04)
    outcomes: list[GateOutcome] = []
    out, _ = run_pipeline(approaching(1, 1.5, frames=100), {1: 0.30, 10: 0.30}, frames=100,
                          index=between_two_residents(0.30, 0.32), outcomes=outcomes)  # fmt: skip
    assert [what for _, what, _ in out] == ["unknown"]
    assert "under the margin 0.04" in outcomes[0].reason and outcomes[0].granted is False


def test_the_best_resident_clearly_nearer_than_the_second_is_let_in() -> None:
    out, _ = run_pipeline(approaching(1, 1.5), {1: 0.30}, index=between_two_residents(0.30, 0.36))
    assert out == [(10, "entry", "r-a")]


def test_a_blurred_face_is_never_embedded_and_never_let_in() -> None:
    outcomes: list[GateOutcome] = []
    distances = dict.fromkeys(range(200), 0.1)  # it would match, if it were looked at
    out, engine = run_pipeline(approaching(1, 1.5, frames=200), distances, frames=100, sharp=False, outcomes=outcomes)
    assert engine.embedded == []
    assert [what for _, what, _ in out] == ["unknown"]
    assert outcomes[0].reason.startswith("no clear look at the face (blurred")


# --------------------------------------------------------------------------- dark faces (night)


def test_a_dark_face_is_looked_at_on_the_approach_on_a_lower_detector_score() -> None:
    # the detector scores a dark face low on every view: 0.5 is under approach_score (1.0), over dark_approach_score
    out, engine = run_pipeline(approaching(1, 0.5), {1: 0.2}, grey=40)
    assert engine.embedded == [1]
    assert out == [(10, "entry", "r-a")]
    bright, engine = run_pipeline(approaching(1, 0.5), {10: 0.2})
    assert engine.embedded == [10]  # in good light the same score is an unclear view, embedded at the decision size
    assert bright == [(10, "entry", "r-a")]


def test_an_unclear_dark_look_on_the_approach_is_taken_again_on_a_clearly_better_view_before_the_decision() -> None:
    boxes = approaching(1, 0.5) | {k: face(92, 1.5) for k in range(5, 10)}
    out, engine = run_pipeline(boxes, {1: 0.37, 5: 0.2}, grey=40)
    assert engine.embedded == [1, 5]  # both on the approach: the decision frame needs detection only
    assert out == [(10, "entry", "r-a")]


def test_a_clear_match_on_a_poor_dark_view_opens_without_waiting_for_a_better_view() -> None:
    boxes = approaching(1, 0.2) | {10: face(109, 0.2), 11: face(109, 0.5), 12: face(109, 0.5)}
    out, engine = run_pipeline(boxes, {10: 0.2, 11: 0.2}, grey=40)
    assert engine.embedded == [10]
    assert out == [(10, "entry", "r-a")]
    # in good light a poor first look is looked at again on a better view before the door opens
    bright, engine = run_pipeline(boxes, {10: 0.2, 11: 0.2})
    assert engine.embedded == [10, 11]
    assert bright == [(11, "entry", "r-a")]


def test_a_poor_dark_view_near_the_threshold_still_waits_for_a_better_one() -> None:
    boxes = approaching(1, 0.2) | {10: face(109, 0.2), 11: face(109, 0.5), 12: face(109, 0.5)}
    out, engine = run_pipeline(boxes, {10: 0.38, 11: 0.2}, grey=40)
    assert engine.embedded == [10, 11]
    assert out == [(11, "entry", "r-a")]


def test_only_a_dark_region_is_denoised_for_the_detector() -> None:
    from vision.faces import low_light_grey

    rng = np.random.default_rng(0)
    dark = rng.integers(20, 60, size=(60, 80, 3), dtype=np.uint8)
    grey = low_light_grey(dark)
    assert grey is not None and grey.shape == (60, 80) and grey.dtype == np.uint8
    assert float(grey.std()) < float(dark[..., 0].std())  # smoothed
    assert low_light_grey(np.full((60, 80, 3), 140, dtype=np.uint8)) is None


def test_a_gates_door_line_gives_the_counter_its_scale() -> None:
    from pydantic import ValidationError

    from edge.gate.pipeline import GatePipeline, VisionSettings
    from sc.config.schema import Gate

    base = {"id": "s1", "name": "Stairwell 1", "location": "b1", "gateway": "gw-b"}
    line = {"a": [0.0, 0.6], "b": [1.0, 0.6], "inside": "right", "person_height": 0.2}
    gate = Gate.model_validate({**base, "door_line": line})
    settings = VisionSettings.from_gate(gate)
    assert settings.person_height == 0.2 and settings.door_line == ((0.0, 0.6), (1.0, 0.6))
    pipe = GatePipeline(settings=settings, engine=ScriptedEngine({}, {}), gallery=GalleryIndex.empty)
    assert pipe.counter is not None and pipe.counter.person_height == 0.2
    assert VisionSettings.from_gate(Gate.model_validate(base)).person_height is None
    with pytest.raises(ValidationError, match="person_height"):
        Gate.model_validate({**base, "door_line": {**line, "person_height": 0.0}})


def count_only_door(*, alarm: bool) -> tuple[list[GateOutcome], ScriptedEngine]:
    """A stairwell door that only counts (faces off), a person walking down across LINE, at 25 fps."""
    from edge.gate.pipeline import GatePipeline, VisionSettings

    engine = ScriptedEngine({}, {})
    settings = VisionSettings(door_line=LINE, door_inside="right", faces=False, alarm=alarm)
    pipe = GatePipeline(settings=settings, engine=engine, gallery=GalleryIndex.empty)
    rng = np.random.default_rng(7)
    width = 0.7 * PERSON_FRAC * W
    out: list[GateOutcome] = []
    frames = [background(rng) for _ in range(40)]
    for x, y in DOWN:
        f = background(rng)
        f[int(y) - 200 : int(y), int(x - width / 2) : int(x + width / 2)] = 30
        frames.append(f)
    frames += [background(rng) for _ in range(30)]
    for n, f in enumerate(frames):
        out += pipe.process(f, 1000.0 + n / 25)
    return out, engine


def test_a_door_that_only_counts_raises_tailgating_on_a_crossing_with_no_grant_at_all() -> None:
    out, engine = count_only_door(alarm=True)
    assert [(o.what, o.direction, o.people) for o in out] == [("crossing", "in", 1), ("tailgating", None, None)]
    crossing, alarm = out
    assert (alarm.grants, alarm.crossings) == (0, 1) and alarm.reason == "1 people crossed the door line on 0 grant(s)"
    assert engine.scales == set() and engine.embedded == []  # no face was looked for
    # every crossing carries its track, direction, people and a snapshot (a JPEG of the frame)
    assert crossing.track == 1 and crossing.snapshot is not None and crossing.snapshot[:3] == b"\xff\xd8\xff"


def test_a_door_that_only_counts_without_the_alarm_just_counts() -> None:
    out, _ = count_only_door(alarm=False)
    assert [(o.what, o.direction) for o in out] == [("crossing", "in")]


def test_a_gates_config_turns_faces_and_the_alarm_off() -> None:
    from edge.gate.pipeline import VisionSettings
    from sc.config.schema import Gate

    base = {"id": "s1", "name": "Stairwell 1", "location": "b1", "gateway": "gw-b"}
    line = {"a": [0.0, 0.6], "b": [1.0, 0.6], "alarm": False}
    s = VisionSettings.from_gate(Gate.model_validate({**base, "faces": False, "door_line": line}))
    assert (s.faces, s.alarm) == (False, False)
    s = VisionSettings.from_gate(Gate.model_validate(base))
    assert (s.faces, s.alarm) == (True, True)
