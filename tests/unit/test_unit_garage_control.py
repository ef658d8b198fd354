"""The garage's lighting logic on hand-made inputs: the Modbus write batching, the tracker and the controller.

Everything runs on the example garage (firmware_sim.garagelayout: 41 lights on lc-1/lc-2, 28 sensors
on pm-1, standby 20 %, full 100 %, hold_s 6 s) with a clock the test moves by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from devices.lighting import BROADCAST_REGISTER
from edge.garage.commands import ControllerLink, Write
from edge.garage.control import Alert, GarageController, OverrideLevel, Plan
from edge.garage.model import GarageModel
from edge.garage.tracking import TrackClass
from firmware_sim.garagelayout import EXAMPLE_LANES, layout
from sc.config.schema import Garage
from sc.contracts.messages import EventKind, EventState
from sc.lanes import LanePos, span_contains

STANDBY, FULL = 20, 100
DT = 0.05  # the example garage's poll interval


def build(module_inputs: int = 32) -> GarageModel:
    return GarageModel.build(Garage.model_validate(layout(EXAMPLE_LANES, module_inputs=module_inputs)))


MODEL = build()


def ids(n: range | list[int]) -> list[str]:
    return [f"l-{i:03d}" for i in n]


def full_lights(c: GarageController) -> list[str]:
    return [lt.id for lt in c.model.lights if c.full[lt.index]]


def level(plan: Plan, model: GarageModel, light: str) -> int:
    (lt,) = [x for x in model.lights if x.id == light]
    return plan.levels[lt.controller][lt.group]


def bits_at(model: GarageModel, module: str, where: list[LanePos]) -> list[bool]:
    """A module's inputs: a sensor is on when one of ``where`` is within its range along the lanes."""
    inputs = next(m.inputs for m in model.garage.sensor_modules if m.id == module)
    bits = [False] * inputs
    for s in model.sensors:
        if s.module == module and any(span_contains(s.coverage, p) for p in where):
            bits[s.input] = True
    return bits


def feed(c: GarageController, t: float, where: list[LanePos]) -> Plan:
    for m in c.model.garage.sensor_modules:
        if m.id not in c.modules_down:
            c.set_inputs(t, m.id, bits_at(c.model, m.id, where))
    return c.step(t)


def ticks(t0: float, t1: float, dt: float = DT) -> Iterator[float]:
    n = round((t1 - t0) / dt)
    for k in range(n + 1):
        yield round(t0 + k * dt, 6)


# --------------------------------------------------------------------------- ControllerLink


def test_first_call_writes_the_whole_table() -> None:
    link = ControllerLink("lc-1", 4, refresh_s=3.0)
    assert link.confirmed == [None, None, None, None]
    ws = link.writes(0.0, [20, 20, 100, 20], fire=False, full=FULL)
    assert ws == [Write("lc-1", 0, (20, 20, 100, 20), brighten=True)]
    assert not ws[0].broadcast
    link.confirm(0.0, ws[0])
    assert link.confirmed == [20, 20, 100, 20]
    assert (link.writes_sent, link.last_write) == (1, 0.0)
    assert link.writes(0.05, [20, 20, 100, 20], fire=False, full=FULL) == []


def test_only_changed_groups_are_written() -> None:
    link = ControllerLink("lc-1", 8, refresh_s=3.0)
    link.confirm(0.0, link.writes(0.0, [20] * 8, fire=False, full=FULL)[0])
    assert link.writes(0.05, [20, 20, 20, 100, 20, 20, 20, 20], fire=False, full=FULL) == [
        Write("lc-1", 3, (100,), brighten=True)
    ]
    # two groups apart: one request over their range; the group between keeps its confirmed level
    assert link.writes(0.05, [20, 100, 20, 20, 100, 20, 20, 20], fire=False, full=FULL) == [
        Write("lc-1", 1, (100, 20, 20, 100), brighten=True)
    ]


def test_brighten_is_written_before_dim_and_does_not_dim_early() -> None:
    link = ControllerLink("lc-1", 4, refresh_s=3.0)
    link.confirm(0.0, Write("lc-1", 0, (20, 100, 20, 20), brighten=True))
    ws = link.writes(0.05, [100, 20, 20, 100], fire=False, full=FULL)
    assert ws == [
        # groups 0 and 3 brighten; group 1 (about to dim) keeps 100 in this first request
        Write("lc-1", 0, (100, 100, 20, 100), brighten=True),
        Write("lc-1", 1, (20,), brighten=False),
    ]
    for w in ws:
        link.confirm(0.05, w)
    assert link.confirmed == [100, 20, 20, 100]


