#!/usr/bin/env python3
"""Gate accuracy benchmark: face recognition on the photos (ours beside face_recognition's own
matching), then the whole vision loop on every synthetic scene against its ground truth.

    .venv/bin/python bench/gate_accuracy.py [--quick] [--seeds 2] [--jobs 2] [--baseline-stride 0]

1. **Photos.** Every photo of ``firmware_sim.faces.identities()`` (obama: 3 photos and 2 partial
   faces; biden, hopper, hanks; the six faces of t1.jpg cut out one by one) in a temp folder of
   ``<person>/<photo>``; ours: ``edge.gate.tools.photo_embeddings`` + ``distance_report``
   (leave-one-out mean enrolment, unit vectors, threshold 0.40, and the threshold it proposes).
   Baseline: face_recognition's raw encodings of the same photos, each photo against the nearest
   *other* photo of each person (``compare_faces`` over a list of known encodings), tolerance 0.6.
   Writes docs/gate_distances.png.
2. **Scenes.** Every scene of ``SCENES`` x lighting (day, dusk, night, backlight) x seed through
   ``GatePipeline`` (door line, threshold 0.40, gallery obama + biden as in gate_vision.py) with a
   real pass checker: a key pair made in a temp folder, a pass signed for gate "north" of site
   "test" (one use) shown in ``visitor_qr``, a fresh ``PassLedger`` per scene. Outcomes against
   ``SceneTruth``: grants by face (and whether the face granted was really that resident: who is
   behind a face comes from the per-frame truth), false accepts (separately for the photo and
   screen attacks), strangers reported, tailgating alarms, door-line crossings counted, the pass
   read and granted. ``--baseline-stride N`` also runs the naive face_recognition loop on every
   Nth frame of each scene (its grants only; slow: about 0.35 s a frame).

Scenes are independent and not timed: ``--jobs`` processes share them out.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.gate.gallery import GalleryIndex
from edge.gate.ledger import PassLedger
from edge.gate.passcheck import PassChecker
from edge.gate.pipeline import GatePipeline, VisionSettings
from edge.gate.tools import DistanceReport, distance_report, photo_embeddings
from firmware_sim.faces import identities
from firmware_sim.gatescene import DOOR_INSIDE, DOOR_LINE, LIGHTINGS, SCENES, build_scene
from sc.config.schema import MATCH_THRESHOLD
from sc.contracts.commands import EmbeddingModel
from sc.contracts.messages import EntryMethod
from sc.passes import PassClaims, generate_key, load_private_key, load_public_key, sign_pass
from vision.engines import Engine, engine_for
from vision.faces import load_rgb, normalise

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_common import (
    BASE_T,
    DOCS,
    FR_TOLERANCE,
    Box,
    NaiveGallery,
    machine,
    naive_frame,
    naive_gallery,
    ours_gallery,
    print_load,
    print_machine,
    who,
)

THRESHOLD = VisionSettings().threshold  # dlib's; set to the model's by main()
SITE, GATE, VISITOR = "test", "north", "Li Na"

# --------------------------------------------------------------------------- 1. photos


DLIB = EmbeddingModel.DLIB_RESNET_V1.value


def photo_folder(root: Path, engine: Engine) -> list[str]:
    """``root/<person>/<photo>`` for every identity; notes on what was cut or left out."""
    notes: list[str] = []
    people = identities()
    t1_path = people["t1-0"][0].path
    t1 = load_rgb(str(t1_path))
    boxes = sorted(engine.detect(t1), key=lambda b: b.left)
    if len(boxes) != 6:
        notes.append(f"t1.jpg: {len(boxes)} faces found, 6 expected")
    for person, photos in people.items():
        folder = root / ("obama" if person == "obama-partial" else person)
        folder.mkdir(parents=True, exist_ok=True)
        for ph in photos:
            if person.startswith("t1-"):
                if ph.face_index >= len(boxes):
                    notes.append(f"{person}: no face #{ph.face_index} in t1.jpg")
                    continue
                b = boxes[ph.face_index]
                m = round(0.45 * b.height)
                x0, y0 = max(0, b.left - m), max(0, b.top - m)
                x1, y1 = min(t1.shape[1], b.right + m), min(t1.shape[0], b.bottom + m)
                crop = cv2.cvtColor(np.ascontiguousarray(t1[y0:y1, x0:x1]), cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(folder / f"{person}.png"), crop)
                notes.append(f"{person}: cut {x1 - x0}x{y1 - y0} px from t1.jpg (face {b.width}x{b.height} px)")
            else:
                shutil.copy(ph.path, folder / ph.path.name)
    return notes


@dataclass
class NaiveReport:
    genuine: list[float]
    impostor: list[float]
    skipped: list[str]
    closest: list[tuple[float, str, str]] = field(default_factory=list)  # the nearest impostor pairs


def ours_closest(people: dict[str, list[npt.NDArray[np.float32]]], n: int = 3) -> list[tuple[float, str, str]]:
    """The nearest impostor pairs as ``distance_report`` measures them: a photo against another person's mean."""
    pairs = []
    for person, vecs in people.items():
        for i, v in enumerate(vecs):
            for other, ovecs in people.items():
                if other != person:
                    ref = normalise(np.mean(np.stack(ovecs), axis=0).astype(np.float32))
                    pairs.append((float(np.linalg.norm(v - ref)), f"{person}#{i}", other))
    return sorted(pairs)[:n]


