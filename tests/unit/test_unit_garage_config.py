"""The garage section of the site config: its schema and the reference checks, each failing at its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from firmware_sim.garagelayout import EXAMPLE_LANES, layout
from sc.config.loader import ConfigError, load_site_config
from sc.config.schema import Garage, GarageLevels, LaneKind, SensorKind

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "site.example.yaml"

# A small site: one garage gateway with a smoke detector, a bin sensor and a door on rs485-1,
# and a garage with a main lane (0-30 m) and a stem (15 m in, 10 m up), every metre within 5 m of a light.
SITE = """\
version: 1
site: {id: t, name: Test}
street:
  id: st
  name: Street
  communities:
    - id: c1
      name: Community
      micro_grids:
        - id: g1
          name: Grid
          places:
            - {id: garage-1, name: Garage, type: garage}
            - {id: refuse-1, name: Refuse room, type: refuse_room}
gateways:
  - id: gw-g
    name: Garage gateway
    role: garage
    location: garage-1
    account: {username: gw-g, password_file: gw-g.secret}
    buses:
      - {id: rs485-1, port: tty1}
      - {id: rs485-2, port: tty2}
    devices:
      - {id: smoke-g, type: smoke, location: garage-1, bus: rs485-1, unit: 1}
      - {id: bin-g, type: bin, location: refuse-1, bus: rs485-1, unit: 2}
gates:
  - id: door-g
    name: Garage door
    location: garage-1
    gateway: gw-g
    door: {bus: rs485-1, unit: 5}
garages:
  - id: garage
    name: Garage
    location: garage-1
    gateway: gw-g
    fire_devices: [smoke-g]
    lanes:
      - {id: main, points: [[0, 0], [30, 0]]}
      - {id: stem, kind: aisle, points: [[15, 0], [15, 10]]}
    entrances: [[0, 0]]
    lobbies: [[15, 10]]
    controllers:
      - {id: lc-1, bus: rs485-2, unit: 30, groups: 4}
    sensor_modules:
      - {id: pm-1, bus: rs485-2, unit: 40, inputs: 8}
    sensors:
      - {id: ps-1, at: [0, 0], module: pm-1, input: 0}
      - {id: ps-2, at: [15, 0], module: pm-1, input: 1}
      - {id: ps-3, at: [30, 0], module: pm-1, input: 2}
      - {id: ps-4, at: [15, 10], module: pm-1, input: 3}
    lights:
      - {id: l-1, at: [2, 0], controller: lc-1, group: 0}
      - {id: l-2, at: [10, 0], controller: lc-1, group: 1}
      - {id: l-3, at: [19, 0], controller: lc-1, group: 2}
      - {id: l-4, at: [27, 0], controller: lc-1, group: 2}
      - {id: l-5, at: [15, 6], controller: lc-1, group: 3}
