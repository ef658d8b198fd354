#!/usr/bin/env python3
"""The face engines side by side on the same real photos: dlib (today's gates) and the ONNX engine (YuNet +
faceplugin's 512-d recogniser), in one run.

    .venv/bin/python bench/face_models.py [--plot docs/face-models.png]

Every photo of firmware_sim.faces (packaged with PyPI projects; the six people of the group photo t1.jpg are
certainly different people) is detected and embedded by each engine. For each: the genuine distances (two
photos of one person) and the impostor distances (two people), the gap between the largest genuine and the
smallest impostor distance, the impostor pairs under the engine's threshold (with the rule-of-three upper bound
when there are none), and the per-face time to detect and to embed. The photos are few: this is a sanity
check of separation, not a false accept rate; docs/face-models.md says what it can and cannot tell.
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

import numpy as np

from firmware_sim.faces import identities
from vision.faces import FaceEngine, load_rgb
from vision.onnx import OnnxFaceEngine

#: Where each engine's decision line is drawn: dlib's is the gate's default; the ONNX one a cosine of 0.5.
THRESHOLDS = {"dlib": 0.40, "onnx": float(np.sqrt(2 - 2 * 0.5))}


def faces(engine: Any) -> tuple[dict[tuple[str, str], np.ndarray], list[float], list[float]]:
    """(person, photo) -> embedding, and the per-face detect and embed times."""
    out: dict[tuple[str, str], np.ndarray] = {}
    t_detect, t_embed = [], []
    for person, photos in identities().items():
        who = person.removesuffix("-partial")
        for i, p in enumerate(photos):
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
    return out, t_detect, t_embed


def distances(embs: dict[tuple[str, str], np.ndarray]) -> tuple[list[float], list[float]]:
    genuine: list[float] = []
    impostor: list[float] = []
    keys = list(embs)
    for a, b in itertools.combinations(keys, 2):
        d = float(np.linalg.norm(embs[a] - embs[b]))
        (genuine if a[0] == b[0] else impostor).append(d)
    return genuine, impostor


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plot", type=Path, default=None, help="write the distance distributions here (PNG)")
    args = ap.parse_args(argv)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results: dict[str, tuple[list[float], list[float]]] = {}
    for name, engine in (("dlib", FaceEngine()), ("onnx", OnnxFaceEngine())):
        embs, t_detect, t_embed = faces(engine)
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
            f"embed {statistics.median(t_embed) * 1000:.1f} ms"
        )
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