def naive_photo_report(root: Path) -> NaiveReport:
    """face_recognition on the same photos: each photo against the nearest other photo of each person."""
    import face_recognition

    encs: dict[str, list[npt.NDArray[np.float64]]] = {}
    skipped: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for photo in sorted(folder.iterdir()):
            img = face_recognition.load_image_file(str(photo))
            locs = face_recognition.face_locations(img)
            if not locs:
                skipped.append(f"{folder.name}/{photo.name}: no face")
                continue
            big = max(locs, key=lambda loc: loc[2] - loc[0])  # the biggest face (a crop may hold a neighbour's edge)
            encs.setdefault(folder.name, []).append(np.asarray(face_recognition.face_encodings(img, [big])[0]))
    genuine: list[float] = []
    impostor: list[float] = []
    pairs: list[tuple[float, str, str]] = []
    for person, vecs in encs.items():
        for i, v in enumerate(vecs):
            others = [u for j, u in enumerate(vecs) if j != i]
            if others:
                genuine.append(float(np.min(face_recognition.face_distance(others, v))))
            for other, ovecs in encs.items():
                if other != person:
                    impostor.append(float(np.min(face_recognition.face_distance(ovecs, v))))
                    pairs.append((impostor[-1], f"{person}#{i}", other))
    return NaiveReport(genuine, impostor, skipped, sorted(pairs)[:3])


def rates(genuine: list[float], impostor: list[float], thr: float) -> tuple[float, float]:
    g, im = np.asarray(genuine), np.asarray(impostor)
    tar = float(np.mean(g <= thr)) if g.size else float("nan")
    far = float(np.mean(im <= thr)) if im.size else float("nan")
    return tar, far


