"""Face detection and embeddings: dlib's HOG detector and ResNet face descriptor.

The same models face_recognition uses (weights from ``face_recognition_models``),
called directly so the vision loop controls the two expensive steps:

- :meth:`FaceEngine.detect` runs the HOG detector on a *downscaled* copy of
  the frame (or of a region of it) and maps the boxes back to full-frame pixels;
- :meth:`FaceEngine.embed` aligns the face with the 5-point landmark model on
  the *full-resolution* frame and returns the 128-d descriptor, L2-normalised
  so that a gallery search is one matrix-vector product
  (``|a-b|^2 = 2 - 2 a.b`` for unit vectors).

dlib comes from the ``dlib-bin`` wheels (no 10-minute source build; measured
here its HOG detector ran about twice as fast as a source build).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import dlib
import face_recognition_models as frm
import numpy as np
import numpy.typing as npt

from sc.contracts.commands import EMBEDDING_DIMS, EmbeddingModel

__all__ = ["EMBEDDING_DIM", "Embedding", "EnrolmentError", "FaceBox", "FaceEngine", "Image", "the_one_face"]

#: dlib's (the default model's) embedding size; each engine says its own (``dim``)
EMBEDDING_DIM = EMBEDDING_DIMS[EmbeddingModel.DLIB_RESNET_V1]
Image = npt.NDArray[np.uint8]  # H x W x 3, RGB
Embedding = npt.NDArray[np.float32]  # (dim,), unit length

#: The HOG detector finds faces of about 80 px and up; smaller ones are upsampled or missed.
HOG_MIN_FACE_PX = 80

#: ``low_light`` detection: a downscaled region darker than this (mean grey level) is denoised before the detector
#: sees it (a night camera's gain noise hides a dark face's gradients). Measured on the night scenes: a dark face is
#: found 2-3 frames earlier and scored higher (0.3-0.9 instead of 0.0-0.3); contrast equalisation (CLAHE) on top
#: of it gave oversized boxes on small faces in the noise, a gain or gamma alone changed nothing.
DARK_LUMA = 80.0


def low_light_grey(img: Image) -> npt.NDArray[np.uint8] | None:
    """A denoised grey copy (3x3 Gaussian) of a dark RGB image for the detector; None if it is not dark."""
    grey = np.asarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    if float(grey.mean()) >= DARK_LUMA:
        return None
    return np.asarray(cv2.GaussianBlur(grey, (3, 3), 0), dtype=np.uint8)


class EnrolmentError(ValueError):
    """A photo that cannot be enrolled: no face, several faces, a face too small."""


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face in full-frame pixel coordinates."""

    left: int
    top: int
    right: int
    bottom: int
    score: float = 0.0  # the detector's confidence (higher is surer; 0 is its default cut)
    #: eyes (left, right as seen), nose tip, mouth corners, full-frame pixels: from detectors that give them (YuNet)
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def iou(self, other: FaceBox) -> float:
        ix = max(0, min(self.right, other.right) - max(self.left, other.left))
        iy = max(0, min(self.bottom, other.bottom) - max(self.top, other.top))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0

    def inside(self, width: int, height: int, margin: int = 0) -> bool:
        """Whether the whole face is in the frame (not cut by its edge)."""
        return (
            self.left >= margin
            and self.top >= margin
            and self.right <= width - margin
            and self.bottom <= height - margin
        )

    def to_rect(self) -> dlib.rectangle:
        return dlib.rectangle(self.left, self.top, self.right, self.bottom)


class FaceEngine:
    """The dlib models, loaded once (about 0.3 s); not thread-safe, use one per worker."""

    model = EmbeddingModel.DLIB_RESNET_V1
    dim = EMBEDDING_DIMS[EmbeddingModel.DLIB_RESNET_V1]

    def __init__(self) -> None:
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def detect(
        self,
        rgb: Image,
        *,
        scale: float = 1.0,
        roi: tuple[int, int, int, int] | None = None,
        upsample: int = 0,
        min_score: float = 0.0,
        low_light: bool = False,
    ) -> list[FaceBox]:
        """Faces in ``rgb`` (or in its ``roi``: left, top, right, bottom), found on a copy ``scale`` times the size.

        ``low_light``: a dark copy is denoised first (:func:`low_light_grey`); the boxes are in the same pixels
        (embeddings are taken from the frame itself, not from this copy).
        """
        x0, y0 = 0, 0
        img = rgb
        if roi is not None:
            x0, y0, x1, y1 = roi
            img = rgb[y0:y1, x0:x1]
        if img.shape[0] < 16 or img.shape[1] < 16:
            return []
        if scale != 1.0:
            w = max(1, round(img.shape[1] * scale))
            h = max(1, round(img.shape[0] * scale))
            img = np.asarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        if low_light:
            dark = low_light_grey(img)
            if dark is not None:
                img = dark
        rects, scores, _ = self._detector.run(np.ascontiguousarray(img), upsample, min_score)
        out = []
        fh, fw = rgb.shape[:2]
        for r, s in zip(rects, scores, strict=True):
            out.append(
                FaceBox(
                    left=max(0, x0 + round(r.left() / scale)),
                    top=max(0, y0 + round(r.top() / scale)),
                    right=min(fw, x0 + round((r.right() + 1) / scale)),
                    bottom=min(fh, y0 + round((r.bottom() + 1) / scale)),
                    score=float(s),
                )
            )
        return out

    def embed(self, rgb: Image, box: FaceBox) -> Embedding:
        """The unit-length 128-d descriptor of the face in ``box`` (aligned on the full-resolution frame)."""
        shape = self._landmarks(rgb, box.to_rect())
        vec = np.asarray(self._encoder.compute_face_descriptor(rgb, shape, 1), dtype=np.float32)
        return normalise(vec)

    def enrolment_embedding(self, rgb: Image, *, min_face_px: int = 80) -> tuple[Embedding, FaceBox]:
        """The embedding of the one face in an enrolment photo; :class:`EnrolmentError` if there is not exactly one."""
        boxes = self.detect(rgb)
        if not boxes:
            # a small face in a large photo: look again at twice the size
            boxes = [b for b in self.detect(rgb, upsample=1) if b.height >= min_face_px]
        box = the_one_face(boxes, min_face_px=min_face_px)
        return self.embed(rgb, box), box


def the_one_face(boxes: list[FaceBox], *, min_face_px: int) -> FaceBox:
    """The face an enrolment photo is of (every engine's rule); :class:`EnrolmentError` saying why there is none:
    no face, several of similar size (a far smaller one behind is let be), or one too small."""
    if not boxes:
        raise EnrolmentError("no face found in the photo: use a well-lit, frontal photo of one person")
    big = sorted(boxes, key=lambda b: b.height, reverse=True)
    if len(big) > 1 and big[1].height > 0.5 * big[0].height:
        raise EnrolmentError(f"{len(boxes)} faces in the photo: use a photo of the resident alone")
    box = big[0]
    if box.height < min_face_px:
        raise EnrolmentError(f"the face is only {box.height} px high: at least {min_face_px} px is needed")
    return box


def normalise(vec: npt.NDArray[np.float32]) -> Embedding:
    norm = float(np.linalg.norm(vec))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("an embedding of zero length cannot be normalised")
    return (vec / norm).astype(np.float32)


def load_rgb(path: str) -> Image:
    """An image file as RGB (what dlib wants); ValueError if it is not an image."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
