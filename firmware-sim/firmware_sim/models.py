"""Simulated sensors: physical state that scenarios change, shown as a reading
or as the registers the real device would answer with."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from devices.registers import AnyReading, bin_fill_pct, encode
from sc.config.schema import DeviceConfig, DeviceType
from sc.contracts.messages import BinReading, ManholeReading, SmokeReading

__all__ = ["DEFAULTS", "SimSensor"]

DEFAULTS: dict[DeviceType, dict[str, float | bool]] = {
    DeviceType.SMOKE: {"smoke_density": 0.3, "temperature_c": 24.0, "battery_pct": 95, "alarm": False, "fault": False},
    DeviceType.MANHOLE: {"tilt_deg": 0.5, "water_level_cm": 20.0, "lid_open": False, "battery_pct": 90},
    DeviceType.BIN: {"fill_pct": 30.0, "temperature_c": 22.0, "battery_pct": 88},
}


@dataclass
class _Ramp:
    start_t: float
    over: float
    start: float
    end: float


@dataclass
class SimSensor:
    cfg: DeviceConfig
    values: dict[str, float | bool] = field(default_factory=dict)
    raw: list[int] | None = None
    ramps: dict[str, _Ramp] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _initial: dict[str, float | bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.values = {**DEFAULTS[self.cfg.type], **self.values}
        self._initial = dict(self.values)

    def reset(self) -> None:
        """Back to the values it started with: no ramp, no raw registers (a scenario played again)."""
        with self._lock:
            self.values = dict(self._initial)
            self.ramps.clear()
            self.raw = None

    def set(self, values: dict[str, float | bool]) -> None:
        unknown = set(values) - set(self.values)
        if unknown:
            raise ValueError(f"{self.cfg.id}: no field {sorted(unknown)} on a {self.cfg.type.value}")
        with self._lock:
            for k in values:
                self.ramps.pop(k, None)
            self.values.update(values)

    def ramp(self, targets: dict[str, float], over: float, now: float) -> None:
        unknown = set(targets) - set(self.values)
        if unknown:
            raise ValueError(f"{self.cfg.id}: no field {sorted(unknown)} on a {self.cfg.type.value}")
        with self._lock:
            for k, v in targets.items():
                self.ramps[k] = _Ramp(now, over, float(self.values[k]), float(v))

    def advance(self, now: float) -> None:
        with self._lock:
            for k, r in list(self.ramps.items()):
                f = min(1.0, (now - r.start_t) / r.over)
                self.values[k] = round(r.start + (r.end - r.start) * f, 2)
                if f >= 1.0:
                    del self.ramps[k]

    def reading(self) -> AnyReading:
        with self._lock:
            v = dict(self.values)
        t = self.cfg.type
        if t is DeviceType.SMOKE:
            return SmokeReading.model_validate(v)
        if t is DeviceType.MANHOLE:
            return ManholeReading.model_validate(v)
        depth = self.cfg.bin_depth_cm
        distance = round(depth * (1 - float(v["fill_pct"]) / 100), 1)
        return BinReading(
            distance_cm=distance,
            fill_pct=bin_fill_pct(distance, depth),
            temperature_c=float(v["temperature_c"]),
            battery_pct=int(v["battery_pct"]),
        )

    def registers(self) -> list[int]:
        with self._lock:
            raw = list(self.raw) if self.raw is not None else None
        return raw if raw is not None else encode(self.reading())
