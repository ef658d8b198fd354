"""The gates' data layer on SQLite and PostgreSQL: entry records, gate alarms as orders, residents, deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cloud.db.engine import make_sessions
from cloud.db.models import Entry, EventRow, GalleryDelivery, Resident, ResidentEmbedding, WorkOrder
from cloud.gates.store import (
    AlreadyEnrolled,
    DeliveryState,
    ResidentNotFound,
    delete_resident,
    deliveries_of,
    delivery_state,
    due_deliveries,
    embedding_of,
    enrol_resident,
    in_flight,
    list_entries,
    mark_acked,
    mark_sent,
    reconcile_deliveries,
    resend_gateway,
)
from cloud.workorders.catalogue import EVENT_CATEGORY
from cloud.workorders.routing import Router
from cloud.workorders.store import EventOutcome, record_events
from sc.config.schema import Gate
from sc.contracts.commands import EmbeddingModel
from sc.contracts.messages import (
    DEFAULT_SEVERITY,
    RECORD_KINDS,
    EntryMethod,
    Event,
    EventKind,
    EventState,
    GatePayload,
)

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
DLIB = EmbeddingModel.DLIB_RESNET_V1
LOCATIONS = {"north": "g1", "south": "g1", "gw-b": "g1"}
JPEG = "/9j/4AAQSkZJRg=="  # what the ingester saved is given as a path here; the store never reads it


def gate_event(
    kind: EventKind, seq: int = 1, *, gate: str = "north", state: EventState = EventState.RAISED, **payload: Any
) -> Event:
    return Event(
        site="test", gateway="gw-b", device=gate, ts=T0 + timedelta(seconds=seq), seq=seq, kind=kind, state=state,
        severity=DEFAULT_SEVERITY[kind], payload=GatePayload(gate=gate, **payload),
    )  # fmt: skip


def record(
    engine: Engine, router: Router, events: list[Event], snapshots: dict[str, str] | None = None
) -> list[EventOutcome]:
    with make_sessions(engine).begin() as s:
        return record_events(s, events=events, router=router, device_locations=LOCATIONS, now=T0, snapshots=snapshots)


def count(engine: Engine, model: type[Any]) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def orders(engine: Engine) -> list[WorkOrder]:
    with Session(engine) as s:
        return list(s.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars())


def test_every_event_kind_is_an_entry_record_or_has_a_work_order_category() -> None:
    assert {k for k in EventKind if k not in RECORD_KINDS} == set(EVENT_CATEGORY)
    assert not RECORD_KINDS & set(EVENT_CATEGORY)


def test_entries_are_recorded_once_and_never_open_an_order(engine: Engine, router: Router) -> None:
    face = gate_event(
        EventKind.ENTRY, 1, method=EntryMethod.FACE, person="r-101", distance=0.31, track=4, snapshot_jpeg=JPEG
    )
    refused = gate_event(
        EventKind.ENTRY_REFUSED, 2, gate="south", method=EntryMethod.PASS, person="visitor:Li Lei", reason="expired"
    )
    first = record(engine, router, [face, refused, face], snapshots={face.id: "snapshots/a.jpg"})
    assert first == [
        EventOutcome(face.id, duplicate=False, recorded=True),
        EventOutcome(refused.id, duplicate=False, recorded=True),
        EventOutcome(face.id, duplicate=True),
    ]
    again = record(engine, router, [refused, face], snapshots={face.id: "snapshots/a.jpg"})  # redelivered
    assert [o.duplicate for o in again] == [True, True]
    assert (count(engine, Entry), count(engine, EventRow), orders(engine)) == (2, 2, [])
    with Session(engine) as s:
        got = [
            (e.event_id, e.gate, e.kind, e.granted, e.method, e.person, e.distance, e.reason, e.snapshot, e.ts)
            for e in list_entries(s)
        ]
        assert got == [
            (refused.id, "south", "entry_refused", False, "pass", "visitor:Li Lei", None, "expired", None, refused.ts),
            (face.id, "north", "entry", True, "face", "r-101", 0.31, "", "snapshots/a.jpg", face.ts),
        ]
        assert [e.event_id for e in list_entries(s, gate="north")] == [face.id]
        assert [e.event_id for e in list_entries(s, since=refused.ts)] == [refused.id]
        stored = s.get(EventRow, face.id)
        assert stored is not None and stored.snapshot == "snapshots/a.jpg"
        assert "snapshot_jpeg" not in stored.payload and stored.payload["person"] == "r-101"


def test_gate_alarms_open_security_orders_for_the_property_company_with_the_newest_snapshot(
    engine: Engine, router: Router
) -> None:
    tail = gate_event(EventKind.TAILGATING, 1, grants=1, crossings=2, reason="2 crossed on 1 grant", snapshot_jpeg=JPEG)
    (out,) = record(engine, router, [tail], snapshots={tail.id: "snapshots/t1.jpg"})
    [o] = orders(engine)
    assert out == EventOutcome(tail.id, duplicate=False, order_id=o.id, opened=True)
    assert (o.kind, o.category, o.subcategory, o.severity) == ("tailgating", "security", "tailgating", "major")
    assert (o.department, o.assignee, o.status, o.location, o.device) == (
        "property",
        "w-prop",
        "dispatched",
        "g1",
        "north",
    )
    assert (o.snapshot_event_id, o.snapshot_url) == (tail.id, f"/api/v1/snapshots/{tail.id}.jpg")
    plain = gate_event(EventKind.TAILGATING, 2, grants=1, crossings=3)
    record(engine, router, [plain])  # a repeat without a snapshot keeps the last one
    [o] = orders(engine)
    assert (o.alarm_count, o.snapshot_event_id) == (2, tail.id)
    newer = gate_event(EventKind.TAILGATING, 3, grants=0, crossings=1, snapshot_jpeg=JPEG)
    record(engine, router, [newer], snapshots={newer.id: "snapshots/t3.jpg"})
    [o] = orders(engine)
    assert (o.alarm_count, o.snapshot_event_id, o.last_event_id) == (3, newer.id, newer.id)


def test_door_and_camera_alarms_are_cleared_by_their_clears(engine: Engine, router: Router) -> None:
    record(
        engine, router,
        [
            gate_event(EventKind.DOOR_HELD_OPEN, 1, seconds=45.0),
            gate_event(EventKind.CAMERA_OFFLINE, 1, gate="south", reason="no frame for 5 s"),
            gate_event(EventKind.DOOR_FORCED, 2, reason="opened without a grant"),
            gate_event(EventKind.STRANGER_AT_GATE, 3, seconds=12.0, track=9),
        ],
    )  # fmt: skip
    later = [
        gate_event(EventKind.DOOR_CLOSED, 4, state=EventState.CLEARED),
        gate_event(EventKind.CAMERA_ONLINE, 2, gate="south", state=EventState.CLEARED, reason="frames again"),
    ]
    outs = record(engine, router, later)
    assert [o.cleared for o in outs] == [True, True]
    got = {
        (o.device, o.kind, o.category, o.subcategory, o.department, o.cleared_at is not None) for o in orders(engine)
    }
    assert got == {
        ("north", "door_held_open", "security", "door_held_open", "property", True),
        ("south", "camera_offline", "device", "camera_offline", "property", True),
        ("north", "door_forced", "security", "door_forced", "property", False),
        ("north", "stranger_at_gate", "security", "stranger_at_gate", "property", False),
    }
    assert count(engine, WorkOrder) == 4  # a clear never opens an order of its own
    # a clear with no order to clear is stored and changes nothing
    (o,) = record(engine, router, [gate_event(EventKind.DOOR_CLOSED, 1, gate="south", state=EventState.CLEARED)])
    assert (o.duplicate, o.order_id, o.cleared, count(engine, WorkOrder)) == (False, None, False, 4)


# --------------------------------------------------------------------------- residents and deliveries

EMB = bytes(range(256)) * 2  # 512 bytes: what a 128-float32 embedding takes


def gates_of(router: Router) -> list[Gate]:
    return list(router.site.gates)


def enrol(engine: Engine, router: Router, rid: str = "r-1", now: datetime = T0) -> Resident:
    with make_sessions(engine).begin() as s:
        return enrol_resident(
            s, resident_id=rid, name="Resident One", embeddings={DLIB: EMB}, photos=2, by="op-1", now=now,
            gates=gates_of(router), unit="3-201", location="b1-u1",
        )  # fmt: skip


def states(engine: Engine, rid: str = "r-1") -> dict[str, tuple[str, str, int, int]]:
    with Session(engine) as s:
        return {
            d.gate: (d.op, delivery_state(d).value, d.version, d.attempts) for d in deliveries_of(s, resident_id=rid)
        }


def test_an_enrolment_is_planned_for_every_gate_sent_acked_or_retried(engine: Engine, router: Router) -> None:
    r = enrol(engine, router)
    v1 = r.version
    assert v1 == (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert states(engine) == {"north": ("put", "pending", v1, 0), "south": ("put", "pending", v1, 0)}
    with pytest.raises(AlreadyEnrolled):
        enrol(engine, router)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        assert due_deliveries(s, now=T0, gateways=[], gates=["north", "south"]) == []  # gateway offline
        due = due_deliveries(s, now=T0, gateways=["gw-b"], gates=["north", "south"])
        assert [(d.gate, d.gateway, rr.id) for d, rr in due] == [("north", "gw-b", "r-1"), ("south", "gw-b", "r-1")]
        for d, _ in due:
            mark_sent(d, now=T0, base_s=10, max_s=25)
        ids = {d.gate: d.command_id for d, _ in due}
    with sessions.begin() as s:
        assert due_deliveries(s, now=T0 + timedelta(seconds=9), gateways=["gw-b"], gates=["north", "south"]) == []
        assert in_flight(s, now=T0) == {"gw-b": 2}
        assert in_flight(s, now=T0 + timedelta(seconds=10)) == {}  # timed out: due again, no longer waited for
        # the right command id from the wrong gate or gateway answers nothing
        assert ack(s, ids["north"], "gw-b", "south", True, "", T0, 10, 25) is None
        assert ack(s, ids["north"], "gw-a", "north", True, "", T0, 10, 25) is None
        ok = ack(s, ids["north"], "gw-b", "north", True, "", T0, 10, 25)
        bad = ack(s, ids["south"], "gw-b", "south", False, "disk full", T0, 10, 25)
        assert (
            ok is not None
            and bad is not None
            and (bad.error, bad.next_attempt_at) == ("disk full", T0 + timedelta(seconds=10))
        )
        assert ack(s, ids["north"], "gw-b", "north", True, "", T0, 10, 25) is None  # again
        assert ack(s, "not-a-command", "gw-b", "north", True, "", T0, 10, 25) is None
    assert states(engine) == {"north": ("put", "acked", v1, 1), "south": ("put", "error", v1, 1)}
    with Session(engine) as s:
        assert in_flight(s, now=T0) == {}  # one answered, one refused: nothing awaited
    # the refused one is retried after its backoff, as a new command (a gateway answers a copy of a command it
    # has run with the answer it gave), the same id for each resend of the retry, waiting longer each time
    t = T0 + timedelta(seconds=10)
    with sessions.begin() as s:
        [(d, _)] = due_deliveries(s, now=t, gateways=["gw-b"], gates=["north", "south"])
        assert d.gate == "south" and d.command_id not in ids.values() and len(d.command_id) == 36
        retry = d.command_id
        mark_sent(d, now=t, base_s=10, max_s=25)
        assert d.next_attempt_at == t + timedelta(seconds=20)
        mark_sent(d, now=t, base_s=10, max_s=25)
        assert d.next_attempt_at == t + timedelta(seconds=25) and d.command_id == retry  # capped; same id
        assert ack(s, ids["south"], "gw-b", "south", True, "", t, 10, 25) is None  # the refused command's id
        ack(s, retry, "gw-b", "south", True, "", t, 10, 25)
    assert states(engine) == {"north": ("put", "acked", v1, 1), "south": ("put", "acked", v1, 3)}


def ack(
    s: Session, cid: str, gateway: str, gate: str, ok: bool, error: str, now: datetime, base_s: float, max_s: float
) -> GalleryDelivery | None:
    return mark_acked(
        s, command_id=cid, gateway=gateway, gate=gate, ok=ok, error=error, now=now, base_s=base_s, max_s=max_s
    )


def test_a_removal_leaves_a_tombstone_that_every_gate_deletes_by(engine: Engine, router: Router) -> None:
    v1 = enrol(engine, router).version
    with make_sessions(engine).begin() as s:
        (d, _), _south = due_deliveries(s, now=T0, gateways=["gw-b"], gates=["north", "south"])
        old_id = d.command_id
    with make_sessions(engine).begin() as s:  # same instant: the version still grows
        r = delete_resident(s, resident_id="r-1", now=T0, gates=gates_of(router))
        assert (embedding_of(s, resident_id="r-1", model=DLIB), r.deleted_at, r.version) == (None, T0, v1 + 1)
    assert states(engine) == {"north": ("delete", "pending", v1 + 1, 0), "south": ("delete", "pending", v1 + 1, 0)}
    with make_sessions(engine).begin() as s:
        assert ack(s, old_id, "gw-b", "north", True, "", T0, 1, 1) is None  # the old put
        with pytest.raises(ResidentNotFound):
            delete_resident(s, resident_id="r-1", now=T0, gates=gates_of(router))
    with Session(engine) as s:
        [row] = s.execute(select(Resident)).scalars()
        assert (row.id, row.name) == ("r-1", "Resident One")
        assert s.execute(select(ResidentEmbedding)).first() is None  # no embedding left of any model
    v3 = enrol(engine, router, now=T0 + timedelta(minutes=1)).version  # enrolled again later
    assert v3 > v1 + 1 and states(engine)["north"] == ("put", "pending", v3, 0)


def test_a_gateway_back_online_gets_its_deliveries_at_once_and_a_new_gate_gets_everyone(
    engine: Engine, router: Router
) -> None:
    v1 = enrol(engine, router, "r-1").version
    enrol(engine, router, "r-2")
    with make_sessions(engine).begin() as s:
        delete_resident(s, resident_id="r-2", now=T0, gates=gates_of(router))
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        for d, _ in due_deliveries(s, now=T0, gateways=["gw-b"], gates=["north", "south"]):
            mark_sent(d, now=T0, base_s=60, max_s=600)
    with sessions.begin() as s:
        assert due_deliveries(s, now=T0 + timedelta(seconds=1), gateways=["gw-b"], gates=["north", "south"]) == []
        assert resend_gateway(s, gateway="gw-b", now=T0 + timedelta(seconds=1)) == 4
        assert resend_gateway(s, gateway="gw-other", now=T0) == 0
    with sessions.begin() as s:
        due = due_deliveries(s, now=T0 + timedelta(seconds=1), gateways=["gw-b"], gates=["north", "south"])
        assert len(due) == 4
    east = Gate(id="east", name="East gate", location="g1", gateway="gw-c")
    with sessions.begin() as s:
        assert reconcile_deliveries(s, gates=[*gates_of(router), east], now=T0) == 1  # r-1 only: r-2 was removed
        assert reconcile_deliveries(s, gates=[*gates_of(router), east], now=T0) == 0
    assert states(engine, "r-1")["east"] == ("put", "pending", v1, 0)
    assert "east" not in states(engine, "r-2")
    with Session(engine) as s:
        assert s.execute(select(func.count()).where(GalleryDelivery.gateway == "gw-c")).scalar_one() == 1
    assert delivery_state(GalleryDelivery(error=None, acked_at=None)) is DeliveryState.PENDING