"""


def line_of(text: str, needle: str, nth: int = 0) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) > nth, f"{needle!r} not in the text"
    return hits[nth]


def sub(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def errors_of(tmp_path: Path, text: str) -> tuple[Path, list[str]]:
    p = tmp_path / "site.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_site_config(p)
    assert exc.value.path == p
    return p, str(exc.value).splitlines()


# --------------------------------------------------------------------------- what loads


def test_the_small_garage_loads(tmp_path: Path) -> None:
    p = tmp_path / "site.yaml"
    p.write_text(SITE, encoding="utf-8")
    loaded = load_site_config(p)
    (garage,) = loaded.site.garages
    assert garage.id == "garage"
    assert [lane.kind for lane in garage.lanes] == [LaneKind.DRIVE, LaneKind.AISLE]
    assert garage.lanes[1].points == [(15.0, 0.0), (15.0, 10.0)]
    assert garage.entrances == [(0.0, 0.0)]
    assert [c.id for c in garage.controllers] == ["lc-1"]
    assert [m.id for m in garage.sensor_modules] == ["pm-1"]
    assert [s.id for s in garage.sensors] == ["ps-1", "ps-2", "ps-3", "ps-4"]
    assert garage.fire_devices == ["smoke-g"]
    assert loaded.site.garages_of("gw-g") == [garage]
    assert loaded.site.garages_of("gw-other") == []
    assert loaded.site.reference_errors() == []


def test_garage_defaults() -> None:
    g = Garage.model_validate({"id": "g", "name": "G", "location": "x", "gateway": "gw"})
    assert (g.lanes, g.lights, g.sensors, g.controllers, g.sensor_modules) == ([], [], [], [], [])
    assert g.levels == GarageLevels(standby_pct=20, full_pct=100)
    assert (g.light_reach_m, g.ahead_m, g.ahead_s, g.behind_m, g.pedestrian_m) == (5.0, 15.0, 3.0, 3.0, 8.0)
    assert (g.hold_s, g.lost_after_s, g.lost_hold_s, g.poll_interval_s, g.refresh_s) == (6.0, 6.0, 60.0, 0.05, 1.0)
    assert g.fire_devices is None


def test_sensor_and_controller_defaults() -> None:
    g = Garage.model_validate(layout([{"id": "l", "points": [[0, 0], [20, 0]]}]))
    c, m, s = g.controllers[0], g.sensor_modules[0], g.sensors[0]
    assert (c.groups, c.dali_frame_ms, c.failsafe_s) == (16, 25.0, 3.0)
    assert (m.inputs, m.offline_after) == (32, 3)
    assert (s.kind, s.range_m, s.stuck_after_s) == (SensorKind.MICROWAVE, 6.0, 300.0)


def test_the_example_site_validates_and_holds_the_layout_the_generator_prints() -> None:
    site = load_site_config(EXAMPLE).site
    assert site.reference_errors() == []
    (garage,) = site.garages
    assert garage.id == "heping-garage"
    assert (len(garage.lanes), len(garage.lights), len(garage.sensors)) == (7, 41, 28)
    assert [c.id for c in garage.controllers] == ["lc-1", "lc-2"]
    assert [(m.id, m.inputs) for m in garage.sensor_modules] == [("pm-1", 32)]
    generated = Garage.model_validate(layout(EXAMPLE_LANES))
    for part in ("lanes", "entrances", "lobbies", "controllers", "sensor_modules", "sensors", "lights"):
        assert getattr(garage, part) == getattr(generated, part), part


# --------------------------------------------------------------------------- reference errors


def test_controller_on_an_unknown_bus(tmp_path: Path) -> None:
    text = sub(SITE, "{id: lc-1, bus: rs485-2,", "{id: lc-1, bus: rs485-9,")
    p, errs = errors_of(tmp_path, text)
    assert errs == [
        f"{p}:{line_of(text, 'rs485-9')}: garages[0].controllers[0].bus: gateway 'gw-g' has no bus 'rs485-9'"
    ]


def test_module_on_an_unknown_bus(tmp_path: Path) -> None:
    text = sub(SITE, "{id: pm-1, bus: rs485-2,", "{id: pm-1, bus: rs485-7,")
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "rs485-7")
    assert errs == [f"{p}:{line}: garages[0].sensor_modules[0].bus: gateway 'gw-g' has no bus 'rs485-7'"]


@pytest.mark.parametrize(
    ("old", "new", "path", "other"),
    [
        # a light controller on the smoke detector's address
        ("{id: lc-1, bus: rs485-2, unit: 30,", "{id: lc-1, bus: rs485-1, unit: 1,", "controllers[0]", "smoke-g"),
        # a sensor module on the gate door's address
        ("{id: pm-1, bus: rs485-2, unit: 40,", "{id: pm-1, bus: rs485-1, unit: 5,", "sensor_modules[0]", "door-g door"),
        # the module on the light controller's address
        ("{id: pm-1, bus: rs485-2, unit: 40,", "{id: pm-1, bus: rs485-2, unit: 30,", "sensor_modules[0]", "lc-1"),
    ],
)
def test_garage_device_on_a_taken_bus_address(tmp_path: Path, old: str, new: str, path: str, other: str) -> None:
    text = sub(SITE, old, new)
    p, errs = errors_of(tmp_path, text)
    bus, unit = new.split("bus: ")[1].split(", unit: ")
    line = line_of(text, new)
    assert errs == [f"{p}:{line}: garages[0].{path}.unit: bus {bus!r} unit {unit.rstrip(',')} is already {other!r}"]


def test_two_garages_on_one_gateway_share_its_buses(tmp_path: Path) -> None:
    text = (
        SITE
        + """\
  - id: garage-2
    name: Second garage (no light control yet)
    location: garage-1
    gateway: gw-g
    controllers:
      - {id: lc-9, bus: rs485-2, unit: 40}
