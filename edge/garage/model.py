"""The garage as the controller sees it: the lane graph with every sensor and light placed on it.

Built once from the site config's :class:`~sc.config.schema.Garage` (which has
already checked the references and that every metre of lane is within some
light's reach). Shared by the controller, the simulator, the invariant checker
and the benches, so they all measure distances the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.lighting import write_levels_s
from sc.config.schema import Garage, LaneKind, SensorKind, SerialBusConfig
from sc.lanes import LaneGraph, LanePos, Span

__all__ = ["GarageModel", "LightSite", "SensorSite"]


@dataclass(frozen=True)
class SensorSite:
    index: int
    id: str
    kind: SensorKind
    module: str
    input: int
    pos: LanePos
    range_m: float
    coverage: tuple[Span, ...]  # where something it sees can be
    entrance: bool  # the first sensor a car coming in meets
    lobby: bool  # at a lift lobby or on a walkway


@dataclass(frozen=True)
class LightSite:
    index: int
    id: str
    controller: str
    group: int
    pos: LanePos
    lights: tuple[Span, ...]  # the lane this light lights at full


@dataclass
class GarageModel:
    garage: Garage
    graph: LaneGraph
    sensors: list[SensorSite]
    lights: list[LightSite]
    entrances: list[LanePos]
    lobbies: list[LanePos]
    #: sensor x sensor lane distance between their positions
    sensor_distance: list[list[float]]
    #: controller id -> group -> light indices
    groups: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    #: worst time from a decision to the last lamp of a controller changing (Modbus write + DALI frames)
    command_latency_s: float = 0.0
    #: lights covering each edge: edge -> [(a, b, light index)]
    _by_edge: dict[int, list[tuple[float, float, int]]] = field(default_factory=dict)

    @classmethod
    def build(cls, garage: Garage, buses: dict[str, SerialBusConfig] | None = None) -> GarageModel:
        graph = LaneGraph({lane.id: lane.points for lane in garage.lanes})
        walk_edges = {ei for lane in garage.lanes if lane.kind is LaneKind.WALKWAY for ei in graph.lane_edges[lane.id]}
        entrances = [graph.project(p)[0] for p in garage.entrances]
        lobbies = [graph.project(p)[0] for p in garage.lobbies]
        sensors: list[SensorSite] = []
        for i, s in enumerate(garage.sensors):
            pos = graph.project(s.at)[0]
            cov = tuple(graph.around(pos, s.range_m))
            sensors.append(
                SensorSite(
                    index=i,
                    id=s.id,
                    kind=s.kind,
                    module=s.module,
                    input=s.input,
                    pos=pos,
                    range_m=s.range_m,
                    coverage=cov,
                    entrance=False,
                    lobby=pos.edge in walk_edges or any(graph.distance(pos, lb) <= s.range_m for lb in lobbies),
                )
            )
        # the entrance sensor of each entrance: the nearest one
        for e in entrances:
            if sensors:
                nearest = min(sensors, key=lambda x: graph.distance(x.pos, e))
                sensors[nearest.index] = SensorSite(**{**nearest.__dict__, "entrance": True})
        lights = [
            LightSite(
                index=i,
                id=lt.id,
                controller=lt.controller,
                group=lt.group,
                pos=(p := graph.project(lt.at)[0]),
                lights=tuple(graph.around(p, garage.light_reach_m)),
            )
            for i, lt in enumerate(garage.lights)
        ]
        dist = [[0.0] * len(sensors) for _ in sensors]
        for a in sensors:
            for b in sensors:
                if b.index > a.index:
                    dist[a.index][b.index] = dist[b.index][a.index] = graph.distance(a.pos, b.pos)
        groups: dict[str, dict[int, list[int]]] = {c.id: {} for c in garage.controllers}
        for lt in lights:
            groups[lt.controller].setdefault(lt.group, []).append(lt.index)
        latency = 0.0
        for c in garage.controllers:
            baud = buses[c.bus].baudrate if buses and c.bus in buses else 9600
            latency = max(latency, write_levels_s(c.groups, baud) + c.groups * c.dali_frame_ms / 1000)
        by_edge: dict[int, list[tuple[float, float, int]]] = {}
        for lt in lights:
            for sp in lt.lights:
                by_edge.setdefault(sp.edge, []).append((sp.a, sp.b, lt.index))
        return cls(
            garage=garage,
            graph=graph,
            sensors=sensors,
            lights=lights,
            entrances=entrances,
            lobbies=lobbies,
            sensor_distance=dist,
            groups=groups,
            command_latency_s=latency,
            _by_edge=by_edge,
        )

    def lights_touching(self, spans: list[Span]) -> set[int]:
        """Indices of the lights that light any part of ``spans``."""
        out: set[int] = set()
        for sp in spans:
            for a, b, li in self._by_edge.get(sp.edge, ()):
                if a <= sp.b and sp.a <= b:
                    out.add(li)
        return out

    def lit(self, pos: LanePos, full: set[int] | list[bool]) -> bool:
        """Is ``pos`` lit by a light at full? ``full``: the set of full lights' indices, or a flag per light."""
        for a, b, li in self._by_edge.get(pos.edge, ()):
            if a - 1e-6 <= pos.s <= b + 1e-6 and (li in full if isinstance(full, set) else full[li]):
                return True
        return False
