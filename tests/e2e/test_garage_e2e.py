"""The garage end to end: cars and people in firmware-sim's garage -> presence-sensor module and DALI light
controllers on pseudo-terminals (Modbus RTU, 9600 baud, 25 ms DALI frames) -> the real :class:`EdgeApp` ->
lamps, with the safety invariant checked against what the simulated lamps really are at; faults, the fire
alarm and the control room's override go through Mosquitto as events and commands.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.garage import Agent, Move, route
from firmware_sim.garagebus import GarageWorld
from firmware_sim.ptybus import Fault
from firmware_sim.runner import Simulator, SimulatorThread
from harness import Collector, EdgeThread, Site, garage_site, wait_until
from sc.contracts.commands import CommandAck, CommandName
from sc.contracts.messages import Event, EventKind, EventState
from sc.contracts.topics import Kind

pytestmark = pytest.mark.slow

GARAGE = "garage-1"


@contextmanager
def run_garage(site: Site) -> Iterator[tuple[EdgeThread, Collector, SimulatorThread, GarageWorld]]:
    site.broker.start()
    col = Collector(site).start()
    sim = SimulatorThread(Simulator(site.loaded, gateways=["gw-a"])).start()
    edge = EdgeThread(site.loaded, "gw-a").start()
    try:
        edge.wait_ready()
        yield edge, col, sim, sim.sim.garages[GARAGE]
    finally:
        edge.stop()
        sim.stop()
        col.stop()
        site.broker.stop()


def garage_events(col: Collector, device: str) -> list[Event]:
    return [e for e in col.events() if e.device == device]


def test_a_car_and_its_driver_are_followed_by_the_real_devices(tmp_path: Path) -> None:
    site = garage_site(tmp_path, failsafe_s=4.0)
    with run_garage(site) as (edge, _col, _sim, world):
        m = world.model
        g = m.graph
        assert wait_until(lambda: edge.app.health()["garages"][GARAGE]["counters"]["writes"] >= 2, 10)
        # the controllers were in failsafe (all full) until the gateway came and read their status: once that
        # is over (and the hold after it), nobody being in the garage, every lamp is at standby
        standby = world.garage.levels.standby_pct
        assert wait_until(lambda: all(lv <= standby for c in world.controllers.values() for lv in c.group_levels()), 20)
        # a car comes down the ramp, drives along the main lane and parks 6 m into aisle-c;
        # its driver gets out 2 s later and walks to the lift lobby
        entrance, lobby = m.entrances[0], m.lobbies[0]
        spot = g.on_lane("aisle-c", 6.0)
        t0 = world.now() + 0.5
        car = Agent("car", True, t0, [Move(tuple(route(g, entrance, spot)), 5.0)])
        driver = Agent(
            "driver",
            False,
            math.inf,
            [Move(wait_s=2.0), Move(tuple(route(g, spot, lobby)), 1.6)],
            accel=1.0,
            after=car,
        )
        world.add([car, driver])
        car_from = time.monotonic() + 0.5  # the controllers' logs are on this clock
        assert wait_until(lambda: not world.busy(), 60), "the car and the driver did not finish"
        health = edge.app.health()["garages"][GARAGE]
        finished = time.monotonic()  # (once the gateway stops, the controllers' failsafe sets everything full)
    assert world.violations == [], world.violations[:5]
    # the invariant was checked along the drive and the walk (how many seconds of them depends on how often the
    # world stepped on this machine; tests/sim checks the whole drive on simulated time)
    assert world.checked_car_s > 0
    assert world.checked_walker_s > 0
    # the far end of aisle-a (nobody went there) never went full: lights follow, they do not flood the garage
    far = [lt for lt in m.lights if lt.pos.edge in g.lane_edges["aisle-a"] and lt.pos.s > 30]
    assert far
    for lt in far:
        log = world.controllers[lt.controller].log
        mine = [(round(a.t - car_from, 2), a.level) for a in log if a.group == lt.group and car_from <= a.t <= finished]
        around = (
            [
                (cid, round(a.t - car_from, 2), a.group, a.level)
                for cid, c in world.controllers.items()
                for a in c.log
                if abs(a.t - car_from - mine[0][0]) < 1.0
            ]
            if mine
            else []
        )
        assert all(level < 100 for _, level in mine), (lt.id, lt.group, mine, around, finished - car_from)
    # lamps along the car's way did go full, one DALI frame after another
    ramp_light = min(m.lights, key=lambda lt: g.distance(lt.pos, entrance))
    assert any(a.level == 100 for a in world.controllers[ramp_light.controller].log if a.group == ramp_light.group)
    assert health["tracker"]["tracks_started"] >= 2
    assert health["counters"]["poll_failures"] == 0
    assert health["decision_ms"]["p99"] >= 0  # measured (how fast: bench/garage_lights.py)


def _all_at(world: GarageWorld, level: int, controller: str | None = None) -> bool:
    lights = [lt for lt in world.model.lights if controller is None or lt.controller == controller]
    levels = {cid: c.group_levels() for cid, c in world.controllers.items()}
    return all(levels[lt.controller][lt.group] == level for lt in lights)


def _all_full(world: GarageWorld, controller: str | None = None) -> bool:
    return _all_at(world, 100, controller)


def test_faults_fire_alarm_and_override_from_the_control_room(tmp_path: Path) -> None:
    site = garage_site(tmp_path, failsafe_s=4.0)
    with run_garage(site) as (edge, col, sim, world):
        assert wait_until(lambda: edge.app.conn.connected and bool(col.of_kind(Kind.STATUS)), 15)
        assert wait_until(lambda: edge.app.health()["garages"][GARAGE]["counters"]["writes"] >= 2, 10)
        sensor_bus = sim.sim.buses[("gw-a", "rs485-3")]
        light_bus = sim.sim.buses[("gw-a", "rs485-2")]
        pm = site.loaded.site.garages[0].sensor_modules[0]

        # 1. the sensor module goes silent: device_offline, and every light it watches goes full
        sensor_bus.set_fault(pm.unit, Fault.SILENT)
        assert wait_until(lambda: any(e.kind is EventKind.DEVICE_OFFLINE for e in garage_events(col, pm.id)), 10)
        assert wait_until(lambda: _all_full(world), 5)
        off = next(e for e in garage_events(col, pm.id) if e.kind is EventKind.DEVICE_OFFLINE)
        assert off.state is EventState.RAISED and "reads failed" in off.payload.reason  # type: ignore[union-attr]
        sensor_bus.set_fault(pm.unit, Fault.NONE)
        assert wait_until(lambda: any(e.kind is EventKind.DEVICE_ONLINE for e in garage_events(col, pm.id)), 10)
        # nobody is in the garage: after the hold everything is back at standby
        standby = world.garage.levels.standby_pct
        assert wait_until(lambda: _all_at(world, standby), 20)

        # 2. a smoke alarm from the sensor path sets the whole garage full; its clear gives the lights back
        sim.sim.sensors["smoke-1"].set({"smoke_density": 25.0, "alarm": True})
        assert wait_until(lambda: any(e.kind is EventKind.SMOKE_ALARM for e in garage_events(col, "smoke-1")), 10)
        assert wait_until(lambda: _all_full(world), 30), "the smoke alarm did not set the whole garage full"
        assert edge.app.health()["garages"][GARAGE]["fire"] == ["smoke-1"]
        sim.sim.sensors["smoke-1"].set({"smoke_density": 0.2, "alarm": False})
        assert wait_until(lambda: edge.app.health()["garages"][GARAGE]["fire"] == [], 10)

        # 3. the control room's override, acknowledged over MQTT
        def send(args: dict[str, Any]) -> CommandAck:
            return col.command(site.sign("gw-a", GARAGE, CommandName.LIGHTS_OVERRIDE, args))

        target = world.model.lights[20]
        ok = send({"level": "full", "lights": [target.id]})
        assert ok.ok and ok.result == {"level": "full", "lights": 1}
        assert wait_until(lambda: world.controllers[target.controller].group_levels()[target.group] == 100, 5)
        back = send({"level": "auto"})
        assert back.ok and back.result["lights"] == len(world.model.lights)
        bad = send({"level": "dazzle"})
        assert not bad.ok and "args.level: Input should be 'full', 'standby', 'off' or 'auto'" in bad.error, bad.error
        joined = send({"level": "off", "lights": "l-1,l-2"})  # a list, never a comma-joined string
        assert not joined.ok and "args.lights: Input should be a valid array" in joined.error, joined.error
        unknown = send({"level": "off", "lights": ["l-999"]})
        assert not unknown.ok and "no light 'l-999'" in unknown.error

        # 4. a light controller dies: device_offline; its own failsafe sets its lamps full
        lc = world.controllers["lc-2"]
        lc.alive = False
        light_bus.set_fault(lc.cfg.unit, Fault.SILENT)
        assert wait_until(lambda: any(e.kind is EventKind.DEVICE_OFFLINE for e in garage_events(col, "lc-2")), 15)
        assert wait_until(lambda: _all_full(world, "lc-2"), lc.cfg.failsafe_s + 2)
        lc.alive = True
        light_bus.set_fault(lc.cfg.unit, Fault.NONE)
        assert wait_until(lambda: any(e.kind is EventKind.DEVICE_ONLINE for e in garage_events(col, "lc-2")), 15)
        health = edge.app.health()
    assert health["healthy"] is True
    assert health["garages"][GARAGE]["controllers_down"] == {}
