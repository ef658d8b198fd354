"""Supervision: response and resolution times, deadlines met, reopen rate, ratings."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status

from cloud.workorders.queries import MAX_STATS_DAYS
from cloud.workorders.queries import stats as compute
from cloud.workorders.states import Role

from ..deps import CtxDep, CurrentUser, SessionDep, require
from ..schemas import GroupStats

router = APIRouter(prefix="/api/v1", tags=["supervision"])


@router.get(
    "/stats",
    response_model=list[GroupStats],
    dependencies=[Depends(require(Role.OPERATOR, Role.ADMIN, Role.DEPARTMENT, Role.GRID_WORKER))],
    summary="Figures for orders opened in a period, per department, grid, community or property company",
)
def get_stats(
    ctx: CtxDep,
    session: SessionDep,
    user: CurrentUser,
    by: Literal["department", "grid", "community", "property_company", "category"] = "department",
    since: Annotated[datetime | None, Query(description="default: 30 days ago")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
) -> list[GroupStats]:
    now = ctx.clock()
    until = until or now
    since = since or until - timedelta(days=30)
    if since.tzinfo is None or until.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since and until need a time zone, e.g. ...Z")
    if since >= until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since must be before until")
    if until - since > timedelta(days=MAX_STATS_DAYS):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"at most {MAX_STATS_DAYS} days at once (asked for {(until - since).days}): split the period",
        )
    rows = compute(session, site=ctx.site, since=since, until=until, by=by, user=user)
    return [GroupStats.model_validate(r) for r in rows]