def report_photos(
    ours: DistanceReport,
    per_person: dict[str, int],
    naive: NaiveReport,
    notes: list[str],
    closest: list[tuple[float, str, str]],
) -> None:
    print("\n## Photos: genuine and impostor distances\n")
    for n in notes:
        print(f"- {n}")
    print(f"- photos embedded by ours: {', '.join(f'{k} {v}' for k, v in per_person.items())}")
    if naive.skipped:
        print(f"- face_recognition found no face in: {', '.join(naive.skipped)}")
    print()
    print(
        "| system | threshold | genuine pairs | genuine p50 / max | impostor pairs | impostor min / p50 | TAR | FAR |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")

    def row(name: str, thr_name: str, g: list[float], im: list[float], thr: float) -> None:
        tar, far = rates(g, im, thr)
        print(
            f"| {name} | {thr_name} {thr:.2f} | {len(g)} | {np.median(g):.3f} / {max(g):.3f} | {len(im)} | "
            f"{min(im):.3f} / {np.median(im):.3f} | {tar:.2f} | {far:.3f} |"
        )

    row("ours (unit vectors, mean enrolment)", "configured", ours.genuine, ours.impostor, THRESHOLD)
    row("ours (unit vectors, mean enrolment)", "proposed", ours.genuine, ours.impostor, ours.proposed)
    row("baseline (face_recognition, nearest photo)", "tolerance", naive.genuine, naive.impostor, FR_TOLERANCE)
    margin_ours = min(ours.impostor) - max(ours.genuine)
    margin_naive = min(naive.impostor) - max(naive.genuine)
    print(
        f"\ngap between the worst genuine and the closest impostor: ours {margin_ours:.3f} "
        f"(threshold {THRESHOLD:.2f} sits {THRESHOLD - max(ours.genuine):.3f} above the worst genuine and "
        f"{min(ours.impostor) - THRESHOLD:.3f} below the closest impostor); baseline {margin_naive:.3f} "
        f"(0.6 sits {min(naive.impostor) - FR_TOLERANCE:.3f} below its closest impostor)"
    )

    def names(ps: list[tuple[float, str, str]]) -> str:
        return ", ".join(f"{a} vs {b} {d:.3f}" for d, a, b in ps)

    print(f"closest impostors (photo #i of a person, files in name order): ours {names(closest)}; ", end="")
    print(f"baseline {names(naive.closest)}")


def plot_photos(ours: DistanceReport, naive: NaiveReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.8), dpi=110)
    bins = np.linspace(0, 1.2, 61).tolist()
    for ax, g, im, lines, title in (
        (
            a1,
            ours.genuine,
            ours.impostor,
            [(THRESHOLD, "r", ":", f"configured {THRESHOLD:.2f}"), (ours.proposed, "k", "--", "proposed")],
            "ours: unit embeddings, mean of a resident's photos",
        ),
        (
            a2,
            naive.genuine,
            naive.impostor,
            [(FR_TOLERANCE, "r", ":", f"tolerance {FR_TOLERANCE}")],
            "baseline: face_recognition raw encodings, nearest photo",
        ),
    ):
        ax.hist(g, bins=bins, alpha=0.7, label=f"same person (n={len(g)})")
        ax.hist(im, bins=bins, alpha=0.7, label=f"different people (n={len(im)})")
        for x, c, ls, label in lines:
            ax.axvline(x, color=c, linestyle=ls, label=f"{label} = {x:.2f}")
        ax.set_xlabel("distance")
        ax.set_ylabel("pairs")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- 2. scenes


@dataclass
class SceneResult:
    name: str
    lighting: str
    seed: int
    frames: int
    expected: list[str]
    expect_tailgating: bool
    expect_stranger: bool
    attack: bool
    truth_in: int
    truth_out: int
    face_grants: list[tuple[str, str, str]] = field(default_factory=list)  # claimed, true identity, true role
    face_refused: list[tuple[str, str, str]] = field(default_factory=list)  # claimed, reason, true identity
    unknown: int = 0
    strangers: int = 0
    tailgating: int = 0
    counted_in: int = 0
    counted_out: int = 0
    pass_grants: list[str] = field(default_factory=list)
    pass_refused: list[str] = field(default_factory=list)
    qr_scans: int = 0
    naive_grants: list[tuple[str, str, str]] | None = None


_W: dict[str, Any] = {}


