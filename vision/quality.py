"""Is a look at a face good enough to count? Size, sharpness and pose, measured before the face is embedded.

A recogniser's distances are only as good as the view it was given: a face blurred by motion or turned to the
side moves the embedding towards "anybody", and with hundreds of residents enrolled "anybody" is somebody.
The gate's loop asks :func:`look_quality` before it embeds a look and counts only the good ones (its fusion
of several looks along a track, :mod:`edge.gate.pipeline`, averages those). Every figure here is cheap (a 64 x 64
grey crop and the detector's landmarks), far below the embedding it can save.

- **Size**: the face's height in pixels, at least ``min_px`` (the gate's decision size decides that already;
  the check is here for callers that do not).
- **Sharpness**: the variance of the Laplacian of the face resized to 64 x 64, divided by the crop's own
  variance, so that a dark or low-contrast face is not called blurred for being dark. A sharp face scores
  about 0.4-1.5 on that scale, a face smeared by a fast walk or out of focus under 0.1.
- **Pose** (only with the detector's 5 landmarks, YuNet's): the nose's offset from the middle of the eyes
  over the eyes' distance, about 0 for a frontal face and 0.5 or more near profile (yaw), and the eyes' height
  against the mouth's (pitch: a face looking at the floor or the ceiling).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from .faces import FaceBox

__all__ = ["MAX_PITCH", "MAX_YAW", "MIN_SHARPNESS", "LookQuality", "look_quality"]

#: Sharpness (Laplacian variance over the crop's variance, 64 x 64) under which a look is blurred.
MIN_SHARPNESS = 0.08
#: Nose offset from the eyes' middle over the eyes' distance beyond which a face is turned too far (about 35°).
MAX_YAW = 0.45
#: The nose's height between the eyes and the mouth (0 at the eyes, 1 at the mouth) outside 0.2-0.85: looking
#: up or down too far.
MAX_PITCH = (0.2, 0.85)


@dataclass(frozen=True, slots=True)
class LookQuality:
    """What :func:`look_quality` measured, and why the look does not count (``reason`` empty when it does)."""

    height_px: int
    sharpness: float
    yaw: float | None  # None without landmarks
    pitch: float | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def look_quality(grey: npt.NDArray[np.uint8], box: FaceBox, *, min_px: int = 40) -> LookQuality:
    """The quality of the look at ``box`` in the full-frame grey image ``grey``."""
    h, w = grey.shape[:2]
    x0, y0, x1, y1 = max(0, box.left), max(0, box.top), min(w, box.right), min(h, box.bottom)
    crop = grey[y0:y1, x0:x1]
    if crop.shape[0] < 8 or crop.shape[1] < 8:
        return LookQuality(box.height, 0.0, None, None, f"face {box.height} px: too small to see")
    small = np.asarray(cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA), dtype=np.float32)
    spread = float(small.var())
    sharpness = float(cv2.Laplacian(small, cv2.CV_32F).var()) / spread if spread > 1.0 else 0.0
    yaw = pitch = None
    if box.landmarks is not None and len(box.landmarks) >= 5:
        (ex1, ey1), (ex2, ey2), (nx, ny), (mx1, my1), (mx2, my2) = box.landmarks[:5]
        eye_dist = float(np.hypot(ex2 - ex1, ey2 - ey1))
        if eye_dist > 1.0:
            # along and across the eye line, so that a tilted head (roll) is not read as turned
            ux, uy = (ex2 - ex1) / eye_dist, (ey2 - ey1) / eye_dist
            mid_x, mid_y = (ex1 + ex2) / 2, (ey1 + ey2) / 2
            yaw = ((nx - mid_x) * ux + (ny - mid_y) * uy) / eye_dist
            mouth_x, mouth_y = (mx1 + mx2) / 2, (my1 + my2) / 2
            down = (mouth_x - mid_x) * -uy + (mouth_y - mid_y) * ux
            pitch = ((nx - mid_x) * -uy + (ny - mid_y) * ux) / down if down > 1.0 else None
    reason = ""
    if box.height < min_px:
        reason = f"face {box.height} px, under {min_px}"
    elif sharpness < MIN_SHARPNESS:
        reason = f"blurred (sharpness {sharpness:.2f} < {MIN_SHARPNESS})"
    elif yaw is not None and abs(yaw) > MAX_YAW:
        reason = f"turned away (yaw {yaw:+.2f}, more than {MAX_YAW})"
    elif pitch is not None and not MAX_PITCH[0] <= pitch <= MAX_PITCH[1]:
        reason = f"looking {'up' if pitch < MAX_PITCH[0] else 'down'} (pitch {pitch:.2f})"
    return LookQuality(box.height, sharpness, yaw, pitch, reason)
