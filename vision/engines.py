"""Which face engine a model runs on, and whether its files are there: what a gate and the cloud's enrolment
ask before they start (a missing or changed file is a :class:`vision.models.ModelError` saying what to run)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from sc.contracts.commands import EmbeddingModel

from .faces import Embedding, FaceBox, Image
from .models import DEFAULT_DIR, model_path

__all__ = ["Engine", "check_installed", "engine_for"]

#: The model files each embedding model needs (vision/models.py ids); dlib's come with its Python package.
FILES: dict[EmbeddingModel, tuple[str, ...]] = {
    EmbeddingModel.DLIB_RESNET_V1: (),
    EmbeddingModel.FACEPLUGIN_FR_FEATURE: ("yunet-2023mar", "faceplugin-fr-feature"),
}


class Engine(Protocol):
    """What the gate's loop and the enrolment need of a face engine."""

    model: EmbeddingModel
    dim: int

    def detect(
        self,
        rgb: Image,
        *,
        scale: float = 1.0,
        roi: tuple[int, int, int, int] | None = None,
        upsample: int = 0,
        min_score: float = 0.0,
        low_light: bool = False,
    ) -> list[FaceBox]: ...

    def embed(self, rgb: Image, box: FaceBox) -> Embedding: ...

    def enrolment_embedding(self, rgb: Image, *, min_face_px: int = 80) -> tuple[Embedding, FaceBox]: ...


def check_installed(model: EmbeddingModel, models_dir: Path = DEFAULT_DIR) -> None:
    """:class:`vision.models.ModelError` unless every file of ``model`` is there and is the right one."""
    for file_id in FILES[model]:
        model_path(file_id, models_dir)


def engine_for(model: EmbeddingModel, models_dir: Path = DEFAULT_DIR) -> Engine:
    """A new engine for ``model`` (one per worker: engines are not thread-safe)."""
    if model is EmbeddingModel.DLIB_RESNET_V1:
        from .faces import FaceEngine

        return FaceEngine()
    from .onnx import OnnxFaceEngine

    return OnnxFaceEngine(models_dir)
