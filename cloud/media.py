"""Uploaded photos, read with suspicion: size first, pixel count from the header before anything is decoded,
and what is kept re-encoded from the pixels alone (no EXIF: no GPS position, no camera serial).

:func:`image_header` reads a JPEG's or PNG's width and height from its header without decoding it;
:func:`checked_image` refuses what is not a JPEG or PNG, too large in bytes or in pixels (a 5 MB JPEG can
declare 30,000 x 30,000 pixels: 3 GB once decoded); :func:`clean_jpeg` decodes (OpenCV turns the photo as its
EXIF orientation says) and re-encodes the pixels as a JPEG with no metadata.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["MAX_PIXELS", "ImageInfo", "MediaError", "checked_image", "clean_jpeg", "image_header"]

#: The most pixels a photo may have (a phone's 48 MP camera is under it); decoded, that is at most 150 MB.
MAX_PIXELS = 50_000_000

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class MediaError(ValueError):
    """An upload that cannot be used; the message says why, for the person who sent it."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    kind: str  # "jpg" or "png"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def image_header(data: bytes) -> ImageInfo | None:
    """Kind and size from the header of a JPEG or PNG (nothing decoded); None if it is neither or broken."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return ImageInfo("png", w, h)
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            return None
        if marker in _SOF:
            if i + 9 > len(data):
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return ImageInfo("jpg", w, h)
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def checked_image(data: bytes, *, what: str, max_bytes: int, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """The photo's kind and size if it may be decoded; :class:`MediaError` naming ``what`` otherwise."""
    if len(data) > max_bytes:
        raise MediaError(f"{what} is larger than {max_bytes // (1024 * 1024)} MB")
    info = image_header(data)
    if info is None:
        raise MediaError(f"{what} is not an image (send a JPEG or PNG photo)")
    if info.width == 0 or info.height == 0:
        raise MediaError(f"{what} has no pixels")
    if info.pixels > max_pixels:
        raise MediaError(
            f"{what} has {info.width} x {info.height} pixels, more than {max_pixels // 1_000_000} million: "
            "send a smaller photo"
        )
    return info


def clean_jpeg(data: bytes, *, what: str, max_bytes: int, quality: int = 90) -> bytes:
    """The photo's pixels as a new JPEG, with no metadata (checked first: :func:`checked_image`)."""
    checked_image(data, what=what, max_bytes=max_bytes)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError(f"{what} is not an image (send a JPEG or PNG photo)")
    ok, out = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any decoded image
        raise MediaError(f"{what} could not be stored")
    return bytes(out.tobytes())