def test_dim_request_carries_the_brightened_levels_inside_its_range() -> None:
    link = ControllerLink("lc-1", 4, refresh_s=3.0)
    link.confirm(0.0, Write("lc-1", 0, (100, 20, 20, 100), brighten=True))
    # 0 and 3 dim, 1 brightens: the dim request spans 0..3 and must not undo group 1
    assert link.writes(0.05, [20, 100, 20, 20], fire=False, full=FULL) == [
        Write("lc-1", 1, (100,), brighten=True),
        Write("lc-1", 0, (20, 100, 20, 20), brighten=False),
    ]


def test_an_unconfirmed_write_is_sent_again() -> None:
    link = ControllerLink("lc-1", 4, refresh_s=3.0)
    link.confirm(0.0, Write("lc-1", 0, (20, 20, 20, 20), brighten=True))
    first = link.writes(0.05, [20, 100, 20, 20], fire=False, full=FULL)
    assert first == [Write("lc-1", 1, (100,), brighten=True)]
    link.failed()
    assert (link.failures, link.writes_failed, link.confirmed) == (1, 1, [20, 20, 20, 20])
    assert link.writes(0.10, [20, 100, 20, 20], fire=False, full=FULL) == first
    link.failed()
    assert link.failures == 2
    link.confirm(0.15, first[0])
    assert (link.failures, link.writes_failed, link.writes_sent) == (0, 2, 2)
    assert link.writes(0.20, [20, 100, 20, 20], fire=False, full=FULL) == []


def test_the_whole_table_is_written_again_every_refresh_s() -> None:
    link = ControllerLink("lc-1", 4, refresh_s=3.0)
    link.confirm(0.0, link.writes(0.0, [20, 20, 20, 20], fire=False, full=FULL)[0])
    assert link.writes(2.95, [20, 20, 20, 20], fire=False, full=FULL) == []
    assert link.writes(3.0, [20, 20, 20, 20], fire=False, full=FULL) == [Write("lc-1", 0, (20, 20, 20, 20), True)]
    # a change confirmed later moves the next refresh
    link.confirm(2.0, Write("lc-1", 2, (100,), brighten=True))
    assert link.writes(4.95, [20, 20, 100, 20], fire=False, full=FULL) == []
    assert link.writes(5.0, [20, 20, 100, 20], fire=False, full=FULL) == [Write("lc-1", 0, (20, 20, 100, 20), True)]


def test_fire_is_one_broadcast_then_nothing() -> None:
    link = ControllerLink("lc-2", 16, refresh_s=3.0)
    # the plan leaves the groups without lights (6-15 on lc-2) at 0, also during a fire
    normal = [20] * 6 + [0] * 10
    link.confirm(0.0, link.writes(0.0, normal, fire=False, full=FULL)[0])
    during = [FULL] * 6 + [0] * 10
    ws = link.writes(0.05, during, fire=True, full=FULL)
    assert ws == [Write("lc-2", BROADCAST_REGISTER, (FULL,), brighten=True)]
    assert ws[0].broadcast and ws[0].address == 32
    link.confirm(0.05, ws[0])
    assert link.confirmed == [FULL] * 16
    for t in ticks(0.10, 3.0):
        assert link.writes(t, during, fire=True, full=FULL) == [], t
    # the refresh during a fire is the broadcast again (it keeps the failsafe quiet)
    assert link.writes(3.05, during, fire=True, full=FULL) == [Write("lc-2", 32, (FULL,), brighten=True)]
    # the alarm over: back to the plan, dimming only
    assert link.writes(0.2, normal, fire=False, full=FULL) == [
        Write("lc-2", 0, (20, 20, 20, 20, 20, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), brighten=False)
    ]


def test_fire_with_an_unconfirmed_broadcast_sends_it_again() -> None:
    link = ControllerLink("lc-1", 2, refresh_s=3.0)
    link.confirm(0.0, Write("lc-1", 0, (20, 20), brighten=True))
    assert link.writes(0.05, [FULL, FULL], fire=True, full=FULL) == [Write("lc-1", 32, (FULL,), True)]
    link.failed()
    assert link.writes(0.10, [FULL, FULL], fire=True, full=FULL) == [Write("lc-1", 32, (FULL,), True)]


