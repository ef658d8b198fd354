"""edge.sensors.detect + devices.rules: hysteresis, flags, connectivity and faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from devices.rules import DEFAULT_RULES, RuleSpec, rules_for
from edge.sensors.detect import DeviceMonitor, Hysteresis, Transition
from sc.config.schema import DeviceConfig, DeviceType, Threshold
from sc.contracts.messages import (
    AlarmPayload,
    BinReading,
    ConnectivityPayload,
    EventKind,
    EventState,
    FaultPayload,
    ManholeReading,
    Severity,
    SmokeReading,
)

FAST = settings(max_examples=200, deadline=None)
RAISED, CLEARED = EventState.RAISED, EventState.CLEARED
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def smoke(
    density: float = 1.0, *, alarm: bool = False, fault: bool = False, temp: float = 20.0, battery: int = 90
) -> SmokeReading:
    return SmokeReading(smoke_density=density, temperature_c=temp, battery_pct=battery, alarm=alarm, fault=fault)


def manhole(tilt: float = 0.0, *, lid: bool = False, water: float = 0.0, battery: int = 90) -> ManholeReading:
    return ManholeReading(tilt_deg=tilt, water_level_cm=water, lid_open=lid, battery_pct=battery)


def bin_(fill: float = 10.0, *, temp: float = 20.0, battery: int = 90) -> BinReading:
    return BinReading(distance_cm=50.0, fill_pct=fill, temperature_c=temp, battery_pct=battery)


def rule(device_type: DeviceType, kind: EventKind) -> RuleSpec:
    (spec,) = [r for r in DEFAULT_RULES[device_type] if r.kind is kind]
    return spec


SMOKE_ALARM = rule(DeviceType.SMOKE, EventKind.SMOKE_ALARM)
SMOKE_BATTERY = rule(DeviceType.SMOKE, EventKind.LOW_BATTERY)
MANHOLE_OPEN = rule(DeviceType.MANHOLE, EventKind.MANHOLE_OPEN)


def feed_all(h: Hysteresis, readings: list[Any]) -> list[tuple[int, Transition]]:
    out = []
    for i, r in enumerate(readings):
        t = h.feed(r)
        if t is not None:
            out.append((i, t))
    return out


# --------------------------------------------------------------------------- default rules


def test_default_rules_table() -> None:
    assert set(DEFAULT_RULES) == set(DeviceType)
    t = SMOKE_ALARM.threshold
    assert (SMOKE_ALARM.field, SMOKE_ALARM.flag, SMOKE_ALARM.absolute) == ("smoke_density", "alarm", False)
    assert (t.raise_at, t.clear_at, t.samples, t.clear_samples) == (8.0, 4.0, 2, 3)
    b = SMOKE_BATTERY.threshold
    assert (b.raise_at, b.clear_at, b.samples, b.clear_samples) == (15, 25, 3, 3)
    m = MANHOLE_OPEN
    assert (m.field, m.flag, m.absolute) == ("tilt_deg", "lid_open", True)
    assert (m.threshold.raise_at, m.threshold.clear_at, m.threshold.samples, m.threshold.clear_samples) == (
        15.0,
        5.0,
        1,
        2,
    )
    # every rule watches a real numeric field and flag of its reading model
    models: dict[DeviceType, type[BaseModel]] = {
        DeviceType.SMOKE: SmokeReading,
        DeviceType.MANHOLE: ManholeReading,
        DeviceType.BIN: BinReading,
    }
    for dt, specs in DEFAULT_RULES.items():
        fields = models[dt].model_fields
        for spec in specs:
            assert spec.field in fields
            assert spec.flag is None or fields[spec.flag].annotation is bool
        assert len({s.kind for s in specs}) == len(specs)


# --------------------------------------------------------------------------- hysteresis: examples


def test_smoke_raises_after_two_samples_and_clears_after_three() -> None:
    h = Hysteresis(SMOKE_ALARM)
    assert h.above is True
    assert h.feed(smoke(9.0)) is None
    assert not h.active
    t = h.feed(smoke(8.0))  # exactly raise_at counts
    assert t is not None
    assert (t.kind, t.state, t.severity_override) == (EventKind.SMOKE_ALARM, RAISED, None)
    assert isinstance(t.payload, AlarmPayload)
    assert t.payload.rule == "smoke_density >= 8 or alarm"
    assert (t.payload.value, t.payload.threshold) == (8.0, 8.0)
    assert t.payload.reading == smoke(8.0)
    assert h.active
    # still high: nothing more
    assert h.feed(smoke(50.0)) is None
    assert h.feed(smoke(4.0)) is None
    assert h.feed(smoke(3.0)) is None
    t2 = h.feed(smoke(4.0))  # exactly clear_at counts, third in a row
    assert t2 is not None
    assert (t2.kind, t2.state) == (EventKind.SMOKE_ALARM, CLEARED)
    assert isinstance(t2.payload, AlarmPayload)
    assert t2.payload.rule == "smoke_density <= 4"
    assert (t2.payload.value, t2.payload.threshold) == (4.0, 4.0)
    assert not h.active


def test_interrupted_streaks_start_over() -> None:
    h = Hysteresis(SMOKE_ALARM)
    seq = [9, 1, 9, 7.9, 9, 9]
    assert [i for i, _ in feed_all(h, [smoke(v) for v in seq])] == [5]
    # clearing: 2 low, 1 between, 2 low, then the third
    seq2 = [3, 3, 5, 3, 3, 3]
    assert [(i, t.state) for i, t in feed_all(h, [smoke(v) for v in seq2])] == [(5, CLEARED)]


def test_values_between_thresholds_never_flap() -> None:
    h = Hysteresis(SMOKE_ALARM)
    assert feed_all(h, [smoke(v) for v in [4.1, 7.9, 5, 6, 7.99, 4.01] * 10]) == []
    assert not h.active
    feed_all(h, [smoke(9), smoke(9)])
    assert h.active
    assert feed_all(h, [smoke(v) for v in [4.1, 7.9, 5, 6, 7.99, 4.01] * 10]) == []
    assert h.active


def test_alarm_flag_forces_raise_and_blocks_clear() -> None:
    h = Hysteresis(SMOKE_ALARM)
    assert h.feed(smoke(0.0, alarm=True)) is None
    t = h.feed(smoke(0.0, alarm=True))
    assert t is not None and t.state is RAISED
    assert isinstance(t.payload, AlarmPayload)
    assert t.payload.value == 0.0
    # low density but the flag is still set: never clears
    assert feed_all(h, [smoke(0.0, alarm=True)] * 10) == []
    # flag and density mixed also count for the raise streak
    h2 = Hysteresis(SMOKE_ALARM)
    assert [i for i, _ in feed_all(h2, [smoke(0.0, alarm=True), smoke(9.0)])] == [1]
    # flag drops: clears after clear_samples
    assert [(i, t.state) for i, t in feed_all(h, [smoke(0.0)] * 3)] == [(2, CLEARED)]


def test_below_threshold_battery() -> None:
    h = Hysteresis(SMOKE_BATTERY)
    assert h.above is False
    assert feed_all(h, [smoke(battery=16)] * 5) == []
    got = feed_all(h, [smoke(battery=15), smoke(battery=10), smoke(battery=0)])
    assert [(i, t.state) for i, t in got] == [(2, RAISED)]
    t = got[0][1]
    assert isinstance(t.payload, AlarmPayload)
    assert t.payload.rule == "battery_pct <= 15"
    assert (t.payload.value, t.payload.threshold) == (0.0, 15)
    # between 15 and 25: stays raised
    assert feed_all(h, [smoke(battery=b) for b in (16, 20, 24, 24, 24)]) == []
    got = feed_all(h, [smoke(battery=25), smoke(battery=100), smoke(battery=30)])
    assert [(i, t.state) for i, t in got] == [(2, CLEARED)]
    assert isinstance(got[0][1].payload, AlarmPayload)
    assert got[0][1].payload.rule == "battery_pct >= 25"
    assert got[0][1].payload.threshold == 25


def test_manhole_tilt_is_absolute() -> None:
    h = Hysteresis(MANHOLE_OPEN)
    t = h.feed(manhole(-20.0))  # samples=1
    assert t is not None and t.state is RAISED
    assert isinstance(t.payload, AlarmPayload)
    assert t.payload.rule == "|tilt_deg| >= 15 or lid_open"
    assert t.payload.value == 20.0
    assert h.feed(manhole(-4.0)) is None
    t2 = h.feed(manhole(5.0))
    assert t2 is not None and t2.state is CLEARED
    assert isinstance(t2.payload, AlarmPayload)
    assert t2.payload.rule == "|tilt_deg| <= 5"
    # -14.9 is within the band either way
    assert feed_all(Hysteresis(MANHOLE_OPEN), [manhole(-14.9), manhole(14.9)]) == []
    assert [i for i, _ in feed_all(Hysteresis(MANHOLE_OPEN), [manhole(-15.0)])] == [0]


def test_manhole_lid_flag() -> None:
    h = Hysteresis(MANHOLE_OPEN)
    t = h.feed(manhole(0.0, lid=True))
    assert t is not None and t.state is RAISED
    assert h.feed(manhole(0.0)) is None
    assert h.feed(manhole(0.0, lid=True)) is None  # resets the clear streak
    assert h.feed(manhole(0.0)) is None
    t2 = h.feed(manhole(0.0))
    assert t2 is not None and t2.state is CLEARED


def test_severity_override_from_threshold() -> None:
    spec = RuleSpec(
        EventKind.BIN_FULL, "fill_pct", Threshold(raise_at=80, clear_at=60, samples=1, severity=Severity.MAJOR)
    )
    h = Hysteresis(spec)
    t = h.feed(bin_(85))
    assert t is not None
    assert t.severity_override == "major"
    assert isinstance(t.payload, AlarmPayload)
    assert t.payload.rule == "fill_pct >= 80"


def test_threshold_formatting_uses_g() -> None:
    spec = RuleSpec(EventKind.SMOKE_ALARM, "smoke_density", Threshold(raise_at=7.25, clear_at=3.5, samples=1))
    t = Hysteresis(spec).feed(smoke(7.3))
    assert t is not None and isinstance(t.payload, AlarmPayload)
    assert t.payload.rule == "smoke_density >= 7.25"


# --------------------------------------------------------------------------- hysteresis: properties


def check_sequence(spec: RuleSpec, values: list[float], flags: list[bool]) -> None:
    """Feed ``values`` (with the flag field set from ``flags``) and check the hysteresis laws."""
    h = Hysteresis(spec)
    t = spec.threshold
    above = t.raise_at > t.clear_at
    vals = [abs(v) if spec.absolute else v for v in values]

    def past_raise(i: int) -> bool:
        return flags[i] or (vals[i] >= t.raise_at if above else vals[i] <= t.raise_at)

    def past_clear(i: int) -> bool:
        return not flags[i] and (vals[i] <= t.clear_at if above else vals[i] >= t.clear_at)

    transitions: list[tuple[int, EventState]] = []
    for i, v in enumerate(values):
        was_active = h.active
        r = make_reading(spec, v, flags[i])
        tr = h.feed(r)
        last = transitions[-1][0] if transitions else -1
        if tr is not None:
            transitions.append((i, tr.state))
            assert tr.kind is spec.kind
            assert isinstance(tr.payload, AlarmPayload)
            assert tr.payload.reading == r
            assert tr.payload.value == vals[i]
        if tr is not None and tr.state is RAISED:
            assert not was_active and h.active
            # the last `samples` readings, all since the previous transition, were past raise_at
            assert i - t.samples + 1 > last
            assert all(past_raise(j) for j in range(i - t.samples + 1, i + 1))
            assert tr.payload.threshold == t.raise_at  # type: ignore[union-attr]
        elif tr is not None:
            assert was_active and not h.active
            assert i - t.clear_samples + 1 > last
            assert all(past_clear(j) for j in range(i - t.clear_samples + 1, i + 1))
            assert tr.payload.threshold == t.clear_at  # type: ignore[union-attr]
        else:
            assert h.active == was_active
            # completeness: a full streak since the last transition must have fired
            need, past = (t.clear_samples, past_clear) if was_active else (t.samples, past_raise)
            start = i - need + 1
            assert not (start > last and all(past(j) for j in range(start, i + 1)))
    states = [s for _, s in transitions]
    assert states == [RAISED, CLEARED] * (len(states) // 2) + [RAISED] * (len(states) % 2)
    assert h.active == (len(states) % 2 == 1)


def make_reading(spec: RuleSpec, v: float, flag: bool) -> Any:
    if spec.field == "smoke_density":
        return smoke(v, alarm=flag)
    if spec.field == "battery_pct":
        return smoke(battery=int(v))
    if spec.field == "tilt_deg":
        return manhole(v, lid=flag)
    raise AssertionError(spec.field)


densities = st.integers(0, 1000).map(lambda k: k / 10)


@FAST
@given(st.lists(st.tuples(densities, st.booleans() | st.just(False)), max_size=60))
def test_smoke_alarm_sequences(seq: list[tuple[float, bool]]) -> None:
    check_sequence(SMOKE_ALARM, [v for v, _ in seq], [f for _, f in seq])


@FAST
@given(st.lists(st.sampled_from([0.0, 3.9, 4.0, 4.1, 6.0, 7.9, 8.0, 8.1, 20.0]), max_size=60))
def test_smoke_alarm_sequences_near_thresholds(seq: list[float]) -> None:
    check_sequence(SMOKE_ALARM, seq, [False] * len(seq))


@FAST
@given(st.lists(st.integers(0, 100), max_size=60))
def test_battery_sequences(seq: list[int]) -> None:
    check_sequence(SMOKE_BATTERY, [float(b) for b in seq], [False] * len(seq))


@FAST
@given(st.lists(st.tuples(st.integers(-900, 900).map(lambda k: k / 10), st.booleans()), max_size=60))
def test_manhole_sequences(seq: list[tuple[float, bool]]) -> None:
    check_sequence(MANHOLE_OPEN, [v for v, _ in seq], [f for _, f in seq])


@st.composite
def specs(draw: st.DrawFn) -> RuleSpec:
    a = draw(densities)
    b = draw(densities.filter(lambda x: x != a))
    th = Threshold(raise_at=a, clear_at=b, samples=draw(st.integers(1, 5)), clear_samples=draw(st.integers(1, 5)))
    return RuleSpec(EventKind.SMOKE_ALARM, "smoke_density", th, flag=draw(st.sampled_from([None, "alarm"])))


@FAST
@given(specs(), st.lists(st.tuples(densities, st.booleans()), max_size=60))
def test_any_threshold_any_sequence(spec: RuleSpec, seq: list[tuple[float, bool]]) -> None:
    flags = [f and spec.flag is not None for _, f in seq]
    check_sequence(spec, [v for v, _ in seq], flags)


@FAST
@given(st.lists(st.floats(4.05, 7.95), min_size=1, max_size=60), st.booleans())
def test_between_thresholds_nothing_happens(seq: list[float], start_active: bool) -> None:
    h = Hysteresis(SMOKE_ALARM)
    if start_active:
        feed_all(h, [smoke(9.0)] * 2)
    assert feed_all(h, [smoke(v) for v in seq]) == []
    assert h.active == start_active


# --------------------------------------------------------------------------- rules_for


def dev(device_type: DeviceType, **kw: Any) -> DeviceConfig:
    return DeviceConfig(id="d1", type=device_type, location="x", bus="b", unit=1, **kw)


def test_rules_for_defaults() -> None:
    for dt in DeviceType:
        assert rules_for(dev(dt)) == DEFAULT_RULES[dt]


def test_rules_for_override() -> None:
    over = Threshold(raise_at=60, clear_at=40, samples=1, clear_samples=5, severity=Severity.CRITICAL)
    out = rules_for(dev(DeviceType.MANHOLE, rules={EventKind.WATER_LEVEL_HIGH: over}))
    assert [r.kind for r in out] == [r.kind for r in DEFAULT_RULES[DeviceType.MANHOLE]]
    water = out[1]
    assert water.kind is EventKind.WATER_LEVEL_HIGH
    assert water.threshold is over
    assert water.field == "water_level_cm"
    assert out[0] == DEFAULT_RULES[DeviceType.MANHOLE][0]
    assert out[0].flag == "lid_open" and out[0].absolute
    assert out[2] == DEFAULT_RULES[DeviceType.MANHOLE][2]


def test_rules_for_override_keeps_flag_and_absolute() -> None:
    over = Threshold(raise_at=30, clear_at=10)
    out = rules_for(dev(DeviceType.MANHOLE, rules={EventKind.MANHOLE_OPEN: over}))
    assert out[0] == RuleSpec(EventKind.MANHOLE_OPEN, "tilt_deg", over, "lid_open", True)


def test_rules_for_rejects_kind_the_type_does_not_have() -> None:
    with pytest.raises(ValueError) as exc:
        rules_for(dev(DeviceType.SMOKE, rules={EventKind.BIN_FULL: Threshold(raise_at=1, clear_at=0)}))
    assert str(exc.value) == "device 'd1' (smoke) has no rule bin_full"
    with pytest.raises(ValueError) as exc:
        rules_for(
            dev(
                DeviceType.BIN,
                rules={
                    EventKind.SMOKE_ALARM: Threshold(raise_at=1, clear_at=0),
                    EventKind.DEVICE_OFFLINE: Threshold(raise_at=1, clear_at=0),
                    EventKind.BIN_FULL: Threshold(raise_at=1, clear_at=0),
                },
            )
        )
    assert str(exc.value) == "device 'd1' (bin) has no rule device_offline, smoke_alarm"


# --------------------------------------------------------------------------- DeviceMonitor


def monitor(device_type: DeviceType = DeviceType.SMOKE, offline_after: int = 3, bad_after: int = 3) -> DeviceMonitor:
    return DeviceMonitor("d1", DEFAULT_RULES[device_type], offline_after=offline_after, bad_after=bad_after)


def kinds(ts: list[Transition]) -> list[tuple[EventKind, EventState]]:
    return [(t.kind, t.state) for t in ts]


def test_offline_exactly_once_then_online() -> None:
    m = monitor(offline_after=3)
    assert m.reading(smoke(), T0) == []
    assert m.online is True
    assert m.failure("timeout") == []
    assert m.failure("timeout") == []
    out = m.failure("bad crc")
    assert kinds(out) == [(EventKind.DEVICE_OFFLINE, RAISED)]
    p = out[0].payload
    assert isinstance(p, ConnectivityPayload)
    assert (p.reason, p.consecutive_failures, p.last_seen) == ("bad crc", 3, T0)
    assert m.online is False
    assert m.active_conditions() == [EventKind.DEVICE_OFFLINE]
    for _ in range(20):
        assert m.failure("timeout") == []
    assert m.failures == 23
    out = m.reading(smoke(), T0 + timedelta(minutes=5))
    assert kinds(out) == [(EventKind.DEVICE_ONLINE, CLEARED)]
    p = out[0].payload
    assert isinstance(p, ConnectivityPayload)
    assert (p.reason, p.consecutive_failures, p.last_seen) == ("answering again", 23, T0)
    assert m.online is True and m.failures == 0
    assert m.last_seen == T0 + timedelta(minutes=5)
    assert m.active_conditions() == []
    # and it can go offline again
    assert m.failure("x") == [] and m.failure("x") == []
    assert kinds(m.failure("x")) == [(EventKind.DEVICE_OFFLINE, RAISED)]


def test_offline_before_ever_seen() -> None:
    m = monitor(offline_after=1)
    assert m.online is None
    out = m.failure("no answer")
    assert kinds(out) == [(EventKind.DEVICE_OFFLINE, RAISED)]
    p = out[0].payload
    assert isinstance(p, ConnectivityPayload) and p.last_seen is None and p.consecutive_failures == 1


def test_no_online_event_if_never_offline() -> None:
    m = monitor(offline_after=3)
    assert m.reading(smoke(), T0) == []  # first contact: no device_online
    assert m.failure("t") == [] and m.failure("t") == []
    assert m.reading(smoke(), T0) == []  # 2 failures < 3: never offline
    assert m.failures == 0
    assert m.failure("t") == [] and m.failure("t") == []  # the count restarted


@FAST
@given(st.lists(st.sampled_from(["ok", "fail", "bad"]), max_size=80), st.integers(1, 5), st.integers(1, 5))
def test_connectivity_events_alternate(ops: list[str], offline_after: int, bad_after: int) -> None:
    m = monitor(offline_after=offline_after, bad_after=bad_after)
    conn: list[EventKind] = []
    streak = 0
    for op in ops:
        if op == "ok":
            out = m.reading(smoke(), T0)
            streak = 0
        elif op == "bad":
            out = m.bad_reading("implausible", T0)
            streak = 0
        else:
            out = m.failure("timeout")
            streak += 1
            offline = [t for t in out if t.kind is EventKind.DEVICE_OFFLINE]
            if offline:
                assert streak >= offline_after
                assert offline[0].payload.consecutive_failures == streak  # type: ignore[union-attr]
        conn += [t.kind for t in out if t.kind in (EventKind.DEVICE_OFFLINE, EventKind.DEVICE_ONLINE)]
        assert (m.online is False) == (EventKind.DEVICE_OFFLINE in m.active_conditions())
    assert conn == [EventKind.DEVICE_OFFLINE, EventKind.DEVICE_ONLINE] * (len(conn) // 2) + [
        EventKind.DEVICE_OFFLINE
    ] * (len(conn) % 2)
    assert (m.online is False) == (len(conn) % 2 == 1)


def test_bad_readings_raise_device_fault_after_bad_after() -> None:
    m = monitor(bad_after=3)
    assert m.bad_reading("smoke_density = 6553.5", T0) == []
    assert m.bad_reading("smoke_density = 6553.5", T0) == []
    out = m.bad_reading("smoke_density = 6553.5", T0)
    assert kinds(out) == [(EventKind.DEVICE_FAULT, RAISED)]
    p = out[0].payload
    assert isinstance(p, FaultPayload)
    assert p.reason == "3 implausible readings in a row: smoke_density = 6553.5"
    assert p.reading is None
    assert m.faulty and m.active_conditions() == [EventKind.DEVICE_FAULT]
    assert m.bad_reading("again", T0) == []  # once per incident
    out = m.reading(smoke(), T0)
    assert kinds(out) == [(EventKind.DEVICE_FAULT, CLEARED)]
    p = out[0].payload
    assert isinstance(p, FaultPayload) and p.reason == "fault cleared" and p.reading == smoke()
    assert not m.faulty and m.bad_readings == 0


def test_good_reading_breaks_the_bad_streak() -> None:
    m = monitor(bad_after=2)
    assert m.bad_reading("x", T0) == []
    assert m.reading(smoke(), T0) == []
    assert m.bad_reading("x", T0) == []
    assert kinds(m.bad_reading("x", T0)) == [(EventKind.DEVICE_FAULT, RAISED)]


def test_bad_reading_brings_an_offline_device_back() -> None:
    m = monitor(offline_after=1)
    m.failure("t")
    out = m.bad_reading("x", T0)
    assert kinds(out) == [(EventKind.DEVICE_ONLINE, CLEARED)]
    assert m.online is True and m.last_seen == T0


def test_own_fault_flag_raises_and_clears() -> None:
    m = monitor()
    out = m.reading(smoke(fault=True), T0)
    assert kinds(out) == [(EventKind.DEVICE_FAULT, RAISED)]
    p = out[0].payload
    assert isinstance(p, FaultPayload)
    assert p.reason == "device reports a fault" and p.reading == smoke(fault=True)
    assert m.reading(smoke(fault=True), T0) == []
    assert m.active_conditions() == [EventKind.DEVICE_FAULT]
    assert kinds(m.reading(smoke(), T0)) == [(EventKind.DEVICE_FAULT, CLEARED)]
    assert m.reading(smoke(), T0) == []


def test_readings_without_a_fault_field() -> None:
    m = monitor(DeviceType.MANHOLE)
    assert m.reading(manhole(), T0) == []
    assert not m.faulty


def test_event_order_within_one_reading() -> None:
    m = monitor(offline_after=1)
    m.failure("t")
    m.reading(smoke(9.0, alarm=True, fault=True, temp=60.0), T0)  # first of two samples
    m.failure("t")
    out = m.reading(smoke(9.0, alarm=True, fault=False, temp=60.0), T0)
    assert kinds(out) == [
        (EventKind.DEVICE_ONLINE, CLEARED),
        (EventKind.DEVICE_FAULT, CLEARED),
        (EventKind.SMOKE_ALARM, RAISED),
        (EventKind.HIGH_TEMPERATURE, RAISED),
    ]


def test_active_conditions() -> None:
    m = monitor(offline_after=1)
    assert m.active_conditions() == []
    m.reading(smoke(9.0, battery=5), T0)
    m.reading(smoke(9.0, battery=5, fault=True), T0)
    assert m.active_conditions() == [EventKind.SMOKE_ALARM, EventKind.DEVICE_FAULT]
    m.reading(smoke(9.0, battery=5, fault=True), T0)
    assert m.active_conditions() == [EventKind.SMOKE_ALARM, EventKind.LOW_BATTERY, EventKind.DEVICE_FAULT]
    m.failure("t")
    assert m.active_conditions() == [
        EventKind.SMOKE_ALARM,
        EventKind.LOW_BATTERY,
        EventKind.DEVICE_FAULT,
        EventKind.DEVICE_OFFLINE,
    ]
    assert m.last_reading == smoke(9.0, battery=5, fault=True)


def test_monitor_with_overridden_rules() -> None:
    d = DeviceConfig(
        id="d1",
        type=DeviceType.BIN,
        location="x",
        bus="b",
        unit=1,
        rules={EventKind.BIN_FULL: Threshold(raise_at=50, clear_at=30, samples=1)},
    )
    m = DeviceMonitor("d1", rules_for(d), offline_after=3)
    assert kinds(m.reading(bin_(55), T0)) == [(EventKind.BIN_FULL, RAISED)]
    assert kinds(m.reading(bin_(10), T0)) == []
    assert kinds(m.reading(bin_(10), T0)) == [(EventKind.BIN_FULL, CLEARED)]
