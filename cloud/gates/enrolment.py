"""Photos -> one face embedding, with the gates' own face engine; the photos are never kept.

The photos are decoded in memory (OpenCV), each must hold exactly one face
(:class:`vision.faces.FaceEngine.enrolment_embedding`), and the resident's
embedding is the re-normalised mean of theirs, as ``sc gate enroll`` makes it.
The engine (dlib; about 0.3 s to load) is made on first use and is not
thread-safe: one per :class:`Enroller`, used under its lock, so API requests
(FastAPI runs them in its thread pool) take turns on it.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from sc.contracts.commands import EmbeddingModel
from vision.faces import EMBEDDING_DIM, Embedding, EnrolmentError, FaceEngine, Image, normalise

__all__ = ["ENROLMENT_MODEL", "MAX_PHOTOS", "MAX_SIDE_PX", "Enroller", "PhotoError", "embedding_bytes"]

#: The face model the cloud enrols with (one so far; the gates of another model are enrolled locally).
ENROLMENT_MODEL = EmbeddingModel.DLIB_RESNET_V1

MAX_PHOTOS = 5
#: Larger photos are scaled down first: a phone's 12 MP photo takes seconds to search for faces.
MAX_SIDE_PX = 1600


class PhotoError(ValueError):
    """A photo that cannot be used; the message names the photo and says why."""


def _decode(index: int, name: str, data: bytes) -> Image:
    where = f"photo {index} ({name})" if name else f"photo {index}"
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise PhotoError(f"{where} is not an image (send a JPEG or PNG photo)")
    h, w = bgr.shape[:2]
    if max(h, w) > MAX_SIDE_PX:
        f = MAX_SIDE_PX / max(h, w)
        bgr = cv2.resize(bgr, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def embedding_bytes(vec: Embedding) -> bytes:
    """How an embedding is stored: 128 little-endian float32."""
    out = np.asarray(vec, dtype="<f4").tobytes()
    assert len(out) == EMBEDDING_DIM * 4
    return out


class Enroller:
    def __init__(self) -> None:
        self._engine: FaceEngine | None = None
        self._lock = threading.Lock()

    def embedding(self, photos: list[tuple[str, bytes]]) -> Embedding:
        """The resident's embedding from 1 to :data:`MAX_PHOTOS` photos (file name, bytes).

        :class:`PhotoError` for the first photo that is not an image or does not
        show exactly one face large enough.
        """
        if not 1 <= len(photos) <= MAX_PHOTOS:
            raise PhotoError(f"send 1 to {MAX_PHOTOS} photos of the resident (got {len(photos)})")
        images = [(i, name, _decode(i, name, data)) for i, (name, data) in enumerate(photos, 1)]
        vecs: list[Embedding] = []
        with self._lock:
            if self._engine is None:
                self._engine = FaceEngine()
            for i, name, rgb in images:
                try:
                    vec, _box = self._engine.enrolment_embedding(rgb)
                except EnrolmentError as exc:
                    raise PhotoError(f"photo {i} ({name}): {exc}" if name else f"photo {i}: {exc}") from exc
                vecs.append(vec)
        return normalise(np.mean(np.stack(vecs), axis=0).astype(np.float32))
