#!/usr/bin/env python3
"""Gate vision benchmark: frames per second per core and decision latency at 720p, the gate's
vision loop (``GatePipeline``) side by side with the naive face_recognition loop, in one run.

    .venv/bin/python bench/gate_vision.py [--quick] [--baseline-stride 8] [--latency-seeds 3]

The process pins itself to one core (``SC_BENCH_CORE``, default 0) and sets
OMP/OpenBLAS to one thread before numpy is imported.

* ``ours``      ``GatePipeline`` with ``VisionSettings(door_line=DOOR_LINE, door_inside=DOOR_INSIDE)``
                (threshold 0.40 on unit embeddings), gallery obama (obama2.jpg + obama3.jpg) and
                biden (biden.jpg), enrolled with ``edge.gate.tools.enrolment_embedding``;
* ``baseline``  the loop users write with face_recognition: on every frame ``face_locations``
                (HOG, upsample=1, the whole 1280x720 frame), ``face_encodings``, then
                ``compare_faces`` (tolerance 0.6) + ``face_distance`` + ``argmin`` against its own
                raw encodings of the same photos; a recognised face is a grant.

Throughput: synthetic scenes (``firmware_sim.gatescene``) are rendered into memory first, then each
loop processes them as fast as it can; fps = frames / seconds spent in the loop's per-frame call.
Ours takes every frame (it keeps state: motion, tracks). The baseline is stateless per frame and
costs about 0.35 s a frame here, so by default it takes every 8th frame of the same scenes (what it
would get from a live 25 fps camera anyway); ``--baseline-stride 1`` gives it every frame (~25 min).
Decisions of both are checked against the scenes' ground truth.

Decision latency: a live 25 fps camera with the newest-frame-only policy. Frame i arrives at
t0 + i/25; the loop, when free, takes the newest frame that has arrived and skips the older ones.
The clock is simulated from measured processing times (each call is timed with perf_counter; while
the loop waits for the next frame the clock jumps to its arrival), which is what sleeping in real
time would give without the idle waits; frames are rendered outside the timed calls. Latency =
time the grant is made - arrival of the first frame in which the truth says the resident's face is
fully visible (``PersonTruth.face_visible``). Ours runs each scene from frame 0. The baseline is
stateless, so it runs only a window per resident: from when their face is 16 px tall (it found
faces from about 26 px) until their face leaves the frame. A third loop, ``baseline >=120px``,
is the same baseline that ignores faces under 120 px (ours' min_face_px), from 1 s before the
face is fully visible.

Writes docs/gate_vision.png (fps bars, latency CDFs); ``--json`` keeps the raw figures.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
_CORE = int(os.environ.get("SC_BENCH_CORE", "0"))
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {_CORE})

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from edge.gate.gallery import GalleryIndex  # noqa: E402
from edge.gate.pipeline import HOG_STEP, GateOutcome, GatePipeline, VisionSettings  # noqa: E402
from firmware_sim.gatescene import DOOR_INSIDE, DOOR_LINE, LIGHTINGS, SCENES, FrameTruth, GateScene, build_scene  # noqa: E402
from sc.config.schema import MATCH_THRESHOLD  # noqa: E402
from sc.contracts.commands import EmbeddingModel  # noqa: E402
from sc.contracts.messages import EntryMethod  # noqa: E402
from vision.engines import Engine, engine_for  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_common import (  # noqa: E402
    BASE_T,
    DOCS,
    Box,
    Frame,
    NaiveGallery,
    fmt_ms,
    machine,
    naive_frame,
    naive_gallery,
    ours_gallery,
    pct,
    print_load,
    print_machine,
    who,
)

THROUGHPUT_SCENES = ("resident_approach", "two_residents", "tailgater", "stranger", "empty")
LATENCY_SCENES = ("resident_approach", "two_residents")
NAIVE_MIN_TRUTH_PX = 16  # the baseline's window starts when the resident's face is this tall
MIN_FACE_PX = VisionSettings().min_face_px

#: (claimed identity, true identity, true role, face height px, when the loop first saw the face whole) of one grant
Grant = tuple[str, str, str, int, float | None]


#: ours' settings; ``--min-face-px`` replaces min_face_px (to measure a proposed change, not by default)
SETTINGS = VisionSettings(door_line=DOOR_LINE, door_inside=DOOR_INSIDE)


def make_pipeline(engine: Engine, index: GalleryIndex) -> GatePipeline:
    return GatePipeline(settings=SETTINGS, engine=engine, gallery=lambda: index)


def ours_grants(pipe: GatePipeline, outs: list[GateOutcome], truth: FrameTruth) -> list[Grant]:
    grants = []
    for o in outs:
        if o.what == "entry" and o.method is EntryMethod.FACE:
            tr = pipe.tracker.tracks.get(o.track) if o.track is not None else None
            box: Box = (tr.box.left, tr.box.top, tr.box.right, tr.box.bottom) if tr is not None else (0, 0, 0, 0)
            ident, role = who(box, truth)
            grants.append((o.name or "?", ident, role, box[3] - box[1], o.visible_t))
    return grants


def naive_grants(res: list[tuple[str, Box, float]], truth: FrameTruth) -> list[Grant]:
    return [(name, *who(box, truth), box[3] - box[1], None) for name, box, _ in res]


def is_false_accept(g: Grant) -> bool:
    claimed, ident, role = g[:3]
    return role != "resident" or claimed != ident


# --------------------------------------------------------------------------- throughput


@dataclass
class Run:
    system: str
    scene: str
    lighting: str
    seed: int
    frames: int
    seconds: float
    per_frame_ms: list[float]
    grants: list[Grant]  # distinct (claimed, true identity) pairs, in order
    expected: tuple[str, ...]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def distinct(grants: list[Grant]) -> list[Grant]:
    seen: set[tuple[str, str]] = set()
    out = []
    for g in grants:
        if (g[0], g[1]) not in seen:
            seen.add((g[0], g[1]))
            out.append(g)
    return out


def throughput_scene(
    scene: GateScene, engine: Engine, index: GalleryIndex, naive: NaiveGallery, stride: int
) -> tuple[Run, Run]:
    truths = scene.frame_truths()
    frames = [scene.render(i)[0] for i in range(scene.n_frames)]
    key = (scene.name, scene.lighting, scene.seed)
    expected = scene.truth.expected_grants
    # ours: every frame, in order
    pipe = make_pipeline(engine, index)
    times: list[float] = []
    grants: list[Grant] = []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        outs = pipe.process(frame, BASE_T + i / scene.fps)
        times.append(time.perf_counter() - t0)
        grants.extend(ours_grants(pipe, outs, truths[i]))
    ours = Run("ours", *key, len(frames), sum(times), [t * 1000 for t in times], distinct(grants), expected)
    # baseline: every ``stride``-th frame
    times, grants = [], []
    for i in range(0, len(frames), stride):
        t0 = time.perf_counter()
        res = naive_frame(frames[i], naive)
        times.append(time.perf_counter() - t0)
        grants.extend(naive_grants(res, truths[i]))
    base = Run("baseline", *key, len(times), sum(times), [t * 1000 for t in times], distinct(grants), expected)
    del frames
    return ours, base


# --------------------------------------------------------------------------- live latency


@dataclass
class Decision:
    system: str
    scene: str
    lighting: str
    seed: int
    identity: str
    visible_t: float  # arrival of the first frame with the face fully visible (scene seconds)
    decided_t: float | None  # when the grant was made (simulated clock), None: missed
    face_px: int | None  # the face's height in the frame the decision was made on (the detector's box)
    truth_px: int | None = None  # ... and the true face height in that frame (the scene's truth)
    first_call: bool = False  # decided on the window's first frame: the window may have started too late
    gate_visible_t: float | None = None  # ours: when the loop itself first took the face as whole and big enough

    @property
    def latency_ms(self) -> float | None:
        return None if self.decided_t is None else (self.decided_t - self.visible_t) * 1000


@dataclass
class LiveStats:
    calls: int = 0
    busy_s: float = 0.0
    sim_s: float = 0.0
    wrong: list[Grant] = field(default_factory=list)
    #: ours' other face decisions: (scene, lighting, seed) -> [(what, claimed, true identity, reason)]
    other: dict[tuple[str, str, int], list[tuple[str, str, str, str]]] = field(default_factory=dict)


def live(
    scene: GateScene,
    start: int,
    end: int,
    wanted: set[str],
    step: Callable[[Frame, int], list[Grant]],
    stats: LiveStats,
) -> dict[str, tuple[float, Grant, bool, int]]:
    """Newest-frame-only on a simulated 25 fps clock.

    identity -> (decision time, the grant, on the first call, the frame decided on).
    """
    fps = scene.fps
    now = start / fps
    last = start - 1
    decided: dict[str, tuple[float, Grant, bool, int]] = {}
    calls = 0
    while True:
        newest = min(end - 1, int(now * fps + 1e-9))
        if newest <= last:  # idle until the next frame arrives
            newest = last + 1
            if newest >= end:
                break
            now = newest / fps
        frame = scene.render(newest)[0]
        t0 = time.perf_counter()
        grants = step(frame, newest)
        dt = time.perf_counter() - t0
        now += dt
        calls += 1
        stats.calls += 1
        stats.busy_s += dt
        for g in grants:
            if is_false_accept(g):
                stats.wrong.append(g)
            elif g[1] in wanted and g[1] not in decided:
                decided[g[1]] = (now, g, calls == 1, newest)
        last = newest
        if wanted <= decided.keys():
            break
    stats.sim_s += now - start / fps
    return decided


def residents_timeline(scene: GateScene) -> dict[str, tuple[int, int, int]]:
    """identity -> (first frame face >= NAIVE_MIN_TRUTH_PX, first frame fully visible, last frame with a face box)."""
    first_small: dict[str, int] = {}
    first_vis: dict[str, int] = {}
    last_box: dict[str, int] = {}
    for ft in scene.frame_truths():
        for p in ft.persons:
            if p.role != "resident" or p.face_box is None:
                continue
            last_box[p.identity] = ft.index
            if p.face_box[3] - p.face_box[1] >= NAIVE_MIN_TRUTH_PX:
                first_small.setdefault(p.identity, ft.index)
            if p.face_visible:
                first_vis.setdefault(p.identity, ft.index)
    return {k: (first_small.get(k, v), v, last_box[k]) for k, v in first_vis.items()}


def latency_scene(
    scene: GateScene, engine: Engine, index: GalleryIndex, naive: NaiveGallery, stats: dict[str, LiveStats]
) -> list[Decision]:
    truths = scene.frame_truths()
    timeline = residents_timeline(scene)
    key = (scene.name, scene.lighting, scene.seed)
    out: list[Decision] = []
    # ours: the whole scene from frame 0
    pipe = make_pipeline(engine, index)

    def ours_step(frame: Frame, i: int) -> list[Grant]:
        outs = pipe.process(frame, BASE_T + i / scene.fps)
        for o in outs:
            if o.what in ("refused", "unknown") and o.method is EntryMethod.FACE:
                tr = pipe.tracker.tracks.get(o.track) if o.track is not None else None
                box: Box = (tr.box.left, tr.box.top, tr.box.right, tr.box.bottom) if tr is not None else (0, 0, 0, 0)
                note = (o.what, o.name or "-", who(box, truths[i])[0], o.reason)
                stats["ours"].other.setdefault(key, []).append(note)
        return ours_grants(pipe, outs, truths[i]) if outs else []

    def decision(system: str, ident: str, vis: int, d: tuple[float, Grant, bool, int] | None) -> Decision:
        if d is None:
            return Decision(system, *key, ident, vis / scene.fps, None, None)
        seen = d[1][4]
        true_box = next((p.face_box for p in truths[d[3]].persons if p.identity == ident), None)
        true_px = None if true_box is None else true_box[3] - true_box[1]
        gate_seen = None if seen is None else seen - BASE_T
        return Decision(system, *key, ident, vis / scene.fps, d[0], d[1][3], true_px, d[2], gate_seen)

    got = live(scene, 0, scene.n_frames, set(timeline), ours_step, stats["ours"])
    for ident, (_, vis, _) in timeline.items():
        out.append(decision("ours", ident, vis, got.get(ident)))
    # the baselines: one window per resident
    for system, min_px in (("baseline", 0), (f"baseline >={MIN_FACE_PX}px", MIN_FACE_PX)):
        for ident, (small, vis, last) in timeline.items():
            start = small if min_px == 0 else max(0, vis - round(scene.fps))

            def naive_step(frame: Frame, i: int, min_px: int = min_px) -> list[Grant]:
                res = naive_frame(frame, naive, min_face_px=min_px)
                return naive_grants(res, truths[i]) if res else []

            got = live(scene, start, last + 1, {ident}, naive_step, stats[system])
            out.append(decision(system, ident, vis, got.get(ident)))
    return out


# --------------------------------------------------------------------------- report


def spread(xs: list[float]) -> str:
    return f"{fmt_ms(pct(xs, 50))} / {fmt_ms(pct(xs, 95))} / {fmt_ms(max(xs) if xs else float('nan'))}"


def grants_text(grants: list[Grant]) -> str:
    if not grants:
        return "none"
    parts = []
    for claimed, ident, role, *_ in grants:
        parts.append(claimed if claimed == ident and role == "resident" else f"{claimed} (was {ident}, {role})")
    return ", ".join(parts)


def report_throughput(runs: list[tuple[Run, Run]], stride: int) -> dict[str, Any]:
    print(f"\n## Throughput, frames/s on one core (ours: every frame; baseline: every {stride}th frame)\n")
    print(
        "| scene | lighting | seed | frames | ours fps | ours ms/frame p50 / p99 / max | "
        "baseline frames | baseline fps | baseline ms/frame p50 | ours / baseline |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for o, b in runs:
        print(
            f"| {o.scene} | {o.lighting} | {o.seed} | {o.frames} | {o.fps:.1f} | "
            f"{pct(o.per_frame_ms, 50):.1f} / {pct(o.per_frame_ms, 99):.1f} / {max(o.per_frame_ms):.1f} | "
            f"{b.frames} | {b.fps:.2f} | {pct(b.per_frame_ms, 50):.0f} | {o.fps / b.fps:.0f}× |"
        )
    of = sum(o.frames for o, _ in runs)
    os_ = sum(o.seconds for o, _ in runs)
    bf = sum(b.frames for _, b in runs)
    bs = sum(b.seconds for _, b in runs)
    ours_fps, base_fps = of / os_, bf / bs
    all_o = [x for o, _ in runs for x in o.per_frame_ms]
    all_b = [x for _, b in runs for x in b.per_frame_ms]
    print(
        f"| **all** | | | {of} | **{ours_fps:.1f}** | {pct(all_o, 50):.1f} / {pct(all_o, 99):.1f} / {max(all_o):.1f} | "
        f"{bf} | **{base_fps:.2f}** | {pct(all_b, 50):.0f} | **{ours_fps / base_fps:.0f}×** |"
    )
    print("\n## Decisions against the ground truth (throughput scenes)\n")
    print("| scene | lighting | seed | expected grants | ours | baseline |")
    print("|---|---|---:|---|---|---|")
    fa = {"ours": 0, "baseline": 0}
    missed = {"ours": 0, "baseline": 0}
    for o, b in runs:
        print(
            f"| {o.scene} | {o.lighting} | {o.seed} | {', '.join(o.expected) or 'none'} | "
            f"{grants_text(o.grants)} | {grants_text(b.grants)} |"
        )
        for r in (o, b):
            fa[r.system] += sum(1 for g in r.grants if is_false_accept(g))
            good = {g[1] for g in r.grants if not is_false_accept(g)}
            missed[r.system] += sum(1 for e in r.expected if e not in good)
    expected = sum(len(o.expected) for o, _ in runs)
    print(
        f"\nexpected grants {expected}: ours missed {missed['ours']}, false accepts {fa['ours']}; "
        f"baseline missed {missed['baseline']}, false accepts {fa['baseline']}"
    )
    return {
        "ours_fps": ours_fps,
        "baseline_fps": base_fps,
        "ratio": ours_fps / base_fps,
        "ours_frames": of,
        "baseline_frames": bf,
        "expected_grants": expected,
        "missed": missed,
        "false_accepts": fa,
        "scenes": [
            {
                "scene": o.scene,
                "lighting": o.lighting,
                "seed": o.seed,
                "ours_fps": o.fps,
                "baseline_fps": b.fps,
                "ours_grants": o.grants,
                "baseline_grants": b.grants,
            }
            for o, b in runs
        ],
    }


def report_latency(decisions: list[Decision], stats: dict[str, LiveStats]) -> dict[str, Any]:
    print("\n## Decision latency, live 25 fps, newest frame only (ms from the face fully visible to the grant)\n")
    print(
        "| loop | residents | granted | missed | wrong grants | p50 | p95 | max | min | "
        "face px at decision: box p50 | true p50 / min | frames taken / arrived |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    summary: dict[str, Any] = {}
    for system, st in stats.items():
        ds = [d for d in decisions if d.system == system]
        lat = [x for d in ds if (x := d.latency_ms) is not None]
        px = [float(d.face_px) for d in ds if d.face_px is not None]
        true_px = [float(d.truth_px) for d in ds if d.truth_px is not None]
        missed = [d for d in ds if d.decided_t is None]
        taken = st.calls / max(1e-9, st.sim_s * 25.0)
        print(
            f"| {system} | {len(ds)} | {len(lat)} | {len(missed)} | {len(st.wrong)} | **{fmt_ms(pct(lat, 50))}** | "
            f"**{fmt_ms(pct(lat, 95))}** | {fmt_ms(max(lat) if lat else float('nan'))} | "
            f"{fmt_ms(min(lat) if lat else float('nan'))} | {pct(px, 50):.0f} | "
            f"{pct(true_px, 50):.0f} / {min(true_px) if true_px else float('nan'):.0f} | {taken:.2f} |"
        )
        summary[system] = {
            "n": len(ds),
            "granted": len(lat),
            "missed": [(d.scene, d.lighting, d.seed, d.identity) for d in missed],
            "wrong": st.wrong,
            "p50_ms": pct(lat, 50),
            "p95_ms": pct(lat, 95),
            "max_ms": max(lat) if lat else None,
            "first_call": sum(1 for d in ds if d.first_call),
            "latencies_ms": lat,
            "true_face_px": true_px,
        }
    split = [d for d in decisions if d.system == "ours" and d.decided_t is not None and d.gate_visible_t is not None]
    wait = [((d.gate_visible_t or 0.0) - d.visible_t) * 1000 for d in split]
    work = [((d.decided_t or 0.0) - (d.gate_visible_t or 0.0)) * 1000 for d in split]
    print(
        f"\nours, split (p50 / p95 / max ms): from the face fully visible (truth) to the first frame the loop takes "
        f"it as whole and at the decision size (detector box >= {SETTINGS.min_face_px / HOG_STEP:.0f} px) "
        f"{spread(wait)}; from that frame's arrival to the grant {spread(work)}"
    )
    summary["ours_split_ms"] = {
        "wait_p50": pct(wait, 50),
        "wait_p95": pct(wait, 95),
        "work_p50": pct(work, 50),
        "work_p95": pct(work, 95),
    }
    print("\nper lighting (p50 / p95 / max ms, missed):\n")
    lights = sorted({d.lighting for d in decisions}, key=lambda x: LIGHTINGS.index(x))
    print("| loop | " + " | ".join(lights) + " |")
    print("|---|" + "---:|" * len(lights))
    for system in stats:
        cells = []
        for light in lights:
            ds = [d for d in decisions if d.system == system and d.lighting == light]
            lat = [x for d in ds if (x := d.latency_ms) is not None]
            miss = sum(1 for d in ds if d.decided_t is None)
            cells.append(
                f"{fmt_ms(pct(lat, 50))} / {fmt_ms(pct(lat, 95))} / {fmt_ms(max(lat) if lat else float('nan'))}"
                + (f", {miss} missed" if miss else "")
            )
        print(f"| {system} | " + " | ".join(cells) + " |")
    for system in stats:
        s = summary[system]
        if s["first_call"]:
            print(f"warning: {system} decided {s['first_call']} time(s) on the first frame of its window")
        for m in s["missed"]:
            seen = [x for x in stats[system].other.get(m[:3], []) if x[2] == m[3]]
            print(f"{system} missed: {m}" + (f"; instead: {seen}" if seen else ""))
        for w in s["wrong"]:
            print(f"{system} wrong grant: {w}")
    return summary


def plot(runs: list[tuple[Run, Run]], decisions: list[Decision], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=110, gridspec_kw={"width_ratios": [1, 1.3]})
    scenes = list(dict.fromkeys(o.scene for o, _ in runs))
    xs = np.arange(len(scenes) + 1)
    ours_fps, base_fps = [], []
    for s in [*scenes, None]:
        sel = [(o, b) for o, b in runs if s is None or o.scene == s]
        ours_fps.append(sum(o.frames for o, _ in sel) / sum(o.seconds for o, _ in sel))
        base_fps.append(sum(b.frames for _, b in sel) / sum(b.seconds for _, b in sel))
    ax1.bar(xs - 0.2, ours_fps, 0.4, label="ours (GatePipeline)")
    ax1.bar(xs + 0.2, base_fps, 0.4, label="baseline (face_recognition loop)")
    for x, o, b in zip(xs, ours_fps, base_fps, strict=True):
        ax1.text(x, max(o, b) * 1.15, f"{o / b:.0f}×", ha="center", fontsize=8)
    ax1.set_yscale("log")
    ax1.set_xticks(xs, [*[s.replace("_", "\n") for s in scenes], "all"], fontsize=8)
    ax1.set_ylabel("frames/s on one core (log)")
    ax1.set_title("throughput, 1280x720")
    ax1.axhline(25, color="grey", linestyle=":", linewidth=1)
    ax1.text(xs[-1] + 0.45, 25, "25 fps", fontsize=7, va="bottom", ha="right", color="grey")
    ax1.set_ylim(1, max(ours_fps) * 10)
    ax1.legend(fontsize=8, loc="upper left", ncol=2)
    for system in dict.fromkeys(d.system for d in decisions):
        lat = sorted(ms for d in decisions if d.system == system and (ms := d.latency_ms) is not None)
        n = sum(1 for d in decisions if d.system == system)
        if lat:
            ys = [0.0, *(np.arange(1, len(lat) + 1) / n)]
            ax2.step([lat[0], *lat], ys, where="post", label=f"{system} ({len(lat)}/{n} granted)")
    ax2.axvline(0, color="k", linewidth=0.8)
    ax2.axvline(150, color="r", linestyle=":", linewidth=1, label="150 ms")
    ax2.set_xscale("symlog", linthresh=100)
    ax2.set_xlabel("grant time - first frame with the face fully visible (ms, symlog)")
    ax2.set_ylabel("share of residents granted")
    ax2.set_title("decision latency, live 25 fps, newest frame only")
    ax2.legend(fontsize=8, loc="upper left")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    global SETTINGS, MIN_FACE_PX
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer scenes, seeds and lightings (about 2 minutes)")
    ap.add_argument("--scenes", default=",".join(THROUGHPUT_SCENES), help="throughput scenes")
    ap.add_argument("--lightings", default="day,dusk", help="throughput lightings")
    ap.add_argument("--seeds", type=int, default=1, help="throughput seeds 0..N-1 (default 1; 0: no throughput)")
    ap.add_argument("--baseline-stride", type=int, default=8, help="baseline takes every Nth frame (default 8)")
    ap.add_argument("--latency-scenes", default=",".join(LATENCY_SCENES))
    ap.add_argument("--latency-lightings", default=",".join(LIGHTINGS))
    ap.add_argument("--latency-seeds", type=int, default=3, help="latency seeds 0..N-1 (default 3; 0: no latency)")
    ap.add_argument(
        "--min-face-px",
        type=int,
        default=None,
        help=f"ours' min_face_px and the baseline variant's (default {SETTINGS.min_face_px}, the pipeline's)",
    )
    ap.add_argument(
        "--model",
        default=EmbeddingModel.DLIB_RESNET_V1.value,
        choices=[m.value for m in EmbeddingModel],
        help="ours' face model (docs/face-models.md)",
    )
    ap.add_argument("--plot", type=Path, default=DOCS / "gate_vision.png")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = ap.parse_args(argv)
    if args.quick:
        args.scenes, args.lightings, args.seeds = "resident_approach,empty", "day", 1
        args.baseline_stride = max(args.baseline_stride, 10)
        args.latency_scenes, args.latency_lightings, args.latency_seeds = "resident_approach", "day,night", 1
    for name in [*args.scenes.split(","), *args.latency_scenes.split(",")]:
        if name not in SCENES:
            ap.error(f"unknown scene {name}")
    if args.min_face_px is not None:
        SETTINGS = replace(SETTINGS, min_face_px=args.min_face_px)
        MIN_FACE_PX = args.min_face_px
        print(f"ours: min_face_px={MIN_FACE_PX} (not the default)")
    model = EmbeddingModel(args.model)
    SETTINGS = replace(SETTINGS, threshold=MATCH_THRESHOLD[model])
    started = time.perf_counter()
    print_machine()
    print(f"ours: face model {model.value}, threshold {SETTINGS.threshold:.2f}")
    engine = engine_for(model)
    index = ours_gallery(engine)
    naive = naive_gallery()
    # warm both up (first calls allocate)
    warm = build_scene("resident_approach", seed=99)
    frame = warm.render(200)[0]
    pipe = make_pipeline(engine, index)
    for i in range(190, 200):
        pipe.process(warm.render(i)[0], BASE_T + i / 25)
    naive_frame(frame, naive)

    runs: list[tuple[Run, Run]] = []
    for seed in range(args.seeds):
        for lighting in args.lightings.split(","):
            for name in args.scenes.split(","):
                scene = build_scene(name, lighting=lighting, seed=seed)
                o, b = throughput_scene(scene, engine, index, naive, args.baseline_stride)
                print(
                    f"throughput {name}/{lighting}/{seed}: ours {o.fps:.1f} fps ({o.frames} frames), "
                    f"baseline {b.fps:.2f} fps ({b.frames} frames)  [{time.perf_counter() - started:.0f} s]",
                    flush=True,
                )
                runs.append((o, b))
    stats = {s: LiveStats() for s in ("ours", "baseline", f"baseline >={MIN_FACE_PX}px")}
    decisions: list[Decision] = []
    for seed in range(args.latency_seeds):
        for lighting in args.latency_lightings.split(","):
            for name in args.latency_scenes.split(","):
                scene = build_scene(name, lighting=lighting, seed=seed)
                ds = latency_scene(scene, engine, index, naive, stats)
                decisions.extend(ds)
                brief = ", ".join(
                    f"{d.system}:{d.identity}={fmt_ms(d.latency_ms if d.latency_ms is not None else float('nan'))}"
                    for d in ds
                )
                print(f"latency {name}/{lighting}/{seed}: {brief}  [{time.perf_counter() - started:.0f} s]", flush=True)

    tp = report_throughput(runs, args.baseline_stride) if runs else {}
    lat = report_latency(decisions, stats) if decisions else {}
    elapsed = time.perf_counter() - started
    print_load()
    print(f"\nrun took {elapsed:.0f} s")
    if not args.no_plot and runs and decisions:
        plot(runs, decisions, args.plot)
        print(f"wrote {args.plot}")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"machine": machine(), "args": vars(args), "throughput": tp, "latency": lat}, default=str)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
