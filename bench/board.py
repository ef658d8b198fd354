#!/usr/bin/env python3
"""The order board's and the wall's query (``GET /api/v1/work-orders?status=<every status in work>&limit=1000``)
at 10k, 100k and 1M work orders, for the control room, a department and a grid worker, on a fresh PostgreSQL
database: the schema as migrated (an index behind every filter: status, department, grid, community, street,
assignee, escalated_to) side by side with the same table without them (the baseline), in one run.

    .venv/bin/python bench/board.py [--sizes 10000,100000,1000000] [--repeat 7]

Orders are made as bench/stats.py makes them (a year of closed orders); one in 200 is still in work, as on a
real site where the board shows the few open ones among many closed. The query is the API's own
(``cloud.workorders.queries.list_query``); times are the median of ``--repeat`` runs; both ways must return
the same orders. Record results in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import END, FILL, scratch_database  # noqa: E402

from cloud.db.models import User  # noqa: E402
from cloud.workorders.queries import list_query  # noqa: E402
from cloud.workorders.states import Role, Status  # noqa: E402
from sc.config.loader import load_site_config  # noqa: E402

IN_WORK = [s.value for s in Status if s is not Status.CLOSED]
FILTER_INDEXES = ["ix_work_orders_status", "ix_work_orders_department", "ix_work_orders_grid",
                  "ix_work_orders_community", "ix_work_orders_assignee"]  # fmt: skip
USERS = {
    "control room": User(id="op", name="op", role=Role.OPERATOR.value, active=True),
    "department": User(id="d", name="d", role=Role.DEPARTMENT.value, department="anju-property", active=True),
    "grid worker": User(id="w-zhang", name="w", role=Role.GRID_WORKER.value, active=True),  # grid heping-g1
}
IN_WORK_SQL = """
UPDATE work_orders SET status = (ARRAY['open','dispatched','accepted','on_site','resolved'])[1 + id %% 5]
WHERE id %% 200 = 0 AND id > %(have)s
"""


def timed(session: Session, q: object, repeat: int) -> tuple[float, list[int]]:
    times, ids = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ids = [o.id for o in session.execute(q).scalars()]  # type: ignore[call-overload]
        times.append(time.perf_counter() - t0)
        session.expunge_all()
    return statistics.median(times), ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    site = load_site_config(REPO / "configs" / "site.example.yaml").site
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with scratch_database("sc_bench_board_") as (url, engine):
        have = 0
        print(f"{'orders':>9} {'in work':>8} {'who':>13} {'shown':>6} {'no index ms':>12} {'ours ms':>9} {'ratio':>7}")
        for n in sizes(args.sizes):
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(FILL, {"end": END, "start": have + 1, "stop": n})
                c.execute(IN_WORK_SQL, {"have": have})
                c.execute("ANALYZE work_orders")
                in_work = c.execute("SELECT count(*) FROM work_orders WHERE status <> 'closed'").fetchone()
            have = n
            for who, user in USERS.items():
                q = list_query(site, user, statuses=IN_WORK, limit=1000)
                with Session(engine) as s:
                    for ix in FILTER_INDEXES:
                        s.execute(text(f"DROP INDEX {ix}"))
                    before_s, before = timed(s, q, args.repeat)
                    s.rollback()  # the indexes are back (the drops were in this transaction)
                    ours_s, ours = timed(s, q, args.repeat)
                if before != ours:
                    print(f"MISMATCH at {n} orders for the {who}", file=sys.stderr)
                    return 1
                print(
                    f"{n:>9} {in_work[0] if in_work else 0:>8} {who:>13} {len(ours):>6} {before_s * 1000:12.1f} "
                    f"{ours_s * 1000:9.1f} {before_s / ours_s:6.1f}x",
                    flush=True,
                )
    return 0


def sizes(text_: str) -> list[int]:
    return [int(x) for x in text_.split(",")]


if __name__ == "__main__":
    raise SystemExit(main())
