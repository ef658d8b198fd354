"""Supervision figures computed in SQL (issue 13, finding 9) agree with the definition, on SQLite and PostgreSQL.

The reference below is the definition of each figure in plain Python over the same orders (what the API used to
compute by loading every order of the period into memory)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cloud.db.engine import make_sessions
from cloud.db.models import User, WorkOrder
from cloud.workorders.queries import GROUPINGS, stats
from cloud.workorders.states import Role
from sc.config.loader import load_site_config

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "site.example.yaml"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
OPERATOR = User(id="op", name="op", role=Role.OPERATOR.value, active=True)


def make_orders(engine: Engine, n: int, seed: int) -> None:
    rng = random.Random(seed)
    communities = [("heping", "heping-g1"), ("heping", "heping-g2"), ("anle", "anle-g1"), (None, None)]
    rows = []
    for i in range(n):
        created = T0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 20))
        community, grid = rng.choice(communities)

        def later(p: float, lo: int = 1, hi: int = 600, base: datetime = created) -> datetime | None:
            if rng.random() >= p:
                return None
            return base + timedelta(minutes=rng.randrange(lo, hi), seconds=rng.randrange(60))

        responded, resolved = later(0.8), later(0.5, 30, 3000)
        closed = (resolved + timedelta(minutes=5)) if resolved and rng.random() < 0.7 else later(0.1, 60, 4000)
        rows.append(
            WorkOrder(
                source="device",
                open_key=f"k{seed}-{i}",
                device=f"d{i % 7}",
                kind="smoke_alarm",
                category=rng.choice(["fire", "device", "security"]),
                subcategory="x",
                severity="critical",
                status="closed" if closed else "dispatched",
                location=grid or "xinhua",
                grid=grid,
                community=community,
                street="xinhua",
                department=rng.choice(["anju-property", "street-fire"]),
                created_at=created,
                updated_at=created,
                respond_by=created + timedelta(minutes=rng.choice([5, 30])),
                resolve_by=created + timedelta(hours=rng.choice([2, 24])),
                responded_at=responded,
                resolved_at=resolved,
                closed_at=closed,
                escalation_level=rng.choice([0, 0, 0, 1, 2]),
                reopen_count=rng.choice([0, 0, 0, 1]),
                rating=rng.choice([None, None, 1, 3, 5]),
            )
        )
    with make_sessions(engine).begin() as s:
        s.add_all(rows)


def reference(orders: list[WorkOrder], key: str) -> dict[str, object]:
    def minutes(a: datetime, b: datetime) -> float:
        return (b - a).total_seconds() / 60

    def pct(part: int, whole: int) -> float | None:
        return round(100 * part / whole, 1) if whole else None

    def avg(xs: list[float]) -> float | None:
        return round(mean(xs), 2) if xs else None

    done = [(o, o.resolved_at or o.closed_at) for o in orders]
    resolution = [(o, t) for o, t in done if t is not None]
    response = [minutes(o.created_at, o.responded_at) for o in orders if o.responded_at]
    rated = [o.rating for o in orders if o.rating is not None]
    return {
        "key": key,
        "orders": len(orders),
        "responded": len(response),
        "resolved": len(resolution),
        "closed": sum(1 for o in orders if o.closed_at),
        "avg_response_min": avg(response),
        "avg_resolution_min": avg([minutes(o.created_at, t) for o, t in resolution]),
        "response_deadline_met_pct": pct(
            sum(1 for o in orders if o.responded_at and o.responded_at <= o.respond_by), len(orders)
        ),
        "resolution_deadline_met_pct": pct(sum(1 for o, t in resolution if t <= o.resolve_by), len(orders)),
        "escalated": sum(1 for o in orders if o.escalation_level > 0),
        "reopen_rate_pct": pct(sum(1 for o in orders if o.reopen_count > 0), len(orders)),
        "avg_rating": avg([float(r) for r in rated]),
        "ratings": len(rated),
    }


def group_of(o: WorkOrder, by: str, companies: dict[str, str]) -> str:
    if by == "property_company":
        return companies.get(o.community or "", "(none)")
    value = getattr(o, by)
    return str(value) if value is not None else "(none)"


@pytest.mark.parametrize("by", GROUPINGS)
def test_sql_figures_equal_their_definition(engine: Engine, by: str) -> None:
    site = load_site_config(EXAMPLE).site
    make_orders(engine, 400, seed=7)
    since, until = T0 + timedelta(days=3), T0 + timedelta(days=15)
    with Session(engine) as s:
        got = stats(s, site=site, since=since, until=until, by=by, user=OPERATOR)
        everything = s.query(WorkOrder).all()
    companies = {c.id: c.property_company or "(none)" for c in site.street.communities}
    period = [o for o in everything if since <= o.created_at.replace(tzinfo=UTC) < until]
    groups: dict[str, list[WorkOrder]] = {}
    for o in period:
        groups.setdefault(group_of(o, by, companies), []).append(o)
    want = [reference(groups[k], k) for k in sorted(groups)]
    assert sum(int(str(g["orders"])) for g in got) == len(period) > 100
    for g, w in zip(got, want, strict=True):
        for field in ("avg_response_min", "avg_resolution_min", "avg_rating"):
            a, b = g.pop(field), w.pop(field)
            assert (a is None and b is None) or abs(float(str(a)) - float(str(b))) <= 0.011, (by, g["key"], field)
        assert g == w


def test_nothing_in_the_period_is_no_groups(engine: Engine) -> None:
    site = load_site_config(EXAMPLE).site
    with Session(engine) as s:
        assert stats(s, site=site, since=T0, until=T0 + timedelta(days=1), by="department", user=OPERATOR) == []
