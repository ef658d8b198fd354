#!/usr/bin/env python3
"""Gate decision latency, A/B: the gate code of a git revision against the working tree's, in one process.

    .venv/bin/python bench/gate_latency_ab.py --ref f10fd27 [--seeds 3] [--lightings day,dusk,night,backlight]

``edge/gate`` at ``--ref`` is extracted (``git archive``) into a temporary package ``gate_ref`` (its modules
import each other relatively) and run beside ``edge.gate`` on the same 36 residents as ``gate_vision.py``'s
latency part (resident_approach and two_residents x 4 lightings x seeds 0-2), with the same simulated live
camera (25 fps, newest frame only, the clock advanced by each call's measured time: see ``gate_vision.py``).
The two versions take turns scene by scene, in alternating order, so that load on the machine falls on both.
Both use the same face engine weights and gallery. Latency = grant - first frame the truth calls the face fully
visible; negative when the face was recognised while still approaching.

The process pins itself to one core (``SC_BENCH_CORE``, default 0), one BLAS thread.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {int(os.environ.get("SC_BENCH_CORE", "0"))})

import argparse
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import gate_vision as gv
from gate_common import BASE_T, ours_gallery, pct

from firmware_sim.gatescene import DOOR_INSIDE, DOOR_LINE, LIGHTINGS, build_scene

REPO = Path(__file__).resolve().parents[1]


def extract(ref: str, into: Path) -> str:
    """``edge/gate`` at ``ref`` as the package ``gate_ref`` under ``into``; returns the full commit id."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"], capture_output=True, text=True
    )
    if commit.returncode != 0:
        sys.exit(f"--ref {ref!r}: not a commit of this repository ({commit.stderr.strip()})")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "edge/gate"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "edge" / "gate").rename(into / "gate_ref")
    return commit.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", required=True, help="git revision whose edge/gate is the 'before'")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lightings", default=",".join(LIGHTINGS))
    ap.add_argument("--scenes", default="resident_approach,two_residents")
    ap.add_argument(
        "--min-face-px",
        type=int,
        default=None,
        help="the working tree's min_face_px (a proposed setting; default: its own)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sc-gate-ref-") as tmp:
        commit = extract(args.ref, Path(tmp))
        sys.path.insert(0, tmp)
        versions: dict[str, tuple[ModuleType, Any]] = {}
        for name, pkg in ((f"ref {commit[:7]}", "gate_ref"), ("working tree", "edge.gate")):
            pipeline = importlib.import_module(f"{pkg}.pipeline")
            faces = importlib.import_module(f"{pkg}.faces")
            versions[name] = (pipeline, faces.FaceEngine())
        index = ours_gallery(next(iter(versions.values()))[1])
        print(f"load average at start {os.getloadavg()[0]:.2f}; versions: {', '.join(versions)}", flush=True)
        results: dict[str, list[tuple[str, float | None]]] = {v: [] for v in versions}
        busy = dict.fromkeys(versions, 0.0)
        calls = dict.fromkeys(versions, 0)
        for pl, eng in versions.values():  # warm up each (first calls load and allocate)
            warm = build_scene("resident_approach", seed=99)
            pipe = pl.GatePipeline(
                settings=pl.VisionSettings(door_line=DOOR_LINE, door_inside=DOOR_INSIDE), engine=eng,
                gallery=lambda: index,
            )  # fmt: skip
            for i in range(190, 200):
                pipe.process(warm.render(i)[0], BASE_T + i / 25)
        for seed in range(args.seeds):
            for light in args.lightings.split(","):
                for scene_name in args.scenes.split(","):
                    scene = build_scene(scene_name, lighting=light, seed=seed)
                    truths = scene.frame_truths()
                    timeline = gv.residents_timeline(scene)
                    order = list(versions) if (seed + len(light)) % 2 == 0 else list(versions)[::-1]
                    line = f"{scene_name}/{light}/{seed}:"
                    for v in order:
                        pl, eng = versions[v]
                        extra = {"min_face_px": args.min_face_px} if args.min_face_px and v == "working tree" else {}
                        pipe = pl.GatePipeline(
                            settings=pl.VisionSettings(door_line=DOOR_LINE, door_inside=DOOR_INSIDE, **extra),
                            engine=eng, gallery=lambda: index,
                        )  # fmt: skip

                        def step(
                            frame: Any, i: int, pipe: Any = pipe, fps: float = scene.fps, truths: Any = truths
                        ) -> list[Any]:
                            outs = pipe.process(frame, BASE_T + i / fps)
                            return gv.ours_grants(pipe, outs, truths[i]) if outs else []

                        st = gv.LiveStats()
                        got = gv.live(scene, 0, scene.n_frames, set(timeline), step, st)
                        busy[v] += st.busy_s
                        calls[v] += st.calls
                        for ident, (_, visible, _) in timeline.items():
                            d = got.get(ident)
                            lat = None if d is None else (d[0] - visible / scene.fps) * 1000
                            results[v].append((light, lat))
                            line += f"  {v}: {ident} {'MISSED' if lat is None else f'{lat:.0f} ms'}"
                        if st.wrong:
                            line += f"  {v}: WRONG {st.wrong}"
                    print(line, flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}\n")
    print("| version | residents granted | ms per call | p50 ms | p95 ms | max ms | night p95 | backlight p95 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    p95: dict[str, float] = {}
    for v, rows in results.items():
        lats = [lat for _, lat in rows if lat is not None]
        by = {light: [lat for li, lat in rows if li == light and lat is not None] for light in ("night", "backlight")}
        p95[v] = pct(lats, 95)
        print(
            f"| {v} | {len(lats)}/{len(rows)} | {1000 * busy[v] / max(1, calls[v]):.1f} | {pct(lats, 50):.0f} | "
            f"{p95[v]:.0f} | {max(lats):.0f} | "
            + " | ".join(f"{pct(xs, 95):.0f}" if xs else "-" for xs in by.values())
            + " |"
        )
    ref_name, ours_name = list(results)
    print(f"\np95: {ours_name} / {ref_name} = {p95[ours_name] / p95[ref_name]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