"""
    )
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "{id: lc-9")
    assert errs == [f"{p}:{line}: garages[1].controllers[0].unit: bus 'rs485-2' unit 40 is already 'pm-1'"]


def test_garage_on_an_unknown_gateway(tmp_path: Path) -> None:
    text = sub(SITE, "    gateway: gw-g\n    fire_devices", "    gateway: gw-x\n    fire_devices")
    p, errs = errors_of(tmp_path, text)
    assert errs == [f"{p}:{line_of(text, 'gateway: gw-x')}: garages[0].gateway: unknown gateway 'gw-x'"]


def test_light_group_beyond_its_controllers_groups(tmp_path: Path) -> None:
    text = sub(SITE, "controller: lc-1, group: 3}", "controller: lc-1, group: 4}")
    p, errs = errors_of(tmp_path, text)
    assert errs == [f"{p}:{line_of(text, 'group: 4')}: garages[0].lights[4].group: controller 'lc-1' has groups 0-3"]


def test_light_group_beyond_dali(tmp_path: Path) -> None:
    text = sub(SITE, "controller: lc-1, group: 3}", "controller: lc-1, group: 16}")
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "group: 16")
    assert errs == [f"{p}:{line}: garages[0].lights[4].group: Input should be less than or equal to 15"]


def test_light_on_an_unknown_controller(tmp_path: Path) -> None:
    text = sub(SITE, "{id: l-1, at: [2, 0], controller: lc-1,", "{id: l-1, at: [2, 0], controller: lc-9,")
    p, errs = errors_of(tmp_path, text)
    assert errs == [f"{p}:{line_of(text, 'lc-9')}: garages[0].lights[0].controller: unknown controller 'lc-9'"]


def test_sensor_on_an_unknown_module(tmp_path: Path) -> None:
    text = sub(SITE, "{id: ps-3, at: [30, 0], module: pm-1,", "{id: ps-3, at: [30, 0], module: pm-9,")
    p, errs = errors_of(tmp_path, text)
    assert errs == [f"{p}:{line_of(text, 'pm-9')}: garages[0].sensors[2].module: unknown sensor module 'pm-9'"]


def test_sensor_input_beyond_the_modules_inputs(tmp_path: Path) -> None:
    text = sub(SITE, "module: pm-1, input: 3}", "module: pm-1, input: 8}")
    p, errs = errors_of(tmp_path, text)
    assert errs == [f"{p}:{line_of(text, 'input: 8')}: garages[0].sensors[3].input: module 'pm-1' has inputs 0-7"]


def test_two_sensors_on_one_input(tmp_path: Path) -> None:
    text = sub(SITE, "module: pm-1, input: 3}", "module: pm-1, input: 1}")
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "{id: ps-4")
    assert errs == [f"{p}:{line}: garages[0].sensors[3].input: input 1 of 'pm-1' is 'ps-2'"]


@pytest.mark.parametrize("device", ["bin-g", "smoke-nowhere"])
def test_fire_devices_must_be_smoke_devices(tmp_path: Path, device: str) -> None:
    text = sub(SITE, "fire_devices: [smoke-g]", f"fire_devices: [smoke-g, {device}]")
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "fire_devices:")
    assert errs == [f"{p}:{line}: garages[0].fire_devices[1]: {device!r} is not a smoke device of the site"]


def test_ids_used_twice(tmp_path: Path) -> None:
    text = sub(SITE, "{id: l-2,", "{id: ps-2,")
    text = sub(text, "{id: pm-1,", "{id: smoke-g,")
    text = sub(text, "module: pm-1, input: 0}", "module: smoke-g, input: 0}")
    text = text.replace("module: pm-1,", "module: smoke-g,")
    p, errs = errors_of(tmp_path, text)
    assert errs == [
        f"{p}:{line_of(text, '{id: smoke-g, bus: rs485-2')}: garages[0].sensor_modules[0].id: "
        "id 'smoke-g' is used twice",
        f"{p}:{line_of(text, '{id: ps-2', nth=1)}: garages[0].lights[1].id: id 'ps-2' is used twice",
    ]


def test_light_far_from_every_lane(tmp_path: Path) -> None:
    text = sub(
        SITE,
        "      - {id: l-5, at: [15, 6], controller: lc-1, group: 3}\n",
        "      - {id: l-5, at: [15, 6], controller: lc-1, group: 3}\n"
        "      - {id: l-6, at: [40, 20], controller: lc-1, group: 3}\n",
    )
    p, errs = errors_of(tmp_path, text)
    # nearest: the end of main at (30, 0)
    assert errs == [f"{p}:{line_of(text, '{id: l-6')}: garages[0].lights[5].at: l-6 is 22.4 m from the nearest lane"]


def test_sensor_entrance_and_lobby_far_from_every_lane(tmp_path: Path) -> None:
    text = sub(SITE, "{id: ps-4, at: [15, 10],", "{id: ps-4, at: [22, 10],")
    text = sub(text, "entrances: [[0, 0]]", "entrances: [[-4, 0]]")
    text = sub(text, "lobbies: [[15, 10]]", "lobbies: [[15, 16]]")
    p, errs = errors_of(tmp_path, text)
    assert errs == [
        f"{p}:{line_of(text, '{id: ps-4')}: garages[0].sensors[3].at: ps-4 is 7.0 m from the nearest lane",
        # 4 m is near enough (max(3 m, the light reach of 5 m)); 6 m is not
        f"{p}:{line_of(text, 'lobbies:')}: garages[0].lobbies[0]: (15.0, 16.0) is 6.0 m from the nearest lane",
    ]


def test_lane_stretch_out_of_every_lights_reach(tmp_path: Path) -> None:
    text = sub(SITE, "      - {id: l-3, at: [19, 0], controller: lc-1, group: 2}\n", "")
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "    lights:")
    # l-2 (at 10 m) reaches 15 m, l-4 (at 27 m) reaches back to 22 m; l-5 (6 m up the stem) reaches 1 m
    assert errs == [
        f"{p}:{line}: garages[0].lights: lane main 15.0-22.0 m is out of every light's reach (5 m)",
        f"{p}:{line}: garages[0].lights: lane stem 0.0-1.0 m is out of every light's reach (5 m)",
    ]


def test_a_shorter_light_reach_leaves_gaps_named_three_at_most(tmp_path: Path) -> None:
    text = sub(SITE, "    fire_devices: [smoke-g]\n", "    fire_devices: [smoke-g]\n    light_reach_m: 2\n")
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "    lights:")
    assert errs == [
        f"{p}:{line}: garages[0].lights: lane main 4.0-8.0 m is out of every light's reach (2 m)",
        f"{p}:{line}: garages[0].lights: lane main 12.0-15.0 m is out of every light's reach (2 m)",
        f"{p}:{line}: garages[0].lights: lane main 15.0-17.0 m is out of every light's reach (2 m)",
    ]


def test_lights_and_sensors_without_lanes(tmp_path: Path) -> None:
    text = sub(
        SITE,
        "    lanes:\n      - {id: main, points: [[0, 0], [30, 0]]}\n"
        "      - {id: stem, kind: aisle, points: [[15, 0], [15, 10]]}\n",
        "    lanes: []\n",
    )
    p, errs = errors_of(tmp_path, text)
    assert errs == [
        f"{p}:{line_of(text, 'lanes: []')}: garages[0].lanes: lights and sensors need lanes to be placed on"
    ]


@pytest.mark.parametrize("empty", ["lights", "sensors"])
def test_lanes_without_lights_or_sensors(tmp_path: Path, empty: str) -> None:
    start = SITE.index(f"    {empty}:\n")
    end = SITE.find("\n    lights:", start + 1)
    block = SITE[start : end + 1] if end > 0 else SITE[start:]
    text = sub(SITE, block, f"    {empty}: []\n")
    p, errs = errors_of(tmp_path, text)
    assert errs == [f"{p}:{line_of(text, '- id: garage')}: garages[0]: a garage with lanes needs lights and sensors"]


def test_a_lane_shorter_than_a_metre(tmp_path: Path) -> None:
    text = sub(
        SITE,
        "      - {id: stem, kind: aisle, points: [[15, 0], [15, 10]]}\n",
        "      - {id: stem, kind: aisle, points: [[15, 0], [15, 10]]}\n"
        "      - {id: stub, points: [[0, 5], [0, 5.5]]}\n",
    )
    p, errs = errors_of(tmp_path, text)
    assert errs == [f"{p}:{line_of(text, '    lanes:')}: garages[0].lanes: lane 'stub' is shorter than 1 m"]


def test_a_lane_of_one_point(tmp_path: Path) -> None:
    text = sub(SITE, "{id: main, points: [[0, 0], [30, 0]]}", "{id: main, points: [[0, 0]]}")
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "{id: main")
    assert errs == [
        f"{p}:{line}: garages[0].lanes[0].points: List should have at least 2 items after validation, not 1"
    ]


@pytest.mark.parametrize(("standby", "full"), [(100, 100), (60, 50)])
def test_standby_must_be_below_full(tmp_path: Path, standby: int, full: int) -> None:
    text = sub(
        SITE,
        "    fire_devices: [smoke-g]\n",
        f"    fire_devices: [smoke-g]\n    levels: {{standby_pct: {standby}, full_pct: {full}}}\n",
    )
    p, errs = errors_of(tmp_path, text)
    line = line_of(text, "levels:")
    assert errs == [f"{p}:{line}: garages[0].levels: Value error, standby_pct must be below full_pct"]


def test_unknown_key_in_a_garage(tmp_path: Path) -> None:
    text = sub(SITE, "    fire_devices: [smoke-g]\n", "    fire_devices: [smoke-g]\n    ahead: 15\n")
    p, errs = errors_of(tmp_path, text)
    assert errs == [
        f"{p}:{line_of(text, 'ahead: 15')}: garages[0].ahead: unknown key (check the spelling; "
        "see configs/site.example.yaml)"
    ]


def test_levels_model() -> None:
    assert GarageLevels(standby_pct=0, full_pct=1).standby_pct == 0
    with pytest.raises(ValidationError, match="standby_pct must be below full_pct"):
        GarageLevels(standby_pct=30, full_pct=30)


def test_a_controller_failsafe_shorter_than_two_refreshes(tmp_path: Path) -> None:
    # the controller would set everything full between two of the gateway's refreshes
    text = sub(
        SITE,
        "{id: lc-1, bus: rs485-2, unit: 30, groups: 4}",
        "{id: lc-1, bus: rs485-2, unit: 30, groups: 4, failsafe_s: 1.5}",
    )
    p, errs = errors_of(tmp_path, text)
    assert errs == [
        f"{p}:{line_of(text, 'failsafe_s: 1.5')}: garages[0].controllers[0].failsafe_s: failsafe_s 1.5 must be at "
        "least twice the garage's refresh_s (1): the controller would go to failsafe between refreshes"
    ]
