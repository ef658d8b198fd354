"""Register maps of the Modbus RTU sensors: registers <-> typed readings.

All three sensor types answer *read input registers* (function 4) from
address 0. Scaled values are fixed point (x10); signed values are 16-bit
two's complement. The simulator encodes with the same map the edge decodes
with, so the two cannot drift apart.

=====  ======================  ==================  =======================
addr   smoke                   manhole             bin
=====  ======================  ==================  =======================
0      density %/m x10 (u16)   tilt deg x10 (s16)  distance mm (u16)
1      temperature C x10 (s16) water cm x10 (u16)  temperature C x10 (s16)
2      battery % (u16)         battery % (u16)     battery % (u16)
3      status bits: b0 alarm,  b0 lid open         reserved (0)
       b1 fault
=====  ======================  ==================  =======================

:func:`decode` raises :class:`DecodeError` when the registers cannot be a
real reading (wrong count, out of range), never anything else.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from sc.config.schema import DeviceType
from sc.contracts.messages import BinReading, ManholeReading, SmokeReading

__all__ = [
    "REGISTER_COUNT",
    "DecodeError",
    "bin_fill_pct",
    "decode",
    "encode",
]

REGISTER_COUNT = 4
AnyReading = SmokeReading | ManholeReading | BinReading


class DecodeError(ValueError):
    """Registers that do not make a plausible reading."""


def _s16(v: int) -> int:
    return v - 0x10000 if v >= 0x8000 else v


def _u16(v: int) -> int:
    if not -0x8000 <= v <= 0xFFFF:
        raise ValueError(f"{v} does not fit 16 bits")
    return v & 0xFFFF


def bin_fill_pct(distance_cm: float, depth_cm: float) -> float:
    """Fill level from the ultrasonic distance: 0 % empty, 100 % at the sensor."""
    return round(min(100.0, max(0.0, (depth_cm - distance_cm) / depth_cm * 100.0)), 1)


def decode(device_type: DeviceType, regs: Sequence[int], *, bin_depth_cm: float = 100.0) -> AnyReading:
    device_type = DeviceType(device_type)
    if len(regs) != REGISTER_COUNT:
        raise DecodeError(f"expected {REGISTER_COUNT} registers, got {len(regs)}")
    if any(not 0 <= r <= 0xFFFF for r in regs):
        raise DecodeError(f"register value out of 16-bit range: {list(regs)}")
    r0, r1, r2, r3 = regs
    try:
        if device_type is DeviceType.SMOKE:
            return SmokeReading(
                smoke_density=r0 / 10,
                temperature_c=_s16(r1) / 10,
                battery_pct=r2,
                alarm=bool(r3 & 1),
                fault=bool(r3 & 2),
            )
        if device_type is DeviceType.MANHOLE:
            return ManholeReading(tilt_deg=_s16(r0) / 10, water_level_cm=r1 / 10, battery_pct=r2, lid_open=bool(r3 & 1))
        distance_cm = r0 / 10
        return BinReading(
            distance_cm=distance_cm,
            fill_pct=bin_fill_pct(distance_cm, bin_depth_cm),
            temperature_c=_s16(r1) / 10,
            battery_pct=r2,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise DecodeError(f"{device_type.value}: {field} = {first.get('input')!r}: {first['msg']}") from exc


def encode(reading: AnyReading) -> list[int]:
    """The registers a device shows for ``reading`` (used by the simulator)."""
    if isinstance(reading, SmokeReading):
        status = (1 if reading.alarm else 0) | (2 if reading.fault else 0)
        return [
            _u16(round(reading.smoke_density * 10)),
            _u16(round(reading.temperature_c * 10)),
            reading.battery_pct,
            status,
        ]
    if isinstance(reading, ManholeReading):
        return [
            _u16(round(reading.tilt_deg * 10)),
            _u16(round(reading.water_level_cm * 10)),
            reading.battery_pct,
            1 if reading.lid_open else 0,
        ]
    return [
        _u16(round(reading.distance_cm * 10)),
        _u16(round(reading.temperature_c * 10)),
        reading.battery_pct,
        0,
    ]
