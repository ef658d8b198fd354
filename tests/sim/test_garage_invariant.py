"""The garage's safety invariant over simulated traffic (firmware_sim.garage.simulate on the example garage).

No moving car ever has an unlit metre within ``ahead_m`` (15 m) ahead of it, and no person on foot ever stands
in the dark. ``simulate`` checks both every tick, with the RS-485 and DALI timing of the lighting bus, and
reports each violation with its time, agent and place.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge.garage.control import GarageController, Plan
from edge.garage.model import GarageModel
from firmware_sim.garage import Agent, Fault, Move, Result, Violation, random_traffic, route, simulate
from firmware_sim.garagelayout import EXAMPLE_LANES, layout
from sc.config.schema import Garage
from sc.contracts.messages import EventKind
from sc.lanes import LanePos

MODEL = GarageModel.build(Garage.model_validate(layout(EXAMPLE_LANES)))
DURATION_S = 300.0
#: Random runs of 5 minutes of traffic each (about 1.4 s apiece on a 2-core development machine: about 60 s).
SEEDS = range(40)


def report(violations: Sequence[Violation], limit: int = 20) -> str:
    lines = [f"{len(violations)} violations:"]
    lines += [
        f"  t={v.t:.2f} s {v.agent}: {v.what} at {v.where} ({v.x}, {v.y})"
        + (f", {v.dark_m} m dark" if v.dark_m else "")
        for v in violations[:limit]
    ]
    return "\n".join(lines)


class FixedLevels:
    """A baseline controller with the interface ``simulate`` drives: every light at one level, always."""

    def __init__(self, model: GarageModel, level: int) -> None:
        self.model = model
        self.level = level
        self.steps = 0

    def set_inputs(self, t: float, module: str, bits: list[bool]) -> None:
        pass

    def module_state(self, t: float, module: str, *, online: bool, reason: str) -> None:
        pass

    def controller_state(self, t: float, controller: str, *, online: bool, reason: str) -> None:
        pass

    def step(self, t: float) -> Plan:
        self.steps += 1
        levels = {c.id: [self.level] * c.groups for c in self.model.garage.controllers}
        full = self.model.garage.levels.full_pct
        return Plan(levels=levels, fire=False, full=len(self.model.lights) if self.level >= full else 0)


def run(seed: int, controller: GarageController | FixedLevels | None = None, faults: Sequence[Fault] = ()) -> Result:
    return simulate(
        MODEL,
        random_traffic(MODEL, seed),
        controller if controller is not None else GarageController(MODEL),
        duration_s=DURATION_S,
        faults=faults,
    )


# --------------------------------------------------------------------------- the invariant holds


@pytest.mark.parametrize("seed", SEEDS)
def test_no_car_drives_into_the_dark_and_nobody_stands_in_it(seed: int) -> None:
    controller = GarageController(MODEL)
    r = run(seed, controller)
    assert r.violations == [], report(r.violations)
    # and no sensor is taken for stuck or blind while every sensor works
    assert controller.take_alerts() == []
    # the run really had cars moving and people walking for the checker to look at
    assert r.checked_car_s > 30.0, r.checked_car_s
    assert r.checked_walker_s > 30.0, r.checked_walker_s
    assert r.agents == 12  # 6 visits: a car and its driver each


# --------------------------------------------------------------------------- the checker can fail


def test_the_checker_catches_a_controller_that_never_lights_anything() -> None:
    stub = FixedLevels(MODEL, MODEL.garage.levels.standby_pct)
    r = run(0, stub)
    assert stub.steps == r.steps > 0
    cars = [v for v in r.violations if v.what == "dark ahead"]
    walkers = [v for v in r.violations if v.what == "standing in the dark"]
    assert cars and walkers
    assert len(cars) + len(walkers) == len(r.violations)
    assert all(v.agent.startswith("car-") and v.dark_m >= 1 for v in cars)
    assert all(v.agent.startswith(("walker-", "driver-")) and v.dark_m == 0 for v in walkers)
    # each one says when and where: a lane and the metre on it, and the plan point
    lanes = {lane["id"] for lane in EXAMPLE_LANES}
    for v in r.violations:
        assert 0.0 <= v.t <= DURATION_S
        word, lane, metre, unit = v.where.split(" ")
        assert (word, unit) == ("lane", "m") and lane in lanes, v.where
        # the lane and metre name the plan point (x, y)
        x, y = MODEL.graph.xy(MODEL.graph.on_lane(lane, float(metre)))
        assert abs(x - v.x) + abs(y - v.y) <= 0.11, (v.where, v.x, v.y)
    # the first car is dark ahead as soon as it comes down the ramp
    first = cars[0]
    assert first.where.startswith("lane ramp ")
    assert first.dark_m == 16  # where it is and all 15 m ahead
    assert r.checked_car_s > 30.0 and r.checked_walker_s > 30.0


# --------------------------------------------------------------------------- faults


def test_a_sensor_module_cut_mid_run_is_offline_then_online_and_nobody_is_in_the_dark() -> None:
    # seed 3: cars come in at 57 s and 89 s, so the cut (60-90 s) has traffic under it
    r = run(3, faults=[Fault("pm-1", at=60.0, until=90.0)])
    assert [e for _, e in r.events] == ["device_offline pm-1", "device_online pm-1"]
    (t_off, _), (t_on, _) = r.events
    # three reads in a row fail (one a tick), then it is tried every 2 s until it answers
    assert t_off == pytest.approx(60.1)
    assert 90.0 <= t_on <= 92.0
    assert r.violations == [], report(r.violations)
    assert r.checked_car_s > 30.0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_blind_sensor_is_reported_and_its_zone_lit(seed: int) -> None:
    # ps-07 (main 30 m) sees nothing any more: cars pass from ps-06 to ps-08 without it
    controller = GarageController(MODEL)
    r = simulate(
        MODEL,
        random_traffic(MODEL, seed, visits=10),
        controller,
        duration_s=DURATION_S,
        broken_sensors={"ps-07": False},
    )
    alerts = controller.take_alerts()
    assert [(a.kind, a.device) for a in alerts] == [(EventKind.LIGHTING_FAULT, "ps-07")]
    assert alerts[0].reason == "3 movers went past it without it seeing them: blind? its zone is kept full"
    assert controller.snapshot()["blind_sensors"] == ["ps-07"]
    assert r.violations == [], report(r.violations)


def test_a_light_controller_cut_mid_run_leaves_the_other_controller_on_time() -> None:
    # lc-2 drives aisle-c's top, the back lane and the walkway; lc-1 shares its RS-485 bus. While lc-2 stays
    # silent each write to it waits out the timeout: lc-1's lights must still follow the cars.
    r = run(0, faults=[Fault("lc-2", at=60.0, until=120.0)])
    assert [e for _, e in r.events] == ["device_offline lc-2", "device_online lc-2"]
    (t_off, _), (t_on, _) = r.events
    assert 60.0 < t_off < 64.0
    assert 120.0 <= t_on < 121.0
    assert r.violations == [], report(r.violations)


def test_a_cut_controller_goes_to_failsafe_before_anyone_is_in_the_dark() -> None:
    # lc-1 drives the ramp: nothing can reach it once cut; its own failsafe (failsafe_s after the last command it
    # got, 3 s by default) sets its lights full before seed 0's car comes down the ramp at 66 s
    failsafe = MODEL.garage.controllers[0].failsafe_s
    assert failsafe == 3.0
    r = run(0, faults=[Fault("lc-1", at=60.0, until=120.0)])
    assert [e for _, e in r.events] == ["device_offline lc-1", "device_online lc-1"]
    assert r.violations == [], report(r.violations)
    failsafe_full = [ch for ch in r.log if ch.controller == "lc-1" and 60.0 <= ch.t <= 60.0 + failsafe + 0.2]
    assert failsafe_full and all(ch.level == 100 for ch in failsafe_full)


# --------------------------------------------------------------------------- energy


def test_it_uses_less_energy_than_lights_always_on() -> None:
    ours = run(0)
    always_on = run(0, FixedLevels(MODEL, MODEL.garage.levels.full_pct))
    assert always_on.violations == []
    every_light_all_the_time = len(MODEL.lights) * DURATION_S / 3600
    assert always_on.light_hours == pytest.approx(every_light_all_the_time, rel=0.01)
    assert ours.light_hours / always_on.light_hours < 0.8, (ours.light_hours, always_on.light_hours)
    # and never below every light at standby all the time
    assert ours.light_hours >= every_light_all_the_time * MODEL.garage.levels.standby_pct / 100


# --------------------------------------------------------------------------- reversing


def test_the_car_of_seed_0_that_reverses_into_its_space_stays_lit() -> None:
    agents = random_traffic(MODEL, 0)
    (car,) = [a for a in agents if a.id == "car-0"]
    forward, wait, back = car.moves
    assert wait.legs == () and wait.wait_s == 1.5
    assert back.speed == 1.2
    (leg,) = back.legs
    assert leg.s1 < leg.s0  # back the way it came along the aisle
    assert forward.legs[-1].edge == leg.edge and forward.legs[-1].s1 > forward.legs[-1].s0
    r = simulate(MODEL, agents, GarageController(MODEL), duration_s=DURATION_S)
    assert car.done
    assert r.violations == [], report(r.violations)


def time_needed(agent: Agent) -> float:
    """Seconds ``agent``'s moves take at their full speed, waits included, from when it appears."""
    return agent.start + sum(
        m.wait_s if not m.legs else sum(leg.length for leg in m.legs) / m.speed for m in agent.moves
    )


