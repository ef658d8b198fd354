"""devices.registers: the Modbus register map, both directions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from devices.registers import REGISTER_COUNT, DecodeError, bin_fill_pct, decode, encode
from sc.config.schema import DeviceConfig, DeviceType
from sc.contracts.messages import BinReading, ManholeReading, SmokeReading

FAST = settings(max_examples=200, deadline=None)


def tenths(model: type[Any], field: str) -> st.SearchStrategy[float]:
    """Values of a reading field, in 0.1 steps within the pydantic bounds."""
    lo = hi = None
    for m in model.model_fields[field].metadata:
        lo = getattr(m, "ge", lo) if getattr(m, "ge", None) is not None else lo
        hi = getattr(m, "le", hi) if getattr(m, "le", None) is not None else hi
    assert lo is not None and hi is not None
    return st.integers(round(lo * 10), round(hi * 10)).map(lambda k: k / 10)


def ints(model: type[Any], field: str) -> st.SearchStrategy[int]:
    lo = hi = None
    for m in model.model_fields[field].metadata:
        lo = getattr(m, "ge", lo) if getattr(m, "ge", None) is not None else lo
        hi = getattr(m, "le", hi) if getattr(m, "le", None) is not None else hi
    assert lo is not None and hi is not None
    return st.integers(int(lo), int(hi))


smokes = st.builds(
    SmokeReading,
    smoke_density=tenths(SmokeReading, "smoke_density"),
    temperature_c=tenths(SmokeReading, "temperature_c"),
    battery_pct=ints(SmokeReading, "battery_pct"),
    alarm=st.booleans(),
    fault=st.booleans(),
)
manholes = st.builds(
    ManholeReading,
    tilt_deg=tenths(ManholeReading, "tilt_deg"),
    water_level_cm=tenths(ManholeReading, "water_level_cm"),
    lid_open=st.booleans(),
    battery_pct=ints(ManholeReading, "battery_pct"),
)
# bin depths the config allows (gt=10, le=400)
depths = st.integers(101, 4000).map(lambda k: k / 10)


@st.composite
def bins(draw: st.DrawFn) -> tuple[BinReading, float]:
    depth = draw(depths)
    distance = draw(tenths(BinReading, "distance_cm"))
    r = BinReading(
        distance_cm=distance,
        fill_pct=bin_fill_pct(distance, depth),
        temperature_c=draw(tenths(BinReading, "temperature_c")),
        battery_pct=draw(ints(BinReading, "battery_pct")),
    )
    return r, depth


def test_strategy_bounds_match_the_models() -> None:
    assert REGISTER_COUNT == 4
    cases: list[tuple[type[BaseModel], str, float, float]] = [
        (SmokeReading, "smoke_density", 0, 100),
        (SmokeReading, "temperature_c", -40, 125),
        (ManholeReading, "tilt_deg", -90, 90),
        (ManholeReading, "water_level_cm", 0, 500),
        (BinReading, "distance_cm", 0, 400),
    ]
    for model, field, lo, hi in cases:
        meta = model.model_fields[field].metadata
        assert [getattr(m, "ge", None) for m in meta if getattr(m, "ge", None) is not None] == [lo]
        assert [getattr(m, "le", None) for m in meta if getattr(m, "le", None) is not None] == [hi]


# --------------------------------------------------------------------------- round trips


@FAST
@given(smokes)
def test_smoke_round_trip(r: SmokeReading) -> None:
    regs = encode(r)
    assert len(regs) == REGISTER_COUNT
    assert all(0 <= x <= 0xFFFF for x in regs)
    assert decode(DeviceType.SMOKE, regs) == r


@FAST
@given(manholes)
def test_manhole_round_trip(r: ManholeReading) -> None:
    regs = encode(r)
    assert len(regs) == REGISTER_COUNT
    assert all(0 <= x <= 0xFFFF for x in regs)
    assert decode(DeviceType.MANHOLE, regs) == r


@FAST
@given(bins())
def test_bin_round_trip(case: tuple[BinReading, float]) -> None:
    r, depth = case
    regs = encode(r)
    assert len(regs) == REGISTER_COUNT
    assert all(0 <= x <= 0xFFFF for x in regs)
    assert regs[3] == 0
    back = decode(DeviceType.BIN, regs, bin_depth_cm=depth)
    assert back == r
    assert back.fill_pct == bin_fill_pct(r.distance_cm, depth)
    assert 0.0 <= back.fill_pct <= 100.0


def test_exact_smoke_registers() -> None:
    r = SmokeReading(smoke_density=12.3, temperature_c=-5.5, battery_pct=77, alarm=True, fault=False)
    assert encode(r) == [123, 0x10000 - 55, 77, 1]
    assert encode(r.model_copy(update={"alarm": False, "fault": True})) == [123, 0x10000 - 55, 77, 2]
    assert encode(r.model_copy(update={"alarm": True, "fault": True})) == [123, 0x10000 - 55, 77, 3]
    assert decode(DeviceType.SMOKE, [123, 0xFFC9, 77, 1]) == r


def test_exact_manhole_registers() -> None:
    r = ManholeReading(tilt_deg=-20.0, water_level_cm=65.4, lid_open=True, battery_pct=50)
    assert encode(r) == [0x10000 - 200, 654, 50, 1]
    assert decode(DeviceType.MANHOLE, [0xFF38, 654, 50, 1]) == r
    top = decode(DeviceType.MANHOLE, [900, 5000, 100, 0])
    assert isinstance(top, ManholeReading) and top.tilt_deg == 90.0


def test_exact_bin_registers() -> None:
    r = BinReading(distance_cm=30.0, fill_pct=75.0, temperature_c=25.0, battery_pct=88)
    assert encode(r) == [300, 250, 88, 0]
    assert decode(DeviceType.BIN, [300, 250, 88, 0], bin_depth_cm=120) == r
    default_depth = decode(DeviceType.BIN, [300, 250, 88, 0])
    assert isinstance(default_depth, BinReading) and default_depth.fill_pct == 70.0  # depth 100 cm


def test_status_bits_beyond_the_map_are_ignored() -> None:
    r = decode(DeviceType.SMOKE, [0, 0, 0, 0xFFFC])
    assert r.alarm is False and r.fault is False  # type: ignore[union-attr]
    r2 = decode(DeviceType.MANHOLE, [0, 0, 0, 0xFFFE])
    assert r2.lid_open is False  # type: ignore[union-attr]
    assert decode(DeviceType.BIN, [0, 0, 0, 0xFFFF], bin_depth_cm=100).battery_pct == 0


# --------------------------------------------------------------------------- bin_fill_pct


@pytest.mark.parametrize(
    ("distance", "depth", "fill"),
    [
        (0, 100, 100.0),
        (100, 100, 0.0),
        (150, 100, 0.0),
        (400, 100, 0.0),
        (50, 100, 50.0),
        (30, 120, 75.0),
        (33.3, 100, 66.7),
        (10, 30, 66.7),
    ],
)
def test_bin_fill_pct(distance: float, depth: float, fill: float) -> None:
    assert bin_fill_pct(distance, depth) == fill


@FAST
@given(st.floats(0, 400), depths)
def test_bin_fill_pct_bounds_and_monotone(distance: float, depth: float) -> None:
    f = bin_fill_pct(distance, depth)
    assert 0.0 <= f <= 100.0
    assert f == round(f, 1)
    assert bin_fill_pct(distance + 1, depth) <= f


def test_device_config_bin_depth_bounds_keep_fill_defined() -> None:
    field = DeviceConfig.model_fields["bin_depth_cm"]
    gts = [m.gt for m in field.metadata if getattr(m, "gt", None) is not None]
    assert gts == [10]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 125])
@pytest.mark.parametrize("dt", list(DeviceType))
def test_wrong_register_count(dt: DeviceType, n: int) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(dt, [0] * n)
    assert str(exc.value) == f"expected 4 registers, got {n}"


@pytest.mark.parametrize("bad", [-1, 0x10000, 70000, -32768])
@pytest.mark.parametrize("pos", range(4))
def test_register_out_of_16_bit_range(pos: int, bad: int) -> None:
    regs = [0, 0, 0, 0]
    regs[pos] = bad
    with pytest.raises(DecodeError) as exc:
        decode(DeviceType.SMOKE, regs)
    assert str(exc.value) == f"register value out of 16-bit range: {regs}"


@pytest.mark.parametrize(
    ("dt", "regs", "message"),
    [
        (DeviceType.SMOKE, [65535, 0, 0, 0], "smoke: smoke_density = 6553.5: "),
        (DeviceType.SMOKE, [1001, 0, 0, 0], "smoke: smoke_density = 100.1: "),
        (DeviceType.SMOKE, [0, 1251, 0, 0], "smoke: temperature_c = 125.1: "),
        (DeviceType.SMOKE, [0, 0x10000 - 401, 0, 0], "smoke: temperature_c = -40.1: "),
        (DeviceType.SMOKE, [0, 0, 101, 0], "smoke: battery_pct = 101: "),
        (DeviceType.SMOKE, [0, 0, 65535, 0], "smoke: battery_pct = 65535: "),
        (DeviceType.MANHOLE, [901, 0, 0, 0], "manhole: tilt_deg = 90.1: "),
        (DeviceType.MANHOLE, [0x10000 - 901, 0, 0, 0], "manhole: tilt_deg = -90.1: "),
        (DeviceType.MANHOLE, [0x8000, 0, 0, 0], "manhole: tilt_deg = -3276.8: "),
        (DeviceType.MANHOLE, [0, 5001, 0, 0], "manhole: water_level_cm = 500.1: "),
        (DeviceType.MANHOLE, [0, 0, 101, 0], "manhole: battery_pct = 101: "),
        (DeviceType.BIN, [4001, 0, 0, 0], "bin: distance_cm = 400.1: "),
        (DeviceType.BIN, [0, 0x8000, 0, 0], "bin: temperature_c = -3276.8: "),
        (DeviceType.BIN, [0, 0, 200, 0], "bin: battery_pct = 200: "),
    ],
)
def test_out_of_range_values(dt: DeviceType, regs: list[int], message: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(dt, regs)
    assert str(exc.value).startswith(message), str(exc.value)


def test_boundaries_decode() -> None:
    assert decode(DeviceType.SMOKE, [1000, 1250, 100, 0]).smoke_density == 100.0  # type: ignore[union-attr]
    assert decode(DeviceType.SMOKE, [0, 0x10000 - 400, 0, 0]).temperature_c == -40.0  # type: ignore[union-attr]
    assert decode(DeviceType.MANHOLE, [0x10000 - 900, 5000, 0, 0]).tilt_deg == -90.0  # type: ignore[union-attr]
    assert decode(DeviceType.BIN, [4000, 0, 0, 0]).distance_cm == 400.0  # type: ignore[union-attr]


def test_decode_error_is_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


def test_encode_rejects_values_that_do_not_fit() -> None:
    # constructed bypassing validation: encode must not emit garbage registers
    r = SmokeReading.model_construct(smoke_density=7000.0, temperature_c=0.0, battery_pct=0, alarm=False, fault=False)
    with pytest.raises(ValueError, match="does not fit 16 bits"):
        encode(r)


@FAST
@given(st.sampled_from(list(DeviceType)), st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4), depths)
def test_any_four_registers_decode_or_decode_error(dt: DeviceType, regs: list[int], depth: float) -> None:
    try:
        r = decode(dt, regs, bin_depth_cm=depth)
    except DecodeError:
        return
    assert r.type == dt.value
    assert isinstance(r, SmokeReading | ManholeReading | BinReading)


@FAST
@given(
    st.sampled_from(list(DeviceType)),
    st.lists(st.integers(-(2**20), 2**20), max_size=8),
)
def test_any_int_list_decodes_or_decode_error(dt: DeviceType, regs: list[int]) -> None:
    valid_shape = len(regs) == 4 and all(0 <= x <= 0xFFFF for x in regs)
    try:
        decode(dt, regs)
    except DecodeError:
        return
    assert valid_shape


@FAST
@given(st.sampled_from(list(DeviceType)), st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4))
def test_decode_then_encode_is_stable(dt: DeviceType, regs: list[int]) -> None:
    """Whatever decodes re-encodes to registers that decode to the same reading."""
    try:
        r = decode(dt, regs)
    except DecodeError:
        return
    again = encode(r)
    assert decode(dt, again) == r
    assert again[:3] == regs[:3]
