"""The gate's vision loop, one frame at a time: faces, visitor passes and people crossing the door line.

:class:`GatePipeline` is the one code path behind the live gate, ``sc gate
replay`` and the benchmarks. Per frame, cheapest first:

1. **Motion gate** (:mod:`.motion`): on a 160-px grey copy. Nothing moving and
   no face waiting for a decision: the frame costs about a millisecond.
2. **People counting** (:mod:`.counting`): background subtraction on a
   320-px copy, blobs followed, feet crossing the door line counted.
3. **Faces**: the HOG detector runs on a *downscaled* copy (scaled so that
   the decision size, within one detector step of ``min_face_px``, is the
   detector's smallest face) and only where it can find something new: around
   faces already followed (every frame, small regions, until they are decided)
   and over the moving area (every ``search_every`` frames, half as often
   while faces are followed). Faces are followed as tracks (:mod:`.tracking`).
4. **Few looks per track**, the first taken *during the approach*: on the first
   clear view (detector score >= ``approach_score``) once the face is within
   one detector step of the decision size, so the frame on which the face
   reaches the decision size needs only detection. Such an early look is used
   when it is a clear answer (a match ``approach_margin`` inside the
   threshold, or far outside it); otherwise the face is embedded again at the
   decision size, and a third time only if that look was poor (low detector
   score) or just missed. A look counts only if the face is sharp and turned
   to the camera (:mod:`vision.quality`); the looks that count are fused (their
   embeddings averaged) and one matrix-vector product finds the nearest
   resident and the runner-up (:mod:`.gallery`).
5. **Decision** once the face is big enough, after ``liveness_frames``
   frames of evidence and the liveness checks (:mod:`vision.liveness`, run on the
   approach frames too): grant (entry) when the fused look is within the
   threshold *and* the margin nearer the best resident than the second best
   (open set: a stranger between two residents is neither), refuse, or a
   stranger who, after ``stranger_after_s`` of loitering, is reported.
6. **Visitor passes**: QR codes in the moving area are read (zxing-cpp) every
   ``qr_every`` frames, checked offline by the :class:`PassChecker`; each
   shown pass is one decision, not one per frame.
7. **Tailgating**: every grant (face, pass, remote open, card) allows one
   passage; more people crossing inwards than grants -> ``tailgating``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from sc.config.schema import Gate
from sc.contracts.messages import EntryMethod, EventKind
from vision.engines import Engine
from vision.faces import DARK_LUMA, HOG_MIN_FACE_PX, FaceBox, Image, normalise
from vision.liveness import frame_around_face
from vision.quality import look_quality

from .counting import LineCounter
from .gallery import GalleryIndex, Match
from .motion import MotionDetector
from .passcheck import PassChecker
from .tracking import FaceTrack, FaceTracker

__all__ = ["GateOutcome", "GatePipeline", "PipelineStats", "VisionSettings"]

Frame = npt.NDArray[np.uint8]  # BGR, as OpenCV delivers it
What = Literal["entry", "refused", "unknown", "stranger", "crossing", "tailgating"]

#: Frames with the whole face in view (approach included) the liveness checks run on before a grant.
LIVENESS_CHECKS = 4
#: After an attack with a resident's face, that face is refused for this long (the attacker's next try).
SPOOF_LOCKOUT_S = 60.0

#: The empty scene (the background as it was when no face was in view) is what the liveness check compares a
#: face's surroundings with, for this long; older, the live background model (which takes in whoever stands
#: still long enough, a photo held up included) is used instead.
EMPTY_SCENE_S = 300.0
#: A new face where a photo or screen was caught this recently (the attacker's track lost and found again) starts
#: with that evidence.
ATTACK_SITE_S = 10.0

#: A match this far over the threshold is looked at again once the face is bigger.
AMBIGUOUS_BAND = 0.12

#: The detector's boxes grow in steps of about this factor (dlib's HOG pyramid, 6/5).
HOG_STEP = 1.2

#: A face with no look that counts (blurred, turned away) for this long is decided on: never let in.
NO_LOOK_S = 3.0

#: Two stranger tracks this close (a fraction of the threshold) within 15 s are the same stranger.
SAME_STRANGER = 0.875

#: A pass code seen again within this long (held up, read frame after frame) is the same showing.
QR_REPEAT_S = 3.0

EVENT_FOR: dict[str, EventKind] = {
    "entry": EventKind.ENTRY,
    "refused": EventKind.ENTRY_REFUSED,
    "stranger": EventKind.STRANGER_AT_GATE,
    "tailgating": EventKind.TAILGATING,
}


@dataclass(frozen=True)
class VisionSettings:
    """Tuning of the loop; the gate's config supplies threshold, sizes and timings."""

    threshold: float = 0.40
    margin: float = 0.04  # the best resident at least this much nearer than the second best (open set)
    min_face_px: int = 108  # decide on faces of 90 px (one detector step under): docs/gates.md, "Latency"
    liveness_frames: int = 3
    stranger_after_s: float | None = 10.0
    search_every: int = 2  # look for new faces in the moving area every N frames (2N while faces are followed)
    qr_every: int = 3
    poor_score: float = 0.35  # detector score below this: embed again later if a better view comes
    # the embedding is taken on the approach, one detector step before the decision size, on a view this clear
    approach_score: float = 1.0
    # ... or this clear on a dark face (night: the detector scores a dark face low on every view)
    dark_approach_score: float = 0.35
    # ... and opens the door only with a match this much inside the threshold (a smaller face: a clearer match);
    # anything else is looked at again at the decision size
    approach_margin: float = 0.05
    grant_window_s: float = 15.0  # a grant allows one passage within this long
    door_line: tuple[tuple[float, float], tuple[float, float]] | None = None
    door_inside: Literal["left", "right"] = "right"
    person_height: float | None = None  # a person's height at the door line, share of the frame (the counter's scale)
    check_liveness: bool = True
    check_quality: bool = True  # count only sharp, frontal looks (vision.quality)
    faces: bool = True  # False: a door that only counts people (a stairwell): no face detection at all
    alarm: bool = True  # tailgating when more people cross inwards than were let in; False: count only
    low_light: bool = True  # dark regions are denoised for the detector (not for the embedding)

    @classmethod
    def from_gate(cls, gate: Gate, **overrides: Any) -> VisionSettings:
        line = None
        inside: Literal["left", "right"] = "right"
        person_height = None
        if gate.door_line is not None:
            line = (gate.door_line.a, gate.door_line.b)
            inside = gate.door_line.inside
            person_height = gate.door_line.person_height
        values: dict[str, Any] = {
            "threshold": gate.match_threshold,
            "margin": gate.match_margin,
            "min_face_px": gate.min_face_px,
            "liveness_frames": gate.liveness_frames,
            "stranger_after_s": gate.stranger_after_s,
            "door_line": line,
            "door_inside": inside,
            "person_height": person_height,
            "faces": gate.faces,
            "alarm": gate.door_line.alarm if gate.door_line is not None else True,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class GateOutcome:
    """One thing the gate decided or saw; ``sc gate replay`` prints these as JSON lines."""

    t: float
    what: What
    track: int | None = None
    method: EntryMethod | None = None
    person: str | None = None
    name: str | None = None
    distance: float | None = None
    granted: bool | None = None
    reason: str = ""
    direction: Literal["in", "out"] | None = None
    people: int | None = None
    grants: int | None = None
    crossings: int | None = None
    visible_t: float | None = None  # when the face was first whole in view (decision latency)
    snapshot: bytes | None = field(default=None, repr=False)

    @property
    def event_kind(self) -> EventKind | None:
        return EVENT_FOR.get(self.what)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None and v != "" and k != "snapshot"}
        if self.snapshot is not None:
            d["snapshot_bytes"] = len(self.snapshot)
        return d


