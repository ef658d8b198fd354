#!/usr/bin/env python3
"""Gallery search benchmark: one query against 1k, 10k and 50k enrolled faces, ours beside the way
face_recognition users search, single core, in one run.

    .venv/bin/python bench/gallery_search.py [--sizes 1000,10000,50000] [--queries 300] [--quick]

The process pins itself to one core (``SC_BENCH_CORE``, default 0) and sets OMP/OpenBLAS to one
thread before numpy is imported. The gallery is random unit vectors (128-d; the timing does not
depend on what the vectors hold). Queries: half random unit vectors, half a gallery vector plus
noise (a resident seen again, re-normalised).

* ``ours``        ``GalleryIndex.search``: the N x 128 float32 matrix of unit vectors, one
                  matrix-vector product, the best two by ``argpartition``;
* ``README``      face_recognition's README loop: known encodings kept as a Python list of float64
                  arrays, ``compare_faces(known, q)`` then ``face_distance(known, q)`` and ``argmin``
                  (each call turns the list into an array first);
* ``stacked``     ``face_distance(known_array, q)`` + ``argmin`` on an N x 128 float64 array stacked
                  once: the best a face_recognition user gets without changing the maths.

Both baselines must find the same nearest identity as ours; the script counts disagreements (and
exits 1 if any genuine query disagrees).
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
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from edge.gate.gallery import GalleryIndex  # noqa: E402
from vision.faces import EMBEDDING_DIM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_common import machine, print_load, print_machine  # noqa: E402

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass
class Timing:
    system: str
    size: int
    queries: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    agree: int = 0  # same nearest identity as ours
    agree_genuine: int = 0
    genuine: int = 0
    max_gap_disagree: float = 0.0  # for a disagreement: how far apart the two candidates' distances are (ours)
    memory_mb: float = 0.0


def unit(rows: F32) -> F32:
    return np.asarray(rows / np.linalg.norm(rows, axis=-1, keepdims=True), dtype=np.float32)


def time_queries(fn: Callable[[F32], int], queries: F32) -> tuple[list[float], list[int]]:
    for q in queries[:3]:  # warm-up
        fn(q)
    times, found = [], []
    for q in queries:
        t0 = time.perf_counter()
        best = fn(q)
        times.append((time.perf_counter() - t0) * 1000)
        found.append(best)
    return times, found


def run_size(n: int, n_queries: int, n_baseline: int, rng: np.random.Generator) -> list[Timing]:
    import face_recognition

    matrix = unit(rng.standard_normal((n, EMBEDDING_DIM)).astype(np.float32))
    ids = [f"r-{i:06d}" for i in range(n)]
    index = GalleryIndex(ids, [f"resident {i}" for i in range(n)], matrix)
    half = n_queries // 2
    targets = rng.integers(0, n, size=n_queries - half)
    genuine = unit(matrix[targets] + 0.03 * rng.standard_normal((len(targets), EMBEDDING_DIM)).astype(np.float32))
    queries = np.concatenate([unit(rng.standard_normal((half, EMBEDDING_DIM)).astype(np.float32)), genuine])
    is_genuine = np.arange(n_queries) >= half
    pos = {rid: i for i, rid in enumerate(ids)}

    def ours(q: F32) -> int:
        m = index.search(q)
        assert m is not None
        return pos[m.resident]

    known_list: list[F64] = [row.astype(np.float64) for row in matrix]
    known_array: F64 = np.stack(known_list)

    def readme(q: F32) -> int:
        q64 = q.astype(np.float64)
        matches = face_recognition.compare_faces(known_list, q64)
        dists = face_recognition.face_distance(known_list, q64)
        best = int(np.argmin(dists))
        _ = matches[best]  # the README opens the door if this is True
        return best

    def stacked(q: F32) -> int:
        dists = face_recognition.face_distance(known_array, q.astype(np.float64))
        return int(np.argmin(dists))

    out = []
    ours_t, ours_found = time_queries(ours, queries)
    # the baselines take every k-th query (the same ones for both), so a 50k run stays short
    step = max(1, n_queries // n_baseline)
    sel = np.arange(0, n_queries, step)
    mem = {
        "ours": matrix.nbytes / 2**20,
        "README": (sum(sys.getsizeof(a) for a in known_list) + sys.getsizeof(known_list)) / 2**20,
        "stacked": known_array.nbytes / 2**20,
    }
    t = np.asarray(ours_t)
    out.append(
        Timing(
            "ours", n, n_queries, float(t.mean()), float(np.percentile(t, 50)), float(np.percentile(t, 99)),
            n_queries, int(is_genuine.sum()), int(is_genuine.sum()), memory_mb=mem["ours"],
        )
    )  # fmt: skip
    for name, fn in (("README", readme), ("stacked", stacked)):
        times, found = time_queries(fn, queries[sel])
        t = np.asarray(times)
        agree = [found[k] == ours_found[i] for k, i in enumerate(sel)]
        gaps = []
        for k, i in enumerate(sel):
            if not agree[k]:
                d = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * (matrix[[ours_found[i], found[k]]] @ queries[i])))
                gaps.append(float(abs(d[0] - d[1])))
        out.append(
            Timing(
                name, n, len(sel), float(t.mean()), float(np.percentile(t, 50)), float(np.percentile(t, 99)),
                sum(agree), sum(1 for k, i in enumerate(sel) if agree[k] and is_genuine[i]),
                int(is_genuine[sel].sum()), max(gaps, default=0.0), mem[name],
            )
        )  # fmt: skip
    return out


def plot(results: list[Timing], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for system in dict.fromkeys(r.system for r in results):
        rs = [r for r in results if r.system == system]
        ax.plot([r.size for r in rs], [r.p50_ms for r in rs], marker="o", label=f"{system} (p50)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("enrolled faces")
    ax.set_ylabel("ms per query, one core (log)")
    ax.set_title("1:N gallery search")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--queries", type=int, default=400, help="queries for ours per size (default 400)")
    ap.add_argument("--baseline-queries", type=int, default=100, help="of those, how many the baselines run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="100 queries, 40 for the baselines")
    ap.add_argument("--plot", type=Path, default=None, help="also plot ms per query against size (PNG)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.queries, args.baseline_queries = 100, 40
    started = time.perf_counter()
    print_machine()
    rng = np.random.default_rng(args.seed)
    results: list[Timing] = []
    for n in (int(x) for x in args.sizes.split(",")):
        rs = run_size(n, args.queries, args.baseline_queries, rng)
        results.extend(rs)
        print(f"{n}: " + ", ".join(f"{r.system} {r.p50_ms:.3f} ms" for r in rs), flush=True)
    print("\n## 1:N search, ms per query on one core\n")
    print(
        "| enrolled | loop | queries | mean | p50 | p99 | / ours (p50) | same nearest as ours (genuine) | memory MB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    bad = 0
    for r in results:
        ours = next(x for x in results if x.size == r.size and x.system == "ours")
        print(
            f"| {r.size:,} | {r.system} | {r.queries} | {r.mean_ms:.3f} | **{r.p50_ms:.3f}** | {r.p99_ms:.3f} | "
            f"{r.p50_ms / ours.p50_ms:.0f}× | {r.agree}/{r.queries} ({r.agree_genuine}/{r.genuine}) | "
            f"{r.memory_mb:.1f} |"
        )
        bad += r.genuine - r.agree_genuine
    for r in results:
        if r.agree < r.queries:
            print(
                f"{r.system} at {r.size}: {r.queries - r.agree} random queries found another nearest resident; "
                f"the two were at most {r.max_gap_disagree:.2e} apart in distance (float32 vs float64 rounding)"
            )
    print_load()
    print(f"\nrun took {time.perf_counter() - started:.0f} s")
    if args.plot is not None:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "results": [asdict(r) for r in results]}))
    if bad:
        print(f"FAIL: {bad} genuine queries found a different resident than ours")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
