"""Shared parts of the gate benchmarks (``gate_vision.py``, ``gate_accuracy.py``, ``gallery_search.py``).

Not a benchmark itself: the gallery both systems recognise, the naive
face_recognition loop used as the baseline, who is really behind a detected
face (from the scenes' ground truth), percentiles and a description of the
machine.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.gate.gallery import GalleryIndex
from edge.gate.tools import enrolment_embedding
from firmware_sim.faces import FACES_DIR
from firmware_sim.gatescene import FrameTruth
from vision.engines import Engine

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

#: Scene time of frame 0 (Unix seconds): passes are signed around it, so it is "now" for the pass checker.
BASE_T = 1_800_000_000.0

#: The enrolment photos. The scenes draw obama from obama.jpg (enrolled from two other photos of him: a
#: cross-photo test) and biden from biden.jpg (his only photo: enrolled from the photo he is rendered from).
ENROL: dict[str, list[str]] = {"obama": ["obama2.jpg", "obama3.jpg"], "biden": ["biden.jpg"]}

#: face_recognition's documented tolerance for its raw (not normalised) dlib descriptors.
FR_TOLERANCE = 0.6

Frame = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]  # left, top, right, bottom


def pin_note() -> str:
    """Which cores this process may run on, and the BLAS/OpenMP thread settings."""
    aff = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (
        f"cores {aff}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    )


def _dist_version(dist: str, fallback: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return fallback


def machine() -> dict[str, str]:
    import dlib
    import face_recognition

    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "dlib": str(dlib.__version__),
        "dlib_blas": "yes" if getattr(dlib, "DLIB_USE_BLAS", False) else "no",
        "face_recognition": _dist_version("face_recognition", str(face_recognition.__version__)),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def code_state() -> str:
    """The commit, the gate files changed since it, and a hash of the gate's code as it is now."""
    import hashlib

    digest = hashlib.sha256()
    for f in sorted([*(REPO / "edge" / "gate").glob("*.py"), REPO / "firmware-sim" / "firmware_sim" / "gatescene.py"]):
        digest.update(f.read_bytes())
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "edge/gate", "firmware-sim/firmware_sim"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=5,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "?", []
    changed = [x for x in dirty if "/" in x]
    return (
        f"commit {head or '?'}"
        + (f" + changes in {', '.join(changed)}" if changed else "")
        + (f"; gate code sha256 {digest.hexdigest()[:12]}")
    )


def print_machine() -> None:
    m = machine()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"machine: {m.get('cpu', '?')}, {m['cpus']} CPUs; Python {m['python']}, numpy {m['numpy']}, "
        f"OpenCV {m['opencv']}, dlib {m['dlib']} (BLAS {m['dlib_blas']}), face_recognition {m['face_recognition']}; "
        f"{pin_note()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"code: {code_state()}")


def print_load() -> None:
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()
        print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


# --------------------------------------------------------------------------- the two galleries


def ours_gallery(engine: Engine) -> GalleryIndex:
    """The gate's gallery, as ``sc gate enroll`` builds it: one mean unit embedding per resident."""
    ids, names, vecs = [], [], []
    for name, photos in ENROL.items():
        vec, _ = enrolment_embedding(engine, [FACES_DIR / p for p in photos])
        ids.append(f"r-{name}")
        names.append(name)
        vecs.append(vec)
    return GalleryIndex(ids, names, np.stack(vecs).astype(np.float32))


@dataclass
class NaiveGallery:
    """face_recognition's way: one raw encoding per photo in a Python list, with its name."""

    known: list[npt.NDArray[np.float64]]
    names: list[str]


def naive_gallery() -> NaiveGallery:
    import face_recognition

    known, names = [], []
    for name, photos in ENROL.items():
        for p in photos:
            img = face_recognition.load_image_file(str(FACES_DIR / p))
            encs = face_recognition.face_encodings(img)
            if len(encs) != 1:
                raise SystemExit(f"face_recognition found {len(encs)} faces in {p}")
            known.append(np.asarray(encs[0], dtype=np.float64))
            names.append(name)
    return NaiveGallery(known, names)


def naive_frame(
    bgr: Frame, gallery: NaiveGallery, *, tolerance: float = FR_TOLERANCE, min_face_px: int = 0
) -> list[tuple[str, Box, float]]:
    """The loop users write with face_recognition, for one frame: (name, box, distance) of each recognised face.

    HOG detector with the default upsample=1 on the whole frame, an encoding per face, then the README's
    ``compare_faces`` + ``face_distance`` + ``argmin``. ``min_face_px`` > 0 drops smaller faces before
    encoding (a variant, not what the README does).
    """
    import face_recognition

    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    locs = face_recognition.face_locations(rgb)
    if min_face_px:
        locs = [loc for loc in locs if loc[2] - loc[0] >= min_face_px]
    if not locs:
        return []
    encs = face_recognition.face_encodings(rgb, locs)
    out = []
    for (top, right, bottom, left), enc in zip(locs, encs, strict=True):
        matches = face_recognition.compare_faces(gallery.known, enc, tolerance=tolerance)
        dists = face_recognition.face_distance(gallery.known, enc)
        best = int(np.argmin(dists))
        if matches[best]:
            out.append((gallery.names[best], (int(left), int(top), int(right), int(bottom)), float(dists[best])))
    return out


# --------------------------------------------------------------------------- ground truth


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def who(box: Box, truth: FrameTruth) -> tuple[str, str]:
    """(identity, role) of the person whose face (or held photo/phone) is at ``box``; ("nobody", "none") if none.

    A detection on a held photo or phone belongs to the person holding it (the attacker).
    """
    best, best_iou = ("nobody", "none"), 0.15
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for p in truth.persons:
        if p.face_box is not None:
            score = iou(box, p.face_box)
            if score > best_iou:
                best, best_iou = (p.identity, p.role), score
    if best[0] == "nobody" and truth.attack_box is not None:
        ax0, ay0, ax1, ay1 = truth.attack_box
        if ax0 <= cx <= ax1 and ay0 <= cy <= ay1:
            attackers = [p for p in truth.persons if p.role == "attacker"]
            if attackers:
                best = (attackers[0].identity, "attacker")
    if best[0] == "nobody":  # a face box cut by the frame edge or a loose detector box: the body it sits in
        for p in reversed(truth.persons):  # nearest first
            x0, y0, x1, y1 = p.body_box
            if x0 <= cx <= x1 and y0 <= cy <= y1:
                return p.identity, p.role
    return best


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    return float(np.percentile(np.asarray(xs, dtype=np.float64), p))


def fmt_ms(x: float) -> str:
    return "–" if x != x else f"{x:.0f}"


def json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)
