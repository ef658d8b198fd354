"""The gateway's memory of the commands it ran: each at most once, across restarts.

A command is remembered (its id, until when it could still be valid, and the
answer it got) from the moment the gateway starts to run it, on disk (SQLite,
fsync), for as long as a copy of it could still pass the signature and time
checks: its ``expires`` plus the clock allowance. A copy that comes again
(a QoS 1 redelivery, the cloud resending after a lost answer, an attacker
replaying what they saw) is not run: it gets the answer the first one got.

:class:`RefusalEvents` turns refusals into ``command_refused`` events without
letting a flood of forged commands become a flood of alarms: the first at
once, then at most one a minute with the count of those in between.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sc.signing import CLOCK_ALLOWANCE_S, CommandRefused

__all__ = ["RefusalEvents", "Seen", "SeenCommands"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_commands (
    id TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    name TEXT NOT NULL,
    keep_until REAL NOT NULL,
    ack BLOB
);
CREATE INDEX IF NOT EXISTS seen_commands_keep_until ON seen_commands(keep_until);
"""


@dataclass(frozen=True, slots=True)
class Seen:
    """A command run before: its answer (None: still running, or the gateway stopped before it answered)."""

    device: str
    name: str
    ack: bytes | None


class SeenCommands:
    """Command ids this gateway has run, with their answers (thread-safe)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.prune()

    def claim(self, command_id: str, *, device: str, name: str, expires: float) -> Seen | None:
        """Remember ``command_id`` before it runs; None if it is new (run it), else what it got the first time."""
        keep_until = expires + CLOCK_ALLOWANCE_S
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT device, name, ack FROM seen_commands WHERE id = ?", (command_id,)
                ).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO seen_commands(id, device, name, keep_until) VALUES (?,?,?,?)",
                        (command_id, device, name, keep_until),
                    )
                else:  # a resend signed anew may be valid for longer: remember it as long as that one
                    self._db.execute(
                        "UPDATE seen_commands SET keep_until = max(keep_until, ?) WHERE id = ?",
                        (keep_until, command_id),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        if row is None:
            return None
        return Seen(row[0], row[1], None if row[2] is None else bytes(row[2]))

    def answered(self, command_id: str, ack: bytes) -> None:
        """Keep the answer a command got, for its copies."""
        with self._lock:
            self._db.execute("UPDATE seen_commands SET ack = ? WHERE id = ?", (ack, command_id))

    def prune(self) -> int:
        """Forget the commands no copy of which could still be valid; how many."""
        with self._lock:
            cur = self._db.execute("DELETE FROM seen_commands WHERE keep_until < ?", (self.clock(),))
            return cur.rowcount

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM seen_commands").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class Pending:
    first: CommandRefused
    count: int


class RefusalEvents:
    """Decides which refusals become a ``command_refused`` event: the first at once, then at most one per
    ``every_s`` carrying how many were refused since the last (a flood of forged commands is one alarm a
    minute, not thousands)."""

    def __init__(self, *, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last: float | None = None
        self._pending: Pending | None = None

    def refused(self, exc: CommandRefused) -> tuple[CommandRefused, int] | None:
        """Count a refusal; (the refusal to report, how many it stands for) when an event is due now."""
        if self._pending is None:
            self._pending = Pending(exc, 0)
        self._pending.count += 1
        return self.due()

    def due(self) -> tuple[CommandRefused, int] | None:
        """The event due now, if any (call it now and then: the count of a quiet tail is reported too)."""
        now = self.clock()
        if self._pending is None or (self._last is not None and now - self._last < self.every_s):
            return None
        out = (self._pending.first, self._pending.count)
        self._pending = None
        self._last = now
        return out
