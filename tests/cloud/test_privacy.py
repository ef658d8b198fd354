"""cloud/privacy.py on SQLite and PostgreSQL: retention, a resident's removal, removals a gate has not confirmed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cloud import audit
from cloud.audit import AuditAction
from cloud.db.engine import make_sessions
from cloud.db.models import (
    AuditRecord,
    Consent,
    DeadLetter,
    Entry,
    EventRow,
    GalleryDelivery,
    Resident,
    ResidentEmbedding,
    WorkOrder,
)
from cloud.gates.store import delete_resident, enrol_resident, mark_acked
from cloud.privacy import deletion_alarms, forget_resident, purge, remove_files
from cloud.workorders.routing import Router
from cloud.workorders.store import add_dead_letters, record_events
from harness import DATA
from sc.config.loader import load_site_config
from sc.config.schema import Privacy
from sc.contracts.commands import EmbeddingModel
from sc.contracts.messages import DEFAULT_SEVERITY, EntryMethod, Event, EventKind, EventState, GatePayload

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
SITE = load_site_config(DATA / "site.yaml").site
LOCATIONS = SITE.device_locations()
DLIB = EmbeddingModel.DLIB_RESNET_V1
PRIVACY = Privacy(face_crops_days=30, stranger_frames_days=10, entries_days=90, audit_days=60)


def gate_event(kind: EventKind, seq: int, at: datetime, gate: str = "north", **payload: Any) -> Event:
    return Event(
        site="test", gateway="gw-b", device=gate, ts=at, seq=seq, kind=kind, state=EventState.RAISED,
        severity=DEFAULT_SEVERITY[kind], payload=GatePayload(gate=gate, **payload),
    )  # fmt: skip


def store(engine: Engine, router: Router, media: Path, events: list[tuple[Event, datetime]]) -> dict[str, str]:
    """Each event as the ingester stores it on the day given, with a snapshot file; event id -> its path."""
    paths: dict[str, str] = {}
    sessions = make_sessions(engine)
    for ev, received in events:
        rel = f"snapshots/{ev.id}.jpg"
        (media / "snapshots").mkdir(parents=True, exist_ok=True)
        (media / rel).write_bytes(b"\xff\xd8\xff" + ev.id.encode())
        paths[ev.id] = rel
        with sessions.begin() as s:
            record_events(
                s, events=[ev], router=router, device_locations=LOCATIONS, now=received, snapshots={ev.id: rel}
            )
    return paths


def count(engine: Engine, model: type[Any], *where: Any) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def test_retention_removes_exactly_what_is_older_than_each_period(
    engine: Engine, router: Router, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    now = T0 + timedelta(days=100)

    def face(seq: int, days: int) -> tuple[Event, datetime]:
        at = now - timedelta(days=days)
        return gate_event(EventKind.ENTRY, seq, at, method=EntryMethod.FACE, person="r-1"), at

    def stranger(seq: int, days: int) -> tuple[Event, datetime]:
        at = now - timedelta(days=days)
        return gate_event(EventKind.STRANGER_AT_GATE, seq, at, gate="south"), at

    old_entry, mid_entry, new_entry = face(1, 95), face(2, 40), face(3, 5)
    old_stranger, new_stranger = stranger(1, 12), stranger(2, 3)
    paths = store(engine, router, media, [old_entry, mid_entry, new_entry, old_stranger, new_stranger])
    with make_sessions(engine).begin() as s:
        add_dead_letters(s, items=[("sc/v1/test/gw-b/event/north", "bad", b"x" * 10)], now=now - timedelta(days=11))
        add_dead_letters(s, items=[("sc/v1/test/gw-b/event/north", "bad", b"y")], now=now - timedelta(days=1))
        for days in (61, 59):
            audit.record(s, actor="op-1", role="operator", action=AuditAction.SNAPSHOT_VIEWED, target="x",
                         at=now - timedelta(days=days))  # fmt: skip
    with Session(engine) as s:
        [order] = s.execute(select(WorkOrder).where(WorkOrder.device == "south")).scalars()
        assert order.snapshot_event_id == new_stranger[0].id
    with make_sessions(engine).begin() as s:
        out, gone = purge(s, privacy=PRIVACY, now=now)
    removed = remove_files(media, gone)
    # entries: the one past 90 days goes whole (entry and event); face crops past 30 days; frames past 10 days
    assert (out.entries, out.face_crops, out.stranger_frames, out.dead_letters, out.audit_records) == (1, 2, 1, 1, 1)
    assert sorted(gone) == sorted([paths[old_entry[0].id], paths[mid_entry[0].id], paths[old_stranger[0].id]])
    assert removed == 3
    assert sorted(p.name for p in (media / "snapshots").iterdir()) == sorted(
        f"{e[0].id}.jpg" for e in (new_entry, new_stranger)
    )
    with Session(engine) as s:
        entries = {e.event_id: e.snapshot for e in s.execute(select(Entry)).scalars()}
        assert entries == {mid_entry[0].id: None, new_entry[0].id: paths[new_entry[0].id]}
        assert s.get(EventRow, old_entry[0].id) is None
        old = s.get(EventRow, old_stranger[0].id)
        assert old is not None and old.snapshot is None and old.work_order_id is not None  # the alarm stays
        [order] = s.execute(select(WorkOrder).where(WorkOrder.device == "south")).scalars()
        assert order.snapshot_event_id == new_stranger[0].id  # the newer frame is still shown
    assert count(engine, DeadLetter) == 1 and count(engine, AuditRecord) == 1
    # a second run finds nothing more to remove
    with make_sessions(engine).begin() as s:
        again, none = purge(s, privacy=PRIVACY, now=now)
    assert again.summary() == "0 face crops, 0 stranger frames, 0 entries, 0 dead letters, 0 audit records, 0 files"
    assert none == []


def _enrol(s: Session, rid: str, now: datetime) -> Resident:
    emb = np.ones(128, dtype="<f4").tobytes()
    r = enrol_resident(s, resident_id=rid, name="Zhang Wei", embeddings={DLIB: emb}, photos=1, by="op-1", now=now,
                       gates=SITE.gates, unit="3-201", location="b1-u1")  # fmt: skip
    s.add(Consent(resident=rid, version="face-entry-1", text_sha256="0" * 64, given_by="the resident",
                  recorded_by="op-1", at=now))  # fmt: skip
    return r


def test_a_removed_resident_keeps_no_name_no_face_crop_and_a_withdrawn_consent(
    engine: Engine, router: Router, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    with make_sessions(engine).begin() as s:
        _enrol(s, "r-zw", T0)
    theirs = gate_event(EventKind.ENTRY, 1, T0, method=EntryMethod.FACE, person="r-zw")
    other = gate_event(EventKind.ENTRY, 2, T0, method=EntryMethod.FACE, person="r-else")
    paths = store(engine, router, media, [(theirs, T0), (other, T0)])
    later = T0 + timedelta(hours=1)
    with make_sessions(engine).begin() as s:
        r = delete_resident(s, resident_id="r-zw", now=later, gates=SITE.gates)
        gone = forget_resident(s, resident=r, now=later)
    assert gone == [paths[theirs.id]] and remove_files(media, gone) == 1
    assert [p.name for p in (media / "snapshots").iterdir()] == [f"{other.id}.jpg"]
    with Session(engine) as s:
        tomb = s.get(Resident, "r-zw")
        assert tomb is not None
        assert (tomb.name, tomb.unit, tomb.location) == ("", None, "b1-u1")
        assert s.execute(select(ResidentEmbedding)).first() is None
        [consent] = s.execute(select(Consent)).scalars()
        assert consent.withdrawn_at == later
        e = s.get(Entry, theirs.id)
        assert e is not None and e.snapshot is None and e.person == "r-zw"  # the entry itself stays its retention


def test_a_gate_that_does_not_confirm_a_removal_raises_an_alarm_that_clears_when_it_does(
    engine: Engine, router: Router
) -> None:
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        _enrol(s, "r-a", T0)
        _enrol(s, "r-b", T0)
        for d in s.execute(select(GalleryDelivery)).scalars():  # both gates had both faces
            d.acked_at, d.next_attempt_at = T0, None
    removed = T0 + timedelta(hours=1)
    with sessions.begin() as s:
        for rid in ("r-a", "r-b"):
            delete_resident(s, resident_id=rid, now=removed, gates=SITE.gates)
        for d in s.execute(select(GalleryDelivery).where(GalleryDelivery.gate == "north")).scalars():
            d.acked_at, d.next_attempt_at = removed, None  # north confirmed at once; south is offline

    def ack(s: Session, rid: str) -> None:
        q = select(GalleryDelivery).where(GalleryDelivery.gate == "south", GalleryDelivery.resident == rid)
        d = s.execute(q).scalar_one()
        got = mark_acked(s, command_id=d.command_id, gateway="gw-b", gate="south", ok=True, error="", now=removed,
                         base_s=30, max_s=600)  # fmt: skip
        assert got is d

    def check(minutes: float) -> tuple[dict[str, list[str]], int]:
        with sessions.begin() as s:
            return deletion_alarms(
                s, site=SITE, router=router, now=removed + timedelta(minutes=minutes), after=timedelta(minutes=60)
            )

    assert check(59) == ({}, 0)
    assert count(engine, WorkOrder) == 0
    assert check(61) == ({"south": ["r-a", "r-b"]}, 0)
    assert check(62) == ({"south": ["r-a", "r-b"]}, 0)  # every minute: still one order, the same two alarms
    with Session(engine) as s:
        [order] = s.execute(select(WorkOrder)).scalars()
        assert (order.device, order.kind, order.category, order.alarm_count, order.cleared_at) == (
            "south", "gallery_delete_overdue", "security", 2, None
        )  # fmt: skip
        assert order.department == "property"  # routed like every security order of the test site
    with sessions.begin() as s:  # south comes back and confirms one, then the other
        ack(s, "r-a")
    assert check(70) == ({"south": ["r-b"]}, 0)
    with sessions.begin() as s:
        ack(s, "r-b")
    assert check(71) == ({}, 1)
    assert check(72) == ({}, 0)
    with Session(engine) as s:
        [order] = s.execute(select(WorkOrder)).scalars()
        assert order.cleared_at is not None and order.alarm_count == 2