# --------------------------------------------------------------------------- a car, a person


# ramp (24 m) -> main to aisle-c's mouth (56 m) -> up aisle-c (42 m)
CAR_PATH = [(0, 0.0, 24.0), (1, 0.0, 12.0), (2, 0.0, 22.0), (3, 0.0, 22.0), (7, 0.0, 42.0)]


def along(path: list[tuple[int, float, float]], d: float) -> LanePos:
    for edge, a, b in path:
        if d <= abs(b - a):
            return LanePos(edge, a + d if b >= a else a - d)
        d -= abs(b - a)
    edge, _, b = path[-1]
    return LanePos(edge, b)


def path_ahead(path: list[tuple[int, float, float]], d: float, metres: float) -> list[LanePos]:
    total = sum(abs(b - a) for _, a, b in path)
    return [along(path, d + k) for k in range(int(metres) + 1) if d + k <= total]


def drive(
    c: GarageController, speed: float, until: float, check: Callable[[float, float, Plan], None] | None = None
) -> None:
    length = sum(b - a for _, a, b in CAR_PATH)
    for t in ticks(0.0, until):
        d = speed * t
        plan = feed(c, t, [along(CAR_PATH, d)] if d <= length else [])
        if check is not None:
            check(t, d, plan)


def car_checker(c: GarageController, unlit: list[str]) -> Callable[[float, float, Plan], None]:
    """Check at every tick: one vehicle track, and no dark metre up to ahead_m in front of the car."""
    length = sum(b - a for _, a, b in CAR_PATH)

    def check(t: float, d: float, plan: Plan) -> None:
        assert [tr.cls for tr in c.tracker.tracks] == [TrackClass.VEHICLE], t
        if d > length:
            return
        full = {i for i, on in enumerate(c.full) if on}
        for p in path_ahead(CAR_PATH, d, c.model.garage.ahead_m):
            if not c.model.lit(p, full):
                unlit.append(f"t={t} car at {d:.1f} m: {c.model.graph.describe_pos(p)} dark")

    return check


def test_a_car_driving_in_is_one_vehicle_track_lit_ahead_and_dark_behind() -> None:
    c = GarageController(MODEL)
    speed = 5.0
    unlit: list[str] = []
    check = car_checker(c, unlit)
    drive(c, speed, 14.8, check)
    assert unlit == []
    (tr,) = c.tracker.tracks
    # at main 50 m: last seen by ps-09 (main 50 m), heading along main's drawing direction, at 5 m/s
    assert MODEL.sensors[tr.sensor].id == "ps-09"
    assert tr.heading is True
    assert tr.speed == pytest.approx(speed, rel=0.2)
    assert tr.cls is TrackClass.VEHICLE
    assert c.take_alerts() == []
    # ahead: main 50-60 m, the walkway and up aisle-c; behind: the ramp is back at standby (main behind the car
    # stays lit longer: near a junction a car's way is not known, so it is lit both ways)
    full = full_lights(c)
    assert set(ids([13, 14, 27, 28, 40, 41])) <= set(full)
    assert not set(ids(range(1, 5))) & set(full)
    plan = c.step(14.8)
    assert [level(plan, MODEL, x) for x in ids(range(1, 5))] == [STANDBY] * 4
    assert plan.fire is False
    assert plan.full == len(full)

    # on up aisle-c; the whole way stays lit ahead
    c2 = GarageController(MODEL)
    drive(c2, speed, 24.0, car_checker(c2, unlit))
    assert unlit == []
    (tr,) = c2.tracker.tracks
    assert MODEL.sensors[tr.sensor].id == "ps-25"
    assert tr.heading is True  # aisle-c is drawn from main (y=0) up to the back lane
    assert tr.hits == 15  # ps-01..ps-10 on the ramp and main, ps-21..ps-25 up aisle-c
    assert c2.tracker.stats.tracks_started == 1
    snap = c2.snapshot()
    assert snap["tracks"] == [
        {"id": 1, "class": "vehicle", "x": 56.0, "y": 42.0, "speed_mps": round(tr.speed, 2), "sensor": "ps-25"}
    ]
    assert not set(ids(range(1, 12))) & set(full_lights(c2))


