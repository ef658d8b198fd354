"""Installer tools: enrol from photos, replay footage through the gate's pipeline, pick a threshold.

These are the functions behind ``sc gate enroll``, ``sc gate replay`` and
``sc gate report``; replay runs the very :class:`GatePipeline` the live gate
runs, frame by frame as fast as the machine goes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from sc.config.schema import MATCH_MARGIN, MATCH_THRESHOLD
from sc.contracts.commands import DEFAULT_EMBEDDING_MODEL, EmbeddingModel
from vision.engines import Engine
from vision.faces import Embedding, EnrolmentError, load_rgb, normalise
from vision.openset import GATE_SIZES, far_at, gaps, stranger_accept, threshold_for

from .gallery import Gallery
from .pipeline import GateOutcome, GatePipeline

__all__ = ["DistanceReport", "distance_report", "enrol_photos", "replay_video"]

#: A normal fit to fewer impostor distances than this says nothing about the tail: the open-set proposal waits.
MIN_FIT = 30

#: What ``sc gate report`` aims a stranger's chance at, per visit, by default: one in a thousand.
DEFAULT_TARGET = 0.001

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def enrolment_embedding(engine: Engine, photos: list[Path]) -> tuple[Embedding, list[str]]:
    """The mean (re-normalised) embedding of a resident's photos; notes on photos that were skipped."""
    vecs: list[Embedding] = []
    notes: list[str] = []
    for photo in photos:
        try:
            vec, box = engine.enrolment_embedding(load_rgb(str(photo)))
        except (EnrolmentError, ValueError) as exc:
            notes.append(f"{photo}: {exc}")
            continue
        vecs.append(vec)
        notes.append(f"{photo}: face {box.width}x{box.height} px")
    if not vecs:
        raise EnrolmentError("no usable photo: " + "; ".join(notes))
    return normalise(np.mean(np.stack(vecs), axis=0).astype(np.float32)), notes


def enrol_photos(gallery: Gallery, engine: Engine, *, resident: str, name: str, photos: list[Path]) -> list[str]:
    vec, notes = enrolment_embedding(engine, photos)
    gallery.put(resident, name, vec)
    return notes


