"""Counting the people who cross the door line, and which way (the anti-tailgating half of the gate).

People are found by background subtraction (OpenCV MOG2) on a small copy of
the frame, followed as blobs by nearest centre, and counted when the bottom
of a blob (the feet) crosses the door line. The side of the line a point is on
is the sign of the 2-D cross product ``(b - a) x (p - a)`` in image
coordinates (y grows downwards); ``inside`` says which sign is inside the
community: "left" is a negative cross product (left of a->b as seen on the screen).

A crossing counts once the blob is still seen across the line ``confirm_s``
after it crossed, or when it leaves the view over a frame edge on the far side
(seen across at least twice, its box touching that edge). A blob that crosses
and then vanishes short of the edge, or whose bottom jumps back over the line
(too far to follow: a new blob takes over and the old one is never seen
again), is not a passage: that is a card or a photo lowered over the line and
raised again. Feet wobbling on the line are not crossings either (a band
either side of the line is ignored).

Blobs of two people walking close together can merge; a blob much wider than
one person at that depth is counted as several (by width against the
typical width of a single person at the door line), which is what a second
person close behind mostly looks like from a door camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["Crossing", "LineCounter"]

Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Crossing:
    t: float
    track: int
    direction: Direction
    people: int  # 1, or more when a merged blob of several people crossed


@dataclass
class _Blob:
    id: int
    feet: tuple[float, float]  # small-frame pixels
    box: tuple[int, int, int, int]
    last_t: float
    side: float
    pending: Crossing | None = None  # crossed, not yet confirmed


#: With ``person_height`` given: a person on the door line is this many pixels tall in the working copy.
PERSON_PX = 40
#: ... as wide as this share of their height,
PERSON_ASPECT = 0.4
#: ... and a blob of at least this share of a person's box is a person (legs apart, partly hidden, a child).
MIN_BLOB_SHARE = 0.25


class LineCounter:
    def __init__(
        self,
        line: tuple[tuple[float, float], tuple[float, float]],
        inside: Literal["left", "right"],
        *,
        width: int = 320,
        min_area_frac: float = 0.004,
        person_width_frac: float = 0.28,
        band_frac: float = 0.02,
        confirm_s: float = 0.4,
        history: int = 300,
        edge_frac: float = 0.03,
        person_height: float | None = None,
    ) -> None:
        """``person_height``: how tall a person standing on the door line is, a share of the frame height (the
        camera's geometry, from the gate's config). Given, it sets the scale the counter works at instead of
        ``width``, ``min_area_frac`` and ``person_width_frac`` (tuned for a door camera, people large and close):
        the frame is worked on at a size where such a person is PERSON_PX tall, a blob counts from
        MIN_BLOB_SHARE of a person's box, and a person is PERSON_ASPECT as wide as tall."""
        self.line = line
        self.inside_sign = -1.0 if inside == "left" else 1.0
        self.width = width
        self.min_area_frac = min_area_frac
        self.person_width_frac = person_width_frac  # a person's width at the door line, share of the frame
        self.person_height = person_height
        self.confirm_s = confirm_s  # a crossing counts once the blob stays across for this long
        self.edge_frac = edge_frac  # a box this close (share of the frame height) to a frame edge touches it
        self.band_frac = band_frac  # feet must be this far (share of the frame height) past the line to count
        self._mog = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=32, detectShadows=True)
        self._kernel_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._kernel_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
        self._blobs: dict[int, _Blob] = {}
        self._next = 1
        self.size: tuple[int, int] | None = None

    def _side(self, p: tuple[float, float]) -> float:
        assert self.size is not None
        w, h = self.size
        (ax, ay), (bx, by) = self.line
        ax, ay, bx, by = ax * w, ay * h, bx * w, by * h
        return (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)

    def _line_len(self) -> float:
        assert self.size is not None
        w, h = self.size
        (ax, ay), (bx, by) = self.line
        return float(np.hypot((bx - ax) * w, (by - ay) * h))

    def _within_segment(self, p: tuple[float, float]) -> bool:
        assert self.size is not None
        w, h = self.size
        (ax, ay), (bx, by) = self.line
        ax, ay, bx, by = ax * w, ay * h, bx * w, by * h
        dx, dy = bx - ax, by - ay
        u = ((p[0] - ax) * dx + (p[1] - ay) * dy) / (dx * dx + dy * dy)
        return -0.05 <= u <= 1.05

    def _scale_to(self, w: int, h: int) -> None:
        """The working size and blob sizes for a person ``person_height`` of the frame tall (first frame)."""
        assert self.person_height is not None
        ph = self.person_height
        self.width = int(np.clip(round(PERSON_PX / ph * w / h), 160, w))
        self.min_area_frac = MIN_BLOB_SHARE * PERSON_ASPECT * ph * ph * h / w
        self.person_width_frac = PERSON_ASPECT * ph * h / w
        self.person_height = None  # done

    def foreground(self, bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        h, w = bgr.shape[:2]
        if self.person_height is not None:
            self._scale_to(w, h)
        small = cv2.resize(bgr, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)
        self.size = (small.shape[1], small.shape[0])
        mask = self._mog.apply(small)
        mask = np.where(mask == 255, 255, 0).astype(np.uint8)  # 127 = shadow
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel_open)
        return np.asarray(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._kernel_close), dtype=np.uint8)

    def background(self) -> npt.NDArray[np.uint8] | None:
        """The learnt picture of the empty scene (grey, small), or None before the first frame."""
        if self.size is None:
            return None
        img = self._mog.getBackgroundImage()
        if img is None:
            return None
        return np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img, dtype=np.uint8)

    def update(self, bgr: npt.NDArray[np.uint8], t: float) -> list[Crossing]:
        mask = self.foreground(bgr)
        assert self.size is not None
        w, h = self.size
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        found: list[tuple[tuple[float, float], tuple[int, int, int, int]]] = []
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area < self.min_area_frac * w * h:
                continue
            found.append(((x + bw / 2, float(y + bh)), (x, y, x + bw, y + bh)))
        crossings: list[Crossing] = []
        taken: set[int] = set()
        max_jump = 0.15 * w
        for feet, box in sorted(found, key=lambda f: -f[0][1]):
            best: _Blob | None = None
            best_d = max_jump
            for blob in self._blobs.values():
                if blob.id in taken:
                    continue
                d = abs(blob.feet[0] - feet[0]) + abs(blob.feet[1] - feet[1])
                if d < best_d:
                    best, best_d = blob, d
            side = self._side(feet)
            # a side only counts once the feet are clearly past the line (a band either side of it):
            # feet wobbling on the line, or a shadow touching it, are not crossings
            clear = abs(side) > self.band_frac * h * self._line_len()
            if best is None:
                best = _Blob(self._next, feet, box, t, side if clear else 0.0)
                self._next += 1
                self._blobs[best.id] = best
            else:
                if clear and side * best.side < 0 and self._within_segment(feet):
                    direction: Direction = "in" if side * self.inside_sign > 0 else "out"
                    if best.pending is not None:
                        best.pending = None  # back where it came from (an arm, a held-up card): no crossing
                    else:
                        best.pending = Crossing(t, best.id, direction, self._people_in(box))
                best.feet, best.box, best.last_t = feet, box, t
                if clear:
                    best.side = side
            taken.add(best.id)
        for blob in list(self._blobs.values()):
            gone = t - blob.last_t > 1.0
            if blob.pending is not None:
                if blob.id in taken and t - blob.pending.t >= self.confirm_s:
                    crossings.append(blob.pending)  # still seen across the line after confirm_s: a passage
                    blob.pending = None
                elif blob.id not in taken and blob.last_t > blob.pending.t and self._left_over_far_edge(blob):
                    # seen across more than once and walked out of the view on the far side (a blob that jumps to
                    # the frame edge in one frame and vanishes is a merge or a ghost of the background model)
                    crossings.append(blob.pending)
                    blob.pending = None
                elif gone:
                    # vanished short of the frame edge, or jumped back over the line (a new blob took its place):
                    # a photo or a card lowered over the line and raised again, not a passage
                    blob.pending = None
            if gone:
                del self._blobs[blob.id]
        return crossings

    def _left_over_far_edge(self, blob: _Blob) -> bool:
        """Whether the blob, last seen across the line, touched a frame edge on that side (it walked out there)."""
        assert self.size is not None
        w, h = self.size
        x0, y0, x1, y1 = blob.box
        m = max(1.0, self.edge_frac * h)
        cx = (x0 + x1) / 2
        points: list[tuple[float, float]] = []
        if y1 >= h - m:
            points.append((cx, float(h)))
        if y0 <= m:
            points.append((cx, 0.0))
        if x0 <= m:
            points.append((0.0, float(y1)))
        if x1 >= w - m:
            points.append((float(w), float(y1)))
        return any(self._side(p) * blob.side > 0 for p in points)

    def _people_in(self, box: tuple[int, int, int, int]) -> int:
        assert self.size is not None
        width = (box[2] - box[0]) / self.size[0]
        return max(1, round(width / self.person_width_frac)) if width > 1.6 * self.person_width_frac else 1
