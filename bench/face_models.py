#!/usr/bin/env python3
"""The face engines side by side on the same real photos: dlib (today's gates) and the ONNX engine (YuNet +
faceplugin's 512-d recogniser), in one run.

    .venv/bin/python bench/face_models.py [--plot docs/face-models.png]

Every photo of firmware_sim.faces (packaged with PyPI projects; the six people of the group photo t1.jpg are
certainly different people) is detected and embedded by each engine. For each: the genuine distances (two
photos of one person) and the impostor distances (two people), the gap between the largest genuine and the
smallest impostor distance, the impostor pairs under the engine's threshold (with the rule-of-three upper bound
when there are none), and the per-face time to detect and to embed. Then the open set (vision.openset): the
false accept rate per comparison at the threshold, counted with its 95 % upper bound and by a normal fit to the
impostor distances, what it means for a stranger at a gate of 100, 1,000 and 10,000 residents, and the
threshold each size needs for a stranger's chance of 0.1 % (with the genuine pairs it would refuse). The photos
are few: the counted rate bounds little and the fit extrapolates; docs/face-models.md says what they can tell.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from firmware_sim.faces import identities
from firmware_sim.facesets import FACESETS_DIR, SetPhoto, pair_kind, photos
from sc.config.schema import MATCH_MARGIN, MATCH_THRESHOLD
from sc.contracts.commands import EmbeddingModel
from vision.faces import FaceEngine, load_rgb, normalise
from vision.liveness import frame_around_face
from vision.onnx import OnnxFaceEngine
from vision.openset import GATE_SIZES, far_at, stranger_accept, threshold_for

#: Where each engine's decision line is drawn: dlib's is the gate's default; the ONNX one a cosine of 0.5.
THRESHOLDS = {"dlib": 0.40, "onnx": float(np.sqrt(2 - 2 * 0.5))}

MODEL_OF = {"dlib": EmbeddingModel.DLIB_RESNET_V1, "onnx": EmbeddingModel.FACEPLUGIN_FR_FEATURE}

#: The chance of a stranger being let in, per visit, that the open-set thresholds are printed for.
TARGET = 0.001


def faces(engine: Any) -> tuple[dict[tuple[str, str], np.ndarray], list[float], list[float], list[float]]:
    """(person, photo) -> embedding, and the per-face detect, embed and liveness-check times (the check the gate
    runs on every approach frame, vision.liveness, on the photo's grey image)."""
    out: dict[tuple[str, str], np.ndarray] = {}
    t_detect, t_embed, t_live = [], [], []
    for person, person_photos in identities().items():
        who = person.removesuffix("-partial")
        for i, p in enumerate(person_photos):
            rgb = load_rgb(str(p.path))
            t0 = time.perf_counter()
            boxes = sorted(engine.detect(rgb, upsample=1 if min(rgb.shape[:2]) < 400 else 0), key=lambda b: b.left)
            t_detect.append(time.perf_counter() - t0)
            if not boxes:
                print(f"  {type(engine).__name__}: no face in {p.path.name}")
                continue
            box = boxes[p.face_index] if p.face_index is not None and p.face_index < len(boxes) else None
            if p.face_index is None:
                box = max(boxes, key=lambda b: b.height)
            if box is None:
                print(f"  {type(engine).__name__}: {len(boxes)} faces in {p.path.name}, wanted #{p.face_index}")
                continue
            t0 = time.perf_counter()
            out[(who, f"{person}:{i}")] = engine.embed(rgb, box)
            t_embed.append(time.perf_counter() - t0)
            grey = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
            t0 = time.perf_counter()
            frame_around_face(grey, box)
            t_live.append(time.perf_counter() - t0)
    return out, t_detect, t_embed, t_live


#: Faces of the sets smaller than this (px, the box's height) are not used: a gate decides on 90 px and up.
MIN_SET_FACE_PX = 40

#: The two engines' boxes of one face overlap at least this much (IoU).
SAME_FACE_IOU = 0.3


def set_faces(engines: dict[str, Any], root: Path) -> tuple[list[tuple[SetPhoto, int]], dict[str, list[np.ndarray]]]:
    """The faces of the face sets (firmware_sim.facesets) that every engine finds (boxes matched by IoU, at
    least MIN_SET_FACE_PX tall, numbered left to right), and each engine's embedding of each, from its own box.
    The 150 x 150 crops of a ``folders`` set are padded first: the detectors want some scene around a face."""
    faces: list[tuple[SetPhoto, int]] = []
    embs: dict[str, list[np.ndarray]] = {name: [] for name in engines}
    for photo in photos(root):
        rgb = load_rgb(str(photo.path))
        if photo.kind == "folders":
            rgb = np.ascontiguousarray(
                cv2.copyMakeBorder(rgb, 75, 75, 75, 75, cv2.BORDER_CONSTANT, value=(128, 128, 128))
            )
        found = {
            name: [b for b in e.detect(rgb, upsample=1 if max(rgb.shape[:2]) < 1000 else 0)
                   if b.height >= MIN_SET_FACE_PX]
            for name, e in engines.items()
        }  # fmt: skip
        first, *others = engines
        boxes = sorted(found[first], key=lambda b: b.left)
        if photo.kind == "folders":  # one person per photo: the biggest face
            boxes = sorted(boxes, key=lambda b: -b.height)[:1]
        for i, box in enumerate(boxes):
            mine = {first: box}
            for name in others:
                best = max(found[name], key=lambda b: b.iou(box), default=None)
                if best is None or best.iou(box) < SAME_FACE_IOU:
                    break
                mine[name] = best
            else:
                faces.append((photo, i))
                for name, e in engines.items():
                    embs[name].append(e.embed(rgb, mine[name]))
    return faces, embs


def set_distances(
    faces: list[tuple[SetPhoto, int]], embs: list[np.ndarray], packaged: list[np.ndarray]
) -> tuple[list[float], dict[str, list[float]]]:
    """Genuine distances (two photos of one person of a ``folders`` set) and impostor distances by where the
    pair comes from: within a set (by its id) and across sets (``cross``: set faces against set faces of another
    set and against the packaged photos). Pairs whose identity is not known are left out."""
    genuine: list[float] = []
    impostor: dict[str, list[float]] = {}
    for (i, a), (j, b) in itertools.combinations(enumerate(faces), 2):
        kind = pair_kind(a, b)
        if kind is None:
            continue
        d = float(np.linalg.norm(embs[i] - embs[j]))
        if kind == "genuine":
            genuine.append(d)
        else:
            impostor.setdefault(a[0].set_id if a[0].set_id == b[0].set_id else "cross", []).append(d)
    for e in embs:
        for p in packaged:
            impostor.setdefault("cross", []).append(float(np.linalg.norm(e - p)))
    return genuine, impostor


def distances(embs: dict[tuple[str, str], np.ndarray]) -> tuple[list[float], list[float]]:
    genuine: list[float] = []
    impostor: list[float] = []
    keys = list(embs)
    for a, b in itertools.combinations(keys, 2):
        d = float(np.linalg.norm(embs[a] - embs[b]))
        (genuine if a[0] == b[0] else impostor).append(d)
    return genuine, impostor


def print_sets(
    engines: dict[str, Any],
    packaged: dict[str, dict[tuple[str, str], np.ndarray]],
    root: Path,
    results: dict[str, tuple[list[float], list[float]]],
) -> None:
    """The face sets, each engine on the same faces: per source, impostor pairs under the threshold; then the
    open set on everything (the packaged photos' pairs included), which ``results`` is extended with."""
    t0 = time.perf_counter()
    faces_, embs = set_faces(engines, root)
    by_set: dict[str, int] = {}
    for p, _ in faces_:
        by_set[p.set_id] = by_set.get(p.set_id, 0) + 1
    people = {p.person for p, _ in faces_ if p.person is not None}
    print(
        f"\nface sets ({root}): {len(faces_)} faces found by both engines, at least {MIN_SET_FACE_PX} px "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_set.items()))}; {len(people)} people with several photos); "
        f"{time.perf_counter() - t0:.0f} s"
    )
    for name in engines:
        thr = THRESHOLDS[name]
        genuine, impostor = set_distances(faces_, embs[name], list(packaged[name].values()))
        parts = ", ".join(
            f"{src} {sum(d <= thr for d in ds)}/{len(ds)} (min {min(ds):.3f})" for src, ds in sorted(impostor.items())
        )
        over = sum(d > thr for d in genuine)
        print(
            f"{name:>5}: impostor pairs under {thr:.3f}: {parts}; genuine pairs over it {over}/{len(genuine)} "
            f"(max {max(genuine):.3f})"
            if genuine
            else ""
        )
        g0, i0 = results[name]
        all_genuine = g0 + genuine
        all_impostor = i0 + [d for ds in impostor.values() for d in ds]
        results[name] = (all_genuine, all_impostor)
        print(f"       all photos, {len(all_genuine)} genuine and {len(all_impostor)} impostor pairs:")
        print_open_set(all_genuine, all_impostor, thr)
        print_gallery(name, faces_, embs[name], packaged[name], thr)