def reversing_car(edge: int, spot: float, overshoot: float, speed: float, wait_s: float, back_speed: float) -> Agent:
    """In by the ramp, up an aisle past ``spot``, stop, and back up ``overshoot`` metres into it."""
    g = MODEL.graph
    past = LanePos(edge, min(g.edges[edge].length, spot + overshoot))
    moves = [
        Move(tuple(route(g, MODEL.entrances[0], past)), speed),
        Move(wait_s=wait_s),
        Move(tuple(route(g, past, LanePos(edge, spot))), back_speed),
    ]
    return Agent("car-r", True, 1.0, moves)


AISLE_EDGES = [e for lane in ("aisle-a", "aisle-b", "aisle-c") for e in MODEL.graph.lane_edges[lane]]


@settings(max_examples=10, deadline=None)
# the slowest car of all: the farthest aisle at the lowest speeds (it took 86 s, longer than the 70 s it once had)
@example(edge=AISLE_EDGES[-1], spot=30.0, overshoot=12.0, speed=2.0, wait_s=4.0, back_speed=0.6)
@given(
    # the aisles: reached from main, so the car drives up them and backs down towards main
    edge=st.sampled_from(AISLE_EDGES),
    spot=st.floats(min_value=2.0, max_value=30.0),
    overshoot=st.floats(min_value=3.0, max_value=12.0),
    speed=st.floats(min_value=2.0, max_value=5.5),
    wait_s=st.floats(min_value=0.2, max_value=4.0),
    back_speed=st.floats(min_value=0.6, max_value=2.0),
)
def test_a_car_reversing_is_never_in_the_dark(
    edge: int, spot: float, overshoot: float, speed: float, wait_s: float, back_speed: float
) -> None:
    car = reversing_car(edge, spot, overshoot, speed, wait_s, back_speed)
    (back_leg,) = car.moves[2].legs
    assert back_leg.edge == edge and back_leg.s1 == spot < back_leg.s0
    # long enough for the slowest car the strategies make (a far aisle at 2 m/s, backing up at 0.6 m/s), with
    # room to accelerate and stop: what the car does decides the duration, not a fixed 70 s it may not fit in
    r = simulate(MODEL, [car], GarageController(MODEL), duration_s=time_needed(car) + 20.0)
    assert car.done
    assert r.checked_car_s > 5.0
    assert r.violations == [], report(r.violations)
