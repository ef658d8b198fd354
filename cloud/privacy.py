"""Personal data that does not outlive its purpose: retention, a resident's removal, and gates that keep a face.

* :func:`purge` (the daily job): face crops, stranger and alarm frames, entries, dead letters and the audit log
  older than the site config's ``privacy`` days are removed; what it removed is counted, logged in one line and
  written to the audit log.
* :func:`forget_resident` (at a removal, with the embedding's deletion): the tombstone keeps no name or flat,
  the consent is marked withdrawn and the snapshots of the resident's entries are removed at once; the entries
  themselves go with everyone's after ``entries_days``.
* :func:`deletion_alarms` (every minute): a gate that has not confirmed a removal ``deletion_alarm_min`` after it
  was planned raises ``gallery_delete_overdue`` on that gate, a work order on the wall (the removed resident's
  face still opens that door); it clears when the gate has confirmed every removal.

Files are removed after the transaction that forgot them commits (:func:`remove_files`): a file whose row is
gone is never served, a row whose file is gone answers 404.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud import audit
from cloud.audit import RETENTION_ACTOR, AuditAction
from cloud.db.models import Consent, DeadLetter, Entry, EventRow, GalleryDelivery, Resident, WorkOrder
from cloud.workorders.routing import Router
from cloud.workorders.states import Status
from cloud.workorders.store import record_events
from sc.config.schema import Privacy, SiteConfig
from sc.contracts.messages import DEFAULT_SEVERITY, RECORD_KINDS, Event, EventKind, EventState, GatePayload
from sc.supervise import Parts, supervised_thread

__all__ = ["PrivacyJob", "Purged", "consent_digest", "deletion_alarms", "forget_resident", "purge", "remove_files"]

log = logging.getLogger(__name__)

_RECORDS = sorted(k.value for k in RECORD_KINDS)
_DONE = (Status.RESOLVED.value, Status.CLOSED.value)


@dataclass
class Purged:
    """What one retention run removed."""

    face_crops: int = 0
    stranger_frames: int = 0
    entries: int = 0
    dead_letters: int = 0
    audit_records: int = 0
    files: int = 0  # snapshot files deleted from the media folder

    def summary(self) -> str:
        return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in asdict(self).items())


def _event_snapshots(session: Session, ids: Sequence[str]) -> list[str]:
    """Forget the snapshots of events ``ids`` (events, entries, the orders showing them); their paths."""
    if not ids:
        return []
    paths = [p for (p,) in session.execute(select(EventRow.snapshot).where(EventRow.id.in_(ids))) if p]
    session.execute(update(EventRow).where(EventRow.id.in_(ids)).values(snapshot=None))
    session.execute(update(Entry).where(Entry.event_id.in_(ids)).values(snapshot=None))
    session.execute(update(WorkOrder).where(WorkOrder.snapshot_event_id.in_(ids)).values(snapshot_event_id=None))
    return paths


def purge(session: Session, *, privacy: Privacy, now: datetime, batch: int = 5000) -> tuple[Purged, list[str]]:
    """Remove what is older than the retention periods; the counts, and the snapshot files to delete after commit."""
    out, paths = Purged(), []
    with_snapshot = EventRow.snapshot.is_not(None)
    for kinds, days, field in (
        (EventRow.kind.in_(_RECORDS), privacy.face_crops_days, "face_crops"),
        (EventRow.kind.not_in(_RECORDS), privacy.stranger_frames_days, "stranger_frames"),
    ):
        cutoff = now - timedelta(days=days)
        while True:
            q = select(EventRow.id).where(with_snapshot, kinds, EventRow.received_at < cutoff).limit(batch)
            ids = list(session.execute(q).scalars())
            got = _event_snapshots(session, ids)
            paths += got
            setattr(out, field, getattr(out, field) + len(ids))
            if len(ids) < batch:
                break
    cutoff = now - timedelta(days=privacy.entries_days)
    while True:  # an entry is an event row too: both go (records never belong to a work order)
        ids = list(session.execute(select(Entry.event_id).where(Entry.ts < cutoff).limit(batch)).scalars())
        paths += [p for (p,) in session.execute(select(EventRow.snapshot).where(EventRow.id.in_(ids))) if p]
        session.execute(delete(Entry).where(Entry.event_id.in_(ids)))
        session.execute(delete(EventRow).where(EventRow.id.in_(ids), EventRow.work_order_id.is_(None)))
        out.entries += len(ids)
        if len(ids) < batch:
            break
    # a refused message may carry a face (a gate event's snapshot): kept no longer than a stranger's frame
    dead_cutoff = now - timedelta(days=privacy.stranger_frames_days)
    out.dead_letters = int(
        session.execute(delete(DeadLetter).where(DeadLetter.received_at < dead_cutoff)).rowcount  # type: ignore[attr-defined]
    )
    out.audit_records = audit.prune_audit(session, before=now - timedelta(days=privacy.audit_days))
    return out, paths


def consent_digest(text: str) -> str:
    """The SHA-256 of a consent text as recorded: which exact words a resident agreed to."""
    return hashlib.sha256(text.encode()).hexdigest()


def forget_resident(session: Session, *, resident: Resident, now: datetime) -> list[str]:
    """At a resident's removal: no name or flat in the tombstone, consent withdrawn, their entries' snapshots
    forgotten (the paths, to delete after commit). The tombstone's id, location and version stay: the gates
    delete by them."""
    resident.name, resident.unit = "", None
    session.execute(
        update(Consent).where(Consent.resident == resident.id, Consent.withdrawn_at.is_(None)).values(withdrawn_at=now)
    )
    ids = list(
        session.execute(
            select(Entry.event_id).where(Entry.person == resident.id, Entry.snapshot.is_not(None))
        ).scalars()
    )
    return _event_snapshots(session, ids)


def remove_files(media_dir: Path, paths: Sequence[str]) -> int:
    """Delete snapshot files (paths under ``media_dir``); returns how many were there to delete."""
    root = media_dir.resolve()
    n = 0
    for rel in paths:
        p = (root / rel).resolve()
        if not p.is_relative_to(root):
            continue
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("privacy: could not delete %s: %s", p, exc)
    return n


# --------------------------------------------------------------------------- removals a gate has not confirmed


def _event_id(*parts: object) -> str:
    return "gdo-" + hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:40]


def deletion_alarms(
    session: Session, *, site: SiteConfig, router: Router, now: datetime, after: timedelta
) -> tuple[dict[str, list[str]], int]:
    """Raise ``gallery_delete_overdue`` at each gate with a removal unconfirmed for longer than ``after``, clear it
    where none is left; returns gate -> the residents it has not confirmed, and how many gates were cleared.

    Event ids are made from what they are about, so every cloud process may run this: the same alarm is stored once.
    """
    gates = {g.id: g for g in site.gates}
    d = GalleryDelivery
    q = (
        select(d)
        .where(d.op == "delete", d.acked_at.is_(None), d.planned_at < now - after)
        .order_by(d.gate, d.planned_at)
    )
    overdue: dict[str, list[GalleryDelivery]] = {}
    for row in session.execute(q).scalars():
        if row.gate in gates:
            overdue.setdefault(row.gate, []).append(row)
    locations = site.device_locations()
    events: list[Event] = []
    for gate, rows in overdue.items():
        for row in rows:
            minutes = (now - row.planned_at).total_seconds() / 60
            reason = (
                f"gate {gate} has not confirmed the removal of resident {row.resident} ({minutes:.0f} min): "
                "their face may still open it"
            )
            eid = _event_id(gate, row.resident, row.version)
            events.append(_alarm(site.site.id, gates[gate].gateway, gate, EventState.RAISED, reason, now, eid))
    # a gate whose alarm is open and that has confirmed every removal since: clear it
    open_orders = session.execute(
        select(WorkOrder.id, WorkOrder.device).where(
            WorkOrder.kind == EventKind.GALLERY_DELETE_OVERDUE.value,
            WorkOrder.status.not_in(_DONE),
            WorkOrder.cleared_at.is_(None),
        )
    ).all()
    cleared = 0
    for order_id, device in open_orders:
        if device is not None and device in gates and device not in overdue:
            done = f"gate {device} has confirmed every removal"
            eid = _event_id(device, "clear", order_id)
            events.append(_alarm(site.site.id, gates[device].gateway, device, EventState.CLEARED, done, now, eid))
            cleared += 1
    if events:
        record_events(session, events=events, router=router, device_locations=locations, now=now)
    return {g: [r.resident for r in rows] for g, rows in overdue.items()}, cleared


def _alarm(site: str, gateway: str, gate: str, state: EventState, reason: str, now: datetime, event_id: str) -> Event:
    kind = EventKind.GALLERY_DELETE_OVERDUE
    return Event(
        id=event_id, site=site, gateway=gateway, device=gate, ts=now, seq=int(now.timestamp()), kind=kind, state=state,
        severity=DEFAULT_SEVERITY[kind], payload=GatePayload(gate=gate, reason=reason[:500]),
    )  # fmt: skip


# --------------------------------------------------------------------------- the job


class PrivacyJob:
    """The cloud's privacy part: removal alarms every ``check_s``, the retention purge every ``purge_s``."""

    def __init__(
        self,
        *,
        site: SiteConfig,
        sessions: sessionmaker[Session],
        router: Router,
        media_dir: Path,
        check_s: float = 60.0,
        purge_s: float = 86400.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parts: Parts | None = None,
    ) -> None:
        self.site = site
        self.privacy = site.privacy
        self.sessions = sessions
        self.router = router
        self.media_dir = media_dir
        self.check_s = check_s
        self.purge_s = purge_s
        self.clock = clock
        self.last_purge: datetime | None = None
        self.purged = Purged()  # the last run's
        self.overdue: dict[str, list[str]] = {}
        self.errors = 0
        self._announced: frozenset[tuple[str, str]] = frozenset()
        self._next_purge = 0.0  # monotonic: at start, then every purge_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=supervised_thread("privacy", self._run, self._stop, parts=parts), name="privacy", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def run_purge(self) -> Purged:
        now = self.clock()
        with self.sessions.begin() as s:
            out, paths = purge(s, privacy=self.privacy, now=now)
            audit.record(s, actor=RETENTION_ACTOR, role="system", action=AuditAction.RETENTION, target="site",
                         at=now, outcome=out.summary())  # fmt: skip
        out.files = remove_files(self.media_dir, paths)
        self.purged, self.last_purge = out, now
        log.info("privacy: retention removed %s", out.summary())
        return out

    def check(self) -> dict[str, list[str]]:
        with self.sessions.begin() as s:
            overdue, cleared = deletion_alarms(
                s, site=self.site, router=self.router, now=self.clock(),
                after=timedelta(minutes=self.privacy.deletion_alarm_min),
            )  # fmt: skip
        now_set = frozenset((g, r) for g, rs in overdue.items() for r in rs)
        new = now_set - self._announced
        if new:  # once per gate and resident, not every minute
            log.warning("privacy: removals not confirmed: %s",
                        "; ".join(f"{g}: {r}" for g, r in sorted(new)))  # fmt: skip
        if cleared:
            log.info("privacy: %d gates confirmed every removal: alarm cleared", cleared)
        self._announced = now_set
        self.overdue = overdue
        return overdue

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
                if time.monotonic() >= self._next_purge:
                    self.run_purge()
                    self._next_purge = time.monotonic() + self.purge_s
            except SQLAlchemyError as exc:
                self.errors += 1
                log.error("privacy: database error (will retry): %s", str(exc).splitlines()[0])
            self._stop.wait(self.check_s)

    def health(self) -> dict[str, Any]:
        return {
            "last_purge": self.last_purge.isoformat() if self.last_purge else None,
            "purged": asdict(self.purged),
            "removals_unconfirmed": {g: len(r) for g, r in self.overdue.items()},
            "errors": self.errors,
        }
