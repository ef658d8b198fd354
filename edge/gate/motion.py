"""Motion gating: is anything moving, and where? Decided on a tiny grey copy of the frame.

The vision loop asks this first on every frame: a frame where nothing moved
and no face is being followed costs about a millisecond and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["MotionDetector", "MotionResult", "small_grey"]

Grey = npt.NDArray[np.uint8]


def small_grey(bgr: npt.NDArray[np.uint8], width: int) -> Grey:
    """A grey copy ``width`` pixels wide (area-averaged, so sensor noise averages out)."""
    h, w = bgr.shape[:2]
    height = max(1, round(h * width / w))
    small = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class MotionResult:
    moving: bool
    fraction: float  # share of the small frame that changed
    box: tuple[int, int, int, int] | None  # the changed area in full-frame pixels (left, top, right, bottom)


class MotionDetector:
    """Frame differencing against a slowly updated background, on a ``width``-pixel grey copy.

    ``threshold`` is the grey-level change that counts as motion (well above
    sensor noise after area averaging); ``min_fraction`` the share of pixels
    that must change. Slow lighting drift is absorbed by the running average.
    """

    def __init__(self, *, width: int = 160, threshold: int = 18, min_fraction: float = 0.002, alpha: float = 0.1):
        self.width = width
        self.threshold = threshold
        self.min_fraction = min_fraction
        self.alpha = alpha
        self._background: npt.NDArray[np.float32] | None = None

    def update(self, bgr: npt.NDArray[np.uint8]) -> MotionResult:
        grey = small_grey(bgr, self.width)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.astype(np.float32)
            return MotionResult(True, 1.0, (0, 0, bgr.shape[1], bgr.shape[0]))
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        cv2.accumulateWeighted(grey, self._background, self.alpha)
        mask = diff > self.threshold
        fraction = float(np.count_nonzero(mask)) / mask.size
        if fraction < self.min_fraction:
            return MotionResult(False, fraction, None)
        ys, xs = np.nonzero(mask)
        k = bgr.shape[1] / grey.shape[1]
        box = (int(xs.min() * k), int(ys.min() * k), int((xs.max() + 1) * k), int((ys.max() + 1) * k))
        return MotionResult(True, fraction, box)
