"""The residents a gate recognises: embeddings on disk, searched as one matrix in memory.

:class:`Gallery` keeps each resident's unit-length face embedding (never a
photo) in SQLite with fsync, so a gate keeps working offline with its last
gallery and across restarts. Changes come from the cloud (``gallery_put`` /
``gallery_delete`` commands, each with a version so a late, older put cannot
undo a newer one) or from the installer's ``sc gate enroll``.

:class:`GalleryIndex` is the in-memory search structure the vision loop uses:
the N x 128 float32 matrix of unit embeddings. One query is one
matrix-vector product (``scores = M @ q``); for unit vectors the Euclidean
distance is ``sqrt(2 - 2 * score)``, so the best match is the largest score.
The vision process holds an index and calls :meth:`Gallery.index_if_changed`
now and then: SQLite's ``data_version`` tells it cheaply whether another
process (the command handler) committed a change.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sc.contracts.commands import (
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_DIMS,
    EmbeddingModel,
    decode_embedding_b64,
    encode_embedding_b64,
)
from vision.faces import Embedding, normalise

log = logging.getLogger(__name__)

__all__ = ["Gallery", "GalleryError", "GalleryIndex", "Match", "decode_embedding", "encode_embedding"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS residents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    embedding BLOB NOT NULL,
    version INTEGER NOT NULL,
    updated REAL NOT NULL,
    model TEXT NOT NULL DEFAULT 'dlib-resnet-v1'
);
CREATE TABLE IF NOT EXISTS tombstones (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
"""


class GalleryError(ValueError):
    """An embedding or resident record that cannot be stored."""


def encode_embedding(vec: Embedding, model: EmbeddingModel = DEFAULT_EMBEDDING_MODEL) -> str:
    """Base64 of the model's little-endian float32s: how an embedding travels in a command (the contract's codec)."""
    return encode_embedding_b64(vec, model)


def decode_embedding(text: str, model: EmbeddingModel = DEFAULT_EMBEDDING_MODEL) -> Embedding:
    """The inverse of :func:`encode_embedding`, unit length; :class:`GalleryError` if it is not a usable one."""
    try:
        return normalise(decode_embedding_b64(text, model))
    except ValueError as exc:
        raise GalleryError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Match:
    resident: str
    name: str
    distance: float  # Euclidean distance between unit embeddings, 0..2
    runner_up: float  # the distance to the second-best resident (2.0 when there is none)


class GalleryIndex:
    """An immutable snapshot of the gallery as a matrix; safe to share between threads."""

    def __init__(self, ids: list[str], names: list[str], matrix: npt.NDArray[np.float32]) -> None:
        dims = sorted(set(EMBEDDING_DIMS.values()))
        if matrix.ndim != 2 or matrix.shape[0] != len(ids) or matrix.shape[1] not in dims:
            raise ValueError(f"matrix shape {matrix.shape} does not match {len(ids)} ids of {dims} values each")
        self.ids = ids
        self.names = names
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self._t = np.ascontiguousarray(self.matrix.T)  # 128 x N: queries as a vector-matrix product

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls, dim: int = EMBEDDING_DIMS[DEFAULT_EMBEDDING_MODEL]) -> GalleryIndex:
        return cls([], [], np.zeros((0, dim), dtype=np.float32))

    def search(self, query: Embedding) -> Match | None:
        """The nearest resident to a unit embedding (None for an empty gallery)."""
        n = len(self.ids)
        if n == 0:
            return None
        scores = query @ self._t  # (128,) @ (128, N): one pass over the matrix, row-major
        best = int(np.argmax(scores))
        top = float(scores[best])
        second = -1.0
        if n > 1:
            scores[best] = -np.inf  # the runner-up: a second argmax beats a partial sort
            second = float(scores[int(np.argmax(scores))])
        return Match(self.ids[best], self.names[best], _distance(top), _distance(second))

    def distances(self, query: Embedding) -> npt.NDArray[np.float32]:
        """Distances from ``query`` to every resident (for reports and threshold tuning)."""
        scores = np.asarray(self.matrix @ query, dtype=np.float32)
        return np.asarray(np.sqrt(np.maximum(0.0, 2.0 - 2.0 * scores)), dtype=np.float32)


def _distance(score: float) -> float:
    return float(np.sqrt(max(0.0, 2.0 - 2.0 * score)))


