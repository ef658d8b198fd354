"""Lay lights and sensors along a garage's lanes, as an electrician's drawing would.

``python -m firmware_sim.garagelayout`` prints the ``garages:`` entry of the
example garage (configs/site.example.yaml holds its output); :func:`layout`
builds such an entry for any lanes (tests and benches use it to make gargages
of other shapes and sizes).

Lights go every ``light_every_m`` along each lane (one where another lane's
light is already closer than 2 m is left out), consecutive lights on a lane
share a DALI group (``lights_per_group``), and groups fill controllers of 16
groups in turn. Presence sensors go every ``sensor_every_m`` and are wired to
32-input modules in turn, on their own bus: at 9600 baud one module read takes
about 26 ms, so sensors and lights on one bus would not keep a 50 ms poll.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from sc.lanes import LaneGraph

__all__ = ["EXAMPLE_LANES", "layout"]

#: The example garage: a ramp down from the street, a main lane, three aisles
#: joined at the back (so there are loops and junctions) and a walkway to the lift lobby.
EXAMPLE_LANES: list[dict[str, Any]] = [
    {"id": "ramp", "kind": "ramp", "points": [[0, -24], [0, 0]]},
    {"id": "main", "kind": "drive", "points": [[0, 0], [60, 0]]},
    {"id": "aisle-a", "kind": "aisle", "points": [[12, 0], [12, 42]]},
    {"id": "aisle-b", "kind": "aisle", "points": [[34, 0], [34, 42]]},
    {"id": "aisle-c", "kind": "aisle", "points": [[56, 0], [56, 42]]},
    {"id": "back", "kind": "drive", "points": [[12, 42], [56, 42]]},
    {"id": "walk", "kind": "walkway", "points": [[60, 0], [60, 10]]},
]


def _points_along(graph: LaneGraph, lane: str, every: float) -> list[tuple[float, float]]:
    length = sum(graph.edges[e].length for e in graph.lane_edges[lane])
    n = max(1, math.ceil(length / every))
    step = length / n
    out = []
    for k in range(n + 1):
        pos = graph.on_lane(lane, min(length, k * step if k else step / 2 if n == 1 else 0.0))
        out.append(graph.xy(pos))
    return out


def layout(
    lanes: list[dict[str, Any]],
    *,
    gid: str = "heping-garage",
    name: str = "和平地下车库 Heping garage",
    location: str = "hp-garage",
    gateway: str = "gw-heping-garage",
    light_bus: str = "rs485-2",
    sensor_bus: str = "rs485-3",
    module_inputs: int = 32,
    light_every_m: float = 7.0,
    sensor_every_m: float = 10.0,
    sensor_range_m: float = 6.0,
    lights_per_group: int = 2,
    first_unit: int = 30,
    entrances: list[list[float]] | None = None,
    lobbies: list[list[float]] | None = None,
) -> dict[str, Any]:
    graph = LaneGraph({lane["id"]: [tuple(p) for p in lane["points"]] for lane in lanes})
    lights: list[dict[str, Any]] = []
    controllers: list[dict[str, Any]] = []
    group = 16
    for lane in lanes:
        in_group = lights_per_group
        for x, y in _points_along(graph, lane["id"], light_every_m):
            if any(math.hypot(x - lt["at"][0], y - lt["at"][1]) < 2.0 for lt in lights):
                continue
            if in_group >= lights_per_group:
                in_group = 0
                group += 1
                if group >= 16:
                    group = 0
                    controllers.append(
                        {"id": f"lc-{len(controllers) + 1}", "bus": light_bus, "unit": first_unit + len(controllers)}
                    )
            in_group += 1
            lights.append(
                {
                    "id": f"l-{len(lights) + 1:03d}",
                    "at": [round(x, 1), round(y, 1)],
                    "controller": controllers[-1]["id"],
                    "group": group,
                }
            )
    sensors: list[dict[str, Any]] = []
    modules: list[dict[str, Any]] = []
    for lane in lanes:
        pts = _points_along(graph, lane["id"], sensor_every_m)
        for x, y in pts:
            if any(math.hypot(x - s["at"][0], y - s["at"][1]) < 5.0 for s in sensors):
                continue
            if len(sensors) % module_inputs == 0:
                modules.append(
                    {
                        "id": f"pm-{len(modules) + 1}",
                        "bus": sensor_bus,
                        "unit": first_unit + 10 + len(modules),
                        "inputs": module_inputs,
                    }
                )
            sensors.append(
                {
                    "id": f"ps-{len(sensors) + 1:02d}",
                    "at": [round(x, 1), round(y, 1)],
                    "range_m": sensor_range_m,
                    "module": modules[-1]["id"],
                    "input": len(sensors) % module_inputs,
                }
            )
    first = lanes[0]["points"][0]
    last = lanes[-1]["points"][-1]
    return {
        "id": gid,
        "name": name,
        "location": location,
        "gateway": gateway,
        "lanes": lanes,
        "entrances": entrances if entrances is not None else [list(first)],
        "lobbies": lobbies if lobbies is not None else [list(last)],
        "controllers": controllers,
        "lights": lights,
        "sensor_modules": modules,
        "sensors": sensors,
    }


def main() -> None:
    doc = layout(EXAMPLE_LANES)
    print(yaml.safe_dump([doc], allow_unicode=True, sort_keys=False, default_flow_style=None, width=200))


if __name__ == "__main__":
    main()
