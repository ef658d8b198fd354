"""A simulated garage: cars and people moving on the lane graph, the presence
sensors that see them, the lighting bus that carries the commands, and a
checker of the safety invariant.

* :class:`Agent` - a car or a person following a script of moves (drive a path
  at a cruising speed, stop, reverse, wait, park, get out and walk).
* :func:`day_traffic` / :func:`random_traffic` - scripts: arrivals (drive in,
  find a space, park, the driver walks to the lift), departures (walk from the
  lift to the car, drive out), a car that overshoots a space and reverses,
  several at once.
* :class:`SensorField` - what every presence sensor shows given where the agents
  are (a microwave sensor sees anything *moving* within its range along the
  lanes, holding its output ``hold_s``; a beam sees anything at it).
* :class:`LightingBus` - the RS-485 bus timing (:mod:`devices.lighting`) and each
  controller applying changed groups one DALI frame after another, with its
  failsafe; records every level change with its time.
* :func:`simulate` - the fast harness: drives a controller (ours, or a baseline
  with the same interface) with a simulated clock, checks the invariant every
  tick and returns a :class:`Result`.

The invariant (docs/garage.md): from ``grace_s`` after it appears, no moving car
has a metre of its route within ``ahead_m`` ahead of it that no full light
reaches, and no person on foot stands where no full light reaches. A violation
is kept with its time, agent and place.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from devices.lighting import BROADCAST_REGISTER, read_inputs_s, write_levels_s
from edge.garage.commands import CONTROLLER_OFFLINE_AFTER, MODULE_PROBE_S, ControllerLink, Write
from edge.garage.control import Plan
from edge.garage.model import GarageModel
from sc.config.schema import LaneKind, SensorKind
from sc.lanes import LaneGraph, LanePos, span_contains

__all__ = [
    "Agent",
    "Controller",
    "LightingBus",
    "Result",
    "SensorField",
    "Violation",
    "day_traffic",
    "random_traffic",
    "route",
    "simulate",
]

CAR_LENGTH_M = 4.5
SENSOR_HOLD_S = 0.5
#: Standing still this long and then moving again counts as appearing (sensors only see motion).
STANDSTILL_S = 1.0  # a microwave sensor's output stays on this long after the last motion


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Leg:
    """Travel along edge ``edge`` from ``s0`` to ``s1`` (s1 < s0: towards the edge's u end)."""

    edge: int
    s0: float
    s1: float

    @property
    def length(self) -> float:
        return abs(self.s1 - self.s0)


def route(graph: LaneGraph, a: LanePos, b: LanePos) -> list[Leg]:
    """The shortest way from ``a`` to ``b`` as legs in travel order."""
    direct = abs(a.s - b.s) if a.edge == b.edge else math.inf
    ea = graph.edges[a.edge]
    # Dijkstra over nodes, starting from a's two ends
    dist: dict[int, float] = {}
    prev: dict[int, tuple[int, int] | None] = {}  # node -> (previous node, edge) or None for a start
    heap: list[tuple[float, int, int, int]] = [(a.s, ea.u, -1, -1), (ea.length - a.s, ea.v, -1, -1)]
    while heap:
        d, n, pn, pe = heapq.heappop(heap)
        if n in dist:
            continue
        dist[n] = d
        prev[n] = None if pe < 0 else (pn, pe)
        for ei in graph.adjacent[n]:
            x = graph.edges[ei]
            for m in (x.u, x.v):
                if m != n and m not in dist:
                    heapq.heappush(heap, (d + x.length, m, n, ei))
    eb = graph.edges[b.edge]
    via_u = dist.get(eb.u, math.inf) + b.s
    via_v = dist.get(eb.v, math.inf) + eb.length - b.s
    if direct <= min(via_u, via_v):
        return [Leg(a.edge, a.s, b.s)]
    end_node = eb.u if via_u <= via_v else eb.v
    legs: list[Leg] = [Leg(b.edge, 0.0 if end_node == eb.u else eb.length, b.s)]
    n = end_node
    while prev[n] is not None:
        pn, pe = prev[n]  # type: ignore[misc]
        x = graph.edges[pe]
        legs.append(Leg(pe, 0.0 if x.u == pn else x.length, 0.0 if x.u == n else x.length))
        n = pn
    legs.append(Leg(a.edge, a.s, 0.0 if n == ea.u else ea.length))
    legs.reverse()
    return [leg for leg in legs if leg.length > 1e-9] or [Leg(a.edge, a.s, a.s)]


def _pos_on(legs: list[Leg], d: float) -> LanePos:
    for leg in legs:
        if d <= leg.length + 1e-9:
            step = d if leg.s1 >= leg.s0 else -d
            return LanePos(leg.edge, leg.s0 + step)
        d -= leg.length
    last = legs[-1]
    return LanePos(last.edge, last.s1)


# --------------------------------------------------------------------------- agents


@dataclass(frozen=True)
class Move:
    """Drive/walk ``legs`` at up to ``speed`` m/s and stop at the end; or, with no legs, stay ``wait_s``."""

    legs: tuple[Leg, ...] = ()
    speed: float = 0.0
    wait_s: float = 0.0


@dataclass
class Agent:
    id: str
    car: bool
    start: float  # when it appears
    moves: list[Move]
    accel: float = 1.5
    # state
    move_i: int = 0
    d: float = 0.0
    v: float = 0.0
    waited: float = 0.0
    pos: LanePos | None = None
    done: bool = False
    after: Agent | None = None  # starts when this one has finished
    #: since when it has been moving without a stop of STANDSTILL_S (what the checker's grace counts from)
    moving_since: float = math.inf
    _still_since: float | None = None
    _moved: bool = False

    @property
    def length(self) -> float:
        return CAR_LENGTH_M if self.car else 0.4

    def step(self, t: float, dt: float) -> None:
        if self.done or t < self.start:
            return
        self._step(t, dt)
        if self.v > 0.05 and self.pos is not None:
            if not self._moved or (self._still_since is not None and t - self._still_since >= STANDSTILL_S):
                self.moving_since = t
            self._moved, self._still_since = True, None
        elif self._still_since is None:
            self._still_since = t

    def _step(self, t: float, dt: float) -> None:
        if self.move_i >= len(self.moves):
            self.done, self.v = True, 0.0
            return
        mv = self.moves[self.move_i]
        if not mv.legs:
            self.v = 0.0
            self.waited += dt
            if self.waited >= mv.wait_s:
                self.move_i, self.waited = self.move_i + 1, 0.0
            return
        total = sum(leg.length for leg in mv.legs)
        left = total - self.d
        v_stop = math.sqrt(max(0.0, 2 * self.accel * left))
        target = min(mv.speed, v_stop)
        if self.v < target:
            self.v = min(target, self.v + self.accel * dt)
        else:
            self.v = max(target, self.v - 2 * self.accel * dt)
        self.v = max(self.v, 0.3 if left > 0.05 else 0.0)  # creep to the very end
        self.d = min(total, self.d + self.v * dt)
        self.pos = _pos_on(list(mv.legs), self.d)
        if total - self.d <= 0.01:
            self.move_i, self.d, self.v = self.move_i + 1, 0.0, 0.0

    def place(self) -> LanePos | None:
        if self.done or self.pos is None:
            return None
        return self.pos

    def moving(self) -> bool:
        return not self.done and self.v > 0.05

    def ahead(self, metres: float) -> list[LanePos]:
        """Points every metre along its own route ahead, up to ``metres`` (or where it stops)."""
        if self.done or self.move_i >= len(self.moves):
            return []
        mv = self.moves[self.move_i]
        if not mv.legs:
            return []
        legs = list(mv.legs)
        total = sum(leg.length for leg in legs)
        out = []
        k = 1.0
        while k <= metres and self.d + k <= total:
            out.append(_pos_on(legs, self.d + k))
            k += 1.0
        return out


def _spaces(model: GarageModel) -> list[LanePos]:
    g = model.graph
    spots = []
    for lane in model.garage.lanes:
        if lane.kind is LaneKind.AISLE:
            for ei in g.lane_edges[lane.id]:
                e = g.edges[ei]
                s = 3.0
                while s < e.length - 3.0:
                    spots.append(LanePos(ei, s))
                    s += 2.5
    if not spots:  # no aisles drawn: anywhere on a driving lane
        for e in g.edges:
            spots += [LanePos(e.index, s) for s in (e.length / 3, 2 * e.length / 3)]
    return spots


def _arrival(model: GarageModel, rng: random.Random, t: float, n: int, *, reverse: bool = False) -> list[Agent]:
    g = model.graph
    entrance = rng.choice(model.entrances)
    spot = rng.choice(_spaces(model))
    v = rng.uniform(2.0, 5.5)
    legs = tuple(route(g, entrance, spot))
    moves = [Move(legs, v)]
    if reverse:  # overshoot the space, stop, back up into it
        past = g.ahead(spot, legs[-1].s1 >= legs[-1].s0, 8.0)
        end = max((sp for sp in past if sp.edge == spot.edge), key=lambda sp: sp.b - sp.a, default=None)
        if end is not None and end.b - end.a > 4.0:
            beyond = LanePos(spot.edge, end.b if legs[-1].s1 >= legs[-1].s0 else end.a)
            moves = [
                Move(tuple(route(g, entrance, beyond)), v),
                Move(wait_s=1.5),
                Move(tuple(route(g, beyond, spot)), 1.2),
            ]
    car = Agent(f"car-{n}", True, t, moves, accel=1.5)
    lobby = min(model.lobbies, key=lambda lb: g.distance(spot, lb)) if model.lobbies else spot
    walk = rng.uniform(1.0, 1.6)
    driver = Agent(
        f"driver-{n}",
        False,
        math.inf,
        [Move(wait_s=rng.uniform(3.0, 40.0)), Move(tuple(route(g, spot, lobby)), walk)],
        accel=1.0,
    )
    return [car, _after(car, driver)]


def _after(first: Agent, second: Agent) -> Agent:
    """``second`` starts when ``first`` has finished (resolved while simulating)."""
    second.start = math.inf
    second.after = first
    return second


def _departure(model: GarageModel, rng: random.Random, t: float, n: int) -> list[Agent]:
    g = model.graph
    spot = rng.choice(_spaces(model))
    lobby = rng.choice(model.lobbies) if model.lobbies else spot
    exit_ = rng.choice(model.entrances)
    walker = Agent(f"walker-{n}", False, t, [Move(tuple(route(g, lobby, spot)), rng.uniform(1.0, 1.6))], accel=1.0)
    car = Agent(
        f"car-out-{n}",
        True,
        math.inf,
        [Move(wait_s=rng.uniform(5.0, 20.0)), Move(tuple(route(g, spot, exit_)), rng.uniform(2.0, 5.5))],
    )
    return [walker, _after(walker, car)]


def random_traffic(model: GarageModel, seed: int, *, duration_s: float = 240.0, visits: int = 6) -> list[Agent]:
    """A few minutes of traffic: arrivals and departures overlapping, one car reversing into its space."""
    rng = random.Random(seed)
    agents: list[Agent] = []
    for n in range(visits):
        t = rng.uniform(0, duration_s * 0.5)
        kind = rng.random()
        trip = _departure(model, rng, t, n) if kind < 0.4 else _arrival(model, rng, t, n, reverse=(n == 0))
        agents += trip
    return agents


def day_traffic(model: GarageModel, seed: int, *, cars: int = 300, hours: float = 24.0) -> list[Agent]:
    """A residential day: departures peak 7-9 h, arrivals 17-20 h, some all day; every car once out and in."""
    rng = random.Random(seed)
    agents: list[Agent] = []

    def when(peak: float) -> float:
        if rng.random() < 0.6:
            return max(0.0, min(hours * 3600 - 600, rng.gauss(peak, 3600)))
        return rng.uniform(6 * 3600, 22 * 3600)

    for n in range(cars):
        agents += _departure(model, rng, when(8 * 3600), n)
        agents += _arrival(model, rng, when(18.5 * 3600), n, reverse=rng.random() < 0.1)
    agents.sort(key=lambda a: a.start)
    return agents


# --------------------------------------------------------------------------- sensors


class SensorField:
    """What each sensor shows, given the agents."""

    def __init__(self, model: GarageModel, hold_s: float = SENSOR_HOLD_S) -> None:
        self.model = model
        self.hold_s = hold_s
        g = model.graph
        self.cover_car = [
            g.around(s.pos, s.range_m + (CAR_LENGTH_M / 2 if s.kind is SensorKind.BEAM else 0.0)) for s in model.sensors
        ]
        self.cover_walker = [list(s.coverage) for s in model.sensors]
        self._last = [-math.inf] * len(model.sensors)
        self.broken: dict[int, bool] = {}  # sensor -> stuck value (True: stuck on, False: blind)

    def read(self, t: float, agents: Iterable[Agent]) -> list[bool]:
        active = [(a.place(), a) for a in agents]
        out = []
        for i, s in enumerate(self.model.sensors):
            if i in self.broken:
                out.append(self.broken[i])
                continue
            seen = False
            for pos, a in active:
                if pos is None:
                    continue
                if s.kind is SensorKind.MICROWAVE and not a.moving():
                    continue
                if span_contains(self.cover_car[i] if a.car else self.cover_walker[i], pos):
                    seen = True
                    break
            if seen:
                self._last[i] = t
            out.append(t - self._last[i] <= self.hold_s)
        return out


# --------------------------------------------------------------------------- the lighting bus


@dataclass
class LevelChange:
    t: float
    controller: str
    group: int
    level: int


class LightingBus:
    """RS-485 timing and the controllers' DALI side; what every lamp is at, and when it changed."""

    def __init__(self, model: GarageModel, baudrate: int = 9600) -> None:
        self.model = model
        self.baudrate = baudrate
        g = model.garage
        self.level: dict[str, list[int]] = {c.id: [g.levels.standby_pct] * c.groups for c in g.controllers}
        self.log: list[LevelChange] = []
        self._pending: list[tuple[float, int, str, int, int]] = []  # (t, seq, controller, group, level)
        self._seq = 0
        self.bus_free: dict[str, float] = {}
        self.dali_free: dict[str, float] = {c.id: 0.0 for c in g.controllers}
        self.last_command: dict[str, float] = {c.id: 0.0 for c in g.controllers}
        self.cfg = {c.id: c for c in g.controllers}
        self.dead: set[str] = set()  # controllers whose RS-485 link is cut
        self.bus_of_module = {m.id: m.bus for m in g.sensor_modules}
        self.failsafe_active: set[str] = set()

    def occupy(self, bus: str, t: float, seconds: float) -> float:
        start = max(t, self.bus_free.get(bus, 0.0))
        self.bus_free[bus] = start + seconds
        return start + seconds

    def poll(self, module: str, t: float, inputs: int, *, timeout: float | None = None) -> float:
        """A module read; returns when its reply is in."""
        return self.occupy(self.bus_of_module[module], t, timeout if timeout else read_inputs_s(inputs, self.baudrate))

    def write(self, w: Write, t: float, timeout_s: float) -> tuple[bool, float]:
        """Send one write at ``t``; returns (acknowledged, when the bus is free again)."""
        c = self.cfg[w.controller]
        if w.controller in self.dead:
            return False, self.occupy(c.bus, t, write_levels_s(len(w.values), self.baudrate) + timeout_s)
        done = self.occupy(c.bus, t, write_levels_s(len(w.values), self.baudrate))
        self.last_command[c.id] = done
        self.failsafe_active.discard(c.id)
        frame = c.dali_frame_ms / 1000
        at = max(done, self.dali_free[c.id])
        if w.address == BROADCAST_REGISTER:
            at += frame
            for grp in range(c.groups):
                self._schedule(at, c.id, grp, w.values[0])
        else:
            current = self._planned(c.id)
            for i, v in enumerate(w.values):
                grp = w.address + i
                if grp < c.groups and current[grp] != v:
                    at += frame
                    self._schedule(at, c.id, grp, v)
                    current[grp] = v
        self.dali_free[c.id] = at
        return True, done

    def _planned(self, controller: str) -> list[int]:
        current = list(self.level[controller])
        for _, _, c, grp, lv in sorted(self._pending):
            if c == controller:
                current[grp] = lv
        return current

    def _schedule(self, at: float, controller: str, group: int, level: int) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (at, self._seq, controller, group, level))

    def advance(self, t: float) -> None:
        """Apply every DALI frame due by ``t``; run the controllers' failsafe."""
        while self._pending and self._pending[0][0] <= t:
            at, _, c, grp, lv = heapq.heappop(self._pending)
            self._set(at, c, grp, lv)
        full = self.model.garage.levels.full_pct
        for ctl in self.cfg.values():
            if ctl.id not in self.failsafe_active and t - self.last_command[ctl.id] >= ctl.failsafe_s:
                self.failsafe_active.add(ctl.id)
                for grp in range(ctl.groups):
                    self._set(t, ctl.id, grp, full)

    def _set(self, t: float, controller: str, group: int, level: int) -> None:
        if self.level[controller][group] != level:
            self.level[controller][group] = level
            self.log.append(LevelChange(t, controller, group, level))

    def full_lights(self) -> list[bool]:
        full = self.model.garage.levels.full_pct
        return [self.level[lt.controller][lt.group] >= full for lt in self.model.lights]

    def light_levels(self) -> list[int]:
        return [self.level[lt.controller][lt.group] for lt in self.model.lights]


