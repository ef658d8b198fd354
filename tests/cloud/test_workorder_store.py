"""The work-order data layer on SQLite and PostgreSQL: exact orders, history, dedup, escalation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cloud.db.engine import make_sessions
from cloud.db.models import EventRow, WorkOrder, WorkOrderHistory
from cloud.workorders.routing import Router
from cloud.workorders.states import Action, Role, Status, TransitionError
from cloud.workorders.store import escalate_due, record_events, transition
from sc.contracts.messages import (
    AlarmPayload,
    ConnectivityPayload,
    Event,
    EventKind,
    EventState,
    Severity,
    SmokeReading,
)

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LOCATIONS = {"smoke-1": "b1-u1", "smoke-2": "b1-u2", "bin-1": "refuse-1", "gw-a": "g1"}


def smoke(seq: int, *, state: EventState = EventState.RAISED, device: str = "smoke-1", density: float = 12.0) -> Event:
    reading = SmokeReading(smoke_density=density, temperature_c=25, battery_pct=90, alarm=False, fault=False)
    return Event(
        site="test", gateway="gw-a", device=device, ts=T0, seq=seq, kind=EventKind.SMOKE_ALARM, state=state,
        severity=Severity.CRITICAL,
        payload=AlarmPayload(rule="smoke_density >= 8", value=density, threshold=8.0, reading=reading),
    )  # fmt: skip


def record(engine: Engine, router: Router, events: list[Event], now: datetime = T0) -> list[object]:
    with make_sessions(engine).begin() as s:
        return list(record_events(s, events=events, router=router, device_locations=LOCATIONS, now=now))


def orders(engine: Engine) -> list[WorkOrder]:
    with Session(engine) as s:
        return list(s.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars())


def history(engine: Engine, order_id: int) -> list[tuple[str, str | None, str | None, str]]:
    with Session(engine) as s:
        rows = s.execute(
            select(WorkOrderHistory).where(WorkOrderHistory.order_id == order_id).order_by(WorkOrderHistory.id)
        ).scalars()
        return [(h.action, h.from_status, h.to_status, h.actor) for h in rows]


def act(engine: Engine, router: Router, order_id: int, action: Action, role: Role, actor: str, **kw: object) -> None:
    with make_sessions(engine).begin() as s:
        transition(s, order_id=order_id, action=action, actor=actor, role=role, now=T0, router=router, **kw)  # type: ignore[arg-type]


def test_a_new_alarm_opens_an_order_routed_and_dispatched(engine: Engine, router: Router) -> None:
    e = smoke(1)
    (out,) = record(engine, router, [e])
    [o] = orders(engine)
    assert out == type(out)(e.id, duplicate=False, order_id=o.id, opened=True)  # type: ignore[call-arg]
    assert (o.category, o.subcategory, o.department, o.assignee) == ("fire", "smoke_alarm", "fire", "w-fire")
    assert (o.status, o.location, o.grid, o.community, o.street) == ("dispatched", "b1-u1", "g1", "c1", "st")
    assert (o.respond_by, o.resolve_by) == (T0 + timedelta(minutes=5), T0 + timedelta(minutes=60))
    assert o.open_key == "smoke-1:smoke_alarm" and o.alarm_count == 1 and o.first_event_id == e.id
    assert o.last_reading is not None and o.last_reading["smoke_density"] == 12.0
    assert history(engine, o.id) == [("open", None, "open", "system"), ("dispatch", "open", "dispatched", "system")]


def test_the_same_event_twice_changes_nothing(engine: Engine, router: Router) -> None:
    e = smoke(1)
    record(engine, router, [e])
    outs = record(engine, router, [e, e])
    assert [o.duplicate for o in outs] == [True, True]  # type: ignore[attr-defined]
    [o] = orders(engine)
    assert o.alarm_count == 1
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(EventRow)).scalar() == 1


def test_repeats_attach_and_a_clear_is_noted_but_does_not_close(engine: Engine, router: Router) -> None:
    record(engine, router, [smoke(1)])
    record(engine, router, [smoke(2, density=30.0), smoke(3, density=40.0)])
    record(engine, router, [smoke(4, state=EventState.CLEARED, density=1.0)], now=T0 + timedelta(minutes=1))
    [o] = orders(engine)
    assert o.alarm_count == 3 and o.last_reading is not None and o.last_reading["smoke_density"] == 1.0
    assert o.cleared_at == T0 + timedelta(minutes=1) and o.status == "dispatched"
    assert [h[0] for h in history(engine, o.id)] == ["open", "dispatch", "alarm_again", "device_cleared"]
    with Session(engine) as s:
        linked = s.execute(select(func.count()).where(EventRow.work_order_id == o.id)).scalar()
    assert linked == 4


def test_an_alarm_again_on_an_acknowledged_order_needs_the_control_room_again(engine: Engine, router: Router) -> None:
    record(engine, router, [smoke(1)])
    act(engine, router, 1, Action.ACKNOWLEDGE, Role.OPERATOR, "op-1")
    [o] = orders(engine)
    assert (o.acknowledged_by, o.acknowledged_at is not None) == ("op-1", True)
    (out,) = record(engine, router, [smoke(2, density=25.0)], now=T0 + timedelta(minutes=2))
    assert out.attached  # type: ignore[attr-defined]
    [o] = orders(engine)
    assert (o.acknowledged_by, o.acknowledged_at, o.alarm_count, o.status) == (None, None, 2, "dispatched")
    assert history(engine, o.id)[-1][0] == "alarm_again"


def test_device_online_clears_the_offline_order(engine: Engine, router: Router) -> None:
    def conn(seq: int, kind: EventKind, state: EventState) -> Event:
        return Event(
            site="test", gateway="gw-a", device="bin-1", ts=T0, seq=seq, kind=kind, state=state,
            severity=Severity.WARNING, payload=ConnectivityPayload(reason="x", consecutive_failures=3),
        )  # fmt: skip

    record(engine, router, [conn(1, EventKind.DEVICE_OFFLINE, EventState.RAISED)])
    record(engine, router, [conn(2, EventKind.DEVICE_ONLINE, EventState.CLEARED)])
    [o] = orders(engine)
    assert (o.kind, o.category, o.department, o.assignee) == ("device_offline", "device", "property", "w-prop")
    assert o.cleared_at == T0


def test_full_lifecycle_then_the_next_alarm_opens_a_new_order(engine: Engine, router: Router) -> None:
    record(engine, router, [smoke(1)])
    [o] = orders(engine)
    act(engine, router, o.id, Action.ACCEPT, Role.GRID_WORKER, "w-fire")
    act(engine, router, o.id, Action.ARRIVE, Role.GRID_WORKER, "w-fire")
    act(engine, router, o.id, Action.RESOLVE, Role.GRID_WORKER, "w-fire", note="false alarm: cooking")
    act(engine, router, o.id, Action.CLOSE, Role.OPERATOR, "op-1", rating=4, comment="fast")
    [o] = orders(engine)
    assert (o.status, o.rating, o.rating_comment, o.open_key) == ("closed", 4, "fast", None)
    assert o.responded_at == T0 and o.resolved_at == T0 and o.closed_at == T0
    assert history(engine, o.id)[2:] == [
        ("accept", "dispatched", "accepted", "w-fire"),
        ("arrive", "accepted", "on_site", "w-fire"),
        ("resolve", "on_site", "resolved", "w-fire"),
        ("close", "resolved", "closed", "op-1"),
    ]
    (out,) = record(engine, router, [smoke(2)])
    assert out.opened  # type: ignore[attr-defined]
    assert [x.status for x in orders(engine)] == ["closed", "dispatched"]


def test_a_refused_action_writes_nothing(engine: Engine, router: Router) -> None:
    record(engine, router, [smoke(1)])
    [o] = orders(engine)
    before = history(engine, o.id)
    with pytest.raises(TransitionError, match="a resident may not accept an order"):
        act(engine, router, o.id, Action.ACCEPT, Role.RESIDENT, "r-1")
    with pytest.raises(TransitionError, match=r"cannot close an order that is dispatched \(only from resolved\)"):
        act(engine, router, o.id, Action.CLOSE, Role.OPERATOR, "op-1")
    with pytest.raises(TransitionError, match="rating must be 1 to 5"):
        act(engine, router, o.id, Action.ACCEPT, Role.GRID_WORKER, "w-fire")
        act(engine, router, o.id, Action.RESOLVE, Role.GRID_WORKER, "w-fire")
        act(engine, router, o.id, Action.CLOSE, Role.OPERATOR, "op-1", rating=9)
    [o] = orders(engine)
    assert o.status == "resolved" and o.rating is None and o.open_key == "smoke-1:smoke_alarm"
    assert history(engine, o.id) == [
        *before,
        ("accept", "dispatched", "accepted", "w-fire"),
        ("resolve", "accepted", "resolved", "w-fire"),
    ]


def test_missed_deadlines_escalate_one_level_at_a_time_up_to_the_street(engine: Engine, router: Router) -> None:
    record(engine, router, [smoke(1)])
    sessions = make_sessions(engine)

    def tick(minutes: float) -> list[int]:
        with sessions.begin() as s:
            return escalate_due(s, router=router, now=T0 + timedelta(minutes=minutes))

    assert tick(4.9) == []
    assert tick(5.0) == [1]  # no first response within 5 min: up to the community
    [o] = orders(engine)
    assert (o.escalation_level, o.escalated_to, o.next_escalation_at) == (1, "c1", T0 + timedelta(minutes=10))
    assert tick(9) == []
    assert tick(10) == [1]  # and again: the street
    assert tick(15) == []  # nothing above the street
    [o] = orders(engine)
    assert (o.escalation_level, o.escalated_to, o.next_escalation_at) == (2, "st", None)
    notes = [h for h in history(engine, o.id) if h[0] == "escalate"]
    assert len(notes) == 2


def test_accepted_orders_escalate_on_the_resolution_deadline(engine: Engine, router: Router) -> None:
    record(engine, router, [smoke(1)])
    act(engine, router, 1, Action.ACCEPT, Role.GRID_WORKER, "w-fire")
    with make_sessions(engine).begin() as s:
        assert escalate_due(s, router=router, now=T0 + timedelta(minutes=30)) == []
    with make_sessions(engine).begin() as s:
        assert escalate_due(s, router=router, now=T0 + timedelta(minutes=60)) == [1]
    with Session(engine) as s:
        h = s.execute(select(WorkOrderHistory).where(WorkOrderHistory.action == "escalate")).scalar_one()
    assert h.note == "resolution deadline passed: escalated to c1 (level 1)"


def test_two_writers_racing_on_one_alarm_make_one_order(engine: Engine, router: Router) -> None:
    """Two ingesters, two copies of an alarm (and a second alarm id) at the same instant."""
    sessions = make_sessions(engine)
    first, second = smoke(1), smoke(2)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(ev: Event) -> None:
        try:
            barrier.wait()
            for _ in range(20):  # SQLite serialises writers: retry when the file is busy
                try:
                    with sessions.begin() as s:
                        record_events(s, events=[ev], router=router, device_locations=LOCATIONS, now=T0)
                    return
                except Exception as exc:
                    if "locked" not in str(exc):
                        raise
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(ev,)) for ev in (first, first, second, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    [o] = orders(engine)
    assert o.alarm_count == 2
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(EventRow)).scalar() == 2
    assert [h[0] for h in history(engine, o.id)] == ["open", "dispatch", "alarm_again"]  # once: copies are no alarm


def test_reopen_puts_the_order_back_to_work(engine: Engine, router: Router) -> None:
    record(engine, router, [smoke(1)])
    for a in (Action.ACCEPT, Action.RESOLVE):
        act(engine, router, 1, a, Role.GRID_WORKER, "w-fire")
    act(engine, router, 1, Action.CLOSE, Role.OPERATOR, "op-1")
    act(engine, router, 1, Action.REOPEN, Role.OPERATOR, "op-1", note="still smoking")
    [o] = orders(engine)
    assert (o.status, o.reopen_count, o.open_key, o.closed_at) == ("reopened", 1, "smoke-1:smoke_alarm", None)
    (out,) = record(engine, router, [smoke(2)])
    assert out.attached  # type: ignore[attr-defined]
    assert Status(orders(engine)[0].status) is Status.REOPENED


def test_device_state_only_moves_forward_whichever_ingester_writes_last(engine: Engine) -> None:
    from cloud.db.models import DeviceState
    from cloud.workorders.store import upsert_devices

    ident = {"id": "smoke-1", "site": "test", "gateway": "gw-a", "is_gateway": False}
    newer = {**ident, "last_seen": T0 + timedelta(seconds=10), "last_reading": {"smoke_density": 2.0}}
    older = {**ident, "last_seen": T0, "last_reading": {"smoke_density": 1.0}}
    status_new = {
        **ident,
        "online": False,
        "status_reason": "3 failed polls",
        "status_since": T0 + timedelta(seconds=5),
    }
    status_old = {**ident, "online": True, "status_reason": "answering", "status_since": T0}
    sessions = make_sessions(engine)
    for rows in ([newer], [older], [status_new], [status_old]):  # two ingesters, flushing out of order
        with sessions.begin() as s:
            upsert_devices(s, rows=rows, now=T0)
    with Session(engine) as s:
        d = s.get(DeviceState, "smoke-1")
        assert d is not None
        assert (d.last_seen, d.last_reading) == (T0 + timedelta(seconds=10), {"smoke_density": 2.0})
        assert (d.online, d.status_reason, d.status_since) == (False, "3 failed polls", T0 + timedelta(seconds=5))
    with sessions.begin() as s:  # a telemetry-only update leaves the status alone, and the other way round
        upsert_devices(s, rows=[{**ident, "last_seen": T0 + timedelta(seconds=20), "last_reading": {"x": 1}}], now=T0)
    with Session(engine) as s:
        d = s.get(DeviceState, "smoke-1")
        assert d is not None and d.online is False and d.last_reading == {"x": 1}
