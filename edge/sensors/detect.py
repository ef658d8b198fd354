"""Turning a stream of readings and failed polls into events: pure logic, no I/O.

* :class:`Hysteresis` - one condition on one reading field: raised after
  ``samples`` consecutive readings past ``raise_at``, cleared after
  ``clear_samples`` consecutive readings back past ``clear_at``. One alarm
  per incident, one clear when it ends, no flapping in between.
* :class:`DeviceMonitor` - everything about one device: its rules, whether
  it answers (``device_offline`` after ``offline_after`` failures in a row,
  ``device_online`` on the next good answer), and whether it is faulty (its
  own fault flag, or readings that cannot be right).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from devices.rules import RuleSpec
from sc.contracts.messages import (
    AlarmPayload,
    CommandRefusedPayload,
    ConnectivityPayload,
    EventKind,
    EventState,
    FaultPayload,
    GatePayload,
    Reading,
)

__all__ = ["DeviceMonitor", "Hysteresis", "Transition"]


@dataclass(frozen=True, slots=True)
class Transition:
    """A condition changed: what the event will say."""

    kind: EventKind
    state: EventState
    payload: AlarmPayload | ConnectivityPayload | FaultPayload | GatePayload | CommandRefusedPayload
    severity_override: str | None = None


class Hysteresis:
    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec
        t = spec.threshold
        self.above = t.raise_at > t.clear_at
        self.active = False
        self._streak = 0

    def _value(self, reading: Reading) -> float:
        v = float(getattr(reading, self.spec.field))
        return abs(v) if self.spec.absolute else v

    def _past_raise(self, v: float, flag: bool) -> bool:
        t = self.spec.threshold
        return flag or (v >= t.raise_at if self.above else v <= t.raise_at)

    def _past_clear(self, v: float, flag: bool) -> bool:
        t = self.spec.threshold
        return not flag and (v <= t.clear_at if self.above else v >= t.clear_at)

    def feed(self, reading: Reading) -> Transition | None:
        v = self._value(reading)
        flag = bool(getattr(reading, self.spec.flag)) if self.spec.flag else False
        t = self.spec.threshold
        if not self.active:
            self._streak = self._streak + 1 if self._past_raise(v, flag) else 0
            if self._streak >= t.samples:
                self.active, self._streak = True, 0
                return self._transition(EventState.RAISED, v, t.raise_at, reading)
        else:
            self._streak = self._streak + 1 if self._past_clear(v, flag) else 0
            if self._streak >= t.clear_samples:
                self.active, self._streak = False, 0
                return self._transition(EventState.CLEARED, v, t.clear_at, reading)
        return None

    def _transition(self, state: EventState, v: float, threshold: float, reading: Reading) -> Transition:
        op = (">=" if self.above else "<=") if state is EventState.RAISED else ("<=" if self.above else ">=")
        name = f"|{self.spec.field}|" if self.spec.absolute else self.spec.field
        rule = f"{name} {op} {threshold:g}"
        if self.spec.flag and state is EventState.RAISED:
            rule += f" or {self.spec.flag}"
        sev = self.spec.threshold.severity
        return Transition(
            kind=self.spec.kind,
            state=state,
            payload=AlarmPayload(rule=rule, value=v, threshold=threshold, reading=reading),
            severity_override=sev.value if sev else None,
        )


@dataclass
class DeviceMonitor:
    device: str
    rules: tuple[RuleSpec, ...]
    offline_after: int
    bad_after: int = 3
    online: bool | None = None  # None: not yet known
    failures: int = 0
    bad_readings: int = 0
    last_seen: datetime | None = None
    last_reading: Reading | None = None
    faulty: bool = False
    _detectors: list[Hysteresis] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._detectors = [Hysteresis(r) for r in self.rules]

    def active_conditions(self) -> list[EventKind]:
        kinds = [d.spec.kind for d in self._detectors if d.active]
        if self.faulty:
            kinds.append(EventKind.DEVICE_FAULT)
        if self.online is False:
            kinds.append(EventKind.DEVICE_OFFLINE)
        return kinds

    def _came_back(self, reason: str) -> list[Transition]:
        out: list[Transition] = []
        if self.online is False:
            out.append(
                Transition(
                    EventKind.DEVICE_ONLINE,
                    EventState.CLEARED,
                    ConnectivityPayload(reason=reason, consecutive_failures=self.failures, last_seen=self.last_seen),
                )
            )
        self.online = True
        self.failures = 0
        return out

    def reading(self, reading: Reading, now: datetime) -> list[Transition]:
        """A good answer from the device."""
        out = self._came_back("answering again")
        self.last_seen = now
        self.last_reading = reading
        self.bad_readings = 0
        own_fault = bool(getattr(reading, "fault", False))
        if own_fault and not self.faulty:
            self.faulty = True
            out.append(
                Transition(
                    EventKind.DEVICE_FAULT,
                    EventState.RAISED,
                    FaultPayload(reason="device reports a fault", reading=reading),
                )
            )
        elif not own_fault and self.faulty:
            self.faulty = False
            out.append(
                Transition(
                    EventKind.DEVICE_FAULT, EventState.CLEARED, FaultPayload(reason="fault cleared", reading=reading)
                )
            )
        for d in self._detectors:
            t = d.feed(reading)
            if t is not None:
                out.append(t)
        return out

    def bad_reading(self, reason: str, now: datetime) -> list[Transition]:
        """The device answered, but with values that cannot be right."""
        out = self._came_back("answering again")
        self.last_seen = now
        self.bad_readings += 1
        if self.bad_readings >= self.bad_after and not self.faulty:
            self.faulty = True
            out.append(
                Transition(
                    EventKind.DEVICE_FAULT,
                    EventState.RAISED,
                    FaultPayload(reason=f"{self.bad_readings} implausible readings in a row: {reason}"),
                )
            )
        return out

    def failure(self, reason: str) -> list[Transition]:
        """The device did not answer (timeout, broken frame, bad CRC)."""
        self.failures += 1
        if self.failures >= self.offline_after and self.online is not False:
            self.online = False
            return [
                Transition(
                    EventKind.DEVICE_OFFLINE,
                    EventState.RAISED,
                    ConnectivityPayload(reason=reason, consecutive_failures=self.failures, last_seen=self.last_seen),
                )
            ]
        return []