def test_a_parked_car_keeps_its_zone_lit_for_lost_hold_s() -> None:
    c = GarageController(MODEL)
    g = MODEL.garage
    drive(c, 5.0, 24.4)  # it stops at the top of aisle-c (122 m) and the sensors fall silent
    t_stop = 24.4
    for t in ticks(t_stop + DT, t_stop + g.lost_after_s + 1.0):
        feed(c, t, [])
    assert c.tracker.tracks == []
    (ghost,) = c.tracker.ghosts
    assert MODEL.sensors[ghost.sensor].id == "ps-25"
    assert {"l-033", "l-039"} <= set(full_lights(c))  # where it stopped: aisle-c's top and the back lane
    t_lost = t_stop + g.lost_after_s + 1.0
    for t in ticks(t_lost, t_stop + g.lost_after_s + g.lost_hold_s + g.hold_s + 1.0, 0.5):
        feed(c, t, [])
    assert c.tracker.ghosts == []
    assert full_lights(c) == []
    assert c.tracker.stats.tracks_lost == 1


def test_a_person_from_the_lift_lobby_is_lit_all_round() -> None:
    c = GarageController(MODEL)
    # from the lobby (walk 10 m) down the walkway and along main towards the ramp, at 1.3 m/s
    path = [(10, 10.0, 0.0), (4, 4.0, 0.0), (3, 22.0, 0.0)]
    dark: list[str] = []
    for t in ticks(0.0, 20.0):
        p = along(path, 1.3 * t)
        feed(c, t, [p])
        full = {MODEL.lights[i].index for i in range(len(MODEL.lights)) if c.full[i]}
        if not MODEL.lit(p, full):
            dark.append(f"t={t}: {MODEL.graph.describe_pos(p)}")
    assert dark == []
    (tr,) = c.tracker.tracks
    assert tr.cls is TrackClass.PEDESTRIAN
    assert tr.speed == pytest.approx(1.3, rel=0.2)
    # walking towards the ramp along main: against main's drawing direction
    assert tr.heading is False


# --------------------------------------------------------------------------- faults


# ps-12 sits 16.8 m up aisle-a; its zone (6 m range + 15 m) reaches main 7.8-16.2 m
PS12_ZONE = ids([6, 7, 8, 15, 16, 17, 18, 19, 20])


def test_a_sensor_stuck_on_is_a_lighting_fault_and_its_zone_stays_full() -> None:
    c = GarageController(MODEL)
    stuck_after = MODEL.garage.sensors[11].stuck_after_s
    assert (MODEL.sensors[11].id, stuck_after) == ("ps-12", 300.0)
    bits = [False] * 32
    bits[11] = True
    for t in ticks(0.0, stuck_after - 1.0, 1.0):
        c.set_inputs(t, "pm-1", bits)
        c.step(t)
    assert c.take_alerts() == []
    assert c.stuck == set()
    c.set_inputs(stuck_after, "pm-1", bits)
    c.step(stuck_after)
    assert c.take_alerts() == [
        Alert(
            EventKind.LIGHTING_FAULT,
            EventState.RAISED,
            "ps-12",
            "sensor on without a break for 300 s: stuck? its zone is kept full",
            False,
        )
    ]
    assert c.snapshot()["stuck_sensors"] == ["ps-12"]
    assert 11 not in c.known_sensors()
    # long after: the track it started is gone, and its zone stays full because it cannot be trusted
    for t in ticks(stuck_after + 1.0, stuck_after + 100.0, 1.0):
        c.set_inputs(t, "pm-1", bits)
        plan = c.step(t)
    assert c.take_alerts() == []
    assert full_lights(c) == PS12_ZONE
    assert level(plan, MODEL, "l-001") == STANDBY
    # it goes off: restored, and its zone dims after hold_s
    t = stuck_after + 101.0
    c.set_inputs(t, "pm-1", [False] * 32)
    c.step(t)
    assert c.take_alerts() == [
        Alert(EventKind.LIGHTING_RESTORED, EventState.CLEARED, "ps-12", "sensor went off again", False)
    ]
    assert c.stuck == set()
    t += MODEL.garage.hold_s + 0.5
    c.set_inputs(t, "pm-1", [False] * 32)
    plan = c.step(t)
    assert full_lights(c) == []
    assert plan.levels["lc-1"] == [STANDBY] * 16


# lights within reach of the zones (range + 15 m) of pm-2's sensors (ps-17..ps-28) with 16-input modules
PM2_ZONE = ids([9, 10, 11, 12, 13, 14, *range(18, 42)])


