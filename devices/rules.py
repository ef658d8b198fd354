"""Default alarm thresholds per device type, and the reading field each one watches.

A site config overrides any of them per device (``rules:`` on the device).
Boolean fields (the smoke detector's own alarm flag, a manhole's lid switch)
force the condition on while they are set.
"""

from __future__ import annotations

from dataclasses import dataclass

from sc.config.schema import DeviceConfig, DeviceType, Threshold
from sc.contracts.messages import EventKind

__all__ = ["DEFAULT_RULES", "RuleSpec", "rules_for"]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    kind: EventKind
    field: str  # numeric reading field compared with the threshold
    threshold: Threshold
    flag: str | None = None  # boolean reading field that forces the condition on
    absolute: bool = False  # compare abs(value) (tilt either way)


def _t(raise_at: float, clear_at: float, samples: int = 2, clear_samples: int = 2) -> Threshold:
    return Threshold(raise_at=raise_at, clear_at=clear_at, samples=samples, clear_samples=clear_samples)


DEFAULT_RULES: dict[DeviceType, tuple[RuleSpec, ...]] = {
    DeviceType.SMOKE: (
        RuleSpec(EventKind.SMOKE_ALARM, "smoke_density", _t(8.0, 4.0, 2, 3), flag="alarm"),
        RuleSpec(EventKind.HIGH_TEMPERATURE, "temperature_c", _t(57.0, 50.0)),
        RuleSpec(EventKind.LOW_BATTERY, "battery_pct", _t(15, 25, 3, 3)),
    ),
    DeviceType.MANHOLE: (
        RuleSpec(EventKind.MANHOLE_OPEN, "tilt_deg", _t(15.0, 5.0, 1, 2), flag="lid_open", absolute=True),
        RuleSpec(EventKind.WATER_LEVEL_HIGH, "water_level_cm", _t(80.0, 60.0)),
        RuleSpec(EventKind.LOW_BATTERY, "battery_pct", _t(15, 25, 3, 3)),
    ),
    DeviceType.BIN: (
        RuleSpec(EventKind.BIN_FULL, "fill_pct", _t(90.0, 70.0)),
        RuleSpec(EventKind.BIN_FIRE, "temperature_c", _t(60.0, 45.0)),
        RuleSpec(EventKind.LOW_BATTERY, "battery_pct", _t(15, 25, 3, 3)),
    ),
}


def rules_for(device: DeviceConfig) -> tuple[RuleSpec, ...]:
    """The device type's rules with the device's overrides applied."""
    defaults = DEFAULT_RULES[device.type]
    unknown = set(device.rules) - {r.kind for r in defaults}
    if unknown:
        names = ", ".join(sorted(k.value for k in unknown))
        raise ValueError(f"device {device.id!r} ({device.type.value}) has no rule {names}")
    return tuple(RuleSpec(r.kind, r.field, device.rules.get(r.kind, r.threshold), r.flag, r.absolute) for r in defaults)
