"""Gate snapshots: the base64 JPEG inside a gate event, checked, saved under ``media_dir`` and served by URL.

The ingester decodes ``GatePayload.snapshot_jpeg`` before it stores the event,
saves the JPEG as ``snapshots/<event id>.jpg`` (written to a temporary name,
flushed to disk, then renamed, so a file that exists is whole) and keeps only
that path with the event; the base64 text itself is not stored in the
database. A snapshot that is not base64 or not a JPEG is refused with
:class:`SnapshotError`: the event is kept without it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path
from urllib.parse import quote

__all__ = ["JPEG_MAGIC", "SnapshotError", "decode_snapshot", "save_snapshot", "snapshot_url"]

#: Every JPEG starts with SOI (FF D8) and a marker (FF ..).
JPEG_MAGIC = b"\xff\xd8\xff"
_SAFE = re.compile(r"[A-Za-z0-9_-]{8,64}")


class SnapshotError(ValueError):
    """A snapshot that cannot be used (not base64, not a JPEG)."""


def decode_snapshot(text: str) -> bytes:
    """The JPEG bytes of a base64 snapshot; :class:`SnapshotError` saying why not."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SnapshotError(f"snapshot is not base64: {exc}") from exc
    if not data.startswith(JPEG_MAGIC):
        raise SnapshotError(f"snapshot is not a JPEG (starts with {data[:4].hex() or 'nothing'})")
    return data


def _file_name(event_id: str) -> str:
    # event ids are UUIDs in practice, but the contract only bounds their length: never trust one as a path
    return event_id if _SAFE.fullmatch(event_id) else hashlib.sha256(event_id.encode()).hexdigest()[:40]


def save_snapshot(media_dir: Path, event_id: str, data: bytes) -> str:
    """Save ``data`` for ``event_id``; returns its path relative to ``media_dir`` (the same for a redelivery)."""
    rel = f"snapshots/{_file_name(event_id)}.jpg"
    path = media_dir / rel
    if path.is_file() and path.stat().st_size == len(data):
        return rel  # a redelivered event: saved already
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return rel


def snapshot_url(event_id: str) -> str:
    """Where the API serves the snapshot of an event."""
    return f"/api/v1/snapshots/{quote(event_id, safe='')}.jpg"