def _init_worker(
    token: str, pub: str, tmp: str, baseline_stride: int, min_face_px: int | None = None, model: str = DLIB
) -> None:
    engine = engine_for(EmbeddingModel(model))
    _W["threshold"] = MATCH_THRESHOLD[EmbeddingModel(model)]
    _W.update(engine=engine, index=ours_gallery(engine), token=token, pub=load_public_key(Path(pub)), tmp=Path(tmp))
    _W["stride"] = baseline_stride
    _W["min_face_px"] = min_face_px
    _W["naive"] = naive_gallery() if baseline_stride > 0 else None


def run_scene(job: tuple[str, str, int]) -> SceneResult:
    name, lighting, seed = job
    engine: Engine = _W["engine"]
    index: GalleryIndex = _W["index"]
    scene = build_scene(name, lighting=lighting, seed=seed, qr_token=_W["token"])
    ledger = PassLedger(_W["tmp"] / f"ledger-{name}-{lighting}-{seed}-{uuid.uuid4().hex[:6]}.db")
    checker = PassChecker(public_key=_W["pub"], site=SITE, gate=GATE, ledger=ledger)
    pipe = GatePipeline(
        settings=VisionSettings(
            threshold=_W["threshold"],
            door_line=DOOR_LINE,
            door_inside=DOOR_INSIDE,
            **({"min_face_px": _W["min_face_px"]} if _W["min_face_px"] else {}),
        ),
        engine=engine,
        gallery=lambda: index,
        passes=checker,
    )
    t = scene.truth
    n_in = sum(1 for c in t.crossings if c.direction == "in")
    r = SceneResult(
        name, lighting, seed, scene.n_frames, list(t.expected_grants), t.expect_tailgating, t.expect_stranger,
        t.attack, n_in, len(t.crossings) - n_in,
    )  # fmt: skip
    stride: int = _W["stride"]
    naive: NaiveGallery | None = _W["naive"]
    naive_seen: list[tuple[str, str, str]] = []
    for i in range(scene.n_frames):
        frame, truth = scene.render(i)
        for o in pipe.process(frame, BASE_T + i / scene.fps):
            tr = pipe.tracker.tracks.get(o.track) if o.track is not None else None
            box: Box = (tr.box.left, tr.box.top, tr.box.right, tr.box.bottom) if tr is not None else (0, 0, 0, 0)
            if o.what == "entry" and o.method is EntryMethod.FACE:
                r.face_grants.append((o.name or "?", *who(box, truth)))
            elif o.what == "entry" and o.method is EntryMethod.PASS:
                r.pass_grants.append(o.person or "?")
            elif o.what == "refused" and o.method is EntryMethod.FACE:
                r.face_refused.append((o.name or "?", o.reason, who(box, truth)[0]))
            elif o.what == "refused":
                r.pass_refused.append(o.reason)
            elif o.what == "unknown":
                r.unknown += 1
            elif o.what == "stranger":
                r.strangers += 1
            elif o.what == "tailgating":
                r.tailgating += 1
            elif o.what == "crossing":
                if o.direction == "in":
                    r.counted_in += o.people or 1
                else:
                    r.counted_out += o.people or 1
        if naive is not None and i % stride == 0:
            for claimed, nbox, _ in naive_frame(frame, naive):
                g = (claimed, *who(nbox, truth))
                if g not in naive_seen:
                    naive_seen.append(g)
    if naive is not None:
        r.naive_grants = naive_seen
    r.qr_scans = pipe.stats.qr_scans
    ledger.close()
    return r