class Gallery:
    """The gate's residents on disk (SQLite, WAL, fsync). Several processes may open the same file."""

    def __init__(self, path: Path, model: EmbeddingModel = DEFAULT_EMBEDDING_MODEL) -> None:
        """``model``: the face model the gate recognises with; embeddings of another are refused, and rows of another
        (a gate whose model was changed) are not searched until the resident is enrolled again."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.model = model
        self.dim = EMBEDDING_DIMS[model]
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # a removed resident's embedding is overwritten with zeros, not left in a free page
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(residents)")}
        if "model" not in columns:  # a gallery from before models were named: every row is dlib's
            self._db.execute(
                f"ALTER TABLE residents ADD COLUMN model TEXT NOT NULL DEFAULT '{DEFAULT_EMBEDDING_MODEL.value}'"
            )
        self._seen_version: int | None = None
        self.checkpoints_busy = 0  # removals whose WAL could not be emptied at once (a reader held it)

    # ------------------------------------------------------------------ changes

    def put(
        self,
        resident: str,
        name: str,
        embedding: Embedding,
        *,
        version: int | None = None,
        model: EmbeddingModel | None = None,
    ) -> bool:
        """Add or replace a resident; False (and nothing changed) if ``version`` is older than what is stored.

        ``model`` (default: the gallery's) must be the gallery's: :class:`GalleryError` otherwise.
        """
        if model is not None and model is not self.model:
            raise GalleryError(
                f"this gate recognises faces with {self.model.value}: a {model.value} embedding cannot be compared "
                "with its residents (enrol with the gate's model)"
            )
        vec = np.asarray(embedding, dtype=np.float32)
        if vec.shape != (self.dim,) or not np.all(np.isfinite(vec)):
            raise GalleryError(f"a {self.model.value} embedding is {self.dim} finite numbers (got shape {vec.shape})")
        vec = normalise(vec)
        if not resident:
            raise GalleryError("a resident needs an id")
        ver = version if version is not None else time.time_ns() // 1000
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                newest = self._newest(resident)
                if newest is not None and newest > ver:
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute("DELETE FROM tombstones WHERE id=?", (resident,))
                self._db.execute(
                    "INSERT INTO residents(id, name, embedding, version, updated, model) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT(id) DO UPDATE SET name=excluded.name, embedding=excluded.embedding, "
                    "version=excluded.version, updated=excluded.updated, model=excluded.model",
                    (resident, name, vec.astype("<f4").tobytes(), ver, time.time(), self.model.value),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def delete(self, resident: str, *, version: int | None = None) -> bool:
        """Remove a resident (remembered as a tombstone so an older put cannot bring them back)."""
        ver = version if version is not None else time.time_ns() // 1000
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                newest = self._newest(resident)
                if newest is not None and newest > ver:
                    self._db.execute("ROLLBACK")
                    return False
                existed = self._db.execute("DELETE FROM residents WHERE id=?", (resident,)).rowcount > 0
                self._db.execute(
                    "INSERT INTO tombstones(id, version) VALUES (?,?) ON CONFLICT(id) DO UPDATE SET version=?",
                    (resident, ver, ver),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._empty_wal()
        return existed

    def _empty_wal(self, tries: int = 20) -> bool:
        """Copy the WAL into the database and truncate it: the pages with the old embedding go from the WAL too.

        A reader in another process (the vision loop) can hold the WAL for a moment: tried again for up to about a
        second; False (and counted) if it could not be done, and the next removal tries again.
        """
        for _ in range(tries):
            busy, _log, _done = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            time.sleep(0.05)
        self.checkpoints_busy += 1
        log.warning("gallery %s: the WAL could not be emptied after a removal (a reader holds it)", self.path)
        return False

    def _newest(self, resident: str) -> int | None:
        row = self._db.execute(
            "SELECT max(v) FROM (SELECT version AS v FROM residents WHERE id=? "
            "UNION ALL SELECT version FROM tombstones WHERE id=?)",
            (resident, resident),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # ------------------------------------------------------------------ reading

    def digest(self) -> dict[str, int]:
        """resident -> version: what the cloud compares to find what a gate is missing."""
        with self._lock:
            q = "SELECT id, version FROM residents WHERE model=? ORDER BY id"
            return {r: int(v) for r, v in self._db.execute(q, (self.model.value,))}

    def __len__(self) -> int:
        with self._lock:
            q = "SELECT count(*) FROM residents WHERE model=?"
            return int(self._db.execute(q, (self.model.value,)).fetchone()[0])

    def index(self) -> GalleryIndex:
        """The gallery's residents of its model as a search matrix."""
        with self._lock:
            self._seen_version = self._data_version()
            q = "SELECT id, name, embedding FROM residents WHERE model=? ORDER BY id"
            rows = self._db.execute(q, (self.model.value,)).fetchall()
        if not rows:
            return GalleryIndex.empty(self.dim)
        matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), self.dim)
        return GalleryIndex([r[0] for r in rows], [r[1] for r in rows], matrix.astype(np.float32))

    def index_if_changed(self) -> GalleryIndex | None:
        """A new index if anyone committed a change since the last :meth:`index`, else None (cheap)."""
        with self._lock:
            changed = self._seen_version is None or self._data_version() != self._seen_version
        return self.index() if changed else None

    def _data_version(self) -> int:
        # changes when *another* connection commits; our own commits are covered by a counter
        (dv,) = self._db.execute("PRAGMA data_version").fetchone()
        (tc,) = self._db.execute("SELECT total_changes()").fetchone()
        return int(dv) * 1_000_000_007 + int(tc)

    def close(self) -> None:
        with self._lock:
            self._db.close()
