"""The garage through the real cloud: the gateway's live state on the map API, the override from the API.

Firmware-sim's garage (controllers and the sensor module on ptys, 9600 baud) -> the real :class:`EdgeApp`
-> Mosquitto -> the cloud's gate link and garage view -> ``/api/v1/garages`` (PostgreSQL behind the API).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from cloud.app import CloudApp
from cloud.workorders.states import Role
from firmware_sim.garage import Agent, Move, route
from firmware_sim.garagebus import GarageWorld
from firmware_sim.runner import Simulator, SimulatorThread
from harness import API_PASSWORD, EdgeThread, Site, add_api_users, api_settings, api_tokens, garage_site, wait_until

pytestmark = pytest.mark.slow

GARAGE = "garage-1"
PASSWORD = API_PASSWORD
USERS = {"op-1": (Role.OPERATOR, None), "w-prop": (Role.GRID_WORKER, "property"), "r-1": (Role.RESIDENT, None)}


@dataclass
class Stack:
    site: Site
    app: CloudApp
    edge: EdgeThread
    world: GarageWorld
    base: str
    tokens: dict[str, str]

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.tokens[user]}"}, timeout=30)

    def garage(self) -> dict[str, Any]:
        with self.client("op-1") as c:
            r = c.get(f"/api/v1/garages/{GARAGE}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def state(self) -> dict[str, Any] | None:
        st: dict[str, Any] | None = self.garage()["state"]
        return st


@pytest.fixture
def stack(db: Engine, tmp_path: Path) -> Iterator[Stack]:
    site = garage_site(tmp_path)
    add_api_users(db, {uid: (role, dept, None) for uid, (role, dept) in USERS.items()})
    settings = api_settings(db, tmp_path, door_open_timeout_s=3.0)
    site.broker.start()
    sim = SimulatorThread(Simulator(site.loaded, gateways=["gw-a"])).start()
    edge = EdgeThread(site.loaded, "gw-a").start()
    app = CloudApp(site.loaded, settings)
    try:
        edge.wait_ready()
        app.start()
        base = f"http://127.0.0.1:{app.api_port}"
        tokens = api_tokens(base, USERS)
        yield Stack(site, app, edge, sim.sim.garages[GARAGE], base, tokens)
    finally:
        app.stop()
        edge.stop()
        sim.stop()
        site.broker.stop()


def test_the_map_shows_the_live_garage_and_the_control_room_overrides_its_lights(stack: Stack) -> None:
    world, m = stack.world, stack.world.model
    ids = [lt.id for lt in m.lights]

    # the list and the layout, whoever may read them
    with stack.client("w-prop") as c:
        r = c.get("/api/v1/garages")
        assert r.status_code == 200, r.text
        (summary,) = r.json()
        assert (summary["id"], summary["gateway"], summary["lights"]) == (GARAGE, "gw-a", len(ids))
        assert c.get("/api/v1/garages/nowhere").status_code == 404
    with stack.client("r-1") as c:
        assert c.get("/api/v1/garages").status_code == 403
    layout_ = stack.garage()
    assert [lt["id"] for lt in layout_["lights"]] == ids
    assert {lane["id"] for lane in layout_["lanes"]} >= {"ramp", "main"}
    bbox = layout_["bbox"]
    assert bbox["min_x"] <= min(x for x, _ in layout_["entrances"]) <= bbox["max_x"]

    # the live state: every light, fresh; nobody in the garage -> back at standby once the start-up hold is over
    assert wait_until(lambda: (st := stack.state()) is not None and not st["stale"], 15)
    standby = world.garage.levels.standby_pct
    assert wait_until(lambda: all(lt["level"] == standby for lt in stack.state()["lights"]), 20)  # type: ignore[index]
    st = stack.state()
    assert st is not None and [lt["id"] for lt in st["lights"]] == ids
    assert st["tracks"] == [] and st["faults"] == [] and st["fire"] is False

    # a car comes down the ramp: a track on the map, the lights around it full
    entrance = m.entrances[0]
    spot = m.graph.on_lane("aisle-c", 6.0)
    world.add([Agent("car", True, world.now() + 0.3, [Move(tuple(route(m.graph, entrance, spot)), 5.0)])])
    assert wait_until(lambda: any(t["kind"] in ("car", "unknown") for t in stack.state()["tracks"]), 10)  # type: ignore[index]
    st = stack.state()
    assert st is not None and any(lt["full"] and lt["level"] == 100 for lt in st["lights"])
    track = st["tracks"][0]
    assert bbox["min_x"] <= track["x"] <= bbox["max_x"] and bbox["min_y"] <= track["y"] <= bbox["max_y"]

    # the control room sets one far light full for a minute: acked, and the published level follows
    far = max(m.lights, key=lambda lt: m.graph.distance(lt.pos, entrance))
    with stack.client("op-1") as c:
        r = c.post(f"/api/v1/garages/{GARAGE}/lights", json={"level": "full", "lights": [far.id], "for_s": 60})
        assert r.status_code == 200, r.text
        assert r.json()["result"] == {"level": "full", "lights": 1, "for_s": 60.0}

        def far_light() -> dict[str, Any]:
            return next(lt for lt in stack.state()["lights"] if lt["id"] == far.id)  # type: ignore[index]

        assert wait_until(lambda: far_light()["override"] == "full" and far_light()["level"] == 100, 5)
        assert 0 < far_light()["override_left_s"] <= 60  # counting down from the minute asked for
        assert wait_until(lambda: world.controllers[far.controller].group_levels()[far.group] == 100, 5)

        # the gateway refuses an unknown light: 502 with its reason; bad bodies never leave the API
        r = c.post(f"/api/v1/garages/{GARAGE}/lights", json={"level": "off", "lights": ["l-999"]})
        assert r.status_code == 502 and "no light 'l-999'" in r.json()["detail"], r.text
        assert c.post(f"/api/v1/garages/{GARAGE}/lights", json={"level": "dazzle"}).status_code == 422
        assert c.post(f"/api/v1/garages/{GARAGE}/lights", json={"level": "off", "colour": "red"}).status_code == 422
        assert c.post("/api/v1/garages/nowhere/lights", json={"level": "off"}).status_code == 404
        r = c.post(f"/api/v1/garages/{GARAGE}/lights", json={"level": "auto"})
        assert r.status_code == 200 and r.json()["result"]["lights"] == len(ids)
        assert wait_until(lambda: far_light().get("override") is None, 5)
    for user in ("w-prop", "r-1"):
        with stack.client(user) as c:
            assert c.post(f"/api/v1/garages/{GARAGE}/lights", json={"level": "off"}).status_code == 403

    # the gateway stops: its last state is still shown, stale; an override cannot reach it
    stack.edge.stop()
    assert wait_until(lambda: stack.state()["stale"] is True, 10)  # type: ignore[index]
    with stack.client("op-1") as c:
        r = c.post(f"/api/v1/garages/{GARAGE}/lights", json={"level": "full"})
        assert r.status_code == 504 and "offline" in r.json()["detail"], r.text
        (summary,) = c.get("/api/v1/garages").json()
        assert summary["stale"] is True and summary["lights"] == len(ids)
