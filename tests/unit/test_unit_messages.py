"""sc.contracts.messages: encode/decode round trips and decode's only-ContractError promise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from command_strategies import commands
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sc.contracts.commands import Command, CommandAck, CommandName, PingArgs
from sc.contracts.kinds import MODEL_FOR_KIND
from sc.contracts.messages import (
    CLEARED_BY,
    DEFAULT_SEVERITY,
    MAX_PAYLOAD_BYTES,
    AlarmPayload,
    BinReading,
    ConnectivityPayload,
    ContractError,
    Event,
    EventKind,
    EventState,
    FaultPayload,
    GarageState,
    ManholeReading,
    Severity,
    SmokeReading,
    Status,
    StatusState,
    Telemetry,
    Uplink,
    decode,
    encode,
    new_id,
    utcnow,
)
from sc.contracts.topics import Kind

FAST = settings(max_examples=150, deadline=None)

# --------------------------------------------------------------------------- strategies

ID_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
ids = st.builds(lambda a, b: a + b, st.sampled_from(ID_FIRST), st.text(alphabet=ID_FIRST + "-_", max_size=63))
#: any character but NUL, which no message may carry (decode refuses it: PostgreSQL cannot store it)
chars = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
event_ids = st.text(chars, min_size=8, max_size=64)
texts = st.text(chars, max_size=40)


def fin(lo: float | None = None, hi: float | None = None) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.one_of(st.just(UTC), offsets)
)

smoke = st.builds(
    SmokeReading,
    smoke_density=fin(0, 100),
    temperature_c=fin(-40, 125),
    battery_pct=st.integers(0, 100),
    alarm=st.booleans(),
    fault=st.booleans(),
)
manhole = st.builds(
    ManholeReading,
    tilt_deg=fin(-90, 90),
    water_level_cm=fin(0, 500),
    lid_open=st.booleans(),
    battery_pct=st.integers(0, 100),
)
bins = st.builds(
    BinReading,
    distance_cm=fin(0, 400),
    fill_pct=fin(0, 100),
    temperature_c=fin(-40, 125),
    battery_pct=st.integers(0, 100),
)
readings = st.one_of(smoke, manhole, bins)

alarm_payloads = st.builds(AlarmPayload, rule=texts, value=fin(), threshold=fin(), reading=readings)
conn_payloads = st.builds(
    ConnectivityPayload,
    reason=texts,
    consecutive_failures=st.integers(0, 2**31),
    last_seen=st.one_of(st.none(), aware),
)
fault_payloads = st.builds(FaultPayload, reason=texts, reading=st.one_of(st.none(), readings))
payloads = st.one_of(alarm_payloads, conn_payloads, fault_payloads)

events = st.builds(
    Event,
    id=event_ids,
    site=ids,
    gateway=ids,
    device=ids,
    ts=aware,
    seq=st.integers(1, 2**62),
    kind=st.sampled_from(list(EventKind)),
    state=st.sampled_from(list(EventState)),
    severity=st.sampled_from(list(Severity)),
    payload=payloads,
)
telemetry = st.builds(Telemetry, site=ids, gateway=ids, device=ids, ts=aware, reading=readings)
statuses = st.builds(
    Status,
    state=st.sampled_from(list(StatusState)),
    ts=st.one_of(st.none(), aware),
    reason=texts,
    version=texts,
)
scalars = st.one_of(st.text(chars, max_size=20), st.integers(-(2**62), 2**62), fin(), st.booleans())
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**62), 2**62), fin(), st.text(chars, max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(chars, max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
acks = st.builds(
    CommandAck,
    id=st.text(chars, max_size=64),
    ts=aware,
    ok=st.booleans(),
    error=texts,
    result=st.dictionaries(st.text(chars, max_size=8), json_values, max_size=4),
)
uplinks = st.builds(Uplink, ts=st.one_of(st.none(), aware), reading=readings)

messages = st.one_of(events, telemetry, statuses, commands(), acks, uplinks)


def _smoke(**kw: Any) -> SmokeReading:
    base: dict[str, Any] = {
        "smoke_density": 1.5,
        "temperature_c": 21.0,
        "battery_pct": 90,
        "alarm": False,
        "fault": False,
    }
    base.update(kw)
    return SmokeReading(**base)


TS = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _event(**kw: Any) -> Event:
    base: dict[str, Any] = {
        "id": "0123456789abcdef",
        "site": "demo",
        "gateway": "gw-1",
        "device": "smoke-1",
        "ts": TS,
        "seq": 1,
        "kind": EventKind.SMOKE_ALARM,
        "state": EventState.RAISED,
        "severity": Severity.CRITICAL,
        "payload": AlarmPayload(rule="smoke_density >= 8", value=9.0, threshold=8.0, reading=_smoke()),
    }
    base.update(kw)
    return Event(**base)


def _telemetry_dict() -> dict[str, Any]:
    d: dict[str, Any] = json.loads(encode(Telemetry(site="demo", gateway="gw-1", device="d1", ts=TS, reading=_smoke())))
    return d


def _event_dict() -> dict[str, Any]:
    d: dict[str, Any] = json.loads(encode(_event()))
    return d


def _bytes(d: Any) -> bytes:
    return json.dumps(d).encode()


def _contract_error(model: type[BaseModel], data: bytes) -> str:
    with pytest.raises(ContractError) as exc:
        decode(model, data)
    return str(exc.value)


# --------------------------------------------------------------------------- round trips


@FAST
@given(messages)
def test_round_trip(message: BaseModel) -> None:
    data = encode(message)
    assert isinstance(data, bytes)
    back = decode(type(message), data)
    assert back == message
    assert type(back) is type(message)
    assert encode(back) == data


@FAST
@given(events)
def test_event_round_trip_keeps_payload_type(ev: Event) -> None:
    back = decode(Event, encode(ev))
    assert type(back.payload) is type(ev.payload)
    assert back.id == ev.id
    assert back.seq == ev.seq
    assert back.ts == ev.ts


def test_encode_is_compact_json_without_nones() -> None:
    st_ = Status(state=StatusState.OFFLINE)
    assert encode(st_) == b'{"v":1,"state":"offline","reason":"","version":""}'
    ev = _event(payload=ConnectivityPayload(reason="timeout", consecutive_failures=3))
    d = json.loads(encode(ev))
    assert d["payload"] == {"type": "connectivity", "reason": "timeout", "consecutive_failures": 3}
    assert d["ts"] == "2024-05-01T12:00:00Z"
    assert d["v"] == 1


def test_exact_event_encoding() -> None:
    assert json.loads(encode(_event())) == {
        "v": 1,
        "id": "0123456789abcdef",
        "site": "demo",
        "gateway": "gw-1",
        "device": "smoke-1",
        "ts": "2024-05-01T12:00:00Z",
        "seq": 1,
        "kind": "smoke_alarm",
        "state": "raised",
        "severity": "critical",
        "payload": {
            "type": "alarm",
            "rule": "smoke_density >= 8",
            "value": 9.0,
            "threshold": 8.0,
            "reading": {
                "type": "smoke",
                "smoke_density": 1.5,
                "temperature_c": 21.0,
                "battery_pct": 90,
                "alarm": False,
                "fault": False,
            },
        },
    }


def test_defaults() -> None:
    ev = Event(
        site="s",
        gateway="g",
        device="d",
        ts=TS,
        seq=1,
        kind=EventKind.DEVICE_FAULT,
        state=EventState.RAISED,
        severity=Severity.WARNING,
        payload=FaultPayload(reason="x"),
    )
    assert len(ev.id) == 36 and ev.id.count("-") == 4
    assert ev.v == 1
    cmd = Command(
        name=CommandName.PING,
        expires=TS,
        ts=TS - timedelta(seconds=5),
        site="s",
        gateway="g",
        device="d",
        args=PingArgs(),
    )
    assert cmd.args == PingArgs() and cmd.sig is None and len(cmd.id) == 36
    assert len(new_id()) == 36 and new_id() != new_id()
    assert utcnow().tzinfo is UTC


def test_models_are_frozen() -> None:
    ev = _event()
    with pytest.raises(ValueError):
        ev.seq = 2  # type: ignore[misc]


def test_model_for_kind() -> None:
    expected = {
        Kind.STATUS: Status,
        Kind.TELEMETRY: Telemetry,
        Kind.EVENT: Event,
        Kind.CMD: Command,
        Kind.CMD_ACK: CommandAck,
        Kind.UPLINK: Uplink,
        Kind.STATE: GarageState,
    }
    assert expected == MODEL_FOR_KIND
    assert Kind.SNAPSHOT not in MODEL_FOR_KIND


def test_every_event_kind_has_a_default_severity() -> None:
    assert set(DEFAULT_SEVERITY) == set(EventKind)
    assert DEFAULT_SEVERITY[EventKind.SMOKE_ALARM] is Severity.CRITICAL
    assert DEFAULT_SEVERITY[EventKind.BIN_FIRE] is Severity.CRITICAL
    assert CLEARED_BY == {
        EventKind.DEVICE_ONLINE: EventKind.DEVICE_OFFLINE,
        EventKind.CAMERA_ONLINE: EventKind.CAMERA_OFFLINE,
        EventKind.DOOR_CLOSED: EventKind.DOOR_HELD_OPEN,
        EventKind.LIGHTING_RESTORED: EventKind.LIGHTING_FAULT,
    }


def test_contract_error_is_value_error() -> None:
    assert issubclass(ContractError, ValueError)


# --------------------------------------------------------------------------- size limit


def test_oversized_payload_is_refused_unread() -> None:
    data = b"x" * (MAX_PAYLOAD_BYTES + 1)
    msg = _contract_error(Status, data)
    assert msg == f"payload of {MAX_PAYLOAD_BYTES + 1} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"


def test_a_nul_character_anywhere_is_refused() -> None:
    """PostgreSQL cannot store one in a text: a message carrying it would fail its whole batch."""
    ack = CommandAck(id="abc", ts=TS, ok=False, error="a\x00b")
    data = encode(ack)
    assert b"\\u0000" in data
    assert _contract_error(CommandAck, data) == "invalid CommandAck: a NUL character (\\u0000) in a text"


def test_oversized_but_valid_json_is_refused() -> None:
    ack = CommandAck(id="abc", ts=TS, ok=True, error="e" * MAX_PAYLOAD_BYTES)
    data = encode(ack)
    assert len(data) > MAX_PAYLOAD_BYTES
    assert "exceeds the 65536-byte limit" in _contract_error(CommandAck, data)


def test_payload_of_exactly_the_limit_is_accepted() -> None:
    base = CommandAck(id="abc", ts=TS, ok=False, error="")
    pad = MAX_PAYLOAD_BYTES - len(encode(base))
    ack = CommandAck(id="abc", ts=TS, ok=False, error="e" * pad)
    data = encode(ack)
    assert len(data) == MAX_PAYLOAD_BYTES
    assert decode(CommandAck, data) == ack
    assert MAX_PAYLOAD_BYTES == 65536


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"not json", b"\xff\xfe\x00", b"[1,2", b'{"v":1,', b"null", b"[]", b"1", b'"x"', b"true"],
)
def test_not_a_json_object(data: bytes) -> None:
    msg = _contract_error(Status, data)
    assert msg.startswith("invalid Status: (message): ")


def test_invalid_json_message_text() -> None:
    assert _contract_error(Status, b"not json").startswith("invalid Status: (message): Invalid JSON")
    assert _contract_error(Status, b"[]") == "invalid Status: (message): Input should be an object"


def test_deeply_nested_json_is_a_contract_error() -> None:
    msg = _contract_error(CommandAck, b"[" * (MAX_PAYLOAD_BYTES - 1))
    assert msg.startswith("invalid CommandAck: ")


@pytest.mark.parametrize("model", list(MODEL_FOR_KIND.values()))
@FAST
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_only_contract_error(model: type[BaseModel], data: bytes) -> None:
    try:
        out = decode(model, data)
    except ContractError as exc:
        assert str(exc).startswith(f"invalid {model.__name__}: ")
    else:
        assert isinstance(out, model)


@pytest.mark.parametrize("model", list(MODEL_FOR_KIND.values()))
@FAST
@given(obj=st.one_of(json_values, st.dictionaries(st.text(chars, max_size=8), json_values, max_size=6)))
def test_arbitrary_json_only_contract_error(model: type[BaseModel], obj: Any) -> None:
    try:
        out = decode(model, json.dumps(obj).encode())
    except ContractError as exc:
        assert str(exc).startswith(f"invalid {model.__name__}: ")
    else:
        assert isinstance(out, model)


@FAST
@given(messages, st.data())
def test_mutated_valid_message_only_contract_error(message: BaseModel, data: st.DataObject) -> None:
    """Replace one top-level field of a valid message with any JSON value."""
    d = json.loads(encode(message))
    key = data.draw(st.sampled_from(sorted(d)))
    d[key] = data.draw(json_values)
    try:
        out = decode(type(message), _bytes(d))
    except ContractError as exc:
        assert str(exc).startswith(f"invalid {type(message).__name__}: ")
    else:
        assert isinstance(out, type(message))


@pytest.mark.parametrize(
    ("mutate", "where", "msg"),
    [
        (lambda d: d.update(seq="abc"), "seq", "Input should be a valid integer"),
        (lambda d: d.update(seq=0), "seq", "Input should be greater than or equal to 1"),
        (lambda d: d.update(seq=1.5), "seq", "Input should be a valid integer"),
        (lambda d: d.update(site=123), "site", "Input should be a valid string"),
        (lambda d: d.update(site="Bad Site"), "site", "String should match pattern"),
        (lambda d: d.update(device="a/b"), "device", "String should match pattern"),
        (lambda d: d.update(id="short"), "id", "String should have at least 8 characters"),
        (lambda d: d.update(id="x" * 65), "id", "String should have at most 64 characters"),
        (lambda d: d.update(kind="fire"), "kind", "Input should be"),
        (lambda d: d.update(state="open"), "state", "Input should be 'raised' or 'cleared'"),
        (lambda d: d.update(severity="low"), "severity", "Input should be"),
        (lambda d: d.update(v=2), "v", "Input should be 1"),
        (lambda d: d.update(ts="yesterday"), "ts", "Input should be a valid datetime"),
        (lambda d: d.update(ts="2024-05-01T12:00:00"), "ts", "Input should have timezone info"),
        (lambda d: d.update(extra=1), "extra", "Extra inputs are not permitted"),
        (lambda d: d.pop("seq"), "seq", "Field required"),
        (lambda d: d["payload"].update(type="bogus"), "payload", "does not match any of the expected tags"),
        (lambda d: d["payload"].update(extra=1), "payload.alarm.extra", "Extra inputs are not permitted"),
        (lambda d: d["payload"].update(value="x"), "payload.alarm.value", "Input should be a valid number"),
        (
            lambda d: d["payload"]["reading"].update(smoke_density=101),
            "payload.alarm.reading.smoke.smoke_density",
            "Input should be less than or equal to 100",
        ),
        (
            lambda d: d["payload"]["reading"].update(battery_pct=101),
            "payload.alarm.reading.smoke.battery_pct",
            "Input should be less than or equal to 100",
        ),
        (
            lambda d: d["payload"]["reading"].update(alarm="maybe"),
            "payload.alarm.reading.smoke.alarm",
            "Input should be a valid boolean",
        ),
        (
            lambda d: d["payload"]["reading"].update(type="radar"),
            "payload.alarm.reading",
            "does not match any of the expected tags",
        ),
    ],
)
def test_event_field_errors_name_the_field(mutate: Any, where: str, msg: str) -> None:
    d = _event_dict()
    mutate(d)
    text = _contract_error(Event, _bytes(d))
    assert text.startswith(f"invalid Event: {where}: "), text
    assert msg in text


@pytest.mark.parametrize(
    ("field", "value", "msg"),
    [
        ("smoke_density", 101, "less than or equal to 100"),
        ("smoke_density", -0.1, "greater than or equal to 0"),
        ("temperature_c", 125.1, "less than or equal to 125"),
        ("temperature_c", -40.1, "greater than or equal to -40"),
        ("battery_pct", 101, "less than or equal to 100"),
        ("battery_pct", -1, "greater than or equal to 0"),
        ("battery_pct", 50.5, "valid integer"),
        ("foo", 1, "Extra inputs are not permitted"),
    ],
)
def test_telemetry_out_of_range_readings(field: str, value: Any, msg: str) -> None:
    d = _telemetry_dict()
    d["reading"][field] = value
    text = _contract_error(Telemetry, _bytes(d))
    assert text.startswith(f"invalid Telemetry: reading.smoke.{field}: "), text
    assert msg in text


@pytest.mark.parametrize(
    ("reading", "field", "value"),
    [
        ({"type": "manhole", "tilt_deg": 91, "water_level_cm": 0, "lid_open": False, "battery_pct": 1}, "tilt_deg", 91),
        (
            {"type": "manhole", "tilt_deg": 0, "water_level_cm": 501, "lid_open": False, "battery_pct": 1},
            "water_level_cm",
            501,
        ),
        ({"type": "bin", "distance_cm": 401, "fill_pct": 0, "temperature_c": 0, "battery_pct": 1}, "distance_cm", 401),
        ({"type": "bin", "distance_cm": 1, "fill_pct": 100.5, "temperature_c": 0, "battery_pct": 1}, "fill_pct", 100.5),
    ],
)
def test_uplink_out_of_range(reading: dict[str, Any], field: str, value: float) -> None:
    text = _contract_error(Uplink, _bytes({"v": 1, "reading": reading}))
    assert text.startswith(f"invalid Uplink: reading.{reading['type']}.{field}: "), text


def test_naive_datetimes_rejected_everywhere() -> None:
    naive = "2024-05-01T12:00:00"
    assert "ts: Input should have timezone info" in _contract_error(Status, _bytes({"state": "online", "ts": naive}))
    assert "ts: Input should have timezone info" in _contract_error(Command, _bytes({"name": "ping", "ts": naive}))
    assert "ts: Input should have timezone info" in _contract_error(
        CommandAck, _bytes({"id": "x", "ok": True, "ts": naive})
    )
    d = _event_dict()
    d["payload"] = {"type": "connectivity", "reason": "r", "consecutive_failures": 1, "last_seen": naive}
    assert "payload.connectivity.last_seen: Input should have timezone info" in _contract_error(Event, _bytes(d))


def test_more_errors_are_counted() -> None:
    text = _contract_error(Event, _bytes({"v": 1}))
    # id has a default, everything else is missing
    assert text.startswith("invalid Event: site: Field required (+")
    n = int(text.rsplit("(+", 1)[1].split(" ")[0])
    # site, gateway, device, ts, seq, kind, state, severity, payload: 9 missing, the first is named
    assert n == 8
    # only one error: no "(+N more)"
    d = _event_dict()
    d["seq"] = 0
    assert "more)" not in _contract_error(Event, _bytes(d))


def test_wrong_model_for_bytes() -> None:
    data = encode(_event())
    text = _contract_error(Telemetry, data)
    assert text.startswith("invalid Telemetry: ")
    assert "Extra inputs are not permitted" in text or "Field required" in text


def test_command_args_types() -> None:
    body = {"expires": "2024-05-01T12:00:10Z", "ts": "2024-05-01T12:00:00Z", "site": "s", "gateway": "g", "device": "d"}
    text = _contract_error(Command, _bytes({**body, "name": "ping", "args": {"a": [1]}}))
    assert text == "invalid Command: args.a: Extra inputs are not permitted"
    text = _contract_error(Command, _bytes({**body, "name": "reboot"}))
    assert text.startswith("invalid Command: name: Input should be 'ping', ")
