"""Read side: who sees which orders, and the supervision figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, false, func, literal, or_, select, true
from sqlalchemy.orm import Session

from cloud.db.models import User, WorkOrder
from sc.config.schema import SiteConfig

from .states import Role

__all__ = ["GROUPINGS", "MAX_STATS_DAYS", "can_see", "list_query", "stats", "visible"]


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


def list_query(
    site: SiteConfig,
    user: User,
    *,
    statuses: Sequence[str] = (),
    department: str | None = None,
    grid: str | None = None,
    assignee: str | None = None,
    category: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> Select[WorkOrder]:
    """The orders ``user`` may see, filtered, newest first: what the board and the wall ask for."""
    q = select(WorkOrder).where(visible(site, user))
    if statuses:
        q = q.where(WorkOrder.status.in_(list(statuses)))
    for column, value in (
        (WorkOrder.department, department),
        (WorkOrder.grid, grid),
        (WorkOrder.assignee, assignee),
        (WorkOrder.category, category),
    ):
        if value is not None:
            q = q.where(column == value)
    return q.order_by(WorkOrder.id.desc()).limit(limit).offset(offset)


def can_see(session: Session, site: SiteConfig, user: User, order_id: int) -> WorkOrder | None:
    q = select(WorkOrder).where(WorkOrder.id == order_id, visible(site, user))
    return session.execute(q).scalar_one_or_none()


#: The longest period one ``stats`` call may cover: its cost grows with the orders in it.
MAX_STATS_DAYS = 400


def _group_key(site: SiteConfig, by: str) -> ColumnElement[str]:
    """The SQL expression of the group an order is in."""
    if by == "department":
        return WorkOrder.department.expression
    if by == "category":
        return WorkOrder.category.expression
    if by == "grid":
        return func.coalesce(WorkOrder.grid, "(none)")
    if by == "community":
        return func.coalesce(WorkOrder.community, "(none)")
    if by == "property_company":
        companies = {c.id: c.property_company or "(none)" for c in site.street.communities}
        if not companies:
            return literal("(none)")
        return case(companies, value=WorkOrder.community, else_=literal("(none)"))
    raise ValueError(f"cannot group by {by!r} (department, grid, community, property_company, category)")


GROUPINGS = ("department", "grid", "community", "property_company", "category")


def _minutes(dialect: str, a: Any, b: Any) -> ColumnElement[Any]:
    """Minutes from ``a`` to ``b`` (SQL; NULL when either is)."""
    if dialect == "sqlite":
        return (func.julianday(b) - func.julianday(a)) * 1440.0
    return func.extract("epoch", b - a) / 60.0


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _round(value: Any, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def stats(
    session: Session, *, site: SiteConfig, since: datetime, until: datetime, by: str, user: User
) -> list[dict[str, object]]:
    """Supervision figures for the orders opened in [since, until) that ``user`` may see, grouped by ``by``:
    one ``GROUP BY`` query (the index on ``created_at`` picks the period), whatever the number of orders."""
    dialect = session.get_bind().dialect.name
    key = _group_key(site, by).label("key")
    done = func.coalesce(WorkOrder.resolved_at, WorkOrder.closed_at)

    def count_if(cond: ColumnElement[bool]) -> ColumnElement[int]:
        return func.sum(case((cond, 1), else_=0))

    q = (
        select(
            key,
            func.count().label("orders"),
            func.count(WorkOrder.responded_at).label("responded"),
            func.count(done).label("resolved"),
            func.count(WorkOrder.closed_at).label("closed"),
            func.avg(_minutes(dialect, WorkOrder.created_at, WorkOrder.responded_at)).label("avg_response"),
            func.avg(_minutes(dialect, WorkOrder.created_at, done)).label("avg_resolution"),
            # deadlines met out of all orders: one still waiting past its deadline counts as missed
            count_if(WorkOrder.responded_at <= WorkOrder.respond_by).label("response_met"),
            count_if(done <= WorkOrder.resolve_by).label("resolution_met"),
            count_if(WorkOrder.escalation_level > 0).label("escalated"),
            count_if(WorkOrder.reopen_count > 0).label("reopened"),
            func.avg(WorkOrder.rating).label("avg_rating"),
            func.count(WorkOrder.rating).label("ratings"),
        )
        .where(WorkOrder.created_at >= since, WorkOrder.created_at < until, visible(site, user))
        .group_by(key)
        .order_by(key)
    )
    out: list[dict[str, object]] = []
    for r in session.execute(q):
        n = int(r.orders)
        out.append(
            {
                "key": r.key,
                "orders": n,
                "responded": int(r.responded),
                "resolved": int(r.resolved),
                "closed": int(r.closed),
                "avg_response_min": _round(r.avg_response, 2),
                "avg_resolution_min": _round(r.avg_resolution, 2),
                "response_deadline_met_pct": _pct(int(r.response_met or 0), n),
                "resolution_deadline_met_pct": _pct(int(r.resolution_met or 0), n),
                "escalated": int(r.escalated or 0),
                "reopen_rate_pct": _pct(int(r.reopened or 0), n),
                "avg_rating": _round(r.avg_rating, 2),
                "ratings": int(r.ratings),
            }
        )
    return out
