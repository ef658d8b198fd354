"""The on-disk outbox: an event is on disk before anything tries to send it,
and leaves the disk only when the broker has acknowledged it (QoS 1 PUBACK).

SQLite in WAL mode. ``synchronous=FULL`` (the default) fsyncs every commit,
so a committed event survives a power cut as well as a killed process.

Two streams share the file: events (never shed) and telemetry (shed oldest
first when the disk budget is exceeded, and counted). The sender takes events
before telemetry; within a stream, rows leave in the order they were written,
so each device's events arrive in order. The outbox also assigns each
device's event sequence number in the same transaction that stores the event,
so a gap in ``seq`` at the receiver always means a lost event.

Thread-safe: one connection guarded by a lock; every call is short.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

__all__ = [
    "DEAD_LETTER_KEEP",
    "DEAD_LETTER_PAYLOAD_BYTES",
    "DeadLetterRow",
    "Outbox",
    "OutboxFullError",
    "OutboxRow",
    "Stream",
]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_stream_id ON outbox (stream, id);
CREATE TABLE IF NOT EXISTS device_seq (
    device TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received REAL NOT NULL,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER
);
"""
#: How many dead letters are kept (the newest).
DEAD_LETTER_KEEP = 1000
#: How much of a dead letter's bytes is kept (its whole size is kept too): at most about 4 MB of dead letters.
DEAD_LETTER_PAYLOAD_BYTES = 4096


class Stream(IntEnum):
    EVENT = 0
    TELEMETRY = 1


