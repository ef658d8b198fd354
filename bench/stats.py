#!/usr/bin/env python3
"""Supervision figures (``GET /api/v1/stats``) at 10k, 100k and 1M work orders: the figures computed in SQL
(one ``GROUP BY``, the period picked by the index on ``created_at``) side by side with the way before (every
order of the period loaded and grouped in Python), in one run, on a fresh PostgreSQL database.

    .venv/bin/python bench/stats.py [--sizes 10000,100000,1000000] [--repeat 5] [--baseline-max 1000000]

Orders are spread over a year on the example site's departments, grids and communities, made in the database
(``generate_series``). Each size is timed for a 30-day and a 365-day period, grouped by department; the times
are the median of ``--repeat`` runs; the two ways must give the same figures. Sizes above ``--baseline-max`` run
"ours" only. Record results in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from statistics import mean

import psycopg
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parent.parent
from cloud.db.engine import make_engine, migrate  # noqa: E402
from cloud.db.models import User, WorkOrder  # noqa: E402
from cloud.workorders.queries import stats, visible  # noqa: E402
from cloud.workorders.states import Role  # noqa: E402
from sc.config.loader import load_site_config  # noqa: E402
from sc.config.schema import SiteConfig  # noqa: E402

ADMIN = os.environ.get("SC_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
END = datetime(2026, 12, 1, tzinfo=UTC)
OPERATOR = User(id="op", name="op", role=Role.OPERATOR.value, active=True)

FILL = """
INSERT INTO work_orders (source, open_key, device, kind, category, subcategory, severity, status, title,
    description, location, grid, community, street, department, escalation_level, alarm_count, created_at,
    updated_at, respond_by, resolve_by, responded_at, resolved_at, closed_at, reopen_count, rating)
SELECT 'device', 'b' || g, 'd' || (g %% 500), 'smoke_alarm', (ARRAY['fire','device','security'])[1 + g %% 3], 'x',
    'critical', 'closed', '', '', 'hp-b1-u1', (ARRAY['heping-g1','heping-g2','anle-g1'])[1 + g %% 3],
    (ARRAY['heping','heping','anle'])[1 + g %% 3], 'xinhua',
    (ARRAY['anju-property','anle-property','street-fire','heping-grid'])[1 + g %% 4], g %% 3 / 2, 1,
    t, t, t + interval '30 minutes', t + interval '24 hours', t + (g %% 50) * interval '1 minute',
    t + (g %% 900) * interval '1 minute', t + (g %% 1000) * interval '1 minute', g %% 7 / 6,
    CASE WHEN g %% 3 = 0 THEN 1 + g %% 5 END
FROM (SELECT g, %(end)s::timestamptz - (g %% 525600) * interval '1 minute' - (g %% 60) * interval '1 second' AS t
      FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g) AS s
"""


def before(session: Session, site: SiteConfig, since: datetime, until: datetime) -> list[dict[str, object]]:
    """The way before: every order of the period into memory, grouped in Python (by department)."""
    q = select(WorkOrder).where(WorkOrder.created_at >= since, WorkOrder.created_at < until, visible(site, OPERATOR))
    groups: dict[str, list[WorkOrder]] = defaultdict(list)
    for o in session.execute(q).scalars():
        groups[o.department].append(o)
    out = []
    for k in sorted(groups):
        orders = groups[k]
        response = [(o.responded_at - o.created_at).total_seconds() / 60 for o in orders if o.responded_at]
        out.append(
            {"key": k, "orders": len(orders), "avg_response_min": round(mean(response), 2) if response else None}
        )
    return out


@contextmanager
def scratch_database(prefix: str) -> Iterator[tuple[str, Engine]]:
    """A new PostgreSQL database (its URL, an engine on it, migrated), dropped at the end whatever happens."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    try:
        migrate(engine)
        yield url, engine
    finally:
        engine.dispose()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(fn: Callable[[], list[dict[str, object]]], repeat: int) -> tuple[float, list[dict[str, object]]]:
    times: list[float] = []
    result: list[dict[str, object]] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-max", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    site = load_site_config(REPO / "configs" / "site.example.yaml").site
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with scratch_database("sc_bench_stats_") as (url, engine):
        have = 0
        print(f"{'orders':>9} {'period':>7} {'in period':>10} {'before s':>9} {'ours s':>9} {'ratio':>7}")
        for n in sizes:
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(FILL, {"end": END, "start": have + 1, "stop": n})
                c.execute("ANALYZE work_orders")
            have = n
            for days in (30, 365):
                since, until = END - timedelta(days=days), END
                with Session(engine) as s:
                    ours_fn = partial(stats, s, site=site, since=since, until=until, by="department", user=OPERATOR)
                    ours_s, ours = timed(ours_fn, args.repeat)
                    in_period = sum(int(str(g["orders"])) for g in ours)
                    base_txt, ratio = "        -", "      -"
                    if n <= args.baseline_max:
                        base_s, base = timed(partial(before, s, site, since, until), max(1, args.repeat // 2))
                        got = [(g["key"], g["orders"], g["avg_response_min"]) for g in ours]
                        want = [(g["key"], g["orders"], g["avg_response_min"]) for g in base]
                        if got != want:
                            print(f"MISMATCH at {n} orders, {days} days: {got} != {want}", file=sys.stderr)
                            return 1
                        base_txt, ratio = f"{base_s:9.3f}", f"{base_s / ours_s:6.1f}x"
                print(f"{n:>9} {days:>6}d {in_period:>10} {base_txt} {ours_s:9.3f} {ratio}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