def test_a_module_offline_lights_its_sensors_zones_and_online_again_dims_them() -> None:
    model = build(module_inputs=16)
    assert [(m.id, m.inputs) for m in model.garage.sensor_modules] == [("pm-1", 16), ("pm-2", 16)]
    assert {s.id for s in model.sensors if s.module == "pm-2"} == {f"ps-{i}" for i in range(17, 29)}
    c = GarageController(model)
    c.set_inputs(0.0, "pm-2", [True] + [False] * 15)  # ps-17 sees something
    c.step(0.0)
    assert c.sensor_on[16] is True
    c.module_state(1.0, "pm-2", online=False, reason="no reply")
    c.module_state(1.5, "pm-2", online=False, reason="no reply")  # said once
    assert c.take_alerts() == [
        Alert(EventKind.DEVICE_OFFLINE, EventState.RAISED, "pm-2", "no reply; its sensors' zones are kept full", True)
    ]
    assert c.sensor_on[16] is False
    assert c.snapshot()["modules_down"] == {"pm-2": "no reply"}
    for t in ticks(2.0, 80.0, 1.0):  # long enough for the track ps-17 started to be forgotten
        c.set_inputs(t, "pm-1", [False] * 16)
        plan = c.step(t)
    assert full_lights(c) == PM2_ZONE
    # l-008 shares its group with l-009 (in the zone): the group is full
    assert [level(plan, model, x) for x in ids(range(1, 9))] == [STANDBY] * 7 + [FULL]
    c.module_state(81.0, "pm-2", online=True, reason="answers again")
    c.module_state(81.5, "pm-2", online=True, reason="answers again")
    assert c.take_alerts() == [Alert(EventKind.DEVICE_ONLINE, EventState.CLEARED, "pm-2", "answers again", True)]
    for t in ticks(82.0, 82.0 + model.garage.hold_s, 1.0):
        c.set_inputs(t, "pm-1", [False] * 16)
        c.set_inputs(t, "pm-2", [False] * 16)
        c.step(t)
    assert full_lights(c) == []


# lc-1's lights next to lc-2's (within 15 m of what they light): aisle-c, main's end, aisle-a/b tops
LC2_NEIGHBOURS = ids([11, 12, 13, 14, 18, 19, 20, 23, 24, 25, 26, 27, 28, 29, 30])


def test_a_controller_offline_lights_its_neighbours_on_other_controllers() -> None:
    c = GarageController(MODEL)
    c.controller_state(0.0, "lc-2", online=False, reason="no acknowledgement")
    c.controller_state(0.1, "lc-2", online=False, reason="no acknowledgement")
    assert c.take_alerts() == [
        Alert(
            EventKind.DEVICE_OFFLINE,
            EventState.RAISED,
            "lc-2",
            "no acknowledgement; its own failsafe sets its lights full, the lights next to them are kept full",
            True,
        )
    ]
    plan = c.step(0.2)
    assert full_lights(c) == LC2_NEIGHBOURS
    assert all(MODEL.lights[i].controller == "lc-1" for i in range(len(MODEL.lights)) if c.full[i])
    assert plan.levels["lc-1"] == [20, 20, 20, 20, 20, 100, 100, 100, 20, 100, 100, 20, 100, 100, 100, 100]
    c.controller_state(1.0, "lc-2", online=True, reason="acknowledges again")
    assert c.take_alerts() == [Alert(EventKind.DEVICE_ONLINE, EventState.CLEARED, "lc-2", "acknowledges again", True)]
    plan = c.step(1.0 + MODEL.garage.hold_s + 0.1)
    assert full_lights(c) == []


def test_a_controller_fault_is_a_lighting_fault_with_the_same_zone() -> None:
    c = GarageController(MODEL)
    c.controller_fault(0.0, "lc-2", "DALI bus fault")
    c.controller_fault(0.1, "lc-2", "DALI bus fault")
    assert c.take_alerts() == [Alert(EventKind.LIGHTING_FAULT, EventState.RAISED, "lc-2", "DALI bus fault", False)]
    c.step(0.2)
    assert full_lights(c) == LC2_NEIGHBOURS
    c.controller_fault(1.0, "lc-2", None)
    assert c.take_alerts() == [
        Alert(EventKind.LIGHTING_RESTORED, EventState.CLEARED, "lc-2", "controller reports no fault", False)
    ]
    assert c.snapshot()["controller_faults"] == {}


