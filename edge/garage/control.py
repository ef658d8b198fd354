"""The garage's lighting decisions: which light is full, which is at standby, and why.

:class:`GarageController` is pure logic on a clock the caller passes in (the
gateway's service, the simulator and the benches all drive it the same way):

* :meth:`~GarageController.set_inputs` - a sensor module's inputs as just read;
* :meth:`~GarageController.module_state`, :meth:`~GarageController.controller_state` - a
  device answered again or stopped answering;
* :meth:`~GarageController.fire` - a smoke alarm in the garage raised or cleared;
* :meth:`~GarageController.override` - the control room's manual levels;
* :meth:`~GarageController.step` - the level every DALI group should be at now.

A light is **full** when it lights any part of: the zone of a sensor that sees
something now, the region ahead of (and a little behind) a tracked car, the
zone around a person on foot, a lost track's zone (for ``lost_hold_s``), the zone
of a sensor that is not to be trusted (its module is offline or it is stuck on),
the lights next to a controller that does not answer, or everything during a
fire alarm. It stays full ``hold_s`` after the last of these ends, then goes
back to its base level: standby, or what the control room set. A manual
override can never dim a light that safety wants full.

Conditions a person must see come out of :meth:`~GarageController.take_alerts`
as :class:`Alert` s (``device_offline``/``device_online`` for modules and
controllers, ``lighting_fault``/``lighting_restored`` for a stuck sensor or a
controller reporting a fault).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sc.contracts.messages import EventKind, EventState, OverrideLevel  # OverrideLevel: the contract's, re-exported
from sc.lanes import Span

from .model import GarageModel
from .tracking import Tracker

__all__ = ["Alert", "GarageController", "OverrideLevel", "Plan"]


#: Movers in a row a sensor must miss (the sensors either side saw them pass) before it is reported blind.
BLIND_AFTER = 3
#: A sensor a track has just moved on from stays on this long (overlap + the sensor's own hold): not a new mover.
_LEFT_BEHIND_S = 2.0


@dataclass(frozen=True)
class Alert:
    kind: EventKind
    state: EventState
    device: str
    reason: str
    connectivity: bool  # True: a device_offline/online (ConnectivityPayload); False: a fault


@dataclass
class Plan:
    """What every group should be at: controller id -> level % per group."""

    levels: dict[str, list[int]]
    fire: bool
    full: int  # lights at full


@dataclass
class _Override:
    level: OverrideLevel
    until: float


@dataclass
class ControllerStats:
    steps: int = 0
    input_changes: int = 0
    fire_alarms: int = 0
    overrides: int = 0


@dataclass
class GarageController:
    model: GarageModel
    tracker: Tracker = field(init=False)
    stats: ControllerStats = field(default_factory=ControllerStats)

    def __post_init__(self) -> None:
        m, g = self.model, self.model.garage
        n_s, n_l = len(m.sensors), len(m.lights)
        self.tracker = Tracker(m, lost_after_s=g.lost_after_s, lost_hold_s=g.lost_hold_s)
        self.sensor_on = [False] * n_s
        self._on_since = [math.inf] * n_s
        self.stuck: set[int] = set()
        self.blind: set[int] = set()
        self.modules_down: dict[str, str] = {}
        self.controllers_down: dict[str, str] = {}
        self.controller_faults: dict[str, str] = {}
        self.fire_devices: set[str] = set()
        self._overrides: dict[int, _Override] = {}
        self._last_full = [-math.inf] * n_l
        self.full = [False] * n_l
        self._alerts: list[Alert] = []
        self._by_module: dict[str, list[int]] = {}
        for s in m.sensors:
            self._by_module.setdefault(s.module, []).append(s.index)
        # zones that go full when the thing watching them cannot be trusted
        self._sensor_zone = [m.lights_touching(m.graph.around(s.pos, s.range_m + g.ahead_m)) for s in m.sensors]
        self._presence_zone = [m.lights_touching(m.graph.around(s.pos, s.range_m + g.pedestrian_m)) for s in m.sensors]
        self._light_index = {lt.id: lt.index for lt in m.lights}
        self._controller_zone: dict[str, set[int]] = {}
        for c in g.controllers:
            own = [sp for lt in m.lights if lt.controller == c.id for sp in lt.lights]
            near = m.lights_touching(m.graph.around_spans(own, g.ahead_m))
            self._controller_zone[c.id] = {i for i in near if m.lights[i].controller != c.id}
        self._latency = g.poll_interval_s + m.command_latency_s

    # ---------------------------------------------------------------- inputs

    def set_inputs(self, t: float, module: str, bits: Sequence[bool]) -> None:
        """The module's discrete inputs as read at ``t`` (index = input number)."""
        g = self.model.garage
        for i in self._by_module.get(module, ()):
            site = self.model.sensors[i]
            on = bool(bits[site.input]) if site.input < len(bits) else False
            if on != self.sensor_on[i]:
                self.stats.input_changes += 1
                self.sensor_on[i] = on
                self._on_since[i] = t if on else math.inf
            if on and i not in self.stuck and t - self._on_since[i] >= g.sensors[i].stuck_after_s:
                self.stuck.add(i)
                self._alert(
                    EventKind.LIGHTING_FAULT,
                    EventState.RAISED,
                    site.id,
                    f"sensor on without a break for {t - self._on_since[i]:.0f} s: stuck? its zone is kept full",
                )
            elif not on and i in self.stuck:
                self.stuck.discard(i)
                self._alert(EventKind.LIGHTING_RESTORED, EventState.CLEARED, site.id, "sensor went off again")
            if on and i in self.blind:
                self.blind.discard(i)
                self._alert(EventKind.LIGHTING_RESTORED, EventState.CLEARED, site.id, "sensor sees again")

    def module_state(self, t: float, module: str, *, online: bool, reason: str) -> None:
        if online and module in self.modules_down:
            del self.modules_down[module]
            self._alert(EventKind.DEVICE_ONLINE, EventState.CLEARED, module, reason, connectivity=True)
        elif not online and module not in self.modules_down:
            self.modules_down[module] = reason
            for i in self._by_module.get(module, ()):
                self.sensor_on[i] = False
                self._on_since[i] = math.inf
            self._alert(
                EventKind.DEVICE_OFFLINE, EventState.RAISED, module, f"{reason}; its sensors' zones are kept full", True
            )

    def controller_state(self, t: float, controller: str, *, online: bool, reason: str) -> None:
        if online and controller in self.controllers_down:
            del self.controllers_down[controller]
            self._alert(EventKind.DEVICE_ONLINE, EventState.CLEARED, controller, reason, connectivity=True)
        elif not online and controller not in self.controllers_down:
            self.controllers_down[controller] = reason
            self._alert(
                EventKind.DEVICE_OFFLINE,
                EventState.RAISED,
                controller,
                f"{reason}; its own failsafe sets its lights full, the lights next to them are kept full",
                True,
            )

    def controller_fault(self, t: float, controller: str, fault: str | None) -> None:
        """The controller reports a problem (failsafe active, DALI bus fault), or ``None``: all well again."""
        if fault is not None and controller not in self.controller_faults:
            self.controller_faults[controller] = fault
            self._alert(EventKind.LIGHTING_FAULT, EventState.RAISED, controller, fault)
        elif fault is None and controller in self.controller_faults:
            del self.controller_faults[controller]
            self._alert(EventKind.LIGHTING_RESTORED, EventState.CLEARED, controller, "controller reports no fault")

    def fire(self, t: float, device: str, *, active: bool) -> None:
        if active and device not in self.fire_devices:
            self.stats.fire_alarms += 1
        (self.fire_devices.add if active else self.fire_devices.discard)(device)

    def override(self, t: float, level: OverrideLevel, lights: Sequence[str] | None, duration_s: float | None) -> int:
        """Set the base level of ``lights`` (all when None); returns how many. Unknown ids raise KeyError."""
        idx = [self._light_index[x] for x in lights] if lights else list(range(len(self.model.lights)))
        self.stats.overrides += 1
        until = math.inf if duration_s is None else t + duration_s
        for i in idx:
            if level is OverrideLevel.AUTO:
                self._overrides.pop(i, None)
            else:
                self._overrides[i] = _Override(level, until)
        return len(idx)

    def overrides_at(self, t: float) -> dict[int, tuple[OverrideLevel, float | None]]:
        """Light index -> (level, seconds left or None: until changed) of every override in force at ``t``."""
        return {
            i: (ov.level, None if math.isinf(ov.until) else ov.until - t)
            for i, ov in self._overrides.items()
            if ov.until > t
        }

    def _alert(self, kind: EventKind, state: EventState, device: str, reason: str, connectivity: bool = False) -> None:
        self._alerts.append(Alert(kind, state, device, reason, connectivity))

    def take_alerts(self) -> list[Alert]:
        out, self._alerts = self._alerts, []
        return out

    # ---------------------------------------------------------------- decide

    def known_sensors(self) -> set[int]:
        return {s.index for s in self.model.sensors if s.module not in self.modules_down and s.index not in self.stuck}

    def step(self, t: float) -> Plan:
        m, g = self.model, self.model.garage
        self.stats.steps += 1
        known = self.known_sensors()
        on = {i for i, v in enumerate(self.sensor_on) if v}
        self.tracker.update(t, on, known)
        for i, n in self.tracker.misses.items():
            if n >= BLIND_AFTER and i not in self.blind:
                self.blind.add(i)
                self._alert(
                    EventKind.LIGHTING_FAULT,
                    EventState.RAISED,
                    m.sensors[i].id,
                    f"{n} movers went past it without it seeing them: blind? its zone is kept full",
                )
        fire = bool(self.fire_devices)
        want: set[int] = set()
        if fire:
            want = set(range(len(m.lights)))
        else:
            spans: list[Span] = []
            for tr in self.tracker.tracks:
                spans += self.tracker.region(tr, t, self._latency)
            for gh in self.tracker.ghosts:
                spans += gh.spans
            want = m.lights_touching(spans)
            tracked = {tr.sensor for tr in self.tracker.tracks}
            tracked |= {
                tr.prev_sensor
                for tr in self.tracker.tracks
                if tr.prev_sensor is not None and t - tr.t_hit < _LEFT_BEHIND_S
            }
            for i in on & known:
                # a sensor that sees something no track is at (two movers in one sensor's range, one of them
                # unexplained): light it as a car of unknown heading would be
                want |= self._presence_zone[i] if i in tracked else self._sensor_zone[i]
            for s in m.sensors:
                if s.index not in known or s.index in self.blind:
                    want |= self._sensor_zone[s.index]
            for c in self.controllers_down:
                want |= self._controller_zone[c]
            for c in self.controller_faults:
                want |= self._controller_zone[c]
        standby, full = g.levels.standby_pct, g.levels.full_pct
        levels = {c.id: [0] * c.groups for c in g.controllers}
        n_full = 0
        for lt in m.lights:
            i = lt.index
            if i in want:
                self._last_full[i] = t
            base = standby
            ov = self._overrides.get(i)
            if ov is not None:
                if ov.until <= t:
                    del self._overrides[i]
                else:
                    base = full if ov.level is OverrideLevel.FULL else 0 if ov.level is OverrideLevel.OFF else standby
            is_full = t - self._last_full[i] <= g.hold_s or base >= full
            self.full[i] = is_full
            n_full += is_full
            level = full if is_full else base
            grp = levels[lt.controller]
            grp[lt.group] = max(grp[lt.group], level)
        return Plan(levels=levels, fire=fire, full=n_full)

    # ---------------------------------------------------------------- what the control room sees

    def snapshot(self) -> dict[str, Any]:
        m = self.model
        tracks = []
        for tr in self.tracker.tracks:
            x, y = m.graph.xy(self.tracker.position(tr))
            tracks.append(
                {
                    "id": tr.id,
                    "class": tr.cls.value,
                    "x": round(x, 1),
                    "y": round(y, 1),
                    "speed_mps": round(tr.speed, 2),
                    "sensor": m.sensors[tr.sensor].id,
                }
            )
        return {
            "tracks": tracks,
            "ghosts": len(self.tracker.ghosts),
            "lights_full": sum(self.full),
            "lights": len(m.lights),
            "fire": sorted(self.fire_devices),
            "modules_down": dict(self.modules_down),
            "controllers_down": dict(self.controllers_down),
            "controller_faults": dict(self.controller_faults),
            "stuck_sensors": sorted(m.sensors[i].id for i in self.stuck),
            "blind_sensors": sorted(m.sensors[i].id for i in self.blind),
            "overrides": len(self._overrides),
            "tracker": vars(self.tracker.stats).copy(),
        }