@dataclass
class PipelineStats:
    frames: int = 0
    still: int = 0  # frames skipped by the motion gate
    detections: int = 0  # detector runs (regions)
    detect_px: int = 0  # pixels the detector looked at
    embeddings: int = 0
    qr_scans: int = 0
    decisions: int = 0


@dataclass
class _Session:
    """Grants and crossings since the door was last opened for someone."""

    until: float
    grants: int = 0
    crossings: int = 0
    alarmed: bool = False


class GatePipeline:
    def __init__(
        self,
        *,
        settings: VisionSettings,
        engine: Engine,
        gallery: Callable[[], GalleryIndex],
        passes: PassChecker | None = None,
        clock_to_datetime: Callable[[float], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self._gallery = gallery
        self.passes = passes
        self._to_dt = clock_to_datetime or (lambda t: datetime.fromtimestamp(t, UTC))
        self.motion = MotionDetector()
        self.tracker = FaceTracker()
        self.counter = (
            LineCounter(settings.door_line, settings.door_inside, person_height=settings.person_height)
            if settings.door_line is not None
            else None
        )
        self.stats = PipelineStats()
        # the detector's boxes come in steps of about 1.2x: a face within one step of min_face_px is decided on
        self._decide_px = settings.min_face_px / HOG_STEP
        # detect on a copy scaled so that the decision size is the detector's smallest face: the pyramid level
        # whose box is just over the decision size then takes over as the face reaches it (not up to a step later)
        self._scale = min(1.0, HOG_MIN_FACE_PX / self._decide_px)
        self._session: _Session | None = None
        self._recent_qr: dict[str, float] = {}
        # the empty scene (for the liveness check): the counter's background model, or one of our own
        self._fg_model = self.counter or LineCounter(((0.0, 0.5), (1.0, 0.5)), "right")
        self._spoofed: dict[str, float] = {}  # resident -> when their face was last shown on a photo/screen
        self._empty_bg: npt.NDArray[np.uint8] | None = None  # the background while no face was in view
        self._empty_t = -1e18
        self._attack_sites: list[tuple[float, float, float, float]] = []  # centre x, y, face height, when
        self._recent_strangers: list[tuple[npt.NDArray[np.float32], float, bool, float]] = []

    # ------------------------------------------------------------------ grants from outside the camera

    def grant(self, t: float, method: EntryMethod = EntryMethod.REMOTE) -> None:
        """A passage granted by something else (remote open, card reader): allows one person in."""
        self._add_grant(t)

    def door(self, t: float, *, open: bool) -> None:
        """The door contact changed (from the door controller): a closed door ends the grant window."""
        if not open and self._session is not None:
            self._session.until = min(self._session.until, t + 2.0)

    def _add_grant(self, t: float) -> None:
        if self._session is None or t > self._session.until:
            self._session = _Session(until=t + self.settings.grant_window_s)
        self._session.grants += 1
        self._session.until = max(self._session.until, t + self.settings.grant_window_s)

    # ------------------------------------------------------------------ the loop

    def process(self, bgr: Frame, t: float) -> list[GateOutcome]:
        s = self.settings
        st = self.stats
        st.frames += 1
        out: list[GateOutcome] = []
        h, w = bgr.shape[:2]
        motion = self.motion.update(bgr)
        undecided = [tr for tr in self.tracker.tracks.values() if tr.decided is None]
        if not motion.moving and not undecided:
            st.still += 1
            out.extend(self._expire(t))
            return out

        if self.counter is not None and motion.moving:
            for c in self.counter.update(bgr, t):
                out.extend(self._on_crossing(bgr, c.t, c.track, c.direction, c.people))
        elif motion.moving and s.check_liveness:
            self._fg_model.foreground(bgr)  # keeps a background model for the liveness check
        if s.check_liveness and not self.tracker.tracks and st.frames % 5 == 0:
            bg = self._fg_model.background()
            if bg is not None:
                self._empty_bg, self._empty_t = bg, t

        if not s.faces:  # a door that only counts: no faces to look for
            if self.passes is not None and motion.moving and motion.box is not None and st.frames % s.qr_every == 0:
                out.extend(self._scan_qr(bgr, motion.box, t))
            out.extend(self._expire(t))
            return out

        rgb: Image | None = None
        rois: list[tuple[int, int, int, int]] = []
        for tr in undecided:
            rois.append(_grow(tr.box, 0.7, w, h))
        if st.frames % s.search_every == 0:  # a stranger standing still is followed too, to time the loitering
            for tr in self.tracker.tracks.values():
                if tr.decided == "stranger" and not tr.stranger_reported:
                    rois.append(_grow(tr.box, 0.7, w, h))
        # new faces in the moving area: every search_every frames, half as often while undecided faces are followed
        # (their own regions are searched every frame; the moving area around a person walking through is most of
        # the cost); a face already decided is not followed, so the next one behind it is searched for as often as
        # with nobody in view
        every = s.search_every * (2 if undecided else 1)
        if motion.moving and motion.box is not None and st.frames % every == 0:
            rois.append(motion.box)
        rois = _merge_rois(rois)
        if rois:
            rgb = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            boxes: list[FaceBox] = []
            for roi in rois:
                st.detections += 1
                st.detect_px += int((roi[2] - roi[0]) * (roi[3] - roi[1]) * self._scale**2)
                boxes.extend(self.engine.detect(rgb, scale=self._scale, roi=roi, low_light=s.low_light))
            boxes = _nms(boxes)
            grey: npt.NDArray[np.uint8] | None = None
            for tr in self.tracker.update(boxes, t):
                if tr.decided is not None and tr.decided != "stranger":
                    continue
                if grey is None:
                    grey = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
                out.extend(self._evaluate(tr, bgr, rgb, grey, t))
        else:
            for tr in undecided:
                if tr.decided == "stranger":
                    out.extend(self._loitering(tr, bgr, t))

        if self.passes is not None and motion.moving and motion.box is not None and st.frames % s.qr_every == 0:
            out.extend(self._scan_qr(bgr, motion.box, t))
        out.extend(self._expire(t))
        return out

    # ------------------------------------------------------------------ faces

    def _evaluate(
        self, tr: FaceTrack, bgr: Frame, rgb: Image, grey: npt.NDArray[np.uint8], t: float
    ) -> list[GateOutcome]:
        s = self.settings
        h, w = bgr.shape[:2]
        box = tr.box
        whole = box.inside(w, h, margin=2)
        # the liveness checks also run while the face approaches (from about the detector's smallest face):
        # by the time it is close enough to decide, several frames of evidence are in, at no extra wait
        if s.check_liveness and tr.decided is None and whole and box.height >= HOG_MIN_FACE_PX:
            if tr.checks == 0:
                self._at_attack_site(tr, t)
            empty = self._empty_bg is not None and t - self._empty_t < EMPTY_SCENE_S
            reason = frame_around_face(grey, box, self._empty_bg if empty else self._fg_model.background())
            tr.checks += 1
            if reason is not None:
                tr.spoof_votes += 1
                tr.spoof_reason = reason
                if "4 sides" in reason:  # a whole rectangle round the face: a live head has none
                    tr.spoof_strong += 1
                    self._attack_sites = [a for a in self._attack_sites if t - a[3] < ATTACK_SITE_S]
                    self._attack_sites.append((*box.center, float(box.height), t))
        # big enough to decide on; once it was, a box one detector step smaller is the detector's rounding (its
        # boxes flicker between two steps while the face is between them), not a face that shrank
        near = box.height * HOG_STEP >= self._decide_px
        visible = whole and (box.height >= self._decide_px or (near and tr.first_visible_t is not None))
        if not visible:
            # approaching, one detector step from the decision size: embed now, on a clear view, so that the frame
            # on which the face is big enough needs no embedding (the ~100 ms it takes are spent while it comes)
            if tr.decided is None and whole and near and self._look_on_approach(tr, grey, box):
                self._embed(tr, rgb, grey, box, approach=True)
            return self._loitering(tr, bgr, t) if tr.decided == "stranger" else []
        if tr.first_visible_t is None:
            tr.first_visible_t = t
        quality = box.score
        if (
            tr.embedding is None
            or (tr.approach and not self._clear(tr))
            or (
                tr.embeddings < 2
                and tr.embed_quality < s.poor_score
                and quality > tr.embed_quality
                and not self._dark_clear(tr, grey, box)
            )
            or (tr.embeddings < 2 and self._ambiguous(tr) and box.height >= 1.2 * tr.embed_height)
        ):
            self._embed(tr, rgb, grey, box)
        if tr.decided == "stranger":
            return self._loitering(tr, bgr, t)
        if tr.hits < s.liveness_frames or (s.check_liveness and tr.checks < LIVENESS_CHECKS):
            return []  # not enough evidence yet: a grant needs the face whole in view and checked twice
        if tr.embedding is None and tr.age < NO_LOOK_S:
            return []  # no look that counts yet (blurred, turned away): wait for one
        match = tr.match
        is_resident = self._is_resident(match)
        poor = tr.embed_quality < s.poor_score and tr.embeddings < 2 and not self._dark_clear(tr, grey, box)
        if is_resident and poor:
            return []  # a poor first look: wait for a better one before opening the door
        # a frame with a whole rectangle round the face, or three in ten frames with edges on three sides,
        # refuse: a stranger let in is the worst failure; after an attack with someone's face, that face is
        # refused for a while
        recent_attack = match is not None and t - self._spoofed.get(match.resident, -1e18) < SPOOF_LOCKOUT_S
        spoofed = tr.spoof_strong > 0 or tr.spoof_votes * 10 >= 3 * tr.checks > 0
        if is_resident and (spoofed or recent_attack):
            tr.decided = "refuse"
            self.stats.decisions += 1
            assert match is not None
            if not recent_attack:
                self._spoofed[match.resident] = t
            else:
                tr.spoof_reason = (
                    f"this resident's face was shown on a photo or screen {t - self._spoofed[match.resident]:.0f} s ago"
                )
            return [
                GateOutcome(
                    t, "refused", tr.id, EntryMethod.FACE, match.resident, match.name, match.distance, False,
                    f"liveness: {tr.spoof_reason}", visible_t=tr.first_visible_t, snapshot=_frame_jpeg(bgr),
                )
            ]  # fmt: skip
        if is_resident:
            assert match is not None
            tr.decided = "grant"
            self.stats.decisions += 1
            self._add_grant(t)
            return [
                GateOutcome(
                    t, "entry", tr.id, EntryMethod.FACE, match.resident, match.name, match.distance, True,
                    reason=f"{match.name or match.resident} recognised (distance {match.distance:.2f})",
                    visible_t=tr.first_visible_t, snapshot=_face_jpeg(bgr, box),
                )
            ]  # fmt: skip
        if tr.embeddings < 2 and (tr.embed_quality < s.poor_score or self._ambiguous(tr)) and tr.age < 3.0:
            return []  # perhaps a resident seen badly or from afar: look again, closer, before calling them a stranger
        tr.decided = "stranger"
        self.stats.decisions += 1
        self._same_stranger(tr)
        if tr.embedding is None:
            reason = f"no clear look at the face ({tr.quality_reason})"
        elif match is not None and match.distance <= s.threshold:
            reason = (
                f"{match.name or match.resident} at {match.distance:.2f} but another resident at {match.runner_up:.2f}:"
                f" under the margin {s.margin:.2f}"
            )
        else:
            reason = "no resident within the threshold"
        unknown = GateOutcome(
            t, "unknown", tr.id, EntryMethod.FACE, distance=match.distance if match else None, granted=False,
            reason=reason, visible_t=tr.first_visible_t,
        )  # fmt: skip
        return [unknown, *self._loitering(tr, bgr, t)]

    def _at_attack_site(self, tr: FaceTrack, t: float) -> None:
        """A new face where a photo or screen was just caught (the attacker's face lost and found again, or the
        photo moved) starts with that evidence."""
        cx, cy = tr.box.center
        for ax, ay, size, seen in self._attack_sites:
            if t - seen < ATTACK_SITE_S and np.hypot(cx - ax, cy - ay) < max(size, tr.box.height):
                tr.spoof_strong += 1
                tr.spoof_reason = f"a photo or screen was held up here {t - seen:.0f} s ago"
                return

    def _embed(
        self, tr: FaceTrack, rgb: Image, grey: npt.NDArray[np.uint8], box: FaceBox, *, approach: bool = False
    ) -> None:
        """Look at the track's face in this frame (``approach``: before it reached the decision size): if the look
        counts (sharp, frontal), embed it, fuse it with the track's earlier looks and look the fusion up.

        Fusion averages the looks' embeddings: a resident's looks agree and their mean is nearer their enrolment,
        a stranger's mean is no nearer anyone. A clear look (detector score over ``poor_score``) after only poor
        ones replaces them instead: a poor view is what made the pipeline look again."""
        s = self.settings
        if s.check_quality:
            q = look_quality(grey, box)
            if not q.ok:
                tr.quality_reason = q.reason
                return
        vec = self.engine.embed(rgb, box)
        clear = box.score >= s.poor_score
        if tr.look_sum is None or (clear and tr.clear_looks == 0):
            tr.look_sum, tr.looks, tr.clear_looks = vec.copy(), 0, 0
        else:
            tr.look_sum = tr.look_sum + vec
        tr.looks += 1
        tr.clear_looks += int(clear)
        tr.embedding = normalise(tr.look_sum)
        tr.embed_quality = max(tr.embed_quality, box.score) if tr.looks > 1 else box.score
        tr.embed_height = box.height
        tr.approach = approach
        if approach:
            tr.approach_looks += 1
        else:
            tr.embeddings += 1
        self.stats.embeddings += 1
        tr.match = self._gallery().search(tr.embedding)

    def _look_on_approach(self, tr: FaceTrack, grey: npt.NDArray[np.uint8], box: FaceBox) -> bool:
        """Whether to embed this view on the approach: the first clear one (a lower bar for a dark face, which the
        detector scores low on every view), and once more if that look was unclear and this view is clearly better."""
        s = self.settings
        if tr.embedding is None:
            return box.score >= (s.dark_approach_score if _dark(grey, box) else s.approach_score)
        return (
            tr.approach
            and tr.approach_looks < 2
            and not self._clear(tr)
            and box.score >= max(s.approach_score, tr.embed_quality + 0.3)
        )

    def _dark_clear(self, tr: FaceTrack, grey: npt.NDArray[np.uint8], box: FaceBox) -> bool:
        """A clear match (``approach_margin`` inside the threshold) on a dark face: the detector scores a dark face
        low on every view (0.0-0.6 at night), so a low score there says nothing about the look and waiting for a
        better one only delays the door."""
        m = tr.match
        s = self.settings
        if m is None or m.distance > s.threshold - s.approach_margin or not self._is_resident(m):
            return False
        return _dark(grey, box)

    def _clear(self, tr: FaceTrack) -> bool:
        """Whether an embedding taken on the approach settles the face: a clear match, or nobody near."""
        m = tr.match
        s = self.settings
        if m is None or m.distance >= s.threshold + AMBIGUOUS_BAND:
            return True
        return m.distance <= s.threshold - s.approach_margin and self._is_resident(m)

    def _is_resident(self, m: Match | None) -> bool:
        """The open-set rule: within the threshold, and the margin nearer than the second-best resident."""
        s = self.settings
        return m is not None and m.distance <= s.threshold and m.runner_up - m.distance >= s.margin

    def _ambiguous(self, tr: FaceTrack) -> bool:
        """Just over the threshold, or within it but too near a second resident: a closer look may settle it."""
        m = tr.match
        s = self.settings
        if m is None:
            return False
        return s.threshold < m.distance < s.threshold + AMBIGUOUS_BAND or (
            m.distance <= s.threshold and not self._is_resident(m)
        )

    def _loitering(self, tr: FaceTrack, bgr: Frame, t: float) -> list[GateOutcome]:
        s = self.settings
        if tr.stranger_reported or tr.visitor or s.stranger_after_s is None or tr.age < s.stranger_after_s:
            return []
        tr.stranger_reported = True
        dist = tr.match.distance if tr.match is not None else None
        return [
            GateOutcome(
                t, "stranger", tr.id, distance=dist, granted=False,
                reason=f"unknown face at the gate for {tr.age:.0f} s", visible_t=tr.first_visible_t,
                snapshot=_frame_jpeg(bgr),
            )
        ]  # fmt: skip

    def _same_stranger(self, tr: FaceTrack) -> None:
        """A stranger who turned away and back is one visit: take over the earlier track's start and report."""
        if tr.embedding is None:
            return
        near = SAME_STRANGER * self.settings.threshold
        for i, (emb, first_t, reported, last_t) in enumerate(self._recent_strangers):
            if tr.first_t - last_t < 15.0 and float(np.linalg.norm(emb - tr.embedding)) < near:
                tr.first_t = min(tr.first_t, first_t)
                tr.stranger_reported = tr.stranger_reported or reported
                del self._recent_strangers[i]
                return

    def _expire(self, t: float) -> list[GateOutcome]:
        for tr in self.tracker.expire(t):
            if tr.decided == "stranger" and tr.embedding is not None:
                self._recent_strangers.append((tr.embedding, tr.first_t, tr.stranger_reported, tr.last_t))
        self._recent_strangers = [r for r in self._recent_strangers if t - r[3] < 15.0]
        if self._session is not None and t > self._session.until:
            self._session = None
        for token, seen in list(self._recent_qr.items()):
            if t - seen > QR_REPEAT_S:
                del self._recent_qr[token]
        return []

    # ------------------------------------------------------------------ passes

    def _scan_qr(self, bgr: Frame, roi: tuple[int, int, int, int], t: float) -> list[GateOutcome]:
        import zxingcpp

        assert self.passes is not None
        self.stats.qr_scans += 1
        x0, y0, x1, y1 = roi
        grey = cv2.cvtColor(bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
        out: list[GateOutcome] = []
        for code in zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)):
            token = code.text
            if not token or token in self._recent_qr:
                if token:
                    self._recent_qr[token] = t
                continue
            self._recent_qr[token] = t
            decision = self.passes.check(token, self._to_dt(t))
            self.stats.decisions += 1
            claims = decision.claims
            person = f"visitor:{claims.vis}" if claims is not None else None
            if decision.granted:
                self._add_grant(t)
                self._visitor_at(code.position, x0, y0)
                out.append(
                    GateOutcome(
                        t, "entry", method=EntryMethod.PASS, person=person, granted=True, reason=decision.detail
                    )
                )
            else:
                reason = f"{decision.reason.value if decision.reason else 'refused'}: {decision.detail}"
                out.append(
                    GateOutcome(
                        t, "refused", method=EntryMethod.PASS, person=person, granted=False, reason=reason,
                        snapshot=_frame_jpeg(bgr),
                    )
                )  # fmt: skip
        return out

    def _visitor_at(self, position: Any, x0: int, y0: int) -> None:
        """The unknown face nearest a granted pass is its visitor's: let in, so not a stranger to report."""
        xs = [p.x for p in (position.top_left, position.top_right, position.bottom_left, position.bottom_right)]
        qx = x0 + sum(xs) / 4
        unknown = [tr for tr in self.tracker.tracks.values() if tr.decided in (None, "stranger")]
        if unknown:
            min(unknown, key=lambda tr: abs(tr.box.center[0] - qx)).visitor = True

    # ------------------------------------------------------------------ tailgating

    def _on_crossing(
        self, bgr: Frame, t: float, track: int, direction: Literal["in", "out"], people: int
    ) -> list[GateOutcome]:
        snapshot = _frame_jpeg(bgr)  # who crossed: every crossing keeps its frame
        out = [GateOutcome(t, "crossing", track, direction=direction, people=people, snapshot=snapshot)]
        if direction != "in":
            return out
        if self._session is None or t > self._session.until:
            self._session = _Session(until=t + self.settings.grant_window_s)
        sess = self._session
        sess.crossings += people
        out[0] = GateOutcome(
            t, "crossing", track, direction=direction, people=people, grants=sess.grants, crossings=sess.crossings,
            snapshot=snapshot,
        )  # fmt: skip
        if sess.crossings > sess.grants and not sess.alarmed and self.settings.alarm:
            sess.alarmed = True
            out.append(
                GateOutcome(
                    t, "tailgating", track, granted=False, grants=sess.grants, crossings=sess.crossings,
                    reason=f"{sess.crossings} people crossed the door line on {sess.grants} grant(s)",
                    snapshot=snapshot,
                )
            )  # fmt: skip
        return out


# ---------------------------------------------------------------------- helpers


def _dark(grey: npt.NDArray[np.uint8], box: FaceBox) -> bool:
    """Whether the face in ``box`` is dark (night, a face against the light): mean grey level under DARK_LUMA."""
    face = grey[box.top : box.bottom, box.left : box.right]
    return face.size > 0 and float(face.mean()) < DARK_LUMA


def _grow(box: FaceBox, k: float, w: int, h: int) -> tuple[int, int, int, int]:
    dx, dy = int(box.width * k), int(box.height * k)
    return max(0, box.left - dx), max(0, box.top - dy), min(w, box.right + dx), min(h, box.bottom + dy)


def _merge_rois(rois: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Merge overlapping regions so no pixel is searched twice."""
    merged: list[tuple[int, int, int, int]] = []
    for r in sorted(rois):
        for i, m in enumerate(merged):
            if r[0] < m[2] and r[2] > m[0] and r[1] < m[3] and r[3] > m[1]:
                merged[i] = (min(r[0], m[0]), min(r[1], m[1]), max(r[2], m[2]), max(r[3], m[3]))
                break
        else:
            merged.append(r)
    return merged


def _nms(boxes: list[FaceBox]) -> list[FaceBox]:
    keep: list[FaceBox] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if all(b.iou(k) < 0.3 for k in keep):
            keep.append(b)
    return keep


def _face_jpeg(bgr: Frame, box: FaceBox) -> bytes:
    h, w = bgr.shape[:2]
    x0, y0, x1, y1 = _grow(box, 0.3, w, h)
    crop = bgr[y0:y1, x0:x1]
    if crop.shape[0] > 160:
        k = 160 / crop.shape[0]
        crop = np.asarray(cv2.resize(crop, (max(1, round(crop.shape[1] * k)), 160), interpolation=cv2.INTER_AREA))
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return bytes(buf) if ok else b""


def _frame_jpeg(bgr: Frame, width: int = 480) -> bytes:
    """The whole frame, small enough for an event (under MAX_SNAPSHOT_B64 once base64)."""
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    for quality in (70, 55, 40):
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) * 4 // 3 < 46 * 1024:
            return bytes(buf)
    return b""
