"""Photos -> one face embedding per face model the site's gates use, with the gates' own engines (vision/);
the photos are never kept.

The photos are decoded in memory (OpenCV), each must hold exactly one face
(each engine's ``enrolment_embedding``), and the resident's embedding for a
model is the re-normalised mean of theirs, as ``sc gate enroll`` makes it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from sc.config.schema import SiteConfig
from sc.contracts.commands import DEFAULT_EMBEDDING_MODEL, EMBEDDING_DIMS, EmbeddingModel
from vision.engines import Engine, engine_for
from vision.faces import Embedding, EnrolmentError, Image, normalise
from vision.models import DEFAULT_DIR

__all__ = ["MAX_PHOTOS", "MAX_SIDE_PX", "Enroller", "PhotoError", "embedding_bytes", "site_models"]

MAX_PHOTOS = 5
#: Larger photos are scaled down first: a phone's 12 MP photo takes seconds to search for faces.
MAX_SIDE_PX = 1600


class PhotoError(ValueError):
    """A photo that cannot be used; the message names the photo and says why."""


def site_models(site: SiteConfig) -> list[EmbeddingModel]:
    """The face models the site's gates recognise with (dlib's when it has no gate): enrolment makes one
    embedding for each, since the photos are not kept to make another later."""
    return sorted({g.face_model for g in site.gates} or {DEFAULT_EMBEDDING_MODEL})


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


def embedding_bytes(vec: Embedding, model: EmbeddingModel = DEFAULT_EMBEDDING_MODEL) -> bytes:
    """How an embedding is stored: the model's number of little-endian float32."""
    out = np.asarray(vec, dtype="<f4").tobytes()
    if len(out) != EMBEDDING_DIMS[model] * 4:
        raise ValueError(f"a {model.value} embedding has {EMBEDDING_DIMS[model]} values, not {len(out) // 4}")
    return out


class Enroller:
    """Photos -> one embedding per face model of ``models``, with engines made on first use (dlib takes about
    0.3 s to load), used under one lock: API requests (FastAPI's thread pool) take turns on them."""

    def __init__(self, models: Sequence[EmbeddingModel] = (DEFAULT_EMBEDDING_MODEL,), models_dir: Path = DEFAULT_DIR):
        self.models = tuple(dict.fromkeys(models))
        self.models_dir = models_dir
        self._engines: dict[EmbeddingModel, Engine] = {}
        self._lock = threading.Lock()

    def embeddings(self, photos: list[tuple[str, bytes]]) -> dict[EmbeddingModel, Embedding]:
        """The resident's embedding for each model from 1 to :data:`MAX_PHOTOS` photos (file name, bytes): the
        re-normalised mean of the photos'.

        :class:`PhotoError` for the first photo that is not an image or does not show exactly one face large
        enough (for any of the models); :class:`vision.models.ModelError` if a model's files are missing.
        """
        if not 1 <= len(photos) <= MAX_PHOTOS:
            raise PhotoError(f"send 1 to {MAX_PHOTOS} photos of the resident (got {len(photos)})")
        images = [(i, name, _decode(i, name, data)) for i, (name, data) in enumerate(photos, 1)]
        out: dict[EmbeddingModel, Embedding] = {}
        with self._lock:
            for model in self.models:
                engine = self._engines.get(model)
                if engine is None:
                    engine = self._engines[model] = engine_for(model, self.models_dir)
                vecs: list[Embedding] = []
                for i, name, rgb in images:
                    try:
                        vec, _box = engine.enrolment_embedding(rgb)
                    except EnrolmentError as exc:
                        raise PhotoError(f"photo {i} ({name}): {exc}" if name else f"photo {i}: {exc}") from exc
                    vecs.append(vec)
                out[model] = normalise(np.mean(np.stack(vecs), axis=0).astype(np.float32))
        return out
