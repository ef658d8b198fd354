"""Gateways and devices with their current state; events they sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import select

from cloud.db.models import DeviceState, EventRow
from cloud.telemetry.history import HistoryError, HistoryUnavailable
from cloud.workorders.states import Role
from sc.contracts.messages import RECORD_KINDS

from ..deps import CtxDep, CurrentUser, ScopesDep, SessionDep, is_gate_staff, require
from ..schemas import DevicePublic, DeviceReadings, EventPublic

router = APIRouter(prefix="/api/v1", tags=["devices and events"])
# residents see their own reports only; everyone else watches devices
Staff = Depends(require(Role.OPERATOR, Role.ADMIN, Role.GRID_WORKER, Role.DEPARTMENT))


def _public(ctx: CtxDep, row: DeviceState) -> DevicePublic:
    d = DevicePublic.model_validate(row)
    for gw in ctx.site.gateways:
        if gw.id == row.id:
            return d.model_copy(update={"location": gw.location, "type": f"gateway:{gw.role.value}"})
        for dev in gw.devices:
            if dev.id == row.id:
                return d.model_copy(update={"location": dev.location, "type": dev.type.value})
    return d


@router.get("/devices", response_model=list[DevicePublic], dependencies=[Staff], summary="Gateways and devices")
def list_devices(
    ctx: CtxDep,
    session: SessionDep,
    user: CurrentUser,
    scopes: ScopesDep,
    gateway: str | None = None,
    online: bool | None = None,
    type_: Annotated[str | None, Query(alias="type", description="smoke, manhole, bin or gateway")] = None,
) -> list[DevicePublic]:
    """The devices in your part of the community (docs/security.md: a grid worker's grids, a department's
    communities; the control room: all)."""
    q = select(DeviceState).where(scopes.device_filter(user, DeviceState.id))
    q = q.order_by(DeviceState.gateway, DeviceState.id)
    if gateway is not None:
        q = q.where(DeviceState.gateway == gateway)
    if online is not None:
        q = q.where(DeviceState.online.is_(online))
    out = [_public(ctx, r) for r in session.execute(q).scalars()]
    if type_ is not None:
        out = [d for d in out if (d.type or "").split(":")[0] == type_]
    return out


@router.get("/devices/{device_id}", response_model=DevicePublic, dependencies=[Staff])
def get_device(device_id: str, ctx: CtxDep, session: SessionDep, user: CurrentUser, scopes: ScopesDep) -> DevicePublic:
    row = session.get(DeviceState, device_id) if scopes.covers(user, device_id) else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r} has reported yet")
    return _public(ctx, row)


@router.get(
    "/devices/{device_id}/readings",
    response_model=DeviceReadings,
    dependencies=[Staff],
    summary="A device's readings over time, downsampled for a chart",
)
def device_readings(
    device_id: str,
    ctx: CtxDep,
    user: CurrentUser,
    scopes: ScopesDep,
    since: Annotated[datetime | None, Query(description="default: 24 h before until")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
    field: Annotated[list[str] | None, Query(description="only these fields (repeat it); default: all")] = None,
    points: Annotated[int, Query(ge=10, le=2000, description="at most this many points per field")] = 300,
) -> DeviceReadings:
    """Readings stored in InfluxDB in [since, until): the mean of each numeric field per bucket, the max
    of each flag (alarm, fault, lid_open: 1 when set at any time in the bucket). No readings: no series."""
    if not scopes.covers(user, device_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r} in your part of the community")
    if ctx.telemetry is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "readings are not available: this API process has no InfluxDB 1.x configured (--influx-url)",
        )
    for name, t in (("since", since), ("until", until)):
        if t is not None and t.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} needs a time zone, e.g. ...Z")
    until = until or ctx.clock()
    since = since or until - timedelta(hours=24)
    if since >= until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since must be before until")
    try:
        history = ctx.telemetry.query(device=device_id, since=since, until=until, points=points, fields=field)
    except HistoryUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    except HistoryError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from exc
    except ValueError as exc:  # an unknown field
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return DeviceReadings.model_validate(history)


@router.get("/events", response_model=list[EventPublic], dependencies=[Staff], summary="Events, newest first")
def list_events(
    ctx: CtxDep,
    session: SessionDep,
    user: CurrentUser,
    scopes: ScopesDep,
    device: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[EventPublic]:
    """Events of the devices in your part of the community; who entered a gate (entry, entry_refused) only for
    gate staff (the control room and the property company's people: /entries is theirs)."""
    q = select(EventRow).where(scopes.device_filter(user, EventRow.device))
    if not is_gate_staff(ctx.site, user):
        q = q.where(EventRow.kind.not_in(sorted(k.value for k in RECORD_KINDS)))
    q = q.order_by(EventRow.received_at.desc()).limit(limit)
    if device is not None:
        q = q.where(EventRow.device == device)
    if kind is not None:
        q = q.where(EventRow.kind == kind)
    if since is not None:
        if since.tzinfo is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since needs a time zone, e.g. ...Z")
        q = q.where(EventRow.received_at >= since)
    return [EventPublic.model_validate(e) for e in session.execute(q).scalars()]