def video_frames(path: Path) -> Iterator[tuple[npt.NDArray[np.uint8], float]]:
    """Frames of a video file with their time in the video (seconds)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: not a video OpenCV can read")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    try:
        for i in itertools.count():
            ok, frame = cap.read()
            if not ok:
                return
            yield np.asarray(frame, dtype=np.uint8), i / fps
    finally:
        cap.release()


def replay_video(
    pipeline: GatePipeline,
    frames: Iterator[tuple[npt.NDArray[np.uint8], float]],
    *,
    start: float = 0.0,
    emit: Callable[[dict[str, Any]], None] | None = None,
) -> list[GateOutcome]:
    """Every frame through the pipeline; each outcome as a JSON-ready dict (time relative to the video)."""
    outcomes: list[GateOutcome] = []
    for frame, t in frames:
        for o in pipeline.process(frame, start + t):
            outcomes.append(o)
            if emit is not None:
                d = o.to_json()
                d["t"] = round(o.t - start, 3)
                if "visible_t" in d:
                    d["visible_t"] = round(o.visible_t - start, 3) if o.visible_t is not None else None
                if o.what in ("entry", "refused", "unknown", "stranger") and o.method is not None:
                    d.setdefault("person", "stranger" if o.what in ("unknown", "stranger") else None)
                emit(d)
    return outcomes


@dataclass
class DistanceReport:
    genuine: list[float]  # a resident's photo against their own (other photos') embedding
    impostor: list[float]  # against everybody else's
    proposed: float
    rows: list[tuple[float, float, float]]  # threshold, true accept rate, false accept rate
    gaps: list[float] = field(default_factory=list)  # each genuine photo's lead over the nearest other person
    proposed_margin: float = 0.0
    residents: int = 0  # the gallery size the open-set figures are for
    target: float = DEFAULT_TARGET
    open_set_threshold: float | None = None  # by the impostor fit, for ``residents`` at ``target`` (None: too few)

    def open_set(self) -> dict[str, Any]:
        """What the proposed threshold means for a stranger at a gate of each of GATE_SIZES residents (and of
        ``residents``): counted with its 95 % upper bound, and by the normal fit to the impostor distances."""
        if len(self.impostor) < 2:
            return {}
        est = far_at(self.impostor, self.proposed)
        sizes = sorted({*GATE_SIZES, self.residents} - {0})
        return {
            "far_per_comparison": {
                "impostor_pairs": est.n,
                "accepted": est.accepted,
                "observed": round(est.observed, 6),
                "upper95": float(f"{est.upper95:.3g}"),
                "fitted": float(f"{est.fitted:.3g}"),
            },
            "stranger_let_in": [
                {
                    "residents": n,
                    "upper95": float(f"{stranger_accept(est.upper95, n):.3g}"),
                    "fitted": float(f"{stranger_accept(est.fitted, n):.3g}"),
                }
                for n in sizes
            ],
            "residents": self.residents,
            "target": self.target,
            "threshold_for_target": None if self.open_set_threshold is None else round(self.open_set_threshold, 3),
        }

    def to_json(self) -> dict[str, Any]:
        def stats(xs: list[float]) -> dict[str, float]:
            if not xs:
                return {}
            a = np.asarray(xs)
            return {"n": len(xs), "min": float(a.min()), "p50": float(np.median(a)), "max": float(a.max())}

        return {
            "genuine": stats(self.genuine),
            "impostor": stats(self.impostor),
            "proposed_threshold": round(self.proposed, 3),
            "proposed_margin": round(self.proposed_margin, 3),
            "gaps": stats(self.gaps),
            "open_set": self.open_set(),
            "table": [{"threshold": t, "tar": round(a, 4), "far": round(f, 4)} for t, a, f in self.rows],
        }


def photo_embeddings(engine: Engine, folder: Path) -> dict[str, list[Embedding]]:
    """``folder/<person>/*.jpg`` -> each person's photo embeddings (photos without one clear face are skipped)."""
    people: dict[str, list[Embedding]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for photo in sorted(sub.iterdir()):
            if photo.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                vec, _ = engine.enrolment_embedding(load_rgb(str(photo)))
            except (EnrolmentError, ValueError):
                continue
            people.setdefault(sub.name, []).append(vec)
    return people


def distance_report(
    people: dict[str, list[Embedding]],
    *,
    margin: float = 0.03,
    model: EmbeddingModel = DEFAULT_EMBEDDING_MODEL,
    residents: int | None = None,
    target: float = DEFAULT_TARGET,
) -> DistanceReport:
    """Genuine and impostor distances (leave-one-out enrolment), the threshold and margin they suggest, and
    what that threshold means at a gate of ``residents`` (default: the people in ``people``).

    The proposed threshold sits halfway between the genuine distances' 95th
    percentile and the closest impostor (equal room for a resident seen badly
    and for a look-alike stranger), never closer than ``margin`` to that
    impostor (a stranger let in is the worst failure), and never above 0.6.
    Those figures, and the table's thresholds (0.30 to 0.60), are dlib's: for another ``model`` they are
    scaled by its threshold against dlib's (MATCH_THRESHOLD), its distances being on another scale.

    **Open set**: with at least MIN_FIT impostor distances, the threshold is also held under the one at which,
    by a normal fit to them, a stranger facing ``residents`` is let in with probability ``target``
    (:func:`vision.openset.threshold_for`): the more residents, the lower. The proposed margin (best resident
    against the second best) is the model's own (MATCH_MARGIN, scaled to the proposed threshold), lowered to half
    the smallest genuine lead over the nearest other person when that is smaller, so no resident is refused by it.
    """
    k = MATCH_THRESHOLD[model] / MATCH_THRESHOLD[DEFAULT_EMBEDDING_MODEL]
    genuine: list[float] = []
    impostor: list[float] = []
    for person, vecs in people.items():
        for i, v in enumerate(vecs):
            others = [u for j, u in enumerate(vecs) if j != i]
            if others:
                ref = normalise(np.mean(np.stack(others), axis=0).astype(np.float32))
                genuine.append(float(np.linalg.norm(v - ref)))
            for other, ovecs in people.items():
                if other == person:
                    continue
                ref = normalise(np.mean(np.stack(ovecs), axis=0).astype(np.float32))
                impostor.append(float(np.linalg.norm(v - ref)))
    lowest_impostor = min(impostor) if impostor else 0.6 * k
    genuine_p95 = float(np.percentile(genuine, 95)) if genuine else 0.3 * k
    proposed = min(0.6 * k, lowest_impostor - margin * k, (genuine_p95 + lowest_impostor) / 2)
    n_residents = residents if residents is not None else len(people)
    open_set = threshold_for(impostor, max(1, n_residents), target) if len(impostor) >= MIN_FIT else None
    if open_set is not None:
        proposed = min(proposed, open_set)
    leads = gaps(people)
    proposed_margin = MATCH_MARGIN[model] * proposed / MATCH_THRESHOLD[model]
    if leads:
        proposed_margin = max(0.0, min(proposed_margin, 0.5 * min(leads)))
    rows = []
    g, im = np.asarray(genuine or [np.inf]), np.asarray(impostor or [np.inf])
    for i in range(16):
        thr = round((0.30 + 0.02 * i) * k, 3)
        rows.append((thr, float(np.mean(g <= thr)), float(np.mean(im <= thr))))
    return DistanceReport(
        genuine, impostor, float(proposed), rows, leads, float(proposed_margin), n_residents, target, open_set
    )


def plot_report(report: DistanceReport, path: Path, threshold: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    top = max([1.0, *report.genuine, *report.impostor])
    bins = np.linspace(0, top, 51).tolist()
    ax.hist(report.genuine, bins=bins, alpha=0.7, label=f"same person (n={len(report.genuine)})")
    ax.hist(report.impostor, bins=bins, alpha=0.7, label=f"different people (n={len(report.impostor)})")
    ax.axvline(report.proposed, color="k", linestyle="--", label=f"proposed threshold {report.proposed:.2f}")
    if threshold is not None:
        ax.axvline(threshold, color="r", linestyle=":", label=f"configured {threshold:.2f}")
    ax.set_xlabel("embedding distance (unit vectors)")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, ensure_ascii=False, default=str)