def test_fire_sets_every_light_full() -> None:
    c = GarageController(MODEL)
    assert c.step(0.0).full == 0
    c.fire(1.0, "smoke-hp-garage-1", active=True)
    plan = c.step(1.0)
    assert plan.fire is True
    assert plan.full == 41
    assert full_lights(c) == ids(range(1, 42))
    assert plan.levels == {"lc-1": [FULL] * 16, "lc-2": [FULL] * 6 + [0] * 10}  # lc-2's groups 6-15 have no lights
    assert c.snapshot()["fire"] == ["smoke-hp-garage-1"]
    # an override cannot dim anything during a fire
    c.override(2.0, OverrideLevel.OFF, None, None)
    assert c.step(2.0).full == 41
    c.override(2.0, OverrideLevel.AUTO, None, None)
    c.fire(3.0, "smoke-hp-garage-1", active=False)
    assert c.step(3.0).fire is False
    plan = c.step(3.0 + MODEL.garage.hold_s + 0.1)
    assert plan.full == 0
    assert plan.levels == {"lc-1": [STANDBY] * 16, "lc-2": [STANDBY] * 6 + [0] * 10}
    assert c.stats.fire_alarms == 1


# --------------------------------------------------------------------------- manual override


def test_override_changes_the_base_level_and_auto_restores_it() -> None:
    c = GarageController(MODEL)
    both = ["l-001", "l-002"]  # lc-1 group 0
    assert c.override(0.0, OverrideLevel.OFF, both, None) == 2
    assert c.step(0.0).levels["lc-1"][0] == 0
    assert c.override(1.0, OverrideLevel.STANDBY, both, None) == 2
    assert c.step(1.0).levels["lc-1"][0] == STANDBY
    assert c.override(2.0, OverrideLevel.FULL, both, None) == 2
    plan = c.step(2.0)
    assert plan.levels["lc-1"][0] == FULL
    assert full_lights(c) == both
    assert plan.full == 2
    assert c.snapshot()["overrides"] == 2
    assert c.override(3.0, OverrideLevel.AUTO, both, None) == 2
    plan = c.step(3.0)
    assert plan.levels["lc-1"][0] == STANDBY
    assert full_lights(c) == []
    assert c.snapshot()["overrides"] == 0
    assert c.stats.overrides == 4


def test_override_of_one_light_of_a_group_and_for_a_while() -> None:
    c = GarageController(MODEL)
    c.override(0.0, OverrideLevel.OFF, ["l-001"], None)
    assert c.step(0.0).levels["lc-1"][0] == STANDBY  # l-002 shares the group: the brighter one wins
    assert c.override(0.0, OverrideLevel.OFF, None, 10.0) == 41
    plan = c.step(9.9)
    assert plan.levels == {"lc-1": [0] * 16, "lc-2": [0] * 16}
    plan = c.step(10.0)
    assert plan.levels == {"lc-1": [STANDBY] * 16, "lc-2": [STANDBY] * 6 + [0] * 10}


def test_override_off_cannot_darken_a_light_next_to_a_car() -> None:
    c = GarageController(MODEL)
    car = [LanePos(0, 1.0)]  # just down the ramp, at the entrance sensor ps-01
    c.override(0.0, OverrideLevel.OFF, ["l-001", "l-002", "l-040", "l-041"], None)
    plan = feed(c, 0.0, car)
    assert plan.levels["lc-1"][0] == FULL  # l-001 and l-002: safety wins
    assert plan.levels["lc-2"][5] == 0  # l-040 and l-041 by the lobby: nobody there
    assert {"l-001", "l-002"} <= set(full_lights(c))


def test_override_of_an_unknown_light() -> None:
    c = GarageController(MODEL)
    with pytest.raises(KeyError):
        c.override(0.0, OverrideLevel.OFF, ["l-001", "l-999"], None)
    assert c.snapshot()["overrides"] == 0


def test_nobody_in_the_garage_is_all_standby() -> None:
    c = GarageController(MODEL)
    for t in ticks(0.0, 2.0):
        plan = feed(c, t, [])
    assert plan == Plan(levels={"lc-1": [STANDBY] * 16, "lc-2": [STANDBY] * 6 + [0] * 10}, fire=False, full=0)
    assert c.snapshot()["lights_full"] == 0