# --------------------------------------------------------------------------- the harness


class Controller(Protocol):
    """What :func:`simulate` drives: ours (:class:`GarageController`) or a baseline."""

    def set_inputs(self, t: float, module: str, bits: list[bool]) -> None: ...

    def module_state(self, t: float, module: str, *, online: bool, reason: str) -> None: ...

    def controller_state(self, t: float, controller: str, *, online: bool, reason: str) -> None: ...

    def step(self, t: float) -> Plan: ...


@dataclass(frozen=True)
class Violation:
    t: float
    agent: str
    what: str  # "dark ahead" / "standing in the dark"
    where: str  # lane and metre
    x: float
    y: float
    dark_m: int  # metres ahead without light (cars) or 0


@dataclass(frozen=True)
class Fault:
    """Cut a module's or a controller's RS-485 link from ``at`` to ``until``."""

    device: str
    at: float
    until: float = math.inf


@dataclass
class Result:
    duration_s: float
    violations: list[Violation]
    light_hours: float
    checked_car_s: float
    checked_walker_s: float
    decision_ms: list[float]  # wall time of each controller step that followed an input change
    steps: int
    agents: int
    log: list[LevelChange]
    events: list[tuple[float, str]] = field(default_factory=list)


def simulate(
    model: GarageModel,
    agents: list[Agent],
    controller: Controller,
    *,
    duration_s: float | None = None,
    faults: Iterable[Fault] = (),
    grace_s: float = 0.6,
    check: bool = True,
    timeout_s: float = 0.3,
    offline_after: int | None = None,
    baudrate: int = 9600,
    skip_idle: bool = True,
    progress: Callable[[float], None] | None = None,
    broken_sensors: dict[str, bool] | None = None,
) -> Result:
    """Run ``agents`` through the garage under ``controller``; see the module docstring."""
    g = model.garage
    dt = g.poll_interval_s
    field_ = SensorField(model)
    for sid, value in (broken_sensors or {}).items():  # False: blind, True: stuck on
        field_.broken[next(s.index for s in model.sensors if s.id == sid)] = value
    bus = LightingBus(model, baudrate)
    links = {c.id: ControllerLink(c.id, c.groups, g.refresh_s) for c in g.controllers}
    faults = list(faults)
    module_fails: dict[str, int] = {m.id: 0 for m in g.sensor_modules}
    module_down: set[str] = set()
    module_next: dict[str, float] = {m.id: 0.0 for m in g.sensor_modules}
    ctrl_down: set[str] = set()
    limit = offline_after
    end = (
        duration_s if duration_s is not None else max((a.start for a in agents if a.start < math.inf), default=0) + 600
    )
    violations: list[Violation] = []
    decision_ms: list[float] = []
    energy = 0.0
    car_s = walker_s = 0.0
    steps = 0
    events: list[tuple[float, str]] = []
    pending = sorted([a for a in agents if a.start < math.inf], key=lambda a: a.start)
    waiting = [a for a in agents if a.start == math.inf]
    active: list[Agent] = []
    pi = 0
    t = 0.0
    last_levels = bus.light_levels()
    last_t = 0.0
    idle_since: float | None = None
    prev_bits: dict[str, list[bool]] = {}
    while t < end:
        # agents come and go
        while pi < len(pending) and pending[pi].start <= t:
            active.append(pending[pi])
            pi += 1
        for a in waiting:
            if a.after is not None and a.after.done and a.start == math.inf:
                a.start = t
                active.append(a)
        waiting = [a for a in waiting if a.start == math.inf]
        for a in active:
            a.step(t, dt)
        active = [a for a in active if not a.done]
        # faults
        cut = {f.device for f in faults if f.at <= t < f.until}
        bus.dead = {d for d in cut if d in bus.cfg}
        # sensors -> controller
        bits_now = field_.read(t, active)
        changed = False
        for m in g.sensor_modules:
            if m.id in module_down and t < module_next[m.id]:
                continue
            mine = [s for s in model.sensors if s.module == m.id]
            if m.id in cut:
                bus.poll(m.id, t, m.inputs, timeout=timeout_s)
                module_fails[m.id] += 1
                module_next[m.id] = t + MODULE_PROBE_S
                if module_fails[m.id] >= (limit or m.offline_after) and m.id not in module_down:
                    module_down.add(m.id)
                    controller.module_state(t, m.id, online=False, reason="no reply")
                    events.append((t, f"device_offline {m.id}"))
                continue
            if bus.bus_free.get(m.bus, 0.0) > t + dt:
                continue  # the bus is still busy: the service's next read comes later (inputs go stale)
            bus.poll(m.id, t, m.inputs)
            module_fails[m.id] = 0
            if m.id in module_down:
                module_down.discard(m.id)
                controller.module_state(t, m.id, online=True, reason="answers again")
                events.append((t, f"device_online {m.id}"))
            bits = [False] * m.inputs
            for s in mine:
                bits[s.input] = bits_now[s.index]
            if prev_bits.get(m.id) != bits:
                changed = True
                prev_bits[m.id] = bits
            controller.set_inputs(t, m.id, bits)
        t0 = time.perf_counter()
        plan = controller.step(t)
        if changed:
            decision_ms.append((time.perf_counter() - t0) * 1000)
        steps += 1
        # plan -> bus
        for cid, link in links.items():
            if bus.bus_free.get(bus.cfg[cid].bus, 0.0) > t + dt:
                # the bus is still busy (e.g. waiting out a silent controller's timeout): like the service, whose
                # writes wait for the bus, write on a later tick; queueing would push every controller on the bus
                # ever later while a controller stays silent (a timeout per tick outlasts the tick)
                continue
            for w in link.writes(t, plan.levels[cid], fire=plan.fire, full=g.levels.full_pct):
                ok, _ = bus.write(w, t, timeout_s)
                if ok:
                    link.confirm(t, w)
                    if cid in ctrl_down:
                        ctrl_down.discard(cid)
                        controller.controller_state(t, cid, online=True, reason="acknowledges again")
                        events.append((t, f"device_online {cid}"))
                else:
                    link.failed()
                    if link.failures >= CONTROLLER_OFFLINE_AFTER and cid not in ctrl_down:
                        ctrl_down.add(cid)
                        controller.controller_state(t, cid, online=False, reason="no acknowledgement")
                        events.append((t, f"device_offline {cid}"))
                    break
        bus.advance(t)
        # energy and the invariant
        levels = bus.light_levels()
        energy += sum(last_levels) / 100 * (t - last_t)
        last_levels, last_t = levels, t
        if check and active:
            full = bus.full_lights()
            for a in active:
                pos = a.place()
                if pos is None or t - a.moving_since < grace_s:
                    continue
                if a.car and a.moving():
                    car_s += dt
                    dark = [p for p in a.ahead(g.ahead_m) if not model.lit(p, full)]
                    if not model.lit(pos, full):
                        dark.insert(0, pos)
                    if dark:
                        x, y = model.graph.xy(dark[0])
                        violations.append(
                            Violation(
                                t, a.id, "dark ahead", _where(model, dark[0]), round(x, 1), round(y, 1), len(dark)
                            )
                        )
                elif not a.car:
                    walker_s += dt
                    if not model.lit(pos, full):
                        x, y = model.graph.xy(pos)
                        violations.append(Violation(t, a.id, "standing in the dark", _where(model, pos), x, y, 0))
        if progress is not None and steps % 2000 == 0:
            progress(t)
        # nobody around and nothing changing: jump to the next arrival
        # (agents waiting for another can only start after one that has not started yet: they need no ticks)
        nothing = not active and not bus._pending and not cut
        if skip_idle and nothing:
            if idle_since is None:
                idle_since = t
            elif t - idle_since > g.lost_hold_s + g.hold_s + 5 and pi < len(pending):
                nxt = pending[pi].start - dt
                if nxt > t:
                    energy += sum(last_levels) / 100 * (nxt - t)
                    t = last_t = nxt
                    for link in links.values():
                        link.last_write = t  # the refreshes in between change nothing
                    for c in g.controllers:
                        bus.last_command[c.id] = t
                    idle_since = None
                    continue
        else:
            idle_since = None
        t = round(t + dt, 6)
    energy += sum(last_levels) / 100 * (end - last_t)
    return Result(
        duration_s=end,
        violations=violations,
        light_hours=energy / 3600,
        checked_car_s=car_s,
        checked_walker_s=walker_s,
        decision_ms=decision_ms,
        steps=steps,
        agents=len(agents),
        log=bus.log,
        events=events,
    )


def _where(model: GarageModel, pos: LanePos) -> str:
    return model.graph.describe_pos(pos)
