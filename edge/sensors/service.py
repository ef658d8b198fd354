"""The edge sensor service: polls Modbus sensors, takes uplinks from MQTT-native
ones, and turns both into telemetry, events and per-device availability.

Runs on the gateway's asyncio loop. Each RS-485 bus gets one task (the bus is
half duplex, so its devices are read one after another on their own
schedules); MQTT-native devices are watched for staleness (``expire_after``).
Everything a device reports goes through :class:`EventSink`, which writes to
the outbox off the loop so a slow disk never stalls polling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from devices.modbus import DeviceReadError, ModbusBus
from devices.registers import DecodeError, decode
from devices.rules import rules_for
from sc.config.schema import DeviceConfig, GatewayConfig, Transport
from sc.contracts.messages import (
    DEFAULT_SEVERITY,
    ContractError,
    Event,
    Reading,
    Severity,
    Status,
    StatusState,
    Telemetry,
    Uplink,
    encode,
)
from sc.contracts.messages import (
    decode as decode_message,
)
from sc.contracts.topics import Kind, Topic

from ..outbox import Outbox, OutboxFullError
from ..supervise import supervise
from .detect import DeviceMonitor, Transition

__all__ = ["Counters", "EventSink", "SensorService"]

log = logging.getLogger(__name__)

#: how long stopping waits for the bus and uplink workers once they are cancelled
STOP_WAIT_S = 3.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Counters:
    polls: int = 0
    poll_failures: int = 0
    bad_readings: int = 0
    uplinks: int = 0
    uplinks_dropped: int = 0
    commands_dropped: int = 0  # the command queue was full
    commands_run: int = 0
    commands_refused: int = 0  # unsigned, forged, expired, misaddressed, bad arguments (see sc/signing.py)
    commands_duplicate: int = 0  # a copy of a command already run: answered as the first time, not run again
    commands_failed: int = 0  # ran and could not do it (ok: false)
    command_errors: int = 0  # a fault of the gateway while running one (ok: false, logged with its traceback)
    acks_lost: int = 0  # an answer that could not be handed to the MQTT client
    malformed_messages: int = 0
    events: int = 0
    telemetry: int = 0
    telemetry_dropped: int = 0
    outbox_errors: int = 0


class EventSink:
    """Builds contract messages for one gateway and hands them to the outbox."""

    def __init__(
        self,
        *,
        site: str,
        gateway: str,
        outbox: Outbox,
        set_retained: Callable[[str, bytes], None],
        counters: Counters,
    ) -> None:
        self.site = site
        self.gateway = gateway
        self.outbox = outbox
        self.set_retained = set_retained
        self.counters = counters
        #: called with every event stored (from the storing thread): e.g. the garage watching smoke alarms
        self.observers: list[Callable[[str, Transition], None]] = []

    def topic(self, kind: Kind, device: str) -> str:
        return str(Topic(self.site, self.gateway, kind, device))

    def event(self, device: str, t: Transition, ts: datetime) -> Event:
        """Store an event durably (blocking: call off the event loop); returns it."""
        severity = Severity(t.severity_override) if t.severity_override else DEFAULT_SEVERITY[t.kind]
        built: list[Event] = []

        def build(seq: int) -> tuple[str, bytes]:
            ev = Event(
                site=self.site,
                gateway=self.gateway,
                device=device,
                ts=ts,
                seq=seq,
                kind=t.kind,
                state=t.state,
                severity=severity,
                payload=t.payload,
            )
            built.append(ev)
            return self.topic(Kind.EVENT, device), encode(ev)

        self.outbox.put_event(device, build)
        self.counters.events += 1
        ev = built[-1]
        for observer in self.observers:
            try:
                observer(device, t)
            except Exception:  # an observer must never lose the event it is told about
                log.exception("event observer failed on %s %s", device, t.kind.value)
        log.info(
            "event device=%s kind=%s state=%s severity=%s seq=%d id=%s",
            device,
            ev.kind.value,
            ev.state.value,
            ev.severity.value,
            ev.seq,
            ev.id,
        )
        return ev

    def telemetry(self, device: str, reading: Reading, ts: datetime) -> None:
        msg = Telemetry(site=self.site, gateway=self.gateway, device=device, ts=ts, reading=reading)
        try:
            self.outbox.put_telemetry(self.topic(Kind.TELEMETRY, device), encode(msg))
            self.counters.telemetry += 1
        except OutboxFullError as exc:
            self.counters.telemetry_dropped += 1
            log.warning("telemetry device=%s dropped: %s", device, exc)

    def device_status(self, device: str, online: bool, reason: str, ts: datetime) -> None:
        st = Status(state=StatusState.ONLINE if online else StatusState.OFFLINE, ts=ts, reason=reason)
        self.set_retained(self.topic(Kind.STATUS, device), encode(st))


class SensorService:
    def __init__(
        self,
        *,
        gateway: GatewayConfig,
        sink: EventSink,
        resolve: Callable[[str], Path],
        counters: Counters,
    ) -> None:
        self.gateway = gateway
        self.sink = sink
        self.counters = counters
        self._resolve = resolve
        self.devices: dict[str, DeviceConfig] = {d.id: d for d in gateway.devices}
        self.monitors: dict[str, DeviceMonitor] = {
            d.id: DeviceMonitor(d.id, rules_for(d), offline_after=d.offline_after) for d in gateway.devices
        }
        self.buses: dict[str, ModbusBus] = {}
        self._last_telemetry: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._device_locks: dict[str, asyncio.Lock] = {}
        self._status_sent: dict[str, bool] = {}
        self._uplinks: asyncio.Queue[tuple[str, Reading]] = asyncio.Queue(maxsize=1000)
        self.dead_workers: list[str] = []

    # ---------------------------------------------------------------- running

    async def run(self, stop: asyncio.Event) -> None:
        self._uplinks = asyncio.Queue(maxsize=1000)
        self._device_locks = {d: asyncio.Lock() for d in self.devices}
        self._loop = asyncio.get_running_loop()
        for bus_cfg in self.gateway.buses:
            port = str(self._resolve(bus_cfg.port))
            self.buses[bus_cfg.id] = ModbusBus(bus_cfg, port)
        workers: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
            (f"bus-{bus_id}", partial(self._poll_bus, bus_id, stop)) for bus_id in self.buses
        ]
        if any(d.transport is Transport.MQTT for d in self.devices.values()):
            workers.append(("uplink-expiry", partial(self._watch_expiry, stop)))
            workers.append(("uplinks", self._uplink_worker))
        tasks = [
            asyncio.create_task(supervise(name, factory, stop, on_give_up=self.dead_workers.append), name=name)
            for name, factory in workers
        ]
        log.info(
            "sensor service: %d devices on %d buses, %d mqtt-native",
            len(self.devices),
            len(self.buses),
            sum(d.transport is Transport.MQTT for d in self.devices.values()),
        )
        try:
            await stop.wait()
        finally:
            self._loop = None
            for t in tasks:
                t.cancel()
            # bounded: a worker stuck in a library that ignores its cancellation must not hold the gateway's stop
            done, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT_S) if tasks else (set(), set())
            for t in done:
                if not t.cancelled():
                    t.exception()  # retrieved: supervise() has logged it
            if stuck:
                log.warning(
                    "sensor workers %s did not stop within %g s; leaving them",
                    ", ".join(sorted(t.get_name() for t in stuck)),
                    STOP_WAIT_S,
                )
            for bus in self.buses.values():
                bus.close()

    async def _poll_bus(self, bus_id: str, stop: asyncio.Event) -> None:
        bus = self.buses[bus_id]
        devices = [d for d in self.devices.values() if d.bus == bus_id]
        if not devices:
            return
        if not await bus.connect():
            log.error("bus=%s port=%s cannot be opened; will keep trying", bus_id, bus.port)
        next_due = {d.id: time.monotonic() for d in devices}
        while not stop.is_set():
            dev = min(devices, key=lambda d: next_due[d.id])
            delay = next_due[dev.id] - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return
                except TimeoutError:
                    pass
            await self.poll_device(dev)
            now = time.monotonic()
            next_due[dev.id] = max(next_due[dev.id] + dev.poll_interval_s, now)

    async def poll_device(self, dev: DeviceConfig) -> Reading | None:
        """Read one Modbus device now and act on the answer; returns the reading if good."""
        bus = self.buses[dev.bus or ""]
        assert dev.unit is not None
        async with self._device_locks[dev.id]:
            self.counters.polls += 1
            try:
                regs = await bus.read_registers(dev.unit)
            except DeviceReadError as exc:
                self.counters.poll_failures += 1
                log.debug("poll device=%s failed: %s", dev.id, exc)
                await self._apply(dev.id, self.monitors[dev.id].failure(str(exc)), _now())
                return None
            now = _now()
            try:
                reading = decode(dev.type, regs, bin_depth_cm=dev.bin_depth_cm)
            except DecodeError as exc:
                self.counters.bad_readings += 1
                log.warning("poll device=%s implausible reading: %s", dev.id, exc)
                await self._apply(dev.id, self.monitors[dev.id].bad_reading(str(exc), now), now)
                return None
            await self._handle_reading(dev.id, reading, now)
            return reading

    async def _handle_reading(self, device: str, reading: Reading, now: datetime) -> None:
        transitions = self.monitors[device].reading(reading, now)
        last = self._last_telemetry.get(device)
        if transitions or last is None or time.monotonic() - last >= self.gateway.telemetry_interval_s:
            self._last_telemetry[device] = time.monotonic()
            await asyncio.to_thread(self.sink.telemetry, device, reading, now)
        await self._apply(device, transitions, now)

    async def _apply(self, device: str, transitions: list[Transition], now: datetime) -> None:
        for t in transitions:
            while True:
                try:
                    await asyncio.to_thread(self.sink.event, device, t, now)
                    break
                except OutboxFullError as exc:  # the disk itself is full: keep trying, loudly
                    self.counters.outbox_errors += 1
                    log.error("event device=%s kind=%s cannot be stored yet: %s", device, t.kind.value, exc)
                    await asyncio.sleep(1.0)
        monitor = self.monitors[device]
        if monitor.online is not None and self._status_sent.get(device) != monitor.online:
            self._status_sent[device] = monitor.online
            reason = "answering" if monitor.online else f"{monitor.failures} failed polls in a row"
            self.sink.device_status(device, monitor.online, reason, now)

    # ---------------------------------------------------------------- MQTT-native devices

    def on_uplink(self, device: str, payload: bytes) -> None:
        """Called on the MQTT thread with a raw uplink from an MQTT-native device."""
        dev = self.devices.get(device)
        if dev is None or dev.transport is not Transport.MQTT:
            self.counters.malformed_messages += 1
            self.sink.outbox.dead_letter(
                self.sink.topic(Kind.UPLINK, device),
                payload,
                "uplink from a device not configured as mqtt-native on this gateway",
            )
            log.warning("uplink from unknown device=%s dead-lettered", device)
            return
        try:
            up = decode_message(Uplink, payload)
            if up.reading.type != dev.type.value:
                raise ContractError(f"reading type {up.reading.type!r} but device {device!r} is a {dev.type.value}")
        except ContractError as exc:
            self.counters.malformed_messages += 1
            self.sink.outbox.dead_letter(self.sink.topic(Kind.UPLINK, device), payload, str(exc))
            log.warning("uplink device=%s malformed, dead-lettered: %s", device, exc)
            return
        self.counters.uplinks += 1
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._enqueue_uplink, device, up.reading)
        except RuntimeError:  # the loop is closing: we are shutting down
            pass

    def _enqueue_uplink(self, device: str, reading: Reading) -> None:
        try:
            self._uplinks.put_nowait((device, reading))
        except asyncio.QueueFull:
            self.counters.uplinks_dropped += 1
            log.warning("uplink queue full: dropped a reading of device=%s", device)

    async def _uplink_worker(self) -> None:
        while True:
            device, reading = await self._uplinks.get()
            async with self._device_locks[device]:
                await self._handle_reading(device, reading, _now())

    async def _watch_expiry(self, stop: asyncio.Event) -> None:
        mqtt_devices = [d for d in self.devices.values() if d.transport is Transport.MQTT]
        started = _now()
        while not stop.is_set():
            now = _now()
            for dev in mqtt_devices:
                mon = self.monitors[dev.id]
                seen = mon.last_seen or started
                if (now - seen).total_seconds() > dev.expire_after and mon.online is not False:
                    async with self._device_locks[dev.id]:
                        # an uplink silence counts as enough failures at once
                        mon.failures = dev.offline_after - 1
                        await self._apply(dev.id, mon.failure(f"no uplink for {dev.expire_after:g} s"), now)
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(1.0, min(d.expire_after for d in mqtt_devices) / 4))
            except TimeoutError:
                pass

    # ---------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for dev_id, mon in self.monitors.items():
            out[dev_id] = {
                "online": mon.online,
                "last_seen": mon.last_seen.isoformat() if mon.last_seen else None,
                "failures": mon.failures,
                "active": [k.value for k in mon.active_conditions()],
            }
        return out
