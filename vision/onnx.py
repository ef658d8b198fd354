"""An ONNX face engine on OpenCV: YuNet finds the face and its 5 landmarks, a 112 x 112 ArcFace-style recogniser
(faceplugin's ``fr_feature``, 512-d) embeds the aligned face. Both run on the OpenCV already here
(``cv2.FaceDetectorYN``, ``cv2.dnn``); their files come from vision/models.py, checked by SHA-256.

The same methods as the dlib engine (:class:`vision.faces.FaceEngine`): :meth:`detect` on a downscaled copy
of the frame or a region, :meth:`embed` aligned on the full-resolution frame, :meth:`enrolment_embedding`.
Embeddings are unit length, so distances are ``sqrt(2 - 2 cos)`` as for dlib's, but on another scale: a
threshold belongs to its model (docs/face-models.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from sc.contracts.commands import EMBEDDING_DIMS, EmbeddingModel

from .faces import Embedding, EnrolmentError, FaceBox, Image, low_light_grey, normalise, the_one_face
from .models import DEFAULT_DIR, model_path

__all__ = ["ARCFACE_112", "LANDMARK_PX", "OnnxFaceEngine"]

#: Where the 5 landmarks go in the 112 x 112 crop (the ArcFace / InsightFace template the recogniser expects).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


#: The sizes (longer side, px) of the crops around a face on which its landmarks are measured and averaged.
LANDMARK_PX = (224, 288, 352)


class OnnxFaceEngine:
    """YuNet + ``fr_feature``, loaded once; not thread-safe (one per worker, as the dlib engine)."""

    model = EmbeddingModel.FACEPLUGIN_FR_FEATURE
    dim = EMBEDDING_DIMS[EmbeddingModel.FACEPLUGIN_FR_FEATURE]

    def __init__(self, models_dir: Path = DEFAULT_DIR, *, score_threshold: float = 0.6) -> None:
        self._detector = cv2.FaceDetectorYN.create(
            str(model_path("yunet-2023mar", models_dir)), "", (320, 320), score_threshold, 0.3, 5000
        )
        self._net = cv2.dnn.readNetFromONNX(str(model_path(self.model.value, models_dir)))

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
        """Faces in ``rgb`` (or its ``roi``), found on a copy ``scale`` times the size (x 2 per ``upsample``),
        with their landmarks; ``min_score`` is on YuNet's 0-1 confidence."""
        x0, y0 = 0, 0
        img = rgb
        if roi is not None:
            x0, y0, x1, y1 = roi
            img = rgb[y0:y1, x0:x1]
        if img.shape[0] < 16 or img.shape[1] < 16:
            return []
        f = scale * (2**upsample)
        if f != 1.0:
            w, h = max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f))
            img = np.asarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR))
        if low_light:
            dark = low_light_grey(img)
            if dark is not None:
                img = np.asarray(cv2.cvtColor(dark, cv2.COLOR_GRAY2RGB), dtype=np.uint8)
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, found = self._detector.detect(bgr)
        if found is None:
            return []
        fh, fw = rgb.shape[:2]
        out = []
        for r in found:
            score = float(r[14])
            if score < min_score:
                continue
            bx, by, bw, bh = (float(v) / f for v in r[:4])
            marks = tuple((x0 + float(r[4 + 2 * i]) / f, y0 + float(r[5 + 2 * i]) / f) for i in range(5))
            left, top = max(0, x0 + round(bx)), max(0, y0 + round(by))
            right, bottom = min(fw, x0 + round(bx + bw)), min(fh, y0 + round(by + bh))
            out.append(FaceBox(left=left, top=top, right=right, bottom=bottom, score=score, landmarks=marks))
        return out

    def _landmarks(self, rgb: Image, box: FaceBox) -> npt.NDArray[np.float32]:
        """The face's 5 landmarks, found again on crops around ``box`` scaled to each of :data:`LANDMARK_PX` and
        averaged: YuNet's landmarks move with the scale and crop it sees a face at, so an enrolment photo and a
        gate frame are measured alike."""
        pad = max(box.width, box.height) // 2
        fh, fw = rgb.shape[:2]
        x0, y0 = max(0, box.left - pad), max(0, box.top - pad)
        x1, y1 = min(fw, box.right + pad), min(fh, box.bottom + pad)
        marks = []
        for px in LANDMARK_PX:
            found = self.detect(rgb, roi=(x0, y0, x1, y1), scale=px / max(1, x1 - x0, y1 - y0))
            if found:
                best = max(found, key=lambda b: b.iou(box))
                assert best.landmarks is not None
                marks.append(np.asarray(best.landmarks, dtype=np.float32))
        if not marks:
            if box.landmarks is None:
                raise EnrolmentError("no face landmarks found in the box")
            return np.asarray(box.landmarks, dtype=np.float32)
        return np.asarray(np.mean(marks, axis=0), dtype=np.float32)

    def aligned(self, rgb: Image, box: FaceBox) -> Image:
        """The 112 x 112 RGB crop the recogniser sees: the landmarks moved onto :data:`ARCFACE_112`."""
        m, _ = cv2.estimateAffinePartial2D(self._landmarks(rgb, box), ARCFACE_112, method=cv2.LMEDS)
        if m is None:
            raise EnrolmentError("the face's landmarks cannot be aligned")
        return np.asarray(cv2.warpAffine(rgb, m, (112, 112), borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8)

    def embed(self, rgb: Image, box: FaceBox) -> Embedding:
        """The unit-length 512-d embedding of the face in ``box``."""
        crop = self.aligned(rgb, box).astype(np.float32)
        # the face and its mirror image in one batch, their embeddings summed: less of the landmarks' noise
        both = np.stack([crop, crop[:, ::-1]])
        blob = ((both - 127.0) / 128.0).transpose(0, 3, 1, 2)
        self._net.setInput(np.ascontiguousarray(blob, dtype=np.float32))
        out = np.asarray(self._net.forward(), dtype=np.float32).reshape(2, -1)
        return normalise(out.sum(axis=0))

    def enrolment_embedding(self, rgb: Image, *, min_face_px: int = 80) -> tuple[Embedding, FaceBox]:
        """The embedding of the one face in an enrolment photo; :class:`EnrolmentError` if there is not exactly one."""
        box = the_one_face(self.detect(rgb), min_face_px=min_face_px)
        return self.embed(rgb, box), box
