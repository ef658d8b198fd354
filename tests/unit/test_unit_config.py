"""sc.config: the example loads; every bad config fails with `file:LINE: key.path: message`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sc.config.loader import ConfigError, LoadedConfig, load_site_config, resolve_path
from sc.config.schema import (
    DeviceConfig,
    DeviceType,
    SiteConfig,
    Threshold,
    Transport,
    _fmt,
)
from sc.contracts.messages import EventKind, Severity

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "site.example.yaml"
SRC = EXAMPLE.read_text(encoding="utf-8")

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the nth line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) > nth, f"{needle!r} not in the text"
    return hits[nth]


def sub(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_site_config(path)
    err = exc.value
    assert err.path == path
    return err


# --------------------------------------------------------------------------- the example


def test_example_loads() -> None:
    loaded = load_site_config(EXAMPLE)
    assert isinstance(loaded, LoadedConfig)
    site = loaded.site
    assert loaded.path == EXAMPLE.resolve()
    assert loaded.base_dir == EXAMPLE.resolve().parent
    assert site.version == 1
    assert site.site.id == "demo"
    assert site.street.id == "xinhua"
    assert site.broker.port == 1883
    assert site.reference_errors() == []
    gw = site.gateway("gw-heping-sensors")
    assert gw.role.value == "sensors"
    dev = {d.id: d for d in gw.devices}
    assert dev["smoke-hp-b1-u1"].unit == 1
    assert dev["smoke-hp-b1-u1"].transport is Transport.MODBUS
    assert dev["bin-hp-refuse-1"].bin_depth_cm == 120
    assert dev["manhole-hp-road-1"].transport is Transport.MQTT
    assert dev["manhole-hp-road-1"].expire_after == 30.0
    assert dev["manhole-hp-road-2"].rules[EventKind.WATER_LEVEL_HIGH] == Threshold(raise_at=60, clear_at=40)


def test_example_loads_from_a_string_path_and_resolves_relative_paths() -> None:
    loaded = load_site_config(str(EXAMPLE))
    assert loaded.resolve("../run/x") == EXAMPLE.resolve().parent / "../run/x"
    assert loaded.resolve("/abs/x") == Path("/abs/x")
    assert resolve_path(Path("/base"), "rel/y") == Path("/base/rel/y")
    assert resolve_path(Path("/base"), Path("/abs")) == Path("/abs")


def test_gateway_lookup_unknown() -> None:
    site = load_site_config(EXAMPLE).site
    with pytest.raises(KeyError, match="no gateway 'nope' in the site config"):
        site.gateway("nope")


@pytest.mark.parametrize(
    ("location", "chain"),
    [
        ("xinhua", ["xinhua"]),
        ("heping", ["xinhua", "heping"]),
        ("anle", ["xinhua", "anle"]),
        ("heping-g2", ["xinhua", "heping", "heping-g2"]),
        ("hp-b1", ["xinhua", "heping", "heping-g1", "hp-b1"]),
        ("hp-b1-u2", ["xinhua", "heping", "heping-g1", "hp-b1", "hp-b1-u2"]),
        ("hp-b3-u1", ["xinhua", "heping", "heping-g2", "hp-b3", "hp-b3-u1"]),
        ("hp-pump", ["xinhua", "heping", "heping-g2", "hp-pump"]),
        ("al-substation", ["xinhua", "anle", "anle-g1", "al-substation"]),
        ("al-b1-u1", ["xinhua", "anle", "anle-g1", "al-b1", "al-b1-u1"]),
    ],
)
def test_location_chain(location: str, chain: list[str]) -> None:
    assert load_site_config(EXAMPLE).site.location_chain(location) == chain


def test_location_chain_unknown() -> None:
    site = load_site_config(EXAMPLE).site
    with pytest.raises(KeyError):
        site.location_chain("nowhere")
    with pytest.raises(KeyError):
        site.location_chain("gw-heping-sensors")  # a gateway is not a place


def test_every_location_has_a_chain_ending_in_itself() -> None:
    site = load_site_config(EXAMPLE).site
    locs = list(site.locations())
    assert len(locs) == len({loc for loc, _ in locs})
    for loc, _path in locs:
        chain = site.location_chain(loc)
        assert chain[0] == "xinhua"
        assert chain[-1] == loc


def test_fmt() -> None:
    assert _fmt(()) == ""
    assert _fmt(("broker", "port")) == "broker.port"
    assert _fmt(("gateways", 0, "devices", 3, "unit")) == "gateways[0].devices[3].unit"


# --------------------------------------------------------------------------- line-numbered errors


def test_unknown_key_under_broker(tmp_path: Path) -> None:
    text = sub(SRC, "  keepalive_s: 30\n", "  keepalive_s: 30\n  bogus: 1\n")
    p = write(tmp_path, text)
    err = load_error(p)
    line = line_of(text, "  bogus: 1")
    assert str(err) == (f"{p}:{line}: broker.bogus: unknown key (check the spelling; see configs/site.example.yaml)")
    assert err.problems == [(line, "broker.bogus: unknown key (check the spelling; see configs/site.example.yaml)")]


def test_unknown_key_in_a_flow_mapping_device(tmp_path: Path) -> None:
    text = sub(SRC, "unit: 3, poll_interval_s: 2}", "unit: 3, poll_interval_s: 2, colour: red}")
    p = write(tmp_path, text)
    line = line_of(text, "colour: red")
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[2].colour: unknown key (check the spelling; see configs/site.example.yaml)"
    )


def test_wrong_type_port(tmp_path: Path) -> None:
    text = sub(SRC, "port: 1883", 'port: "abc"')
    p = write(tmp_path, text)
    line = line_of(text, 'port: "abc"')
    assert str(load_error(p)) == (
        f"{p}:{line}: broker.port: Input should be a valid integer, unable to parse string as an integer"
    )


def test_port_out_of_range(tmp_path: Path) -> None:
    text = sub(SRC, "port: 1883", "port: 70000")
    p = write(tmp_path, text)
    line = line_of(text, "port: 70000")
    assert str(load_error(p)) == f"{p}:{line}: broker.port: Input should be less than or equal to 65535"


def test_missing_required_key(tmp_path: Path) -> None:
    text = sub(SRC, "    name: 和平北门网关 Heping north gate\n", "")
    p = write(tmp_path, text)
    line = line_of(text, "- id: gw-heping-north-gate")
    assert str(load_error(p)) == f"{p}:{line}: gateways[1].name: required key is missing"


def test_missing_top_level_key(tmp_path: Path) -> None:
    text = sub(SRC, "version: 1\n", "")
    p = write(tmp_path, text)
    err = load_error(p)
    # the top level mapping starts at the first key
    line = line_of(text, "site:")
    assert str(err) == f"{p}:{line}: version: required key is missing"


def test_wrong_version(tmp_path: Path) -> None:
    text = sub(SRC, "version: 1\n", "version: 2\n")
    p = write(tmp_path, text)
    assert str(load_error(p)) == f"{p}:{line_of(text, 'version: 2')}: version: Input should be 1"


def test_bad_id_pattern(tmp_path: Path) -> None:
    text = sub(SRC, "{id: hp-b1-u2, name:", "{id: HP-B1-U2, name:")
    p = write(tmp_path, text)
    err = load_error(p)
    line = line_of(text, "HP-B1-U2")
    assert err.problems[0][0] == line
    assert err.problems[0][1].startswith(
        "street.communities[0].micro_grids[0].buildings[0].stairwells[1].id: String should match pattern"
    )


def test_duplicate_device_ids(tmp_path: Path) -> None:
    text = sub(SRC, "{id: smoke-hp-b1-u2,", "{id: smoke-hp-b1-u1,")
    p = write(tmp_path, text)
    line = line_of(text, "smoke-hp-b1-u1", nth=1)
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[1].id: device id 'smoke-hp-b1-u1' is used twice "
        "(also at gateways[0].devices[0])"
    )


def test_duplicate_device_ids_across_gateways(tmp_path: Path) -> None:
    text = sub(SRC, "{id: smoke-hp-garage-1,", "{id: smoke-hp-b1-u1,")
    p = write(tmp_path, text)
    line = line_of(text, "smoke-hp-b1-u1", nth=1)
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[3].devices[0].id: device id 'smoke-hp-b1-u1' is used twice "
        "(also at gateways[0].devices[0])"
    )


def test_device_on_missing_bus(tmp_path: Path) -> None:
    text = sub(SRC, "location: hp-b1-u2, bus: rs485-1", "location: hp-b1-u2, bus: rs485-9")
    p = write(tmp_path, text)
    line = line_of(text, "rs485-9")
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[1].bus: gateway 'gw-heping-sensors' has no bus 'rs485-9'"
    )


def test_two_devices_on_one_bus_address(tmp_path: Path) -> None:
    text = sub(SRC, "bus: rs485-1, unit: 2,", "bus: rs485-1, unit: 1,")
    p = write(tmp_path, text)
    line = line_of(text, "{id: smoke-hp-b1-u2,")
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[1].unit: bus 'rs485-1' unit 1 is already 'smoke-hp-b1-u1'"
    )


def test_same_unit_on_different_gateways_is_fine(tmp_path: Path) -> None:
    # unit 1 on gw-heping-sensors and unit 1 on gw-heping-garage already: the example loads
    assert load_site_config(EXAMPLE).site.gateway("gw-heping-garage").devices[0].unit == 1


def test_unknown_device_location(tmp_path: Path) -> None:
    text = sub(SRC, "location: hp-b2-u1, bus", "location: nowhere, bus")
    p = write(tmp_path, text)
    line = line_of(text, "location: nowhere")
    assert str(load_error(p)) == f"{p}:{line}: gateways[0].devices[2].location: unknown location 'nowhere'"


def test_unknown_gateway_location_and_gate_gateway(tmp_path: Path) -> None:
    text = sub(SRC, "    role: gate\n    location: hp-gate-north\n", "    role: gate\n    location: hp-gate-west\n")
    text = sub(text, "gateway: gw-heping-south-gate}", "gateway: gw-nope}")
    p = write(tmp_path, text)
    err = load_error(p)
    l1 = line_of(text, "location: hp-gate-west")
    l2 = line_of(text, "gw-nope")
    assert err.problems == [
        (l1, "gateways[1].location: unknown location 'hp-gate-west'"),
        (l2, "gates[1].gateway: unknown gateway 'gw-nope'"),
    ]
    assert str(err) == (
        f"{p}:{l1}: gateways[1].location: unknown location 'hp-gate-west'\n"
        f"{p}:{l2}: gates[1].gateway: unknown gateway 'gw-nope'"
    )


def test_duplicate_location_id(tmp_path: Path) -> None:
    text = sub(SRC, "{id: hp-b1-u2, name:", "{id: hp-b1-u1, name:")
    p = write(tmp_path, text)
    line = line_of(text, "{id: hp-b1-u1", nth=1)
    err = load_error(p)
    assert err.problems[0] == (
        line,
        "street.communities[0].micro_grids[0].buildings[0].stairwells[1].id: location id 'hp-b1-u1' is "
        "used twice (also at street.communities[0].micro_grids[0].buildings[0].stairwells[0])",
    )


def test_duplicate_gateway_id_and_bus_id(tmp_path: Path) -> None:
    text = sub(SRC, "  - id: gw-heping-south-gate\n", "  - id: gw-heping-north-gate\n")
    p = write(tmp_path, text)
    line = line_of(text, "- id: gw-heping-north-gate", nth=1)
    err = load_error(p)
    assert (line, "gateways[2].id: gateway id 'gw-heping-north-gate' is used twice") in err.problems


def test_two_buses_share_an_id(tmp_path: Path) -> None:
    text = sub(
        SRC,
        "      - {id: rs485-1, port: ../run/tty/gw-heping-garage.rs485-1, timeout_s: 0.3}\n",
        "      - {id: rs485-1, port: ../run/tty/gw-heping-garage.rs485-1, timeout_s: 0.3}\n"
        "      - {id: rs485-1, port: ../run/tty/other}\n",
    )
    p = write(tmp_path, text)
    line = line_of(text, "    buses:", nth=2)
    assert str(load_error(p)) == f"{p}:{line}: gateways[3].buses: two buses share an id"


def test_device_with_its_gateways_id(tmp_path: Path) -> None:
    text = sub(SRC, "{id: smoke-hp-garage-1,", "{id: gw-heping-garage,")
    p = write(tmp_path, text)
    line = line_of(text, "{id: gw-heping-garage,")
    assert str(load_error(p)) == f"{p}:{line}: gateways[3].devices[0].id: a device cannot have its gateway's id"


def test_threshold_raise_equals_clear(tmp_path: Path) -> None:
    text = sub(SRC, "{raise_at: 60, clear_at: 40}", "{raise_at: 60, clear_at: 60}")
    p = write(tmp_path, text)
    line = line_of(text, "raise_at: 60, clear_at: 60")
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[6].rules.water_level_high: "
        "Value error, raise_at and clear_at must differ (hysteresis stops flapping)"
    )


def test_threshold_unknown_rule_kind(tmp_path: Path) -> None:
    text = sub(SRC, "{water_level_high: {raise_at", "{bogus_kind: {raise_at")
    p = write(tmp_path, text)
    line = line_of(text, "bogus_kind")
    err = load_error(p)
    assert len(err.problems) == 1
    assert err.problems[0][0] == line
    assert err.problems[0][1].startswith("gateways[0].devices[6].rules.bogus_kind: Input should be 'smoke_alarm'")


def test_threshold_samples_out_of_range(tmp_path: Path) -> None:
    text = sub(SRC, "{raise_at: 60, clear_at: 40}", "{raise_at: 60, clear_at: 40, samples: 0}")
    p = write(tmp_path, text)
    line = line_of(text, "samples: 0")
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[6].rules.water_level_high.samples: Input should be greater than or equal to 1"
    )


def test_mqtt_device_without_account(tmp_path: Path) -> None:
    text = sub(
        SRC,
        "        account: {username: manhole-hp-road-1, password_file: ../run/secrets/manhole-hp-road-1.secret}\n",
        "",
    )
    p = write(tmp_path, text)
    line = line_of(text, "- id: manhole-hp-road-1")
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[5]: "
        "Value error, an mqtt device needs its own `account` (username, password_file)"
    )


def test_mqtt_device_with_a_bus(tmp_path: Path) -> None:
    head = (
        "      - id: manhole-hp-road-1\n        type: manhole\n        location: hp-road-1\n        transport: mqtt\n"
    )
    text = sub(SRC, head, head + "        bus: rs485-1\n")
    p = write(tmp_path, text)
    line = line_of(text, "- id: manhole-hp-road-1")
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[5]: Value error, an mqtt device has no `bus` or `unit`"
    )


def test_modbus_device_without_unit(tmp_path: Path) -> None:
    text = sub(SRC, "bus: rs485-1, unit: 2, ", "bus: rs485-1, ")
    p = write(tmp_path, text)
    line = line_of(text, "{id: smoke-hp-b1-u2,")
    assert str(load_error(p)) == (
        f"{p}:{line}: gateways[0].devices[1]: Value error, a modbus device needs `bus` and `unit`"
    )


def test_modbus_unit_out_of_range(tmp_path: Path) -> None:
    text = sub(SRC, "bus: rs485-1, unit: 2,", "bus: rs485-1, unit: 248,")
    p = write(tmp_path, text)
    line = line_of(text, "unit: 248")
    assert str(load_error(p)) == (f"{p}:{line}: gateways[0].devices[1].unit: Input should be less than or equal to 247")


def test_several_problems_one_line_each(tmp_path: Path) -> None:
    text = sub(SRC, "port: 1883", 'port: "abc"')
    text = sub(text, "  keepalive_s: 30\n", "  keepalive_s: 1\n")
    p = write(tmp_path, text)
    err = load_error(p)
    assert str(err).splitlines() == [
        f"{p}:{line_of(text, 'port: ')}: broker.port: "
        "Input should be a valid integer, unable to parse string as an integer",
        f"{p}:{line_of(text, 'keepalive_s: 1')}: broker.keepalive_s: Input should be greater than or equal to 5",
    ]


# --------------------------------------------------------------------------- unreadable files


def test_tab_indentation(tmp_path: Path) -> None:
    text = sub(SRC, "  keepalive_s: 30\n", "\tkeepalive_s: 30\n")
    p = write(tmp_path, text)
    line = line_of(text, "\tkeepalive_s")
    assert str(load_error(p)) == f"{p}:{line}: not valid YAML: found character '\\t' that cannot start any token"


def test_unclosed_bracket(tmp_path: Path) -> None:
    text = sub(SRC, "- {id: hp-b1-u2, name: 2单元 Stair 2}", "- {id: hp-b1-u2, name: 2单元 Stair 2")
    p = write(tmp_path, text)
    err = load_error(p)
    # the parser notices on the next line
    line = line_of(text, "{id: hp-b1-u2") + 1
    assert str(err) == f"{p}:{line}: not valid YAML: expected ',' or '}}', but got ':'"


def test_unclosed_bracket_at_end_of_file(tmp_path: Path) -> None:
    p = write(tmp_path, "version: 1\nsite: [a, b\n")
    err = load_error(p)
    assert len(err.problems) == 1
    line, msg = err.problems[0]
    assert line == 3  # end of the stream
    assert msg.startswith("not valid YAML: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    p = write(tmp_path, text)
    assert str(load_error(p)) == f"{p}: the config file is empty"


@pytest.mark.parametrize("text", ["- a\n- b\n", "hello\n", "42\n", "[1, 2]\n"])
def test_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    p = write(tmp_path, text)
    assert str(load_error(p)) == f"{p}:1: the top level must be a mapping (key: value)"


def test_empty_document_marker(tmp_path: Path) -> None:
    p = write(tmp_path, "---\n")
    err = load_error(p)
    assert len(err.problems) == 1
    assert err.problems[0][0] in (None, 1)


def test_nonexistent_file(tmp_path: Path) -> None:
    p = tmp_path / "missing.yaml"
    assert str(load_error(p)) == f"{p}: cannot read the config file: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    err = load_error(tmp_path)
    assert str(err).startswith(f"{tmp_path}: cannot read the config file: ")


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "site.yaml"
    p.write_bytes(b"version: 1\nsite: \xff\xfe\n")
    with pytest.raises(ConfigError) as exc:  # a UnicodeDecodeError must not escape
        load_site_config(p)
    assert str(exc.value).startswith(f"{p}")


def test_empty_mapping_lists_every_missing_key(tmp_path: Path) -> None:
    p = write(tmp_path, "{}\n")
    err = load_error(p)
    assert err.problems == [
        (1, "version: required key is missing"),
        (1, "site: required key is missing"),
        (1, "street: required key is missing"),
        (1, "gateways: required key is missing"),
    ]


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = sub(SRC, "  port: 1883\n", "  port: 1883\n  port: 1884\n")
    p = write(tmp_path, text)
    err = load_error(p)
    line = line_of(text, "port: 1884")
    assert len(err.problems) == 1
    msg = err.problems[0][1]
    assert "duplicate key 'port'" in msg
    # like every other problem, the line goes in the `file:LINE:` slot
    assert err.problems[0][0] == line, str(err)
    assert str(err).startswith(f"{p}:{line}: ")


def test_duplicate_yaml_key_in_flow_mapping(tmp_path: Path) -> None:
    text = sub(SRC, "{id: hp-b1-u2, name: 2单元 Stair 2}", "{id: hp-b1-u2, id: x, name: 2单元 Stair 2}")
    p = write(tmp_path, text)
    err = load_error(p)
    line = line_of(text, "id: x, name")
    assert "duplicate key 'id'" in str(err)
    assert f"line {line}" in str(err) or err.problems[0][0] == line


# --------------------------------------------------------------------------- YAML the loader must not crash on


@pytest.mark.parametrize(
    "value",
    [
        "2020-02-30",  # looks like a date, is not one
        "2020-13-45",
        "1999-12-31 25:00:00",
        "!!int abc",
        "!!float x",
        "!!bool maybe",
        "!!timestamp x",
        "{[a]: 1}",  # a flow mapping with a list as its key
        "{? {a: 1}: 1}",
        "&x [*x]",  # an alias that contains itself
    ],
)
def test_odd_scalars_are_config_errors(tmp_path: Path, value: str) -> None:
    text = sub(SRC, "port: 1883", f"port: {value}")
    p = write(tmp_path, text)
    err = load_error(p)  # fails if anything but ConfigError escapes
    assert err.problems


def test_date_in_a_string_field(tmp_path: Path) -> None:
    """A YAML date is converted to a date, not a string: a bad one must still say where."""
    text = sub(SRC, "  name: 新华街道示范小区 (Xinhua Street demo)\n", "  name: 2024-02-30\n")
    p = write(tmp_path, text)
    err = load_error(p)
    assert err.problems[0][0] == line_of(text, "name: 2024-02-30")


def test_valid_date_in_a_string_field_is_a_type_error(tmp_path: Path) -> None:
    text = sub(SRC, "  name: 新华街道示范小区 (Xinhua Street demo)\n", "  name: 2024-02-28\n")
    p = write(tmp_path, text)
    err = load_error(p)
    assert err.problems == [(line_of(text, "name: 2024-02-28"), "site.name: Input should be a valid string")]


# --------------------------------------------------------------------------- schema units


def test_threshold_model() -> None:
    t = Threshold(raise_at=8, clear_at=4)
    assert (t.samples, t.clear_samples, t.severity) == (2, 2, None)
    with pytest.raises(ValidationError, match="raise_at and clear_at must differ"):
        Threshold(raise_at=5, clear_at=5)
    with pytest.raises(ValidationError):
        Threshold(raise_at=5, clear_at=1, clear_samples=101)
    assert Threshold(raise_at=1, clear_at=2, severity="critical").severity is Severity.CRITICAL


def test_device_config_model() -> None:
    d = DeviceConfig(id="d1", type=DeviceType.SMOKE, location="x", bus="b", unit=1)
    assert d.expire_after == 15.0
    assert DeviceConfig(id="d1", type="bin", location="x", bus="b", unit=1, expire_after_s=7).expire_after == 7
    with pytest.raises(ValidationError, match="a modbus device needs `bus` and `unit`"):
        DeviceConfig(id="d1", type=DeviceType.SMOKE, location="x", bus="b")
    with pytest.raises(ValidationError, match="a modbus device needs `bus` and `unit`"):
        DeviceConfig(id="d1", type=DeviceType.SMOKE, location="x", unit=1)
    with pytest.raises(ValidationError, match="an mqtt device needs its own `account`"):
        DeviceConfig(id="d1", type=DeviceType.SMOKE, location="x", transport="mqtt")
    with pytest.raises(ValidationError, match="an mqtt device has no `bus` or `unit`"):
        DeviceConfig(
            id="d1",
            type=DeviceType.SMOKE,
            location="x",
            transport="mqtt",
            unit=3,
            account={"username": "d1", "password_file": "p"},
        )
    with pytest.raises(ValidationError):
        DeviceConfig(id="d1", type=DeviceType.BIN, location="x", bus="b", unit=1, bin_depth_cm=10)


def test_site_config_is_frozen() -> None:
    site = load_site_config(EXAMPLE).site
    with pytest.raises(ValidationError):
        site.version = 2  # type: ignore[assignment, misc]
    assert isinstance(site, SiteConfig)


# --------------------------------------------------------------------------- fuzzing the YAML text

LINES = SRC.splitlines(keepends=True)
# "key: value" spans we can replace: after ": " up to a flow delimiter, comment or end of line
SCALAR = re.compile(r"(?<=: )[^,{}\[\]\n#]+")
SPANS = [
    m.span()
    for m in SCALAR.finditer(SRC)
    if not SRC[SRC.rfind("\n", 0, m.start()) + 1 : m.start()].lstrip().startswith("#")
]


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _load_ok_or_config_error(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    try:
        load_site_config(path)
    except ConfigError as exc:
        assert exc.problems
        for line, msg in exc.problems:
            assert msg
            assert line is None or 1 <= line <= text.count("\n") + 2


def test_fuzz_setup() -> None:
    assert len(SPANS) > 100
    assert SRC[slice(*SPANS[0])] == "1"


@FAST
@given(st.lists(st.integers(0, len(LINES) - 1), min_size=1, max_size=3, unique=True))
def test_deleting_lines_gives_config_or_error(fuzz_dir: Path, drop: list[int]) -> None:
    text = "".join(line for i, line in enumerate(LINES) if i not in drop)
    _load_ok_or_config_error(fuzz_dir / "del.yaml", text)


@FAST
@given(st.sampled_from(SPANS), st.text(max_size=20))
def test_replacing_a_scalar_with_text_gives_config_or_error(fuzz_dir: Path, span: tuple[int, int], value: str) -> None:
    a, b = span
    _load_ok_or_config_error(fuzz_dir / "text.yaml", SRC[:a] + value + SRC[b:])


YAML_TOKENS = [
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    " ",
    ",",
    "? ",
    "- ",
    "&a ",
    "*a",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!str ",
    "!!timestamp ",
    "2020-02-30",
    "12:30",
    "'",
    '"',
    "#",
    "|",
    ">",
    "a",
    "1",
    "-1.5",
    "null",
    "yes",
    "~",
    "\n",
    "\n  ",
]


# No shrinking: the loader crashes this finds are pinned by test_odd_scalars_are_config_errors,
# and shrinking a whole-config load per step costs tens of seconds.
@settings(FAST, report_multiple_bugs=False, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.sampled_from(SPANS), st.lists(st.sampled_from(YAML_TOKENS), max_size=8).map("".join))
def test_replacing_a_scalar_with_yaml_syntax_gives_config_or_error(
    fuzz_dir: Path, span: tuple[int, int], value: str
) -> None:
    a, b = span
    _load_ok_or_config_error(fuzz_dir / "tok.yaml", SRC[:a] + value + SRC[b:])


def test_a_garage_part_cannot_share_an_id_with_another_gateways_gate(tmp_path: Path) -> None:
    """The ingester decides who may speak for a device by its id: one id, one gateway."""
    from sc.config.schema import SiteConfig

    site = load_site_config(EXAMPLE).site
    other = next(g for g in site.gateways if g.id != site.gates[0].gateway)
    data = site.model_dump(mode="json")
    data["garages"] = [{"id": site.gates[0].id, "name": "Garage", "location": site.gates[0].location,
                        "gateway": other.id}]  # fmt: skip
    cfg = SiteConfig.model_validate(data)
    [(path, msg)] = [e for e in cfg.reference_errors() if e[0][0] == "garages"]
    assert path == ("garages", 0, "id")
    assert msg == (
        f"id {site.gates[0].id!r} is also used at gates[0].id of gateway {site.gates[0].gateway!r}: "
        "each device belongs to one gateway"
    )
    assert cfg.device_owners()[site.gates[0].id] == site.gates[0].gateway
