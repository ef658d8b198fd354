"""The gate's own record of pass uses: a pass opens the gate at most ``uses`` times.

Kept on disk (SQLite, fsync) so a restart or a power cut cannot reset a
count, and checked and counted in one transaction so two readers at one gate
cannot both take the last use. Revocations pushed from the cloud live here
too. Works offline: nothing here needs the network.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sc.passes import PassClaims, PassError, Refusal

__all__ = ["Admission", "PassLedger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pass_uses (
    pid TEXT PRIMARY KEY,
    used INTEGER NOT NULL,
    allowed INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked (
    pid TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Admission:
    pid: str
    use: int  # this was use number ``use`` ...
    allowed: int  # ... of ``allowed``

    @property
    def left(self) -> int:
        return self.allowed - self.use


class PassLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def admit(self, claims: PassClaims, now: datetime) -> Admission:
        """Count one use of a verified pass, or raise :class:`PassError` (used up, revoked)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute("SELECT 1 FROM revoked WHERE pid=?", (claims.pid,)).fetchone():
                    raise PassError(Refusal.REVOKED, "the resident or the control room revoked this pass")
                row = self._db.execute("SELECT used FROM pass_uses WHERE pid=?", (claims.pid,)).fetchone()
                used = int(row[0]) if row else 0
                if used >= claims.uses:
                    raise PassError(Refusal.USED_UP, f"all {claims.uses} uses taken")
                self._db.execute(
                    "INSERT INTO pass_uses(pid, used, allowed, expires, last_used) VALUES (?,?,?,?,?) "
                    "ON CONFLICT(pid) DO UPDATE SET used=used+1, last_used=excluded.last_used",
                    (claims.pid, used + 1, claims.uses, claims.exp, now.timestamp()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return Admission(claims.pid, used + 1, claims.uses)

    def revoke(self, pid: str, expires: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO revoked(pid, expires) VALUES (?,?) ON CONFLICT(pid) DO NOTHING", (pid, expires)
            )

    def used(self, pid: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT used FROM pass_uses WHERE pid=?", (pid,)).fetchone()
        return int(row[0]) if row else 0

    def prune(self, now: datetime, keep_s: int = 86400) -> int:
        """Forget passes that expired more than ``keep_s`` ago (their tokens are refused as expired anyway)."""
        cutoff = int(now.timestamp()) - keep_s
        with self._lock:
            n = self._db.execute("DELETE FROM pass_uses WHERE expires < ?", (cutoff,)).rowcount
            n += self._db.execute("DELETE FROM revoked WHERE expires < ?", (cutoff,)).rowcount
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()
