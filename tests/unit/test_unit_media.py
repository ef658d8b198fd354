"""Uploaded photos (cloud/media.py): the size from the header, before decoding; what is kept has no EXIF."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.media import MAX_PIXELS, MediaError, checked_image, clean_jpeg, image_header

MB = 1024 * 1024


def jpeg(w: int = 64, h: int = 48) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)
    return bytes(cv2.imencode(".jpg", img)[1].tobytes())


def png(w: int = 40, h: int = 30) -> bytes:
    return bytes(cv2.imencode(".png", np.full((h, w, 3), 128, np.uint8))[1].tobytes())


def with_exif(data: bytes) -> bytes:
    """The JPEG with an APP1 Exif segment (a GPS position and a camera serial, as a phone writes them)."""
    payload = b"Exif\x00\x00" + b"GPSLatitude 31.2304 N; GPSLongitude 121.4737 E; BodySerialNumber 12345"
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def giant_jpeg(w: int, h: int) -> bytes:
    """A small file whose frame header declares ``w`` x ``h`` pixels (what an attacker sends)."""
    data = jpeg()
    i = data.index(b"\xff\xc0")
    return data[: i + 5] + struct.pack(">HH", h, w) + data[i + 9 :]


def test_the_size_comes_from_the_header() -> None:
    j, p = image_header(jpeg(64, 48)), image_header(png(40, 30))
    assert j is not None and (j.kind, j.width, j.height) == ("jpg", 64, 48)
    assert p is not None and (p.kind, p.width, p.height) == ("png", 40, 30)
    assert image_header(with_exif(jpeg(10, 20))) is not None
    assert image_header(b"GIF89a...") is None and image_header(b"") is None and image_header(b"\xff\xd8\xff") is None


def test_a_declared_30000_by_30000_photo_is_refused_before_it_is_decoded() -> None:
    bomb = giant_jpeg(30_000, 30_000)
    assert len(bomb) < 10_000
    with pytest.raises(MediaError) as exc:
        checked_image(bomb, what="photo 1 (big.jpg)", max_bytes=5 * MB)
    assert str(exc.value) == ("photo 1 (big.jpg) has 30000 x 30000 pixels, more than 50 million: send a smaller photo")
    assert MAX_PIXELS == 50_000_000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"x" * (5 * MB + 1), "media is larger than 5 MB"),
        (b"hello", "media is not an image (send a JPEG or PNG photo)"),
        (giant_jpeg(0, 10), "media has no pixels"),
    ],
)
def test_bad_uploads_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(MediaError) as exc:
        clean_jpeg(data, what="media", max_bytes=5 * MB)
    assert str(exc.value) == message


def test_what_is_kept_has_no_exif_and_the_same_picture() -> None:
    original = with_exif(jpeg(64, 48))
    assert b"GPSLatitude" in original
    kept = clean_jpeg(original, what="media", max_bytes=5 * MB)
    assert b"Exif" not in kept and b"GPS" not in kept and b"12345" not in kept
    img = cv2.imdecode(np.frombuffer(kept, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (48, 64, 3)
    assert img[24, 10, 2] > 200 and img[24, 50, 2] < 50  # red left half, black right half
    assert clean_jpeg(png(), what="media", max_bytes=5 * MB).startswith(b"\xff\xd8")  # a PNG is kept as a JPEG


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_header_or_none(data: bytes) -> None:
    for blob in (data, b"\xff\xd8" + data, b"\x89PNG\r\n\x1a\n" + data):
        info = image_header(blob)
        assert info is None or (info.width >= 0 and info.height >= 0)
