"""Read side: who sees which orders, and the supervision figures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from statistics import mean

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

from cloud.db.models import User, WorkOrder
from sc.config.schema import SiteConfig

from .states import Role

__all__ = ["GROUPINGS", "can_see", "stats", "visible"]


def _grids_of(site: SiteConfig, user_id: str) -> list[str]:
    return next((w.grids for w in site.workers if w.id == user_id), [])


def visible(site: SiteConfig, user: User) -> ColumnElement[bool]:
    """The SQL condition for the orders ``user`` may see."""
    role = Role(user.role)
    if role in (Role.OPERATOR, Role.ADMIN):
        return true()
    if role is Role.DEPARTMENT:
        return WorkOrder.department == user.department if user.department else false()
    if role is Role.GRID_WORKER:
        grids = _grids_of(site, user.id)
        return or_(
            WorkOrder.assignee == user.id,
            WorkOrder.grid.in_(grids),
            WorkOrder.community.in_(grids),
            WorkOrder.street.in_(grids),
            WorkOrder.escalated_to.in_(grids),
        )
    if role is Role.RESIDENT:
        return WorkOrder.reporter == user.id
    return false()


def can_see(session: Session, site: SiteConfig, user: User, order_id: int) -> WorkOrder | None:
    q = select(WorkOrder).where(WorkOrder.id == order_id, visible(site, user))
    return session.execute(q).scalar_one_or_none()


def _property_company(site: SiteConfig) -> Callable[[WorkOrder], str]:
    by_community = {c.id: c.property_company or "(none)" for c in site.street.communities}
    return lambda o: by_community.get(o.community or "", "(none)")


GROUPINGS: dict[str, Callable[[SiteConfig], Callable[[WorkOrder], str]]] = {
    "department": lambda site: lambda o: o.department,
    "grid": lambda site: lambda o: o.grid or "(none)",
    "community": lambda site: lambda o: o.community or "(none)",
    "property_company": _property_company,
    "category": lambda site: lambda o: o.category,
}


def _minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _avg(values: list[float]) -> float | None:
    return round(mean(values), 2) if values else None


def _figures(key: str, orders: list[WorkOrder]) -> dict[str, object]:
    response = [_minutes(o.created_at, o.responded_at) for o in orders if o.responded_at]
    done = [(o, o.resolved_at or o.closed_at) for o in orders]
    resolution = [(o, t) for o, t in done if t is not None]
    rated = [o.rating for o in orders if o.rating is not None]
    return {
        "key": key,
        "orders": len(orders),
        "responded": len(response),
        "resolved": len(resolution),
        "closed": sum(1 for o in orders if o.closed_at),
        "avg_response_min": _avg(response),
        "avg_resolution_min": _avg([_minutes(o.created_at, t) for o, t in resolution]),
        # deadlines met out of all orders: one still waiting past its deadline counts as missed
        "response_deadline_met_pct": _pct(
            sum(1 for o in orders if o.responded_at and o.responded_at <= o.respond_by), len(orders)
        ),
        "resolution_deadline_met_pct": _pct(sum(1 for o, t in resolution if t <= o.resolve_by), len(orders)),
        "escalated": sum(1 for o in orders if o.escalation_level > 0),
        "reopen_rate_pct": _pct(sum(1 for o in orders if o.reopen_count > 0), len(orders)),
        "avg_rating": _avg([float(r) for r in rated]),
        "ratings": len(rated),
    }


def stats(
    session: Session, *, site: SiteConfig, since: datetime, until: datetime, by: str, user: User
) -> list[dict[str, object]]:
    """Supervision figures for the orders opened in [since, until) that ``user`` may see, grouped by ``by``."""
    key = GROUPINGS[by](site)
    q = select(WorkOrder).where(WorkOrder.created_at >= since, WorkOrder.created_at < until, visible(site, user))
    groups: dict[str, list[WorkOrder]] = defaultdict(list)
    for o in session.execute(q).scalars():
        groups[key(o)].append(o)
    return [_figures(k, groups[k]) for k in sorted(groups)]
