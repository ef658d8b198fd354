"""The ingester's database side: validate, store, then acknowledge.

One thread takes what the consumer received in batches (up to
``batch_max`` messages: whatever is waiting when it is free) and handles each batch
in one transaction: events stored once and turned into work orders, bad
messages kept as dead letters with the reason and the raw bytes, device
state updated. Only after the commit are the batch's messages acknowledged
to the broker; if the database is down the batch is retried with backoff and
nothing is acknowledged, so nothing is lost. Telemetry goes to the InfluxDB
writer, which batches and retries on its own and never blocks this thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.gates.snapshots import SnapshotError, decode_snapshot, save_snapshot
from cloud.workorders.routing import Router
from cloud.workorders.store import EventOutcome, add_dead_letters, record_events, upsert_devices
from sc.config.schema import SiteConfig
from sc.contracts.commands import CommandAck
from sc.contracts.messages import (
    CLOUD_KINDS,
    AlarmPayload,
    CommandRefusedPayload,
    ContractError,
    Event,
    FaultPayload,
    GatePayload,
    Status,
    StatusState,
    Telemetry,
    decode,
)
from sc.contracts.topics import Kind, Topic, TopicError
from sc.supervise import Parts, supervised_thread

from .consumer import Inbound

__all__ = ["IngestCounters", "IngestWorker", "SourceRefused", "TelemetrySink"]

log = logging.getLogger(__name__)

#: What only a gateway writes (the broker's ACL keeps it under its own prefix; ownership is checked here).
_FROM_GATEWAYS = frozenset({Kind.EVENT, Kind.TELEMETRY, Kind.STATUS, Kind.CMD_ACK, Kind.STATE, Kind.SNAPSHOT})


class SourceRefused(ContractError):
    """A well-formed message from a gateway about something the site config does not give it."""


class TelemetrySink(Protocol):
    def submit_telemetry(self, t: Telemetry) -> None: ...


@dataclass
class IngestCounters:
    messages: int = 0
    batches: int = 0
    events_new: int = 0
    events_duplicate: int = 0
    orders_opened: int = 0
    alarms_attached: int = 0
    clears: int = 0
    entries: int = 0  # gate entry records (entry, entry_refused)
    snapshots: int = 0  # gate snapshots saved
    snapshots_bad: int = 0  # not base64 / not a JPEG: the event is kept without it
    snapshot_write_errors: int = 0
    telemetry: int = 0
    statuses: int = 0
    dead_letters: int = 0
    refused_source: int = 0  # a gateway speaking for what the site config does not give it (dead-lettered too)
    db_errors: int = 0
    last_batch_ms: float = 0.0


@dataclass
class _Batch:
    events: list[Event] = field(default_factory=list)
    dead: list[tuple[str, str, bytes]] = field(default_factory=list)
    snapshots: dict[str, str] = field(default_factory=dict)  # event id -> saved file under media_dir


class IngestWorker:
    def __init__(
        self,
        *,
        site: SiteConfig,
        router: Router,
        sessions: sessionmaker[Session],
        inbox: queue.Queue[Inbound],
        ack: Callable[[list[Inbound]], None],
        telemetry: TelemetrySink | None,
        batch_max: int = 500,
        device_flush_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_outcomes: Callable[[list[EventOutcome]], None] | None = None,
        media_dir: Path | None = None,
        parts: Parts | None = None,
    ) -> None:
        self.site = site
        self.media_dir = media_dir  # gate snapshots are saved under it (None: not kept)
        self.router = router
        self.sessions = sessions
        self.inbox = inbox
        self.ack = ack
        self.telemetry = telemetry
        self.batch_max = batch_max
        self.device_flush_s = device_flush_s
        self.clock = clock
        self.on_outcomes = on_outcomes
        self.counters = IngestCounters()
        self.locations: dict[str, str] = {}
        for gw in site.gateways:
            self.locations[gw.id] = gw.location
            for dev in gw.devices:
                self.locations[dev.id] = dev.location
        for gate in site.gates:  # a gate's events come from the gate's id
            self.locations[gate.id] = gate.location
        for garage in site.garages:
            self.locations[garage.id] = garage.location
        #: who may speak for what: device id -> owning gateway, gate ids, sensor id -> its reading type
        self.owners = site.device_owners()
        self.gate_ids = frozenset(g.id for g in site.gates)
        self.reading_types = {dev.id: dev.type.value for gw in site.gateways for dev in gw.devices}
        self._devices: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._last_device_flush = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=supervised_thread("ingest-worker", self._run, self._stop, parts=parts),
            name="ingest-worker",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    # ---------------------------------------------------------------- loop

    def _take(self) -> list[Inbound]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]  # and whatever else is already waiting: a lone alarm does not wait for company
        while len(batch) < self.batch_max:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            if not batch:
                if self._dirty and time.monotonic() - self._last_device_flush > self.device_flush_s:
                    self._with_retry([])
                continue
            self._with_retry(batch)

    def _with_retry(self, batch: list[Inbound]) -> None:
        backoff = 0.5
        while True:
            try:
                self.handle(batch)
                return
            except DataError as exc:  # a value the database refuses: this batch would fail the same way forever
                self.counters.db_errors += 1
                reason = str(exc.orig or exc).splitlines()[0]
                if len(batch) > 1:  # find the message: one by one, in order
                    log.error("ingest: the database refused a value in a batch of %d (%s): taking them one by one",
                              len(batch), reason)  # fmt: skip
                    for m in batch:
                        self._with_retry([m])
                    return
                if batch:
                    self._refuse(batch[0], f"the database refused a value: {reason}")
                return
            except SQLAlchemyError as exc:
                self.counters.db_errors += 1
                log.error("ingest: database error, batch of %d kept and retried in %.1f s: %s",
                          len(batch), backoff, str(exc).splitlines()[0])  # fmt: skip
                if self._stop.wait(backoff):
                    return  # stopping: not acknowledged, the broker delivers them again
                backoff = min(backoff * 2, 30.0)

    def _refuse(self, m: Inbound, reason: str) -> None:
        """Keep ``m`` as a dead letter and acknowledge it, so it is not delivered again (retried while the database
        is down)."""
        log.warning("ingest: refused %s: %s", m.topic, reason)
        while not self._stop.is_set():
            try:
                with self.sessions.begin() as s:
                    add_dead_letters(s, items=[(m.topic, reason, m.payload)], now=self.clock())
                break
            except SQLAlchemyError as exc:
                log.error("ingest: cannot keep a dead letter (will retry): %s", str(exc).splitlines()[0])
                self._stop.wait(1.0)
        else:
            return
        self.ack([m])
        self.counters.messages += 1
        self.counters.dead_letters += 1

    # ---------------------------------------------------------------- one batch

    def handle(self, batch: list[Inbound]) -> list[EventOutcome]:
        t0 = time.perf_counter()
        now = self.clock()
        parsed = _Batch()
        for m in batch:
            self._classify(m, parsed, now)
        flush_devices = self._dirty and (time.monotonic() - self._last_device_flush > self.device_flush_s or not batch)
        with self.sessions.begin() as s:
            outcomes = record_events(
                s, events=parsed.events, router=self.router, device_locations=self.locations, now=now,
                snapshots=parsed.snapshots,
            )  # fmt: skip
            if parsed.dead:
                add_dead_letters(s, items=parsed.dead, now=now)
            if flush_devices:
                upsert_devices(s, rows=[self._devices[d] for d in sorted(self._dirty)], now=now)
        if flush_devices:
            for d in self._dirty:  # what was written is no longer news
                self._devices.pop(d, None)
            self._dirty.clear()
            self._last_device_flush = time.monotonic()
        self.ack(batch)
        c = self.counters
        c.messages += len(batch)
        c.batches += 1 if batch else 0
        c.dead_letters += len(parsed.dead)
        for o in outcomes:
            c.events_duplicate += o.duplicate
            c.events_new += not o.duplicate
            c.orders_opened += o.opened
            c.alarms_attached += o.attached
            c.clears += o.cleared
            c.entries += o.recorded
        c.last_batch_ms = (time.perf_counter() - t0) * 1000
        for o in outcomes:
            if o.opened:
                log.info("work order %d opened by event %s", o.order_id, o.event_id)
        if self.on_outcomes is not None and outcomes:
            self.on_outcomes(outcomes)
        return outcomes

    def _classify(self, m: Inbound, into: _Batch, now: datetime) -> None:
        try:
            topic = Topic.parse(m.topic)
        except TopicError as exc:
            into.dead.append((m.topic, str(exc), m.payload))
            return
        try:
            if topic.kind in _FROM_GATEWAYS:
                self._check_source(topic)
            if topic.kind is Kind.EVENT:
                ev = decode(Event, m.payload)
                if (ev.site, ev.gateway, ev.device) != (topic.site, topic.gateway, topic.device):
                    raise ContractError(
                        f"event names {ev.site}/{ev.gateway}/{ev.device} but came on {topic.site}/"
                        f"{topic.gateway}/{topic.device}"
                    )
                self._check_event(ev)
                into.events.append(ev)
                if isinstance(ev.payload, GatePayload) and ev.payload.snapshot_jpeg:
                    self._snapshot(ev, ev.payload.snapshot_jpeg, into)
            elif topic.kind is Kind.TELEMETRY:
                t = decode(Telemetry, m.payload)
                if (t.site, t.gateway, t.device) != (topic.site, topic.gateway, topic.device):
                    raise ContractError(
                        f"telemetry names {t.site}/{t.gateway}/{t.device} but came on {topic.site}/{topic.gateway}/"
                        f"{topic.device}"
                    )
                self._check_reading(t.device, t.reading.type)
                self.counters.telemetry += 1
                if self.telemetry is not None:
                    self.telemetry.submit_telemetry(t)
                row = self._device(topic, now)
                if row.get("last_seen") is None or t.ts >= row["last_seen"]:
                    row["last_seen"] = t.ts
                    row["last_reading"] = t.reading.model_dump(mode="json")
            elif topic.kind is Kind.STATUS:
                st = decode(Status, m.payload)
                self.counters.statuses += 1
                row = self._device(topic, now)
                since = st.ts or now
                if row.get("status_since") is None or since >= row["status_since"]:
                    row["online"] = st.state is StatusState.ONLINE
                    row["status_reason"] = st.reason
                    row["status_since"] = since
            elif topic.kind is Kind.CMD_ACK:
                ack = decode(CommandAck, m.payload)
                log.info("command %s on %s/%s: ok=%s %s", ack.id, topic.gateway, topic.device, ack.ok, ack.error)
            # cmd and uplink are not the gateways' output; snapshots come with the gate issue
        except SourceRefused as exc:
            self.counters.refused_source += 1
            log.warning("ingest: refused %s: %s", m.topic, exc)
            into.dead.append((m.topic, str(exc), m.payload))
        except ContractError as exc:
            into.dead.append((m.topic, str(exc), m.payload))

    # ---------------------------------------------------------------- who may say what (the site config decides)

    def _check_source(self, topic: Topic) -> None:
        """The topic's gateway must own its device; the broker's ACL only keeps a gateway under its own prefix."""
        if topic.site != self.site.site.id:
            raise SourceRefused(f"site {topic.site!r} is not this ingester's site {self.site.site.id!r}")
        owner = self.owners.get(topic.device)
        if owner is None:
            raise SourceRefused(f"device {topic.device!r} is not in the site config")
        if owner != topic.gateway:
            raise SourceRefused(
                f"gateway {topic.gateway!r} spoke for {topic.device!r}, which the site config gives to {owner!r}"
            )

    def _check_event(self, ev: Event) -> None:
        if ev.kind in CLOUD_KINDS:
            raise SourceRefused(f"{ev.kind.value} is raised by the cloud only, not by a gateway")
        p = ev.payload
        if isinstance(p, GatePayload):
            if ev.device not in self.gate_ids:
                raise SourceRefused(f"a gate event from {ev.device!r}, which is not a gate")
            if p.gate != ev.device:
                raise SourceRefused(f"gate {ev.device!r} reported an event of gate {p.gate!r}")
        elif isinstance(p, AlarmPayload | FaultPayload) and p.reading is not None:
            self._check_reading(ev.device, p.reading.type)
        elif isinstance(p, CommandRefusedPayload) and ev.device != ev.gateway:
            raise SourceRefused(f"a command refusal from {ev.device!r}: only a gateway itself reports them")

    def _check_reading(self, device: str, reading_type: str) -> None:
        expected = self.reading_types.get(device)
        if expected is None:
            raise SourceRefused(f"a {reading_type} reading from {device!r}, which is not a sensor")
        if reading_type != expected:
            raise SourceRefused(f"a {reading_type} reading from {device!r}, which is a {expected} sensor")

    def _snapshot(self, ev: Event, text: str, into: _Batch) -> None:
        """Save the event's JPEG before the event is stored; a bad one is counted and left out, the event kept."""
        try:
            data = decode_snapshot(text)
        except SnapshotError as exc:
            self.counters.snapshots_bad += 1
            log.warning("event %s (%s at %s): snapshot left out: %s", ev.id, ev.kind.value, ev.device, exc)
            return
        if self.media_dir is None:
            return
        try:
            into.snapshots[ev.id] = save_snapshot(self.media_dir, ev.id, data)
        except OSError as exc:
            self.counters.snapshot_write_errors += 1
            log.error("event %s: cannot save its snapshot under %s: %s", ev.id, self.media_dir, exc)
            return
        self.counters.snapshots += 1

    def _device(self, topic: Topic, now: datetime) -> dict[str, Any]:
        """The pending update of one device: only what this ingester saw since the last flush."""
        row = self._devices.get(topic.device)
        if row is None:
            row = {
                "id": topic.device,
                "site": topic.site,
                "gateway": topic.gateway,
                "is_gateway": topic.device == topic.gateway,
            }
            self._devices[topic.device] = row
        self._dirty.add(topic.device)
        return row
