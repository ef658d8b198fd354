"""Fitting the people counter to a camera from its own footage: how tall people look at the door line.

The counter's scale (``door_line.person_height``, :mod:`.counting`) is the camera's geometry: a door camera
sees people large and close, a stairwell's corner camera small and far. ``sc gate calibrate FOOTAGE`` learns it
from a few minutes of the camera's footage (:func:`estimate_person_height`), runs the counter at that scale and
writes a preview (the line, which side is in, the people it measured) for the installer to check before going
live.

The estimate: moving blobs (background subtraction at 640 px), upright (1.6 to 5 times as tall as wide) and
solid, whose feet are near the door line; the median of their heights: the typical person's blob as the
counter will see it (partly hidden people and fragments pull it down a little, which only makes the counter
take smaller blobs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["HeightEstimate", "estimate_person_height", "preview"]

Frame = npt.NDArray[np.uint8]
Line = tuple[tuple[float, float], tuple[float, float]]

#: The working width of the estimate, px.
WORK_PX = 640
#: Feet within this share of the frame height of the line are "at the line".
NEAR_LINE = 0.08
#: Frames the background model learns before blobs are measured.
WARM_UP = 30


@dataclass
class HeightEstimate:
    person_height: float | None  # share of the frame height; None when too few people were seen
    samples: int
    quartiles: tuple[float, float, float] | None
    boxes: list[tuple[int, tuple[int, int, int, int]]] = field(default_factory=list)  # frame, full-frame box


def _distance_to_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    u = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)))
    return float(np.hypot(p[0] - (a[0] + u * dx), p[1] - (a[1] + u * dy)))


def estimate_person_height(frames: Iterable[Frame], line: Line, *, min_samples: int = 20) -> HeightEstimate:
    """How tall a person at ``line`` looks, from footage (``frames``, BGR)."""
    mog = cv2.createBackgroundSubtractorMOG2(history=300, varThreshold=32, detectShadows=True)
    k_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    heights: list[float] = []
    boxes: list[tuple[int, tuple[int, int, int, int]]] = []
    for i, f in enumerate(frames):
        full_h, full_w = f.shape[:2]
        w = min(WORK_PX, full_w)
        h = max(1, round(full_h * w / full_w))
        k = full_w / w
        mask = mog.apply(cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA))
        if i < WARM_UP:
            continue
        mask = np.where(mask == 255, 255, 0).astype(np.uint8)  # 127: shadow
        mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, k_open), cv2.MORPH_CLOSE, k_close)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        a = (line[0][0] * w, line[0][1] * h)
        b = (line[1][0] * w, line[1][1] * h)
        for j in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[j])
            if bh < 0.03 * h or not 1.6 <= bh / max(bw, 1) <= 5.0 or area < 0.35 * bw * bh:
                continue
            if _distance_to_segment((x + bw / 2, float(y + bh)), a, b) > NEAR_LINE * h:
                continue
            heights.append(bh / h)
            boxes.append((i, (round(x * k), round(y * k), round((x + bw) * k), round((y + bh) * k))))
    if len(heights) < min_samples:
        return HeightEstimate(None, len(heights), None, boxes)
    q = np.percentile(np.asarray(heights), [25, 50, 75])
    return HeightEstimate(float(round(q[1], 3)), len(heights), (float(q[0]), float(q[1]), float(q[2])), boxes)


def preview(frame: Frame, line: Line, inside: str, est: HeightEstimate, *, frame_index: int | None = None) -> Frame:
    """``frame`` with the door line, an arrow to the inside, and the boxes of the people measured (those of
    ``frame_index``, or a sample of all)."""
    out = frame.copy()
    h, w = out.shape[:2]
    a = (round(line[0][0] * w), round(line[0][1] * h))
    b = (round(line[1][0] * w), round(line[1][1] * h))
    cv2.line(out, a, b, (0, 0, 255), 2)
    # the inside: "left" of a->b is a negative cross product (docs: edge/gate/counting.py)
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    nx, ny = -(b[1] - a[1]), b[0] - a[0]
    norm = max(1.0, float(np.hypot(nx, ny)))
    sign = -1.0 if inside == "left" else 1.0
    tip = (round(mx + sign * nx / norm * 0.08 * h), round(my + sign * ny / norm * 0.08 * h))
    cv2.arrowedLine(out, (round(mx), round(my)), tip, (0, 0, 255), 2, tipLength=0.3)
    cv2.putText(out, "in", (tip[0] + 4, tip[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2)
    boxes = [bx for i, bx in est.boxes if frame_index is None or i == frame_index]
    for x0, y0, x1, y1 in boxes[:: max(1, len(boxes) // 40)] if frame_index is None else boxes:
        cv2.rectangle(out, (x0, y0), (x1, y1), (0, 200, 0), 1)
    label = (
        f"person_height {est.person_height:.3f} ({est.samples} people measured at the line)"
        if est.person_height is not None
        else f"too few people at the line ({est.samples}): no estimate"
    )
    cv2.putText(out, label, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2)
    return out
