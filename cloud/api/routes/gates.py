"""Gates: remote open, the entry records, and the snapshots gate events carry."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import FileResponse

from cloud import audit
from cloud.audit import AuditAction
from cloud.db.models import Entry, EventRow
from cloud.gates.snapshots import snapshot_url
from cloud.gates.store import list_entries
from cloud.gates.sync import GateUnavailable
from cloud.workorders.queries import can_see
from cloud.workorders.states import Role
from sc.contracts.commands import CommandName, DoorOpenArgs

from ..deps import CtxDep, CurrentUser, GateStaff, ScopesDep, SessionDep, is_gate_staff, require
from ..schemas import DoorOpened, EntryPublic

router = APIRouter(prefix="/api/v1", tags=["residents and gates"])
ControlRoom = Depends(require(Role.OPERATOR, Role.ADMIN))


@router.post(
    "/gates/{gate}/open",
    response_model=DoorOpened,
    summary="Open a gate's door once from the control room; waits for the gate's answer",
    responses={
        404: {"description": "no such gate"},
        502: {"description": "the gate answered that it could not open"},
        504: {"description": "the gate did not answer in time, or its gateway is offline"},
    },
)
def open_gate(gate: str, ctx: CtxDep, session: SessionDep, user: Annotated[CurrentUser, ControlRoom]) -> DoorOpened:
    if gate not in {g.id for g in ctx.site.gates}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no gate {gate!r} (known: {[g.id for g in ctx.site.gates]})")
    if ctx.gates is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this API process has no link to the gates")
    timeout = ctx.door_open_timeout_s
    outcome = "not sent"
    try:  # every attempt is in the audit log with what came of it
        try:
            ack = ctx.gates.request(
                gate=gate, name=CommandName.DOOR_OPEN, args=DoorOpenArgs(by=user.id), timeout=timeout
            )
        except GateUnavailable as exc:
            outcome = f"unreachable: {exc}"
            raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, f"gate {gate} cannot be reached: {exc}") from exc
        if ack is None:
            outcome = f"no answer within {timeout:g} s"
            raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, f"gate {gate} did not answer within {timeout:g} s")
        if not ack.ok:
            outcome = f"refused: {ack.error}"
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"gate {gate} could not open: {ack.error}")
        outcome = f"opened (command {ack.id})"
        return DoorOpened(gate=gate, command_id=ack.id, result=ack.result)
    finally:
        audit.record(
            session, actor=user.id, role=user.role, action=AuditAction.DOOR_OPENED, target=gate, at=ctx.clock(),
            outcome=outcome,
        )  # fmt: skip
        session.commit()


def _entry(e: Entry) -> EntryPublic:
    return EntryPublic(
        event_id=e.event_id, gate=e.gate, gateway=e.gateway, ts=e.ts, received_at=e.received_at, kind=e.kind,
        granted=e.granted, method=e.method, person=e.person, distance=e.distance, reason=e.reason,
        snapshot_url=snapshot_url(e.event_id) if e.snapshot else None,
    )  # fmt: skip


@router.get(
    "/entries", response_model=list[EntryPublic], summary="Who came in at the gates (or was refused), newest first"
)
def entries(
    ctx: CtxDep,
    session: SessionDep,
    user: GateStaff,
    scopes: ScopesDep,
    gate: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[EntryPublic]:
    if since is not None and since.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "since needs a time zone, e.g. ...Z")
    mine = scopes.devices(user)  # a property department: its communities' gates only
    rows = [_entry(e) for e in list_entries(session, gate=gate, since=since, limit=limit, gates=mine)]
    audit.record(
        session, actor=user.id, role=user.role, action=AuditAction.ENTRIES_VIEWED, target=gate or "(all gates)",
        at=ctx.clock(), outcome=f"{len(rows)} entries" + (f" since {since.isoformat()}" if since else ""),
    )  # fmt: skip
    session.commit()
    return rows


@router.get(
    "/snapshots/{event_id}.jpg",
    response_class=FileResponse,
    summary="The JPEG a gate event carried (control room and property staff; others: of an order they may see)",
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no snapshot that you may see"}},
)
def snapshot(event_id: str, ctx: CtxDep, session: SessionDep, user: CurrentUser, scopes: ScopesDep) -> FileResponse:
    row = session.get(EventRow, event_id)
    missing = HTTPException(status.HTTP_404_NOT_FOUND, f"no snapshot of event {event_id!r} that you may see")
    if row is None or row.snapshot is None:
        raise missing
    allowed = (is_gate_staff(ctx.site, user) and scopes.covers(user, row.device)) or (
        row.work_order_id is not None and can_see(session, ctx.site, user, row.work_order_id) is not None
    )
    if not allowed:
        raise missing
    root = ctx.media_dir.resolve()
    path = (root / row.snapshot).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise missing
    audit.record(
        session, actor=user.id, role=user.role, action=AuditAction.SNAPSHOT_VIEWED, target=event_id, at=ctx.clock(),
        outcome=f"{row.kind} at {row.device}" + (f", work order {row.work_order_id}" if row.work_order_id else ""),
    )  # fmt: skip
    session.commit()
    return FileResponse(path, media_type="image/jpeg")
