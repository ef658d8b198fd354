"""The work-order data layer: keyword-only functions over a SQLAlchemy session.

The caller owns the transaction (``with sessions.begin() as s: ...``), so a
batch of events is stored, and its orders opened or updated, all or nothing.

* :func:`record_events` - store events once (by id), open an order for a new
  alarm, attach repeats to the open order, note clears on it.
* :func:`transition` - a person acts on an order (dispatch, accept, ...),
  checked against the state machine, recorded in the history.
* :func:`escalate_due` - the scheduler's step: orders whose deadline passed
  go one grid level up, again and again, up to the street.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.db.engine import dialect_insert
from cloud.db.models import DeadLetter, DeviceState, EventRow, WorkOrder, WorkOrderHistory
from cloud.gates.store import add_entries
from sc.contracts.messages import CLEARED_BY, RECORD_KINDS, Event, EventState, GatePayload, Severity

from .catalogue import EVENT_CATEGORY
from .routing import Router
from .states import ACTIVE, Action, BadRequest, HistoryEvent, NotAllowed, Role, Status, WrongStatus, next_status

__all__ = [
    "DEAD_LETTERS_KEEP",
    "DEAD_LETTER_PAYLOAD_BYTES",
    "EventOutcome",
    "NotFound",
    "add_dead_letters",
    "create_report",
    "escalate_due",
    "open_key",
    "record_events",
    "transition",
    "upsert_devices",
]

SYSTEM = "system"


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class EventOutcome:
    event_id: str
    duplicate: bool  # already stored: nothing changed
    order_id: int | None = None
    opened: bool = False  # a new order was opened
    attached: bool = False  # a repeat attached to the open order
    cleared: bool = False  # the device said the condition ended
    recorded: bool = False  # a gate's entry record (entry, entry_refused): stored, never an order


def open_key(device: str, kind: str) -> str:
    return f"{device}:{kind}"


def _history(
    session: Session,
    *,
    order_id: int,
    at: datetime,
    actor: str,
    role: Role,
    action: str,
    from_status: Status | None,
    to_status: Status | None,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        WorkOrderHistory(
            order_id=order_id,
            at=at,
            actor=actor,
            role=role.value,
            action=action,
            from_status=from_status.value if from_status else None,
            to_status=to_status.value if to_status else None,
            note=note,
            data=data,
        )
    )


# --------------------------------------------------------------------------- ingest


def record_events(
    session: Session,
    *,
    events: list[Event],
    router: Router,
    device_locations: dict[str, str],
    now: datetime,
    snapshots: dict[str, str] | None = None,
) -> list[EventOutcome]:
    """Store ``events`` and apply each new one to the work orders; outcomes in the input order.

    ``device_locations`` maps device, gate and gateway ids to grid-tree ids; an
    event from a device the site config does not know is placed at its
    gateway's location. ``snapshots`` maps event ids to their saved snapshot
    (a path under the media folder): it is kept with the event, its entry
    record and the order it opens or joins. Entry records (``RECORD_KINDS``)
    go to the ``entries`` table and never open an order.

    Rows are touched in a fixed order (events by id, orders by key), so two
    ingesters writing overlapping batches at once never deadlock; the events
    of one device and kind are applied in the order they came, with one
    statement per order and batch however long the alarm storm.
    """
    if not events:
        return []
    snapshots = snapshots or {}
    unique = {ev.id: ev for ev in events}
    rows = [
        {
            "id": ev.id,
            "site": ev.site,
            "gateway": ev.gateway,
            "device": ev.device,
            "seq": ev.seq,
            "ts": ev.ts,
            "received_at": now,
            "kind": ev.kind.value,
            "state": ev.state.value,
            "severity": ev.severity.value,
            "payload": _payload(ev),
            "snapshot": snapshots.get(ev.id),
        }
        for ev in sorted(unique.values(), key=lambda e: e.id)
    ]
    new_ids: set[str] = set()
    for start in range(0, len(rows), 1000):  # stay well under SQLite's limit of bound parameters
        ins = (
            dialect_insert(session, EventRow)
            .values(rows[start : start + 1000])
            .on_conflict_do_nothing(index_elements=["id"])
        )
        new_ids |= {r[0] for r in session.execute(ins.returning(EventRow.id))}
    by_key: dict[str, list[Event]] = {}
    records: list[Event] = []
    seen: set[str] = set()
    for ev in events:
        if ev.id not in new_ids or ev.id in seen:
            continue
        seen.add(ev.id)
        if ev.kind in RECORD_KINDS:
            records.append(ev)
            continue
        raised_kind = CLEARED_BY.get(ev.kind, ev.kind)
        by_key.setdefault(open_key(ev.device, raised_kind.value), []).append(ev)
    results = _apply_groups(
        session, by_key=by_key, router=router, device_locations=device_locations, now=now, snapshots=snapshots
    )
    if records:
        add_entries(session, events=records, snapshots=snapshots, now=now)
        results.update({ev.id: EventOutcome(ev.id, duplicate=False, recorded=True) for ev in records})
    out: list[EventOutcome] = []
    reported: set[str] = set()
    for ev in events:
        if ev.id in results and ev.id not in reported:
            reported.add(ev.id)
            out.append(results[ev.id])
        else:
            out.append(EventOutcome(ev.id, duplicate=True))
    return out


def _payload(ev: Event) -> dict[str, Any]:
    # a snapshot is saved as a file (see cloud.gates.snapshots): its base64 text is not kept twice
    if isinstance(ev.payload, GatePayload):
        return ev.payload.model_dump(mode="json", exclude={"snapshot_jpeg"})
    return ev.payload.model_dump(mode="json")


def _reading(ev: Event) -> dict[str, Any] | None:
    reading = getattr(ev.payload, "reading", None)
    return reading.model_dump(mode="json") if reading is not None else None


def _apply_groups(
    session: Session,
    *,
    by_key: dict[str, list[Event]],
    router: Router,
    device_locations: dict[str, str],
    now: datetime,
    snapshots: dict[str, str],
) -> dict[str, EventOutcome]:
    """Apply the new events of a batch, grouped by order key, with a few set-based statements:
    one multi-row upsert for every key that has alarms, one bulk link of events to orders,
    and per-order work only where an order was opened or the device cleared."""
    results: dict[str, EventOutcome] = {}
    rows: list[dict[str, Any]] = []
    raise_groups: dict[str, tuple[list[Event], list[Event], Any]] = {}
    clear_only: dict[str, list[Event]] = {}
    for key in sorted(by_key):
        group = by_key[key]
        location = device_locations.get(group[0].device) or device_locations.get(group[0].gateway)
        raises = [e for e in group if e.state is EventState.RAISED and e.kind not in CLEARED_BY]
        if not raises or location is None or raises[0].kind not in EVENT_CATEGORY:
            clear_only[key] = group
            continue
        first, last = raises[0], group[-1]
        route = router.route_event(kind=first.kind, severity=first.severity, location=location, now=now)
        raise_groups[key] = (group, raises, route)
        category, subcategory = EVENT_CATEGORY[first.kind]
        rows.append(
            dict(
                source="device",
                open_key=key,
                device=first.device,
                kind=first.kind.value,
                category=category,
                subcategory=subcategory,
                severity=first.severity.value,
                status=Status.OPEN.value,
                title=f"{first.kind.value.replace('_', ' ')} at {location} ({first.device})",
                description="",
                location=location,
                grid=route.grid,
                community=route.community,
                street=route.street,
                department=route.department,
                assignee=route.assignee,
                escalation_level=0,
                escalated_to=router.escalation_target(route.chain, 0),
                next_escalation_at=route.respond_by,
                alarm_count=len(raises),
                first_event_id=first.id,
                last_event_id=last.id,
                last_reading=_reading(last) or _reading(raises[-1]),
                cleared_at=now if last.state is EventState.CLEARED else None,
                snapshot_event_id=next((e.id for e in reversed(raises) if e.id in snapshots), None),
                created_at=now,
                updated_at=now,
                respond_by=route.respond_by,
                resolve_by=route.resolve_by,
                reopen_count=0,
            )
        )
    order_of: dict[str, tuple[int, str | None]] = {}
    for start in range(0, len(rows), 200):  # keys are unique and sorted: one row each, locks in key order
        ins = dialect_insert(session, WorkOrder).values(rows[start : start + 200])
        upsert = ins.on_conflict_do_update(
            index_elements=["open_key"],
            set_={
                "alarm_count": WorkOrder.alarm_count + ins.excluded.alarm_count,
                "last_event_id": ins.excluded.last_event_id,
                "last_reading": ins.excluded.last_reading,
                "updated_at": ins.excluded.updated_at,
                "cleared_at": ins.excluded.cleared_at,
                "snapshot_event_id": func.coalesce(ins.excluded.snapshot_event_id, WorkOrder.snapshot_event_id),
                # the device alarms again: the control room has not seen this one yet
                "acknowledged_at": None,
                "acknowledged_by": None,
            },
        ).returning(WorkOrder.open_key, WorkOrder.id, WorkOrder.first_event_id)
        for key, oid, first_id in session.execute(upsert):
            order_of[key] = (oid, first_id)
    links: list[dict[str, Any]] = []
    history: list[WorkOrderHistory] = []
    dispatched: list[dict[str, Any]] = []
    for key, (group, raises, route) in raise_groups.items():
        order_id, first_event_id = order_of[key]
        first, last = raises[0], group[-1]
        opened = first_event_id == first.id
        links += [{"id": e.id, "work_order_id": order_id} for e in group]
        if opened:
            history.append(
                _hrow(
                    order_id,
                    now,
                    HistoryEvent.OPEN,
                    None,
                    Status.OPEN,
                    data={"event_id": first.id, "device": first.device},
                )
            )
            if route.assignee is not None:  # routing found the person: dispatch at once
                dispatched.append({"id": order_id, "status": Status.DISPATCHED.value})
                history.append(
                    _hrow(
                        order_id,
                        now,
                        Action.DISPATCH.value,
                        Status.OPEN,
                        Status.DISPATCHED,
                        note=f"routed to {route.department}, assigned to {route.assignee}",
                        data={"department": route.department, "assignee": route.assignee},
                    )
                )
        else:
            history.append(
                _hrow(
                    order_id,
                    now,
                    HistoryEvent.ALARM_AGAIN,
                    None,
                    None,
                    note=f"{len(raises)} more alarm(s) from {first.device}",
                    data={"event_id": first.id},
                )
            )
        if last.state is EventState.CLEARED:
            history.append(
                _hrow(
                    order_id,
                    now,
                    HistoryEvent.DEVICE_CLEARED,
                    None,
                    None,
                    note=_CLEARED_NOTE,
                    data={"event_id": last.id},
                )
            )
        for e in group:
            if e is first:
                results[e.id] = EventOutcome(
                    e.id, duplicate=False, order_id=order_id, opened=opened, attached=not opened
                )
            elif e.state is EventState.CLEARED:
                results[e.id] = EventOutcome(e.id, duplicate=False, order_id=order_id, cleared=True)
            else:
                results[e.id] = EventOutcome(e.id, duplicate=False, order_id=order_id, attached=True)
    # clears without an alarm in this batch: note them on the open order, if there is one
    clear_keys = [k for k, g in clear_only.items() if any(e.state is EventState.CLEARED for e in g)]
    open_orders = {}
    if clear_keys:
        q = select(WorkOrder).where(WorkOrder.open_key.in_(clear_keys)).order_by(WorkOrder.open_key)
        open_orders = {o.open_key: o for o in session.execute(q.with_for_update()).scalars()}
    for key, group in clear_only.items():
        order = open_orders.get(key)
        clears = [e for e in group if e.state is EventState.CLEARED]
        if order is None or not clears:
            results.update({e.id: EventOutcome(e.id, duplicate=False) for e in group})
            continue
        ev = clears[-1]
        order.cleared_at = now
        order.last_event_id = ev.id
        order.last_reading = _reading(ev) or order.last_reading
        order.updated_at = now
        history.append(
            _hrow(order.id, now, HistoryEvent.DEVICE_CLEARED, None, None, note=_CLEARED_NOTE, data={"event_id": ev.id})
        )
        links += [{"id": e.id, "work_order_id": order.id} for e in group]
        results.update({e.id: EventOutcome(e.id, duplicate=False, order_id=order.id, cleared=True) for e in group})
    if dispatched:
        session.execute(update(WorkOrder), dispatched)
    if links:
        session.execute(update(EventRow), links)  # bulk UPDATE by primary key (one executemany)
    session.add_all(history)
    return results


def _hrow(
    order_id: int,
    at: datetime,
    action: str,
    from_status: Status | None,
    to_status: Status | None,
    *,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> WorkOrderHistory:
    return WorkOrderHistory(
        order_id=order_id, at=at, actor=SYSTEM, role=Role.SYSTEM.value, action=str(action),
        from_status=from_status.value if from_status else None, to_status=to_status.value if to_status else None,
        note=note, data=data,
    )  # fmt: skip


_CLEARED_NOTE = "the device reports the condition has ended; a person closes the order"


#: A dead letter keeps this much of the message's bytes (enough to see what it was), and its whole size.
DEAD_LETTER_PAYLOAD_BYTES = 4096
#: Only the newest dead letters are kept: at most about 40 MB of them, however many bad messages come.
DEAD_LETTERS_KEEP = 10_000


def add_dead_letters(session: Session, *, items: list[tuple[str, str, bytes]], now: datetime) -> None:
    """Keep (topic, reason, the first DEAD_LETTER_PAYLOAD_BYTES of the raw bytes, their size) of messages that
    could not be used; drop the oldest beyond the newest DEAD_LETTERS_KEEP (the ingester's counters keep totals)."""
    if not items:
        return
    session.add_all(
        DeadLetter(received_at=now, topic=t, reason=r, payload=p[:DEAD_LETTER_PAYLOAD_BYTES], size=len(p))
        for t, r, p in items
    )
    session.flush()
    newest = select(func.max(DeadLetter.id)).scalar_subquery()
    prune = delete(DeadLetter).where(DeadLetter.id <= newest - DEAD_LETTERS_KEEP)
    session.execute(prune.execution_options(synchronize_session=False))


_SEEN = ("last_seen", "last_reading")
_STATUS = ("online", "status_reason", "status_since")


def upsert_devices(session: Session, *, rows: list[dict[str, Any]], now: datetime) -> None:
    """Merge what one ingester saw of devices into their state rows.

    Each row holds ``id``, ``site``, ``gateway``, ``is_gateway`` and only the
    fields this ingester observed: ``last_seen`` + ``last_reading`` (from
    telemetry) and/or ``online`` + ``status_reason`` + ``status_since`` (from a
    status). With several ingesters each sees part of the stream, so a field
    only moves forward in time: an older reading never replaces a newer one.
    """
    table = DeviceState.__table__
    for row in rows:
        ins = dialect_insert(session, DeviceState).values(**{"status_reason": "", **row, "updated_at": now})
        ex = ins.excluded
        changes: dict[str, Any] = {"updated_at": ex.updated_at}
        if "last_seen" in row:
            newer = or_(table.c.last_seen.is_(None), ex.last_seen >= table.c.last_seen)
            changes |= {k: case((newer, getattr(ex, k)), else_=table.c[k]) for k in _SEEN}
        if "status_since" in row:
            newer = or_(table.c.status_since.is_(None), ex.status_since >= table.c.status_since)
            changes |= {k: case((newer, getattr(ex, k)), else_=table.c[k]) for k in _STATUS}
        session.execute(ins.on_conflict_do_update(index_elements=["id"], set_=changes))


# --------------------------------------------------------------------------- people


def _locked(session: Session, order_id: int) -> WorkOrder:
    q = select(WorkOrder).where(WorkOrder.id == order_id).with_for_update()
    order = session.execute(q).scalar_one_or_none()
    if order is None:
        raise NotFound(f"no work order {order_id}")
    return order


def transition(
    session: Session,
    *,
    order_id: int,
    action: Action,
    actor: str,
    role: Role,
    now: datetime,
    router: Router,
    note: str = "",
    department: str | None = None,
    assignee: str | None = None,
    rating: int | None = None,
    comment: str | None = None,
) -> WorkOrder:
    """Apply a person's action; raise :class:`TransitionError` (nothing written) if not allowed."""
    order = _locked(session, order_id)
    before = Status(order.status)
    after = next_status(before, action, role)
    data: dict[str, Any] = {}
    if action is Action.ACKNOWLEDGE:
        if order.acknowledged_at is not None:
            raise WrongStatus(f"already acknowledged by {order.acknowledged_by} at {order.acknowledged_at:%H:%M:%S}")
        order.acknowledged_at = now
        order.acknowledged_by = actor
    if action is Action.DISPATCH:
        if department is not None:
            if department not in {d.id for d in router.site.departments}:
                raise BadRequest(f"unknown department {department!r}")
            order.department = department
            data["department"] = department
        if assignee is not None:
            worker = next((w for w in router.site.workers if w.id == assignee), None)
            if worker is None:
                raise BadRequest(f"unknown worker {assignee!r}")
            order.assignee = assignee
            order.department = worker.department if department is None else order.department
            data["assignee"] = assignee
        if order.assignee is None:
            raise BadRequest("dispatch needs an assignee: routing found nobody for this location")
    if action is Action.ACCEPT and order.responded_at is None:
        order.responded_at = now
        order.next_escalation_at = order.resolve_by
    if action is Action.RESOLVE:
        order.resolved_at = now
        order.next_escalation_at = None
    if action is Action.CLOSE:
        if role is Role.RESIDENT and order.reporter != actor:
            raise NotAllowed("a resident may only close their own report")
        if rating is not None:
            if not 1 <= rating <= 5:
                raise BadRequest("rating must be 1 to 5")
            order.rating = rating
            order.rating_comment = comment
            data["rating"] = rating
        order.closed_at = now
        order.open_key = None  # the next alarm from this device opens a new order
        order.next_escalation_at = None
    if action is Action.REOPEN:
        if role is Role.RESIDENT and order.reporter != actor:
            raise NotAllowed("a resident may only reopen their own report")
        order.reopen_count += 1
        order.resolved_at = None
        order.closed_at = None
        _, resolve_min = router.sla_minutes(Severity(order.severity))
        order.next_escalation_at = now + timedelta(minutes=resolve_min)
        if order.device is not None and order.open_key is None:
            try:
                with session.begin_nested():
                    order.open_key = open_key(order.device, order.kind)
                    session.flush()
            except IntegrityError:  # a newer order for this device is already open
                order.open_key = None
    order.status = after.value
    order.updated_at = now
    _history(
        session, order_id=order.id, at=now, actor=actor, role=role, action=action.value,
        from_status=before, to_status=after, note=note, data=data or None,
    )  # fmt: skip
    session.flush()
    return order


# --------------------------------------------------------------------------- scheduler


def escalate_due(session: Session, *, router: Router, now: datetime, limit: int = 500) -> list[int]:
    """Escalate every active order whose deadline has passed; returns their ids."""
    q = (
        select(WorkOrder)
        .where(
            WorkOrder.next_escalation_at.is_not(None),
            WorkOrder.next_escalation_at <= now,
            WorkOrder.status.in_([s.value for s in ACTIVE if s is not Status.RESOLVED]),
        )
        .order_by(WorkOrder.next_escalation_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    escalated: list[int] = []
    max_level = router.routing.escalation_levels
    for order in session.execute(q).scalars():
        respond_min, resolve_min = router.sla_minutes(Severity(order.severity))
        missed = "first response" if order.responded_at is None else "resolution"
        if order.escalation_level >= max_level:
            order.next_escalation_at = None  # at the top: nothing further up to tell
            continue
        order.escalation_level += 1
        chain = router.chain(order.location)
        order.escalated_to = router.escalation_target(chain, order.escalation_level)
        period = respond_min if order.responded_at is None else resolve_min
        order.next_escalation_at = now + timedelta(minutes=period)
        order.updated_at = now
        _history(
            session, order_id=order.id, at=now, actor=SYSTEM, role=Role.SYSTEM, action=HistoryEvent.ESCALATE.value,
            from_status=None, to_status=None,
            note=f"{missed} deadline passed: escalated to {order.escalated_to} (level {order.escalation_level})",
            data={"level": order.escalation_level, "to": order.escalated_to, "missed": missed},
        )  # fmt: skip
        escalated.append(order.id)
    return escalated


# --------------------------------------------------------------------------- residents


def create_report(
    session: Session,
    *,
    router: Router,
    service_code: str,
    location: str,
    description: str,
    reporter: str,
    now: datetime,
    media_url: str | None = None,
    severity: Severity = Severity.WARNING,
) -> WorkOrder:
    """A resident's report (报事报修) against a place in the grid tree, routed like an alarm."""
    from .catalogue import SERVICES

    service = SERVICES.get(service_code)
    if service is None:
        raise BadRequest(f"unknown service_code {service_code!r}: see /open311/v2/services.json")
    route = router.route(
        category=service.category, subcategory=service_code.split(".", 1)[1], severity=severity,
        location=location, now=now,
    )  # fmt: skip
    order = WorkOrder(
        source="resident", open_key=None, device=None, kind=service_code, category=service.category,
        subcategory=route.subcategory, severity=severity.value, status=Status.OPEN.value,
        title=f"{service.name} at {location}", description=description, location=location, grid=route.grid,
        community=route.community, street=route.street, department=route.department, assignee=route.assignee,
        reporter=reporter, escalation_level=0, escalated_to=router.escalation_target(route.chain, 0),
        next_escalation_at=route.respond_by, alarm_count=1, created_at=now, updated_at=now,
        respond_by=route.respond_by, resolve_by=route.resolve_by, media_url=media_url,
    )  # fmt: skip
    session.add(order)
    session.flush()
    _history(
        session, order_id=order.id, at=now, actor=reporter, role=Role.RESIDENT, action=HistoryEvent.OPEN.value,
        from_status=None, to_status=Status.OPEN, note=description[:200],
    )  # fmt: skip
    if route.assignee is not None:
        order.status = Status.DISPATCHED.value
        _history(
            session, order_id=order.id, at=now, actor=SYSTEM, role=Role.SYSTEM, action=Action.DISPATCH.value,
            from_status=Status.OPEN, to_status=Status.DISPATCHED,
            note=f"routed to {route.department}, assigned to {route.assignee}",
            data={"department": route.department, "assignee": route.assignee},
        )  # fmt: skip
    session.flush()
    return order