def false_accepts(grants: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return [g for g in grants if g[2] != "resident" or g[0] != g[1]]


def good_grants(r: SceneResult, grants: Iterable[tuple[str, str, str]]) -> int:
    got = {g[1] for g in grants if g[2] == "resident" and g[0] == g[1]}
    return sum(1 for e in r.expected if e in got)


def summarise(rs: list[SceneResult]) -> dict[str, Any]:
    expected = sum(len(r.expected) for r in rs)
    ta = sum(good_grants(r, r.face_grants) for r in rs)
    attack = {k: [r for r in rs if r.name == k] for k in ("photo_attack", "screen_attack")}
    fa_other = sum(len(false_accepts(r.face_grants)) for r in rs if not r.attack)
    dup = sum(max(0, len(r.face_grants) - len(r.expected)) for r in rs if not r.attack)
    stranger_scenes = [r for r in rs if r.expect_stranger]
    tg_tp = sum(1 for r in rs if r.expect_tailgating and r.tailgating)
    tg_fp = sum(1 for r in rs if not r.expect_tailgating and r.tailgating)
    tg_fn = sum(1 for r in rs if r.expect_tailgating and not r.tailgating)
    cross_err = [abs(r.counted_in - r.truth_in) + abs(r.counted_out - r.truth_out) for r in rs]
    qr = [r for r in rs if r.name == "visitor_qr"]
    out: dict[str, Any] = {
        "scenes": len(rs),
        "expected_grants": expected,
        "true_accepts": ta,
        "false_accepts_non_attack": fa_other,
        "extra_grants_non_attack": dup,
        "attacks": {
            k: {
                "scenes": len(v),
                "granted": sum(1 for r in v if r.face_grants),
                "refused_liveness": sum(1 for r in v if r.face_refused and not r.face_grants),
            }
            for k, v in attack.items()
        },
        "stranger_reported": (sum(1 for r in stranger_scenes if r.strangers), len(stranger_scenes)),
        "stranger_false_reports": sum(r.strangers for r in rs if not r.expect_stranger),
        "tailgating": {"tp": tg_tp, "fp": tg_fp, "fn": tg_fn},
        "crossings": {
            "truth": sum(r.truth_in + r.truth_out for r in rs),
            "counted": sum(r.counted_in + r.counted_out for r in rs),
            "abs_error": sum(cross_err),
            "scenes_exact": sum(1 for e in cross_err if e == 0),
        },
        "qr": (sum(1 for r in qr if f"visitor:{VISITOR}" in r.pass_grants), len(qr)),
    }
    if all(r.naive_grants is not None for r in rs):
        ng = [r.naive_grants or [] for r in rs]
        out["baseline"] = {
            "true_accepts": sum(good_grants(r, g) for r, g in zip(rs, ng, strict=True)),
            "false_accepts_non_attack": sum(len(false_accepts(g)) for r, g in zip(rs, ng, strict=True) if not r.attack),
            "attacks_granted": {k: sum(1 for r, g in zip(rs, ng, strict=True) if r.name == k and g) for k in attack},
        }
    return out


def ratio(a: int, b: int) -> str:
    return f"{a}/{b}" if b else "–"


def report_scenes(results: list[SceneResult]) -> dict[str, Any]:
    lights = [lt for lt in LIGHTINGS if any(r.lighting == lt for r in results)]
    groups = {lt: [r for r in results if r.lighting == lt] for lt in lights}
    groups["all"] = results
    summ = {k: summarise(v) for k, v in groups.items()}
    seeds = sorted({r.seed for r in results})
    print(f"\n## Scenes: {len(SCENES)} scenes x {len(lights)} lightings x seeds {seeds} ({len(results)} runs)\n")
    print(
        "| lighting | residents let in (face) | false accepts (no attack) | photo attack let in | "
        "screen attack let in | attacks refused (liveness) | stranger reported | false stranger reports | "
        "tailgating alarms: precision / recall | crossings: counted / true (scenes exact) | pass read and granted |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, s in summ.items():
        tg = s["tailgating"]
        prec = ratio(tg["tp"], tg["tp"] + tg["fp"])
        rec = ratio(tg["tp"], tg["tp"] + tg["fn"])
        at = s["attacks"]
        refused = sum(v["refused_liveness"] for v in at.values())
        n_att = sum(v["scenes"] for v in at.values())
        cr = s["crossings"]
        print(
            f"| {'**all**' if k == 'all' else k} | {ratio(s['true_accepts'], s['expected_grants'])} | "
            f"{s['false_accepts_non_attack']} | {ratio(at['photo_attack']['granted'], at['photo_attack']['scenes'])} | "
            f"{ratio(at['screen_attack']['granted'], at['screen_attack']['scenes'])} | {ratio(refused, n_att)} | "
            f"{ratio(*s['stranger_reported'])} | {s['stranger_false_reports']} | {prec} / {rec} | "
            f"{cr['counted']} / {cr['truth']} ({cr['scenes_exact']}/{s['scenes']}) | {ratio(*s['qr'])} |"
        )
    if "baseline" in summ["all"]:
        print("\nbaseline (naive face_recognition loop on every Nth frame), grants only:\n")
        print(
            "| lighting | residents let in | false accepts (no attack) | photo attack let in | screen attack let in |"
        )
        print("|---|---:|---:|---:|---:|")
        for k, s in summ.items():
            b, at = s["baseline"], s["attacks"]
            print(
                f"| {k} | {ratio(b['true_accepts'], s['expected_grants'])} | {b['false_accepts_non_attack']} | "
                f"{ratio(b['attacks_granted']['photo_attack'], at['photo_attack']['scenes'])} | "
                f"{ratio(b['attacks_granted']['screen_attack'], at['screen_attack']['scenes'])} |"
            )
    print("\nper scene (summed over lightings and seeds):\n")
    print(
        "| scene | runs | expected grants made | grants by face | false accepts | refused (liveness) | unknown | "
        "strangers reported | tailgating alarms | crossings counted / true | pass grants / refusals |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in SCENES:
        rs = [r for r in results if r.name == name]
        if not rs:
            continue
        made = sum(good_grants(r, r.face_grants) for r in rs)
        print(
            f"| {name} | {len(rs)} | {ratio(made, sum(len(r.expected) for r in rs))} | "
            f"{sum(len(r.face_grants) for r in rs)} | {sum(len(false_accepts(r.face_grants)) for r in rs)} | "
            f"{sum(len(r.face_refused) for r in rs)} | {sum(r.unknown for r in rs)} | {sum(r.strangers for r in rs)} | "
            f"{sum(r.tailgating for r in rs)} | {sum(r.counted_in + r.counted_out for r in rs)} / "
            f"{sum(r.truth_in + r.truth_out for r in rs)} | {sum(len(r.pass_grants) for r in rs)} / "
            f"{sum(len(r.pass_refused) for r in rs)} |"
        )
    print("\nwhat went wrong, run by run:\n")
    n_bad = 0
    for r in results:
        problems = []
        missing = [
            e for e in r.expected if e not in {g[1] for g in r.face_grants if g[2] == "resident" and g[0] == g[1]}
        ]
        if missing:
            problems.append(f"not let in: {', '.join(missing)}")
        fa = false_accepts(r.face_grants)
        if fa:
            problems.append(f"FALSE ACCEPT: {fa}")
        if len(r.face_grants) > len(r.expected) and not fa:
            problems.append(f"{len(r.face_grants)} face grants for {len(r.expected)} expected")
        if r.expect_tailgating != bool(r.tailgating):
            problems.append(f"tailgating alarms {r.tailgating}, expected {'one' if r.expect_tailgating else 'none'}")
        if r.expect_stranger and not r.strangers:
            problems.append("stranger not reported")
        if not r.expect_stranger and r.strangers:
            problems.append(f"{r.strangers} stranger report(s)")
        if (r.counted_in, r.counted_out) != (r.truth_in, r.truth_out):
            problems.append(f"crossings in/out {r.counted_in}/{r.counted_out}, true {r.truth_in}/{r.truth_out}")
        if r.name == "visitor_qr" and f"visitor:{VISITOR}" not in r.pass_grants:
            problems.append(f"pass not granted (scans {r.qr_scans}, refusals {r.pass_refused})")
        if r.attack and not r.face_refused and not r.face_grants:
            problems.append("attack neither let in nor refused (treated as unknown)")
        if problems:
            n_bad += 1
            print(f"- {r.name}/{r.lighting}/{r.seed}: " + "; ".join(problems))
    if not n_bad:
        print("- nothing")
    return summ


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="seed 0, day and night only (about 2 minutes on 2 cores)")
    ap.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1 per scene and lighting (default 2)")
    ap.add_argument("--lightings", default=",".join(LIGHTINGS))
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--jobs", type=int, default=min(2, mp.cpu_count()), help="worker processes (default 2)")
    ap.add_argument(
        "--baseline-stride", type=int, default=0, help="also run the naive loop on every Nth frame (0: off, default)"
    )
    ap.add_argument("--min-face-px", type=int, default=None, help="ours' min_face_px (a proposed setting)")
    ap.add_argument(
        "--model",
        default=DLIB,
        choices=[m.value for m in EmbeddingModel],
        help="ours' face model (docs/face-models.md)",
    )
    ap.add_argument("--plot", type=Path, default=DOCS / "gate_distances.png")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.lightings = 1, "day,night"
    for name in args.scenes.split(","):
        if name not in SCENES:
            ap.error(f"unknown scene {name}")
    started = time.perf_counter()
    print_machine()
    global THRESHOLD
    THRESHOLD = MATCH_THRESHOLD[EmbeddingModel(args.model)]
    engine = engine_for(EmbeddingModel(args.model))
    print(f"face model: {args.model}, threshold {THRESHOLD:.2f}")
    with tempfile.TemporaryDirectory(prefix="sc-gate-accuracy-") as tmp_s:
        tmp = Path(tmp_s)
        # 1. photos
        notes = photo_folder(tmp / "people", engine)
        people = photo_embeddings(engine, tmp / "people")
        per_person = {k: len(v) for k, v in people.items()}
        ours = distance_report(people, model=EmbeddingModel(args.model))
        naive = naive_photo_report(tmp / "people")
        report_photos(ours, per_person, naive, notes, ours_closest(people))
        if not args.no_plot:
            plot_photos(ours, naive, args.plot)
            print(f"wrote {args.plot}")
        # 2. scenes
        generate_key(tmp / "pass.key", tmp / "pass.pub")
        claims = PassClaims(
            pid=uuid.uuid4().hex[:16], site=SITE, res="r-101", vis=VISITOR, gates=[GATE],
            nbf=int(BASE_T) - 3600, exp=int(BASE_T) + 86400, uses=1,
        )  # fmt: skip
        token = sign_pass(claims, load_private_key(tmp / "pass.key"))
        jobs = [
            (name, lighting, seed)
            for seed in range(args.seeds)
            for lighting in args.lightings.split(",")
            for name in args.scenes.split(",")
        ]
        results: list[SceneResult] = []
        init = (token, str(tmp / "pass.pub"), str(tmp), args.baseline_stride, args.min_face_px, args.model)
        ctx = mp.get_context("fork")
        with ctx.Pool(args.jobs, initializer=_init_worker, initargs=init) as pool:
            for r in pool.imap_unordered(run_scene, jobs):
                results.append(r)
                print(
                    f"{r.name}/{r.lighting}/{r.seed}: grants {r.face_grants or '-'} pass {r.pass_grants or '-'} "
                    f"tailgating {r.tailgating} strangers {r.strangers} crossings {r.counted_in}/{r.counted_out}  "
                    f"[{len(results)}/{len(jobs)}, {time.perf_counter() - started:.0f} s]",
                    flush=True,
                )
        order = {j: k for k, j in enumerate(jobs)}
        results.sort(key=lambda r: order[(r.name, r.lighting, r.seed)])
        summ = report_scenes(results)
    print_load()
    print(f"\nrun took {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "args": vars(args),
                    "photos": {"ours": ours.to_json(), "baseline": asdict(naive)},
                    "scenes": summ,
                    "runs": [asdict(r) for r in results],
                },
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