def print_gallery(
    name: str,
    faces_: list[tuple[SetPhoto, int]],
    embs: list[np.ndarray],
    packaged: dict[tuple[str, str], np.ndarray],
    thr: float,
) -> None:
    """Every person of the photos enrolled at one gate (a ``folders`` person and a packaged person by the mean of
    their photos, a group photo's face by itself); each face then comes to the gate as a stranger, with every
    resident it could be (itself, and the faces of its set's other group photos) taken out of the gallery: how
    many are let in by the threshold alone, and by the threshold and the margin (the gate's open-set rule)."""
    margin = MATCH_MARGIN[MODEL_OF[name]] * thr / MATCH_THRESHOLD[MODEL_OF[name]]
    residents: list[tuple[str, tuple[SetPhoto, int] | None, np.ndarray]] = []
    folders: dict[tuple[str, str], list[np.ndarray]] = {}
    for (photo, i), e in zip(faces_, embs, strict=True):
        if photo.kind == "folders" and photo.person is not None:
            folders.setdefault((photo.set_id, photo.person), []).append(e)
        else:
            residents.append((f"{photo.set_id}:{photo.path.name}#{i}", (photo, i), e))
    for (set_id, person), es in folders.items():
        residents.append((f"{set_id}:{person}", None, normalise(np.mean(np.stack(es), axis=0).astype(np.float32))))
    by_person: dict[str, list[np.ndarray]] = {}
    for (who, _), e in packaged.items():
        by_person.setdefault(who, []).append(e)
    for who, es in by_person.items():
        residents.append((f"packaged:{who}", None, normalise(np.mean(np.stack(es), axis=0).astype(np.float32))))
    let_in = let_in_margin = probes = 0
    for (photo, i), e in zip(faces_, embs, strict=True):
        me = f"{photo.set_id}:{photo.person}" if photo.kind == "folders" else None
        others = [
            r for key, face, r in residents
            if key != me and (face is None or pair_kind((photo, i), face) == "impostor")
        ]  # fmt: skip
        d = np.sort(np.linalg.norm(np.stack(others) - e, axis=1))
        probes += 1
        let_in += int(d[0] <= thr)
        let_in_margin += int(d[0] <= thr and d[1] - d[0] >= margin)
    print(
        f"       one gate, {len(residents)} residents (every person of the photos), each face a stranger against "
        f"the others: let in by the threshold {let_in}/{probes}, by the threshold and the margin {margin:.3f} "
        f"{let_in_margin}/{probes}"
    )


