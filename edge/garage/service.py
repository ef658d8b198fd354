"""The garage service: polls the presence-sensor modules, runs the controller, drives the light controllers.

One loop per garage on the gateway's asyncio loop, every ``poll_interval_s``:

1. read every sensor module's discrete inputs (modules on different buses at once);
2. :meth:`GarageController.step` decides every group's level;
3. :class:`ControllerLink` turns that into at most two *write multiple registers*
   per controller (brighter first), sent on each controller's bus;
4. alerts become events through the outbox (``device_offline``/``online`` of a
   module or controller, ``lighting_fault``/``restored``).

A module that fails ``offline_after`` reads in a row is offline (its sensors'
zones go full) and is then tried every :data:`MODULE_PROBE_S`; a controller that
does not confirm :data:`CONTROLLER_OFFLINE_AFTER` writes in a row is offline (the
lights next to it go full; its own failsafe sets its lights full). Every
``refresh_s`` each controller's status register is read: failsafe active or a
DALI bus fault is a ``lighting_fault``.

Every ``state_interval_s`` the garage's live state (:class:`GarageState`: each
light's level, the tracks, ghosts, faults, fire, overrides) is taken on the loop
and handed to ``publish_state`` (retained, QoS 0, not through the outbox: the
next one replaces a lost one); while the broker is down it is skipped, never queued.

Smoke alarms from the sensor path (:meth:`on_event`, called by the event sink
for every event the gateway stores) set the whole garage full until cleared.
The control room's ``lights_override`` command goes through :meth:`override`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from devices.lighting import STATUS_DALI_FAULT, STATUS_FAILSAFE, STATUS_REGISTER
from devices.modbus import DeviceReadError, ModbusBus
from sc.config.schema import DeviceType, Garage, GatewayConfig, SensorModule
from sc.contracts.commands import LightsOverrideArgs, LightsOverrideResult
from sc.contracts.messages import (
    MAX_PAYLOAD_BYTES,
    MAX_STATE_FAULTS,
    MAX_STATE_LIGHTS,
    MAX_STATE_TRACKS,
    ConnectivityPayload,
    EventKind,
    EventState,
    FaultPayload,
    GarageFault,
    GarageFaultKind,
    GarageState,
    GhostState,
    LightState,
    TrackKind,
    TrackState,
    encode,
)
from sc.lanes import LanePos

from ..sensors.detect import Transition
from .commands import CONTROLLER_OFFLINE_AFTER, MODULE_PROBE_S, ControllerLink, Write
from .control import Alert, GarageController, Plan
from .model import GarageModel
from .tracking import TrackClass

__all__ = ["GarageService", "fire_devices_of"]

log = logging.getLogger(__name__)

_LATENCY_WINDOW = 2000
_TRACK_KIND = {TrackClass.VEHICLE: TrackKind.CAR, TrackClass.PEDESTRIAN: TrackKind.PERSON}


def fire_devices_of(garage: Garage, gateway: GatewayConfig) -> set[str]:
    """The smoke devices whose alarm sets this garage full (config, or the gateway's smoke devices there)."""
    if garage.fire_devices is not None:
        return set(garage.fire_devices)
    return {d.id for d in gateway.devices if d.type is DeviceType.SMOKE and d.location == garage.location}


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


class GarageService:
    def __init__(
        self,
        *,
        garage: Garage,
        gateway: GatewayConfig,
        emit: Callable[[str, Transition, datetime], Any],
        set_status: Callable[[str, bool, str, datetime], None] | None = None,
        bus_for: Callable[[str], ModbusBus | None],
        publish_state: Callable[[str, bytes], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.garage = garage
        self.emit = emit  # EventSink.event (blocking: runs in a thread)
        self.set_status = set_status
        self._bus_for = bus_for
        self.publish_state = publish_state  # (garage id, encoded GarageState) -> False: not connected, skipped
        self.clock = clock
        buses = {b.id: b for b in gateway.buses}
        self.model = GarageModel.build(garage, buses)
        self.controller = GarageController(self.model)
        self._controllers = {c.id: c for c in garage.controllers}
        self.links = {c.id: ControllerLink(c.id, c.groups, garage.refresh_s) for c in garage.controllers}
        self.fire_devices = fire_devices_of(garage, gateway)
        self._module_fails: dict[str, int] = {m.id: 0 for m in garage.sensor_modules}
        self._module_next: dict[str, float] = {m.id: 0.0 for m in garage.sensor_modules}
        self._status_due: dict[str, float] = {c.id: 0.0 for c in garage.controllers}
        self._controller_next: dict[str, float] = {c.id: 0.0 for c in garage.controllers}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters: dict[str, int] = {
            "loops": 0,
            "polls": 0,
            "poll_failures": 0,
            "input_changes": 0,
            "writes": 0,
            "write_failures": 0,
            "events": 0,
            "overruns": 0,
            "states_published": 0,
            "states_skipped": 0,  # the broker was not connected: never queued, the next one replaces it
            "states_too_big": 0,
            "state_items_left_out": 0,  # tracks, ghosts or faults beyond the message's bounds
        }
        self._state_due = 0.0
        self.decision_ms: list[float] = []  # input change read -> writes issued (compute)
        self.command_ms: list[float] = []  # input change read -> last write confirmed
        self._last_bits: dict[str, list[bool]] = {}
        self._snapshot: dict[str, Any] = self.controller.snapshot()
        self.dead = False

    # ---------------------------------------------------------------- running

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        g = self.garage
        log.info(
            "garage=%s: %d lights on %d controllers, %d sensors on %d modules, %.0f m of lanes; fire from %s",
            g.id,
            len(g.lights),
            len(g.controllers),
            len(g.sensors),
            len(g.sensor_modules),
            self.model.graph.total_length,
            ", ".join(sorted(self.fire_devices)) or "nothing",
        )
        try:
            while not stop.is_set():
                started = self.clock()
                await self.tick(started)
                delay = g.poll_interval_s - (self.clock() - started)
                if delay <= 0:
                    self.counters["overruns"] += 1
                    await asyncio.sleep(0)
                    continue
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._loop = None

    async def tick(self, t: float) -> None:
        """One poll -> decide -> write round."""
        self.counters["loops"] += 1
        by_bus: dict[str, list[SensorModule]] = {}
        for m in self.garage.sensor_modules:
            if m.id in self.controller.modules_down and t < self._module_next[m.id]:
                continue
            by_bus.setdefault(m.bus, []).append(m)
        results = await asyncio.gather(*(self._poll_bus(bus, mods) for bus, mods in by_bus.items()))
        changed = any(results)
        read_at = self.clock()
        plan = self.controller.step(read_at)
        writes: dict[str, list[Write]] = {}
        for cid, link in self.links.items():
            if cid in self.controller.controllers_down and read_at < self._controller_next[cid]:
                continue  # a dead controller is tried now and then, not every tick: its timeouts hold the bus
            ws = link.writes(read_at, plan.levels[cid], fire=plan.fire, full=self.garage.levels.full_pct)
            if ws:
                writes.setdefault(self._controllers[cid].bus, []).extend(ws)
        if changed:
            self.decision_ms.append((self.clock() - read_at) * 1000)
            del self.decision_ms[:-_LATENCY_WINDOW]
        await asyncio.gather(*(self._write_bus(bus, ws) for bus, ws in writes.items()))
        if changed and writes:
            self.command_ms.append((self.clock() - read_at) * 1000)
            del self.command_ms[:-_LATENCY_WINDOW]
        await self._check_status(read_at)
        self._dispatch(self.controller.take_alerts())
        # what health() shows: taken here, on the loop, so the health thread never reads state being changed
        self._snapshot = self.controller.snapshot()
        if self.publish_state is not None and read_at >= self._state_due:
            self._state_due = read_at + self.garage.state_interval_s
            self._publish_state(read_at, plan)

    # ---------------------------------------------------------------- live state (on the loop)

    def state(self, t: float, plan: Plan) -> GarageState:
        """The live state at ``t`` after ``plan``: built on the loop, from the controller as it is now."""
        m, c, full_pct = self.model, self.controller, self.garage.levels.full_pct
        overrides = c.overrides_at(t)
        lights = []
        for lt in m.lights[:MAX_STATE_LIGHTS]:
            ov = overrides.get(lt.index)
            lights.append(
                LightState(
                    id=lt.id,
                    level=full_pct if plan.fire else plan.levels[lt.controller][lt.group],
                    full=c.full[lt.index],
                    override=ov[0] if ov else None,
                    override_left_s=round(ov[1], 1) if ov and ov[1] is not None else None,
                )
            )
        tracks = []
        for tr in c.tracker.tracks[:MAX_STATE_TRACKS]:
            pos = c.tracker.position(tr)
            x, y = m.graph.xy(pos)
            tracks.append(
                TrackState(
                    id=tr.id,
                    kind=_TRACK_KIND.get(tr.cls, TrackKind.UNKNOWN),
                    x=round(x, 2),
                    y=round(y, 2),
                    speed_mps=round(min(tr.speed, 100.0), 2),
                    heading_deg=self._heading(pos, tr.heading),
                    sensor=m.sensors[tr.sensor].id,
                )
            )
        ghosts = []
        for gh in c.tracker.ghosts[:MAX_STATE_TRACKS]:
            x, y = m.graph.xy(m.sensors[gh.sensor].pos)
            ghosts.append(
                GhostState(track=gh.track, x=round(x, 2), y=round(y, 2), left_s=round(max(0.0, gh.until - t), 1))
            )
        faults = [
            *(GarageFault(device=d, kind=GarageFaultKind.OFFLINE, reason=r[:200]) for d, r in c.modules_down.items()),
            *(
                GarageFault(device=d, kind=GarageFaultKind.OFFLINE, reason=r[:200])
                for d, r in c.controllers_down.items()
            ),
            *(
                GarageFault(device=d, kind=GarageFaultKind.FAULT, reason=r[:200])
                for d, r in c.controller_faults.items()
            ),
            *(GarageFault(device=m.sensors[i].id, kind=GarageFaultKind.STUCK) for i in sorted(c.stuck)),
            *(GarageFault(device=m.sensors[i].id, kind=GarageFaultKind.BLIND) for i in sorted(c.blind)),
        ]
        left_out = (
            max(0, len(m.lights) - MAX_STATE_LIGHTS)
            + max(0, len(c.tracker.tracks) - MAX_STATE_TRACKS)
            + max(0, len(c.tracker.ghosts) - MAX_STATE_TRACKS)
            + max(0, len(faults) - MAX_STATE_FAULTS)
        )
        self.counters["state_items_left_out"] += left_out
        return GarageState(
            garage=self.garage.id,
            ts=datetime.now(UTC),
            lights=lights,
            tracks=tracks,
            ghosts=ghosts,
            faults=faults[:MAX_STATE_FAULTS],
            fire=plan.fire,
            fire_devices=sorted(c.fire_devices)[:MAX_STATE_FAULTS],
        )

    def _heading(self, pos: LanePos, towards_v: bool | None) -> float | None:
        """Degrees on the plan (0 = +x, counter-clockwise) of travel at ``pos``; None: not known."""
        if towards_v is None:
            return None
        edge = self.model.graph.edges[pos.edge]
        (x0, y0), (x1, y1) = edge.xy(pos.s - 0.5), edge.xy(pos.s + 0.5)
        if not towards_v:
            x0, y0, x1, y1 = x1, y1, x0, y0
        if x0 == x1 and y0 == y1:
            return None
        return round(math.degrees(math.atan2(y1 - y0, x1 - x0)), 1)

    def _publish_state(self, t: float, plan: Plan) -> None:
        assert self.publish_state is not None
        payload = encode(self.state(t, plan))
        if len(payload) > MAX_PAYLOAD_BYTES:
            self.counters["states_too_big"] += 1
            if self.counters["states_too_big"] == 1:
                log.error(
                    "garage=%s live state of %d bytes is over the message limit: not published",
                    self.garage.id,
                    len(payload),
                )
            return
        if self.publish_state(self.garage.id, payload):
            self.counters["states_published"] += 1
        else:
            self.counters["states_skipped"] += 1

    async def _poll_bus(self, bus_id: str, modules: list[SensorModule]) -> bool:
        bus = self._bus_for(bus_id)
        changed = False
        for m in modules:
            now = self.clock()
            if bus is None:
                self._module_failed(m, now, f"bus {bus_id} is not open")
                continue
            try:
                bits = await bus.read_discrete_inputs(m.unit, 0, m.inputs)
            except DeviceReadError as exc:
                self._module_failed(m, now, str(exc))
                continue
            self.counters["polls"] += 1
            self._module_fails[m.id] = 0
            if m.id in self.controller.modules_down:
                self.controller.module_state(now, m.id, online=True, reason="answers again")
                log.info("garage=%s module=%s answers again", self.garage.id, m.id)
            if self._last_bits.get(m.id) != bits:
                changed = True
                self.counters["input_changes"] += 1
                self._last_bits[m.id] = bits
            self.controller.set_inputs(self.clock(), m.id, bits)
        return changed

    def _module_failed(self, m: SensorModule, now: float, reason: str) -> None:
        self.counters["poll_failures"] += 1
        self._module_fails[m.id] += 1
        self._module_next[m.id] = now + MODULE_PROBE_S
        if self._module_fails[m.id] >= m.offline_after and m.id not in self.controller.modules_down:
            log.warning(
                "garage=%s module=%s offline after %d failed reads: %s",
                self.garage.id,
                m.id,
                self._module_fails[m.id],
                reason,
            )
            self.controller.module_state(
                now, m.id, online=False, reason=f"{self._module_fails[m.id]} reads failed: {reason}"
            )

    async def _write_bus(self, bus_id: str, writes: list[Write]) -> None:
        bus = self._bus_for(bus_id)
        skip: set[str] = set()
        for w in writes:
            if w.controller in skip:
                continue
            link = self.links[w.controller]
            now = self.clock()
            try:
                if bus is None:
                    raise DeviceReadError(f"bus {bus_id} is not open")
                await bus.write_registers(self._controllers[w.controller].unit, w.address, list(w.values))
            except DeviceReadError as exc:
                link.failed()
                self.counters["write_failures"] += 1
                self._controller_next[w.controller] = now + MODULE_PROBE_S
                skip.add(w.controller)  # the dim write waits for the brighten write to go through
                if link.failures >= CONTROLLER_OFFLINE_AFTER and w.controller not in self.controller.controllers_down:
                    log.warning("garage=%s controller=%s does not acknowledge: %s", self.garage.id, w.controller, exc)
                    self.controller.controller_state(
                        now, w.controller, online=False, reason=f"{link.failures} writes not acknowledged: {exc}"
                    )
                continue
            link.confirm(now, w)
            self.counters["writes"] += 1
            if w.controller in self.controller.controllers_down:
                self.controller.controller_state(now, w.controller, online=True, reason="acknowledges again")

    async def _check_status(self, t: float) -> None:
        for c in self.garage.controllers:
            if t < self._status_due[c.id] or c.id in self.controller.controllers_down:
                continue
            self._status_due[c.id] = t + self.garage.refresh_s
            bus = self._bus_for(c.bus)
            if bus is None:
                continue
            try:
                (status,) = await bus.read_input_registers(c.unit, STATUS_REGISTER, 1)
            except DeviceReadError:
                continue  # the writes notice a silent controller
            faults = []
            if status & STATUS_FAILSAFE:
                faults.append("failsafe active (it got no command in time): all its lights full")
            if status & STATUS_DALI_FAULT:
                faults.append("DALI bus fault: its lamps may not follow")
            self.controller.controller_fault(t, c.id, "; ".join(faults) if faults else None)

    # ---------------------------------------------------------------- events

    def _dispatch(self, alerts: list[Alert]) -> None:
        if not alerts or self._loop is None:
            return
        for a in alerts:
            self.counters["events"] += 1
            task = self._loop.create_task(self._emit(a))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _emit(self, a: Alert) -> None:
        ts = datetime.now(UTC)
        if a.connectivity:
            payload: ConnectivityPayload | FaultPayload = ConnectivityPayload(
                reason=a.reason[:500], consecutive_failures=0 if a.state is EventState.CLEARED else 1
            )
        else:
            payload = FaultPayload(reason=a.reason[:500])
        log.info("garage=%s %s device=%s: %s", self.garage.id, a.kind.value, a.device, a.reason)
        await asyncio.to_thread(self.emit, a.device, Transition(a.kind, a.state, payload), ts)
        if a.connectivity and self.set_status is not None:
            await asyncio.to_thread(self.set_status, a.device, a.kind is EventKind.DEVICE_ONLINE, a.reason[:200], ts)

    def on_event(self, device: str, t: Transition) -> None:
        """Every event the gateway stores passes here (from any thread): smoke alarms set the garage full."""
        if device not in self.fire_devices or t.kind is not EventKind.SMOKE_ALARM:
            return
        loop = self._loop
        if loop is None:
            return
        active = t.state is EventState.RAISED
        try:
            loop.call_soon_threadsafe(self._fire, device, active)
        except RuntimeError:  # loop closing
            pass

    def _fire(self, device: str, active: bool) -> None:
        log.warning(
            "garage=%s fire alarm %s from %s: %s",
            self.garage.id,
            "ON" if active else "cleared",
            device,
            "every light full" if active else "back to following",
        )
        self.controller.fire(self.clock(), device, active=active)

    # ---------------------------------------------------------------- commands

    def override(self, args: LightsOverrideArgs) -> LightsOverrideResult:
        """The ``lights_override`` command: the named lights' (none: all) base level, for ``for_s`` (none: until
        changed); ValueError for a light this garage does not have."""
        try:
            n = self.controller.override(self.clock(), args.level, args.lights, args.for_s)
        except KeyError as exc:
            raise ValueError(f"garage {self.garage.id} has no light {exc.args[0]!r}") from None
        log.info("garage=%s override level=%s lights=%d for_s=%s", self.garage.id, args.level.value, n, args.for_s)
        return LightsOverrideResult(level=args.level, lights=n, for_s=args.for_s)

    # ---------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        return {
            **self._snapshot,
            "counters": dict(self.counters),
            "decision_ms": {"p50": round(_pct(self.decision_ms, 50), 3), "p99": round(_pct(self.decision_ms, 99), 3)},
            "command_ms": {"p50": round(_pct(self.command_ms, 50), 1), "p99": round(_pct(self.command_ms, 99), 1)},
            "controllers": {
                cid: {"writes": link.writes_sent, "failed": link.writes_failed, "confirmed": link.confirmed}
                for cid, link in self.links.items()
            },
        }
