#!/usr/bin/env python3
"""The door-line counter on real footage, against crossings counted by hand.

    .venv/bin/python bench/gate_counting.py [bench/data/vtest-line-a.json ...]

Each truth file (edge/gate/crosstruth.py's format, one door line each) names its video in the footage folder
(``python -m firmware_sim.footage``). For each, twice: the gate's people counter
(``edge.gate.counting.LineCounter``, the one ``GatePipeline`` runs) at a door camera's default scale (the
baseline), and at the scale of the line's ``person_height`` (the camera's geometry, measured on the frames and
written in the file), over every frame; its crossings matched against the hand count (same direction, within
the file's tolerance): found, missed and invented crossings, people per crossing where two walked together,
and the counter's own frames/s on one core (decoding not included). The files' counts were made by eye, frame
by frame, with the rule written in each (``rule``); docs/benchmarks.md records the results.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge.gate.counting import LineCounter
from edge.gate.crosstruth import CountReport, compare_crossings, load_truth
from edge.gate.pipeline import GateOutcome
from firmware_sim.footage import FOOTAGE_DIR, footage_path

DATA = Path(__file__).resolve().parent / "data"


def frames(path: Path) -> list[tuple[np.ndarray, float]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"{path}: not a video OpenCV can read")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out: list[tuple[np.ndarray, float]] = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append((f, len(out) / fps))
    cap.release()
    return out


def run(truth_file: Path, footage: Path, *, scaled: bool) -> tuple[CountReport, float, int]:
    """The counter over the truth file's video: at the door camera's default scale, or (``scaled``) at the
    scale of the line's ``person_height`` (the camera's geometry, as a gate's config gives it)."""
    truth = load_truth(truth_file)
    video = frames(footage_path(truth.video, footage))
    person_height = truth.line.person_height if scaled else None
    counter = LineCounter((truth.line.a, truth.line.b), truth.line.inside, person_height=person_height)
    found: list[GateOutcome] = []
    spent = 0.0
    for f, t in video:
        t0 = time.perf_counter()
        crossings = counter.update(f, t)
        spent += time.perf_counter() - t0
        found += [GateOutcome(c.t, "crossing", c.track, direction=c.direction, people=c.people) for c in crossings]
    return compare_crossings(found, truth), len(video) / spent if spent else 0.0, len(video)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("truth", nargs="*", type=Path, help="truth files (default: every bench/data/*-line-*.json)")
    ap.add_argument("--footage", type=Path, default=FOOTAGE_DIR)
    args = ap.parse_args(argv)
    files = args.truth or sorted(DATA.glob("*-line-*.json"))
    if not files:
        print("no truth files", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as on a gate
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}; one core")  # fmt: skip
    print()
    print("| footage | line | counter's scale | counted by hand | found | matched | missed | invented "
          "| people: hand / found | pairs counted right | counter frames/s |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in files:
        truth = load_truth(f)
        matched: dict[bool, int] = {}
        for scaled in (False, True):
            report, fps, n = run(f, args.footage, scaled=scaled)
            j = report.to_json()
            c, p = j["crossings"], j["people"]
            matched[scaled] = c["matched"]
            pairs = [(tc, fp) for tc, _, fp in report.matched if tc.people > 1]
            scale = f"person_height {truth.line.person_height}" if scaled else "door camera (default)"
            print(
                f"| {truth.video} ({n} frames) | {f.stem} | {scale} | {c['true']} | {c['found']} | {c['matched']} "
                f"| {c['missed']} | {c['invented']} | {p['true']} / {p['found']} "
                f"| {sum(1 for tc, fp in pairs if tc.people == fp)}/{len(pairs)} | {fps:.0f} |"
            )
        print(f"|  |  | ratio of crossings matched | | | {matched[True] / max(1, matched[False]):.1f}x | | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
