"""Is the face in front of the camera a live person, or a photo or a phone screen held up to it?

Without extra hardware (no depth, no IR) a gate can only look for the traces
an attack leaves in ordinary frames. What this module checks, and what it
cannot (docs/gates.md has the full discussion):

- **A frame around the face** (:func:`frame_around_face`): a printed photo
  has a paper edge and a phone a bezel: long straight edges close around the
  face on three or four sides, which a live head does not have. Catches
  photos and screens held at arm's length with their edges in view.
- **Multi-frame evidence**: a grant needs the face tracked over several
  frames (``liveness_frames``) with the same identity, so a photo flashed for
  one frame cannot open the door.

Not covered: a borderless print cut to the face's outline, a large screen
whose edges are out of view, masks, and a replayed video filling the frame.
Those need depth or IR (a second camera or a structured-light module).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from vision.faces import FaceBox

__all__ = ["frame_around_face"]


def frame_around_face(
    grey: npt.NDArray[np.uint8], box: FaceBox, background: npt.NDArray[np.uint8] | None = None
) -> str | None:
    """A reason if straight edges frame the face above and on two more sides, else None.

    ``background`` (a grey picture of the empty scene, any size: it is scaled
    to the frame, e.g. the background model of the people counter) removes
    edges that are part of the scene: a doorway or a window behind a
    resident's head frames a live face too, but it was there before they came,
    while a photo's border arrives with the hand that holds it.
    """
    h, w = grey.shape[:2]
    fw, fh = box.width, box.height
    x0, y0 = max(0, box.left - int(0.9 * fw)), max(0, box.top - int(0.9 * fh))
    x1, y1 = min(w, box.right + int(0.9 * fw)), min(h, box.bottom + int(1.1 * fh))
    region = grey[y0:y1, x0:x1]
    if region.size == 0:
        return None
    # work on a region ~200 px wide whatever the face size: same cost for near and far faces
    k = 200.0 / max(1, region.shape[1])
    size = (max(1, round(region.shape[1] * k)), max(1, round(region.shape[0] * k)))
    small = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(small, (3, 3), 0)
    # thresholds from the region's own contrast: a photo's border at dusk or against the light is faint
    median = float(np.median(blurred))
    edges = cv2.Canny(blurred, max(10.0, 0.5 * median), max(30.0, 1.2 * median))
    change: npt.NDArray[np.float32] | None = None
    if background is not None:
        by, bx = background.shape[0] / h, background.shape[1] / w
        by0, bx0 = int(y0 * by), int(x0 * bx)
        bg = background[by0 : max(by0 + 2, int(y1 * by)), bx0 : max(bx0 + 2, int(x1 * bx))]
        bg = np.asarray(cv2.resize(bg, size, interpolation=cv2.INTER_LINEAR))
        # how much each spot differs from the empty scene (smoothed: the background model is coarse)
        change = np.asarray(cv2.blur(cv2.absdiff(small, bg).astype(np.float32), (7, 7)), dtype=np.float32)
    # an edge counts as part of the scene under a change that scales with the region's light: at night a photo's
    # border differs from the dark scene behind it by a third of what it does by day (docs/gates.md, "Liveness")
    static_change = float(np.clip(STATIC_CHANGE * median / STATIC_LUMA, MIN_STATIC_CHANGE, STATIC_CHANGE))
    min_len = 0.6 * fw * k
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=30, minLineLength=int(min_len), maxLineGap=6)
    if lines is None:
        return None
    # the face box in small-region coordinates
    fl, ft = (box.left - x0) * k, (box.top - y0) * k
    fr, fb = (box.right - x0) * k, (box.bottom - y0) * k
    sides: set[str] = set()
    # OpenCV 4 returns N x 1 x 4, OpenCV 5 N x 4: take both as rows of (x_a, y_a, x_b, y_b)
    for x_a, y_a, x_b, y_b in np.asarray(lines).reshape(-1, 4):
        dx, dy = float(x_b - x_a), float(y_b - y_a)
        if change is not None and _along(change, x_a, y_a, x_b, y_b) < static_change:
            continue  # the same edge is in the empty scene: a doorway, a window, a poster
        if abs(dy) <= 0.2 * abs(dx):  # horizontal
            y = (y_a + y_b) / 2
            spans_face = min(x_a, x_b) < fl + 0.3 * (fr - fl) and max(x_a, x_b) > fr - 0.3 * (fr - fl)
            if spans_face and y < ft - 0.05 * fh * k:
                sides.add("top")
            elif spans_face and y > fb + 0.05 * fh * k:
                sides.add("bottom")
        elif abs(dx) <= 0.2 * abs(dy):  # vertical
            x = (x_a + x_b) / 2
            spans_face = min(y_a, y_b) < ft + 0.3 * (fb - ft) and max(y_a, y_b) > fb - 0.3 * (fb - ft)
            if spans_face and x < fl - 0.05 * fw * k:
                sides.add("left")
            elif spans_face and x > fr + 0.05 * fw * k:
                sides.add("right")
    if {"top", "left", "right"} <= sides or len(sides) == 4:
        return f"straight edges around the face on {len(sides)} sides ({', '.join(sorted(sides))}): a photo or screen"
    return None


#: Mean grey-level difference from the empty scene below which an edge belongs to the scene, in a region of
#: median grey level STATIC_LUMA or brighter; darker regions scale it down, to MIN_STATIC_CHANGE at most.
STATIC_CHANGE = 14.0
STATIC_LUMA = 100.0
MIN_STATIC_CHANGE = 7.0


def _along(img: npt.NDArray[np.float32], x_a: int, y_a: int, x_b: int, y_b: int) -> float:
    """Mean of ``img`` sampled along a segment."""
    n = max(2, int(np.hypot(x_b - x_a, y_b - y_a)))
    xs = np.clip(np.linspace(x_a, x_b, n).round().astype(int), 0, img.shape[1] - 1)
    ys = np.clip(np.linspace(y_a, y_b, n).round().astype(int), 0, img.shape[0] - 1)
    return float(img[ys, xs].mean())