def print_open_set(genuine: list[float], impostor: list[float], thr: float) -> None:
    """What the threshold means for a stranger at gates of GATE_SIZES residents, and the threshold each needs."""
    est = far_at(impostor, thr)
    print(
        f"       open set at {thr:.3f}: FAR per comparison {est.accepted}/{est.n} counted (95% upper bound "
        f"{est.upper95:.2%}), {est.fitted:.2e} by the normal fit (impostor mean {statistics.fmean(impostor):.3f}, "
        f"sd {statistics.stdev(impostor):.3f})"
    )
    for n in GATE_SIZES:
        t = threshold_for(impostor, n, TARGET)
        refused = sum(d > t for d in genuine)
        print(
            f"       {n:>6} residents: a stranger let in {stranger_accept(est.fitted, n):.2e} (fit) / "
            f"{stranger_accept(est.upper95, n):.0%} (bound); threshold for {TARGET:.1%}: {t:.3f} "
            f"(genuine pairs over it: {refused}/{len(genuine)})"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plot", type=Path, default=None, help="write the distance distributions here (PNG)")
    ap.add_argument("--sets", type=Path, default=FACESETS_DIR, help="the face sets (python -m firmware_sim.facesets)")
    ap.add_argument("--no-sets", action="store_true", help="the packaged photos only")
    args = ap.parse_args(argv)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results: dict[str, tuple[list[float], list[float]]] = {}
    engines: dict[str, Any] = {"dlib": FaceEngine(), "onnx": OnnxFaceEngine()}
    packaged: dict[str, dict[tuple[str, str], np.ndarray]] = {}
    for name, engine in engines.items():
        embs, t_detect, t_embed, t_live = faces(engine)
        packaged[name] = embs
        genuine, impostor = distances(embs)
        results[name] = (genuine, impostor)
        thr = THRESHOLDS[name]
        under = sum(d < thr for d in impostor)
        spread = np.sqrt((np.var(genuine) + np.var(impostor)) / 2)
        d_prime = (np.mean(impostor) - np.mean(genuine)) / spread
        bound = f"{under}/{len(impostor)}" if under else f"0/{len(impostor)} (95% upper bound {3 / len(impostor):.1%})"
        print(
            f"{name:>5}: {len(embs)} faces; genuine {min(genuine):.3f}-{max(genuine):.3f} (n={len(genuine)}), "
            f"impostor {min(impostor):.3f}-{max(impostor):.3f} (n={len(impostor)}); gap "
            f"{min(impostor) - max(genuine):+.3f} ({(min(impostor) - max(genuine)) / thr:+.0%} of the threshold "
            f"{thr:.3f}); d' {d_prime:.1f}; impostors under it {bound}; "
            f"genuine over it {sum(d >= thr for d in genuine)}"
        )
        print(
            f"       per face: detect {statistics.median(t_detect) * 1000:.1f} ms (median, whole photo), "
            f"embed {statistics.median(t_embed) * 1000:.1f} ms, "
            f"liveness check {statistics.median(t_live) * 1000:.1f} ms"
        )
        print_open_set(genuine, impostor, thr)
    if not args.no_sets:
        print_sets(engines, packaged, args.sets, results)
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for ax, (name, (genuine, impostor)) in zip(axes, results.items(), strict=True):
            bins = np.linspace(0, 1.6, 41)
            ax.hist(impostor, bins=bins, alpha=0.6, label=f"impostor (n={len(impostor)})")
            ax.hist(genuine, bins=bins, alpha=0.6, label=f"genuine (n={len(genuine)})")
            ax.axvline(THRESHOLDS[name], color="k", linestyle="--", label=f"threshold {THRESHOLDS[name]:.2f}")
            ax.set_title(f"{name}: embedding distances")
            ax.set_xlabel("distance (unit embeddings)")
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