class OutboxFullError(Exception):
    """The outbox cannot take the row (disk budget spent on events, or the disk is full)."""


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """A message the gateway could not use: when (``time.time()``), where, why, its first bytes, its whole size."""

    received: float
    topic: str
    reason: str
    payload: bytes
    size: int


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    stream: Stream
    topic: str
    payload: bytes
    created: float


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        warn_pct: float = 80.0,
        synchronous: str = "full",
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.warn_bytes = int(max_bytes * warn_pct / 100)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._sync_full = synchronous == "full"
        self._db.execute(f"PRAGMA synchronous={'FULL' if self._sync_full else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(dead_letter)")}
        if "size" not in columns:  # an outbox written before dead letters kept their size
            self._db.execute("ALTER TABLE dead_letter ADD COLUMN size INTEGER")
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self.shed_telemetry = 0
        self.near_full = False
        self._added = threading.Condition(self._lock)
        self._writes = 0
        self._budget_checked_at = 0.0
        self._bytes_cache = self._db_bytes()

    # ------------------------------------------------------------------ writing

    def put_event(self, device: str, build: Callable[[int], tuple[str, bytes]]) -> int:
        """Store one event. ``build(seq)`` returns (topic, payload) for the device's next seq.

        The seq and the row are committed together; returns the seq.
        """
        with self._lock:
            self._check_budget(for_event=True)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT last FROM device_seq WHERE device=?", (device,)).fetchone()
                seq = (row[0] if row else 0) + 1
                topic, payload = build(seq)
                self._db.execute(
                    "INSERT INTO device_seq(device, last) VALUES(?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET last=excluded.last",
                    (device, seq),
                )
                self._db.execute(
                    "INSERT INTO outbox(stream, topic, payload, created) VALUES (?,?,?,?)",
                    (Stream.EVENT, topic, payload, time.time()),
                )
                self._db.execute("COMMIT")
                self._writes += 1
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise OutboxFullError(f"outbox write failed: {exc}") from exc
                raise
            self._added.notify_all()
            return seq

    def put_telemetry(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._check_budget(for_event=False)
            try:
                self._db.execute(
                    "INSERT INTO outbox(stream, topic, payload, created) VALUES (?,?,?,?)",
                    (Stream.TELEMETRY, topic, payload, time.time()),
                )
                self._writes += 1
            except sqlite3.Error as exc:
                raise OutboxFullError(f"outbox write failed: {exc}") from exc
            self._added.notify_all()

    def _db_bytes(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _check_budget(self, *, for_event: bool) -> None:
        """Shed telemetry when over budget; warn loudly near it. Caller holds the lock.

        The file size is measured at most every 0.25 s (two PRAGMA queries),
        or at every write once it is above the warning level.
        """
        now = time.monotonic()
        if not self.near_full and now - self._budget_checked_at < 0.25:
            return
        self._budget_checked_at = now
        self._bytes_cache = used = self._db_bytes()
        if used >= self.warn_bytes and not self.near_full:
            self.near_full = True
            log.warning(
                "outbox=%s NEAR FULL: %.1f of %.1f MB used; the broker has not acknowledged for a while",
                self.path,
                used / 1e6,
                self.max_bytes / 1e6,
            )
        elif used < self.warn_bytes * 0.9 and self.near_full:
            self.near_full = False
            log.info("outbox=%s back below its warning level (%.1f MB)", self.path, used / 1e6)
        if used < self.max_bytes:
            return
        # Over budget: drop the oldest 10 % of telemetry (never events).
        n = int(self._db.execute("SELECT count(*) FROM outbox WHERE stream=?", (Stream.TELEMETRY,)).fetchone()[0])
        if n:
            drop = max(1, n // 10)
            self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE stream=? ORDER BY id LIMIT ?)",
                (Stream.TELEMETRY, drop),
            )
            self.shed_telemetry += drop
            log.error(
                "outbox=%s over its %.1f MB budget: shed %d oldest telemetry rows",
                self.path,
                self.max_bytes / 1e6,
                drop,
            )
            return
        if not for_event:
            self.shed_telemetry += 1
            raise OutboxFullError("outbox is full of events; telemetry refused")
        # Events are never refused for the budget: the budget is a warning for
        # them, the disk itself is the hard limit.
        log.error("outbox=%s holds %.1f MB of unsent EVENTS, over its budget", self.path, used / 1e6)

    # ------------------------------------------------------------------ reading

    def fetch(self, stream: Stream, after_id: int, limit: int) -> list[OutboxRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, stream, topic, payload, created FROM outbox WHERE stream=? AND id>? ORDER BY id LIMIT ?",
                (stream, after_id, limit),
            ).fetchall()
        return [OutboxRow(r[0], Stream(r[1]), r[2], bytes(r[3]), r[4]) for r in rows]

    @property
    def writes(self) -> int:
        """How many rows have been written since opening (a wake-up token for readers)."""
        return self._writes

    def wait_for_rows(self, timeout: float, seen_writes: int) -> None:
        """Block until a row is written after the reader saw ``seen_writes``, or ``timeout`` passes."""
        with self._added:
            if self._writes == seen_writes:
                self._added.wait(timeout)

    def ack(self, ids: Iterable[int]) -> int:
        """Delete acknowledged rows; returns how many were deleted.

        Deletes are committed without fsync even in ``full`` mode: a delete
        lost in a power cut only means that row is sent once more (same event
        id), and the next fsynced commit makes it durable anyway. This keeps
        the lock short, so the sensor path never waits on a delete's fsync.
        """
        batch = [(i,) for i in ids]
        if not batch:
            return 0
        with self._lock:
            if self._sync_full:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM outbox WHERE id=?", batch)
                self._db.execute("COMMIT")
            finally:
                if self._sync_full:
                    self._db.execute("PRAGMA synchronous=FULL")
        return len(batch)

    def depth(self) -> dict[str, int]:
        with self._lock:
            rows = dict(self._db.execute("SELECT stream, count(*) FROM outbox GROUP BY stream").fetchall())
        return {"events": int(rows.get(Stream.EVENT, 0)), "telemetry": int(rows.get(Stream.TELEMETRY, 0))}

    def used_bytes(self) -> int:
        return self._bytes_cache

    def last_seq(self, device: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT last FROM device_seq WHERE device=?", (device,)).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ dead letters

    def dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        """Keep a message we could not use, with the reason, its first DEAD_LETTER_PAYLOAD_BYTES and its size
        (the newest DEAD_LETTER_KEEP are kept)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO dead_letter(received, topic, reason, payload, size) VALUES (?,?,?,?,?)",
                (time.time(), topic, reason, payload[:DEAD_LETTER_PAYLOAD_BYTES], len(payload)),
            )
            self._db.execute(
                "DELETE FROM dead_letter WHERE id <= (SELECT max(id) FROM dead_letter) - ?",
                (DEAD_LETTER_KEEP,),
            )

    def dead_letters(self, limit: int = 100) -> list[tuple[str, str, bytes]]:
        """The newest dead letters first: (topic, reason, the bytes kept)."""
        return [(d.topic, d.reason, d.payload) for d in self.dead_letter_rows(limit)]

    def dead_letter_rows(self, limit: int = 100) -> list[DeadLetterRow]:
        """The newest dead letters first, with when they came and their whole size."""
        with self._lock:
            rows = self._db.execute(
                "SELECT received, topic, reason, payload, coalesce(size, length(payload)) FROM dead_letter"
                " ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetterRow(r[0], r[1], r[2], bytes(r[3]), int(r[4])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
