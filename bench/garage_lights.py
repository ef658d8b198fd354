#!/usr/bin/env python3
"""Garage lights benchmark: energy over a simulated day of traffic, the safety invariant, decision latency
and the input events per second the controller keeps up with; ours side by side with lights always on and
with plain per-zone motion timers, in one run.

    .venv/bin/python bench/garage_lights.py [--quick] [--cars 150] [--hours 0-24] [--timers 60,30] [--json FILE]

Garage: the example garage (``firmware_sim.garagelayout.layout(EXAMPLE_LANES)``: 41 lights in 22 DALI groups
on 2 controllers, 28 microwave presence sensors of 6 m range on one 32-input module, 50 ms poll, standby 20 %).

Controllers, all driven by ``firmware_sim.garage.simulate`` (the RS-485 + DALI timing model and the safety
invariant checked every tick) through the same interface (``set_inputs`` with each module read, ``step`` every
50 ms tick, returning a ``Plan``):

* ``ours``        ``edge.garage.control.GarageController`` (tracks cars and people from sensor edges, lights
                  ``ahead_m`` 15 m ahead of a car, ``hold_s`` 6 s, a lost track's zone ``lost_hold_s`` 60 s);
* ``always on``   every group full, all day;
* ``timer N s``   the plain product, per-zone motion timers: each presence sensor switches the lights that
                  light any part of its own detection range (``model.lights_touching(graph.around(sensor.pos,
                  sensor.range_m))``: the lights within range + light reach of it, 2-6 here, 3.6 on average) to
                  full whenever it sees motion; they stay full for N s after its last detection (retriggered),
                  then go back to standby. Installers' usual hold time is 60 s; 30 s is also run.

Day: ``day_traffic(model, seed=1, cars=150)``: every car leaves once (departures peak at 8 h) and comes back
once (arrivals peak at 18.5 h), 40 % of them spread over 6-22 h; a person walks between the lift and the car
each time. The second half of a visit (the driver getting out, the car leaving once its driver reached it)
starts when the first half ends; this script works out those start times beforehand by moving each agent on
its own (agents do not depend on the lights), which lets ``simulate`` jump over idle time (it does not while
any agent waits for another one). Each start lands within one 50 ms tick of where the harness would have put
it; every controller gets the same traffic. ``--hours A-B`` keeps only the visits starting in that window.

The day's runs share the cores out, one process per core, each pinned to its core (``--jobs``, default 2);
the events replays run afterwards in this process, pinned to one core (``SC_BENCH_CORE``, default 0).

Figures: light-hours (sum over lights of level/100 x hours: 41 lights full all day is 984) and their share of
always on; violations of the safety invariant as ``simulate`` checks it every tick (a moving car with a metre
of its route within 15 m ahead that no full light reaches; a person on foot where no full light reaches), in
car-seconds and walker-seconds, drives affected and incidents (one agent's consecutive violating ticks);
decision latency = wall time of each ``step`` after a tick whose inputs changed (``Result.decision_ms``).

Events per second: module reads (the 32-bit input vectors) are replayed into a fresh controller as fast as it
takes them, ``set_inputs`` + ``step`` per read: (1) a rush, every read of ``random_traffic`` with
``--rush-visits`` visits starting within one minute, recorded from ``simulate``; (2) random toggles, 2 and all
28 wired inputs flipping on every read (the latter is the most the bus can carry: 28 changes per read). Each
replay runs twice, timed per read with perf_counter (wall), then with thread_time (CPU: without the waits for
the core on a shared machine). The bus delivers one read every ``poll_interval_s`` (50 ms: 20 reads/s; one
read takes ``devices.lighting.read_inputs_s(32, 9600)``); headroom = reads/s sustained (wall) / 20.

Writes docs/garage_day.png (not with ``--quick`` unless ``--plot`` is given); ``--json`` keeps the raw figures.
"""

from __future__ import annotations

import os

_CORE = int(os.environ.get("SC_BENCH_CORE", "0"))
#: the cores this process may use before it pins itself (the day's runs share them out, one process per core)
_CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [_CORE]
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {_CORE})

import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from devices.lighting import read_inputs_s  # noqa: E402
from edge.garage.control import GarageController, Plan  # noqa: E402
from edge.garage.model import GarageModel, SensorSite  # noqa: E402
from firmware_sim.garage import Agent, Controller, Result, day_traffic, random_traffic, simulate  # noqa: E402
from firmware_sim.garagelayout import EXAMPLE_LANES, layout  # noqa: E402
from sc.config.schema import Garage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
BAUD = 9600
BIN_S = 60.0  # the plot's time bins


# --------------------------------------------------------------------------- the baselines


class AlwaysOn:
    """Every group full, whatever the sensors say."""

    def __init__(self, model: GarageModel) -> None:
        self.model = model
        full = model.garage.levels.full_pct
        self._levels = {c.id: [full] * c.groups for c in model.garage.controllers}

    def set_inputs(self, t: float, module: str, bits: Sequence[bool]) -> None:
        pass

    def module_state(self, t: float, module: str, *, online: bool, reason: str) -> None:
        pass

    def controller_state(self, t: float, controller: str, *, online: bool, reason: str) -> None:
        pass

    def step(self, t: float) -> Plan:
        return Plan(levels={k: list(v) for k, v in self._levels.items()}, fire=False, full=len(self.model.lights))


class MotionTimers:
    """Per-zone motion timers: a sensor that sees motion sets the lights of its zone full for ``timer_s``."""

    def __init__(self, model: GarageModel, timer_s: float) -> None:
        self.model = model
        self.timer_s = timer_s
        self.zones = [sorted(model.lights_touching(model.graph.around(s.pos, s.range_m))) for s in model.sensors]
        self.by_module: dict[str, list[SensorSite]] = {}
        for s in model.sensors:
            self.by_module.setdefault(s.module, []).append(s)
        self.on = [False] * len(model.sensors)
        self.last = [-math.inf] * len(model.lights)

    def set_inputs(self, t: float, module: str, bits: Sequence[bool]) -> None:
        for s in self.by_module.get(module, ()):
            self.on[s.index] = s.input < len(bits) and bool(bits[s.input])

    def module_state(self, t: float, module: str, *, online: bool, reason: str) -> None:
        pass

    def controller_state(self, t: float, controller: str, *, online: bool, reason: str) -> None:
        pass

    def step(self, t: float) -> Plan:
        g = self.model.garage
        for i, on in enumerate(self.on):
            if on:
                for li in self.zones[i]:
                    self.last[li] = t
        standby, full = g.levels.standby_pct, g.levels.full_pct
        levels = {c.id: [0] * c.groups for c in g.controllers}
        n_full = 0
        for lt in self.model.lights:
            is_full = t - self.last[lt.index] <= self.timer_s
            n_full += is_full
            grp = levels[lt.controller]
            grp[lt.group] = max(grp[lt.group], full if is_full else standby)
        return Plan(levels=levels, fire=False, full=n_full)


def make_controller(name: str, model: GarageModel) -> Controller:
    if name == "ours":
        return GarageController(model)
    if name == "always on":
        return AlwaysOn(model)
    if name.startswith("timer "):
        return MotionTimers(model, float(name.split()[1]))
    raise ValueError(name)


class Recorder:
    """Wraps a controller and keeps every tick's module reads: [(t, [(module, bits), ...])]."""

    def __init__(self, inner: Controller) -> None:
        self.inner = inner
        self.ticks: list[tuple[float, list[tuple[str, tuple[bool, ...]]]]] = []
        self._reads: list[tuple[str, tuple[bool, ...]]] = []

    def set_inputs(self, t: float, module: str, bits: list[bool]) -> None:
        self._reads.append((module, tuple(bits)))
        self.inner.set_inputs(t, module, bits)

    def module_state(self, t: float, module: str, *, online: bool, reason: str) -> None:
        self.inner.module_state(t, module, online=online, reason=reason)

    def controller_state(self, t: float, controller: str, *, online: bool, reason: str) -> None:
        self.inner.controller_state(t, controller, online=online, reason=reason)

    def step(self, t: float) -> Plan:
        self.ticks.append((t, self._reads))
        self._reads = []
        return self.inner.step(t)


# --------------------------------------------------------------------------- the day's traffic


@dataclass
class Traffic:
    """What ``resolve`` found out about the day before any controller runs."""

    starts: dict[str, float]  # agent id -> start (s from the window's start)
    agents: int
    cars: int  # car agents (a visit's arrival and its departure are two)
    car_moving: np.ndarray[Any, np.dtype[np.float64]]  # per BIN_S bin: seconds of cars moving
    people_moving: np.ndarray[Any, np.dtype[np.float64]]  # ... people walking
    duration_s: float


def window_agents(agents: list[Agent], t0: float, t1: float) -> list[Agent]:
    """The visits whose first agent starts in [t0, t1), shifted so t0 is 0."""
    keep = {id(a) for a in agents if a.after is None and t0 <= a.start < t1}
    keep |= {id(a) for a in agents if a.after is not None and id(a.after) in keep}
    out = [a for a in agents if id(a) in keep]
    for a in out:
        if a.start < math.inf:
            a.start -= t0
    return out


def resolve(model: GarageModel, seed: int, cars: int, t0: float, t1: float) -> Traffic:
    """Move every agent on its own to find when each second half of a visit starts, and when things move."""
    dt = model.garage.poll_interval_s
    agents = window_agents(day_traffic(model, seed, cars=cars), t0, t1)
    nbins = math.ceil((t1 - t0) / BIN_S)
    car_moving = np.zeros(nbins)
    people_moving = np.zeros(nbins)
    starts: dict[str, float] = {}
    done_at: dict[int, float] = {}
    # first halves first (finite starts), then the agents that start after them
    for a in sorted(agents, key=lambda x: x.after is not None):
        if a.after is not None:
            a.start = done_at[id(a.after)]
            a.after = None
        starts[a.id] = a.start
        k = 0
        while not a.done:
            t = a.start + k * dt
            a.step(t, dt)
            if a.moving():
                b = int(t // BIN_S)
                if 0 <= b < nbins:
                    (car_moving if a.car else people_moving)[b] += dt
            k += 1
        # simulate: the step that ends it is at the k-th tick; the next agent starts on the tick after
        done_at[id(a)] = round(a.start + k * dt, 6)
    return Traffic(
        starts=starts,
        agents=len(agents),
        cars=sum(a.car for a in agents),
        car_moving=car_moving,
        people_moving=people_moving,
        duration_s=t1 - t0,
    )


def day_agents(model: GarageModel, seed: int, cars: int, t0: float, t1: float, traffic: Traffic) -> list[Agent]:
    """A fresh copy of the day's agents with the start times ``resolve`` found."""
    agents = window_agents(day_traffic(model, seed, cars=cars), t0, t1)
    for a in agents:
        a.start, a.after = traffic.starts[a.id], None
    return agents


# --------------------------------------------------------------------------- figures


def pct(xs: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs, dtype=np.float64), p)) if len(xs) else float("nan")


@dataclass
class DayRun:
    name: str
    result: Result
    wall_s: float
    dt: float
    car_dark_s: float = 0.0
    cars_dark: int = 0
    car_incidents: int = 0
    max_dark_m: int = 0
    walker_dark_s: float = 0.0
    walkers_dark: int = 0
    dark_times: list[float] = field(default_factory=list)
    #: each time a car drove towards the dark: (start t, agent, where it started, ticks, most metres dark)
    incidents: list[tuple[float, str, str, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        cars = [v for v in self.result.violations if v.what == "dark ahead"]
        walkers = [v for v in self.result.violations if v.what != "dark ahead"]
        self.car_dark_s = len(cars) * self.dt
        self.walker_dark_s = len(walkers) * self.dt
        self.cars_dark = len({v.agent for v in cars})
        self.walkers_dark = len({v.agent for v in walkers})
        self.max_dark_m = max((v.dark_m for v in cars), default=0)
        last: dict[str, float] = {}
        open_: dict[str, int] = {}  # agent -> index of its current incident
        for v in cars:
            if v.t - last.get(v.agent, -math.inf) > 1.5 * self.dt:
                self.car_incidents += 1
                self.dark_times.append(v.t)
                open_[v.agent] = len(self.incidents)
                self.incidents.append((v.t, v.agent, v.where, 0, 0))
            i = open_[v.agent]
            t0, agent, where, n, dark = self.incidents[i]
            self.incidents[i] = (t0, agent, where, n + 1, max(dark, v.dark_m))
            last[v.agent] = v.t

    def summary(self, always_on_lh: float) -> dict[str, Any]:
        r = self.result
        return {
            "controller": self.name,
            "light_hours": r.light_hours,
            "pct_of_always_on": 100 * r.light_hours / always_on_lh,
            "car_dark_s": self.car_dark_s,
            "cars_dark": self.cars_dark,
            "car_incidents": self.car_incidents,
            "max_dark_m": self.max_dark_m,
            "walker_dark_s": self.walker_dark_s,
            "walkers_dark": self.walkers_dark,
            "checked_car_s": r.checked_car_s,
            "checked_walker_s": r.checked_walker_s,
            "decisions": len(r.decision_ms),
            "decision_ms_p50": pct(r.decision_ms, 50),
            "decision_ms_p99": pct(r.decision_ms, 99),
            "decision_ms_max": max(r.decision_ms, default=float("nan")),
            "steps": r.steps,
            "wall_s": self.wall_s,
        }


def run_day(
    name: str, model: GarageModel, seed: int, cars: int, t0: float, t1: float, traffic: Traffic, started: float
) -> DayRun:
    agents = day_agents(model, seed, cars, t0, t1, traffic)
    mark = [0.0]

    def progress(t: float) -> None:
        if t >= mark[0]:
            print(f"  {name}: {(t0 + t) / 3600:5.2f} h  [{time.perf_counter() - started:.0f} s]", flush=True)
            mark[0] = t + 4 * 3600

    w0 = time.perf_counter()
    r = simulate(model, agents, make_controller(name, model), duration_s=t1 - t0, progress=progress)
    return DayRun(name, r, time.perf_counter() - w0, model.garage.poll_interval_s)


def _pin_worker(counter: Any) -> None:
    """Pool initializer: each worker process on its own core."""
    with counter.get_lock():
        i = counter.value
        counter.value += 1
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {_CORES[i % len(_CORES)]})


def _day_worker(name: str, seed: int, cars: int, t0: float, t1: float, traffic: Traffic, started: float) -> DayRun:
    return run_day(name, build_model(), seed, cars, t0, t1, traffic, started)


def build_model() -> GarageModel:
    return GarageModel.build(Garage.model_validate(layout(EXAMPLE_LANES)))


def lights_full_series(model: GarageModel, r: Result, duration_s: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Mean number of lights at full in each BIN_S bin, from the level log."""
    g = model.garage
    level = {c.id: [g.levels.standby_pct] * c.groups for c in g.controllers}
    size = {(c, grp): len(ix) for c, groups in model.groups.items() for grp, ix in groups.items()}
    n = 0
    ts, ns = [0.0], [0.0]
    for ch in sorted(r.log, key=lambda x: x.t):
        was = level[ch.controller][ch.group] >= g.levels.full_pct
        now = ch.level >= g.levels.full_pct
        level[ch.controller][ch.group] = ch.level
        if was != now:
            n += size.get((ch.controller, ch.group), 0) * (1 if now else -1)
            ts.append(ch.t)
            ns.append(float(n))
    ts.append(duration_s)
    ns.append(float(n))
    t_arr, n_arr = np.asarray(ts), np.asarray(ns)
    # integral of the step function at each change point, then at the bin edges (exact: linear in between)
    cum = np.concatenate([[0.0], np.cumsum(n_arr[:-1] * np.diff(t_arr))])
    edges = bin_edges(duration_s)
    out: np.ndarray[Any, np.dtype[np.float64]] = np.diff(np.interp(edges, t_arr, cum)) / np.diff(edges)
    return out


def bin_edges(duration_s: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """BIN_S bins over [0, duration_s]; the last one may be shorter."""
    edges: np.ndarray[Any, np.dtype[np.float64]] = np.append(np.arange(0.0, duration_s, BIN_S), duration_s)
    return edges


# --------------------------------------------------------------------------- events per second


@dataclass
class Replay:
    workload: str
    controller: str
    reads: int
    changes: int
    sim_s: float  # how long the reads take on the bus (reads x poll interval)
    wall_s: float
    tick_us: list[float]
    cpu_s: float  # the second pass, thread CPU time (wall - CPU: waiting for the core on a shared machine)
    cpu_us: list[float]

    @property
    def reads_per_s(self) -> float:
        return self.reads / self.wall_s

    @property
    def changes_per_s(self) -> float:
        return self.changes / self.wall_s


Reads = list[tuple[float, list[tuple[str, tuple[bool, ...]]]]]


def count_changes(model: GarageModel, ticks: Reads) -> int:
    wired = {m.id: sorted(s.input for s in model.sensors if s.module == m.id) for m in model.garage.sensor_modules}
    last: dict[str, tuple[bool, ...]] = {}
    n = 0
    for _, reads in ticks:
        for module, bits in reads:
            prev = last.get(module)
            if prev is not None:
                n += sum(prev[i] != bits[i] for i in wired[module])
            else:
                n += sum(bits[i] for i in wired[module])
            last[module] = bits
    return n


def rush_reads(model: GarageModel, seed: int, visits: int) -> Reads:
    """Every module read of a rush: ``visits`` visits starting within one minute, recorded from simulate."""
    rec = Recorder(GarageController(model))
    agents = random_traffic(model, seed, duration_s=120.0, visits=visits)
    simulate(model, agents, rec, duration_s=240.0, check=False, skip_idle=False)
    return rec.ticks


def toggle_reads(model: GarageModel, seed: int, flips: int, n: int) -> Reads:
    """``n`` reads of every module, ``flips`` random wired inputs changing on each."""
    rng = random.Random(seed)
    dt = model.garage.poll_interval_s
    state = {m.id: [False] * m.inputs for m in model.garage.sensor_modules}
    wired = {m.id: sorted(s.input for s in model.sensors if s.module == m.id) for m in model.garage.sensor_modules}
    out: Reads = []
    for k in range(n):
        reads = []
        for m, bits in state.items():
            for i in rng.sample(wired[m], min(flips, len(wired[m]))):
                bits[i] = not bits[i]
            reads.append((m, tuple(bits)))
        out.append((k * dt, reads))
    return out


def _feed(model: GarageModel, name: str, ticks: Reads, clock: Callable[[], float]) -> list[float]:
    """A fresh controller takes every tick's reads and steps; seconds of ``clock`` per tick."""
    ctl = make_controller(name, model)
    lists = [(t, [(m, list(b)) for m, b in reads]) for t, reads in ticks]
    times: list[float] = []
    for t, reads in lists:
        t0 = clock()
        for module, bits in reads:
            ctl.set_inputs(t, module, bits)
        ctl.step(t)
        times.append(clock() - t0)
    return times


def replay(model: GarageModel, workload: str, name: str, ticks: Reads) -> Replay:
    """Two passes: wall time per tick (perf_counter), then CPU time per tick (thread_time, about 2.5 µs a read)."""
    wall = _feed(model, name, ticks, time.perf_counter)
    cpu = _feed(model, name, ticks, time.thread_time)
    return Replay(
        workload,
        name,
        sum(len(r) for _, r in ticks),
        count_changes(model, ticks),
        len(ticks) * model.garage.poll_interval_s,
        sum(wall),
        [x * 1e6 for x in wall],
        sum(cpu),
        [x * 1e6 for x in cpu],
    )


# --------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": str(os.cpu_count())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        info["ram"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    digest = hashlib.sha256()
    files = [*sorted((REPO / "edge" / "garage").glob("*.py")), REPO / "firmware-sim" / "firmware_sim" / "garage.py"]
    for f in files:
        digest.update(f.read_bytes())
    info["garage_code_sha256"] = digest.hexdigest()[:12]
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "edge/garage", "firmware-sim/firmware_sim/garage.py"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=5,
        ).stdout.split()
        info["changed"] = ", ".join(x for x in dirty if "/" in x)
    except (OSError, subprocess.SubprocessError):
        info.setdefault("commit", "?")
    return info


def print_machine(m: dict[str, str]) -> None:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    aff = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(
        f"machine: {m.get('cpu', '?')}, {m['cores']} CPUs, {m.get('ram', '?')} RAM; Python {m['python']}; "
        f"{m['platform']}; pinned to cores {aff}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"code: commit {m.get('commit') or '?'}"
        + (f" + changes in {m['changed']}" if m.get("changed") else "")
        + f"; garage code sha256 {m['garage_code_sha256']}"
    )


def fmt(x: float, nd: int = 0) -> str:
    return "–" if x != x else f"{x:,.{nd}f}"


def clock(t: float) -> str:
    t = int(t)
    return f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}"


def print_day(runs: list[DayRun], traffic: Traffic, hours: str, t0: float) -> list[dict[str, Any]]:
    always = next(r for r in runs if r.name == "always on").result.light_hours
    ours = next(r for r in runs if r.name == "ours").result.light_hours
    rows = [r.summary(always) for r in runs]
    car_s = runs[0].result.checked_car_s
    walk_s = runs[0].result.checked_walker_s
    print(
        f"\n## Day {hours}: {traffic.agents} agents ({traffic.cars} drives in or out, the rest walks to or from the "
        f"lift), {car_s / 60:.0f} car-minutes and {walk_s / 60:.0f} walker-minutes checked"
    )
    print(
        "\n| controller | light-hours | % of always on | ours / this | car-s dark ahead | drives dark ahead "
        "| incidents | max dark m | walker-s in dark | decision ms p50 / p99 / max | decisions | sim wall s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r, row in zip(runs, rows, strict=True):
        print(
            f"| {r.name} | {fmt(row['light_hours'], 1)} | {row['pct_of_always_on']:.1f}% "
            f"| {ours / row['light_hours']:.2f} | {fmt(row['car_dark_s'], 1)} | {row['cars_dark']} of {traffic.cars} "
            f"| {row['car_incidents']} | {row['max_dark_m']} | {fmt(row['walker_dark_s'], 1)} "
            f"| {row['decision_ms_p50']:.3f} / {row['decision_ms_p99']:.3f} / {row['decision_ms_max']:.2f} "
            f"| {row['decisions']:,} | {r.wall_s:.0f} |"
        )
    for r, row in zip(runs, rows, strict=True):
        row["incidents"] = [
            {"t": t0 + t, "agent": a, "where": w, "ticks": n, "dark_m": d} for t, a, w, n, d in r.incidents
        ]
        if r.incidents and not r.name.startswith("timer"):
            print(f"\n{r.name}: every car that drove towards the dark (time of day, car, where, for how long)")
            for t, a, w, n, d in r.incidents[:20]:
                print(f"  {clock(t0 + t)} {a} at {w}: {n} ticks ({n * r.dt:.2f} s), up to {d} m dark")
    return rows


def print_events(model: GarageModel, reps: list[Replay], poll_s: float) -> list[dict[str, Any]]:
    need = 1 / poll_s
    bus_max = 1 / read_inputs_s(32, BAUD)
    print(
        f"\n## Events per second (one core): the service reads each module every {poll_s * 1000:.0f} ms = "
        f"{need:.0f} reads/s (one 32-input read at {BAUD} baud takes {read_inputs_s(32, BAUD) * 1000:.1f} ms: "
        f"at most {bus_max:.0f} reads/s back to back)"
    )
    print(
        "\n| workload | controller | reads | input changes | changes per read | reads/s sustained "
        "| input changes/s sustained | µs per read p50 / p99 / max | CPU µs per read p50 / p99 / max "
        "| headroom (reads/s ÷ 20) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows: list[dict[str, Any]] = []
    for r in reps:
        row: dict[str, Any] = {
            "workload": r.workload,
            "controller": r.controller,
            "reads": r.reads,
            "changes": r.changes,
            "sim_s": r.sim_s,
            "wall_s": r.wall_s,
            "reads_per_s": r.reads_per_s,
            "changes_per_s": r.changes_per_s,
            "us_p50": pct(r.tick_us, 50),
            "us_p99": pct(r.tick_us, 99),
            "us_max": max(r.tick_us),
            "headroom": r.reads_per_s / need,
            "cpu_s": r.cpu_s,
            "cpu_us_p50": pct(r.cpu_us, 50),
            "cpu_us_p99": pct(r.cpu_us, 99),
            "cpu_us_max": max(r.cpu_us),
            "reads_per_cpu_s": r.reads / r.cpu_s,
        }
        rows.append(row)
        print(
            f"| {r.workload} | {r.controller} | {r.reads:,} | {r.changes:,} | {r.changes / r.reads:.2f} "
            f"| {fmt(r.reads_per_s)} | {fmt(r.changes_per_s)} "
            f"| {row['us_p50']:.0f} / {row['us_p99']:.0f} / {row['us_max']:.0f} "
            f"| {row['cpu_us_p50']:.0f} / {row['cpu_us_p99']:.0f} / {row['cpu_us_max']:.0f} "
            f"| {row['headroom']:.0f}× |"
        )
    wired = max(sum(1 for s in model.sensors if s.module == m.id) for m in model.garage.sensor_modules)
    bus_changes = wired * need
    ours = [row for row in rows if row["controller"] == "ours"]
    worst = min(ours, key=lambda row: row["reads_per_s"])
    print(
        f"\nthe bus brings at most {need:.0f} reads/s and {bus_changes:.0f} input changes/s ({wired} wired inputs "
        f"flipping on every read); ours, worst workload ({worst['workload']}): {worst['reads_per_s']:,.0f} reads/s "
        f"and {worst['changes_per_s']:,.0f} changes/s wall ({worst['headroom']:.0f}× the reads, "
        f"{worst['changes_per_s'] / bus_changes:.0f}× the changes), "
        f"{worst['reads_per_cpu_s']:,.0f} reads per CPU-second "
        f"({worst['reads_per_cpu_s'] / need:.0f}×)"
    )
    return rows


def plot(
    model: GarageModel, runs: list[DayRun], traffic: Traffic, t0_h: float, path: Path, names: Sequence[str]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for name in names for r in runs if r.name == name]
    fig, axes = plt.subplots(1 + len(sel), 1, figsize=(12, 2.1 * (1 + len(sel))), dpi=110, sharex=True)
    edges = bin_edges(traffic.duration_s)
    nb, width = len(edges) - 1, np.diff(edges)
    hours = t0_h + edges / 3600
    ax = axes[0]
    k = np.ones(10) / 10  # 10-minute running mean
    cars = np.convolve(traffic.car_moving[:nb] / width, k)[4 : 4 + nb]
    people = np.convolve(traffic.people_moving[:nb] / width, k)[4 : 4 + nb]
    ax.stairs(cars, hours, fill=True, color="tab:blue", alpha=0.6, label="cars driving")
    ax.stairs(people, hours, color="tab:green", lw=1.0, label="people walking")
    ax.set_ylabel("moving now\n(10-min mean)")
    ax.set_title(
        f"example garage, {traffic.cars} drives in or out and the walks to and from the lift: "
        "traffic, and lights at full (mean of each minute)",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left")
    always = next(r for r in runs if r.name == "always on").result.light_hours
    n_lights = len(model.lights)
    colors = {"always on": "tab:gray", "ours": "tab:blue"}
    for ax, r in zip(axes[1:], sel, strict=True):
        series = lights_full_series(model, r.result, traffic.duration_s)
        ax.stairs(series, hours, fill=True, color=colors.get(r.name, "tab:orange"), alpha=0.7)
        ax.set_ylim(0, n_lights * 1.12)
        ax.set_ylabel("lights at full")
        label = (
            f"{r.name}: {r.result.light_hours:,.0f} light-hours "
            f"({100 * r.result.light_hours / always:.0f}% of always on), "
            f"{r.car_incidents} time{'' if r.car_incidents == 1 else 's'} a car drove towards the dark "
            f"({r.car_dark_s:.1f} car-s)"
        )
        ax.set_title(label, fontsize=9, loc="left")
        if r.dark_times:
            xs = [t0_h + t / 3600 for t in r.dark_times]
            ax.plot(xs, [n_lights * 1.06] * len(xs), "|", color="tab:red", ms=6, label="a car drives into the dark")
            ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("hour of the day")
    axes[-1].set_xlim(t0_h, t0_h + traffic.duration_s / 3600)
    if traffic.duration_s >= 12 * 3600:
        axes[-1].set_xticks(np.arange(math.ceil(t0_h), t0_h + traffic.duration_s / 3600 + 0.01, 2.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def parse_window(s: str) -> tuple[float, float]:
    a, b = s.split("-")
    return float(a), float(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="the busiest hour (18-19 h) of a 300-car day, smaller event runs, no plot (about 2 min)",
    )
    ap.add_argument(
        "--cars",
        type=int,
        default=None,
        help="cars in the day's traffic, each leaves and comes back once (default 150; --quick: 300)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--hours",
        type=parse_window,
        default=(0.0, 24.0),
        help="only the visits starting in this window of the day, e.g. 17-20 (hours)",
    )
    ap.add_argument("--timers", default="60,30", help="motion-timer hold times in s (baselines)")
    ap.add_argument("--rush-visits", type=int, default=30, help="visits starting within one minute (events bench)")
    ap.add_argument("--toggle-reads", type=int, default=4000, help="reads per random-toggle workload")
    ap.add_argument(
        "--jobs", type=int, default=2, help="processes for the day's runs, one per core (default 2; 1: in this one)"
    )
    ap.add_argument("--plot", type=Path, default=None, help=f"default {DOCS / 'garage_day.png'} (not with --quick)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = ap.parse_args(argv)
    if args.cars is None:
        args.cars = 300 if args.quick else 150
    if args.quick:
        if args.hours == (0.0, 24.0):
            args.hours = (18.0, 19.0)
        args.toggle_reads = min(args.toggle_reads, 1500)
        args.rush_visits = min(args.rush_visits, 20)
    plot_path = args.plot if args.plot is not None else (None if args.quick else DOCS / "garage_day.png")
    started = time.perf_counter()
    info = machine()
    print_machine(info)
    model = build_model()
    g = model.garage
    zones = MotionTimers(model, 60).zones
    print(
        f"garage: {len(model.lights)} lights, {sum(len(x) for x in model.groups.values())} DALI groups on "
        f"{len(g.controllers)} controllers, {len(model.sensors)} presence sensors on "
        f"{len(g.sensor_modules)} module(s); "
        f"standby {g.levels.standby_pct}%, ahead_m {g.ahead_m:g}, hold_s {g.hold_s:g}, lost_hold_s {g.lost_hold_s:g}; "
        f"timer zones: {min(map(len, zones))}-{max(map(len, zones))} lights per sensor "
        f"(mean {sum(map(len, zones)) / len(zones):.1f})"
    )
    t0, t1 = args.hours[0] * 3600, args.hours[1] * 3600
    traffic = resolve(model, args.seed, args.cars, t0, t1)
    hours = f"{args.hours[0]:g}-{args.hours[1]:g} h"
    print(
        f"traffic: day_traffic(cars={args.cars}, seed={args.seed}), window {hours}: {traffic.agents} agents; "
        f"start times resolved in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    names = ["ours", "always on", *(f"timer {float(x):g} s" for x in args.timers.split(","))]
    jobs = max(1, min(args.jobs, len(_CORES), len(names)))
    print(f"day runs: {len(names)} controllers, {jobs} process(es), each pinned to one core", flush=True)
    done: dict[str, DayRun] = {}

    def finished(run: DayRun) -> None:
        done[run.name] = run
        print(
            f"{run.name}: {run.result.light_hours:.1f} light-hours, {len(run.result.violations)} violating ticks, "
            f"{run.result.steps:,} ticks in {run.wall_s:.0f} s  [{time.perf_counter() - started:.0f} s]",
            flush=True,
        )

    day_args = (args.seed, args.cars, t0, t1, traffic, started)
    if jobs == 1:
        for name in names:
            finished(run_day(name, model, *day_args))
    else:
        ctx = multiprocessing.get_context("fork")
        counter = ctx.Value("i", 0)
        with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_pin_worker, initargs=(counter,)
        ) as pool:
            # ours first (the slowest), always on last (the fastest): the two processes finish close together
            order = ["ours", *[n for n in names if n not in ("ours", "always on")], "always on"]
            futures = [pool.submit(_day_worker, name, *day_args) for name in order]
            for fut in concurrent.futures.as_completed(futures):
                finished(fut.result())
    runs = [done[name] for name in names]

    reps: list[Replay] = []
    workloads: list[tuple[str, Callable[[], Reads]]] = [
        (f"rush: {args.rush_visits} visits in 1 min", lambda: rush_reads(model, args.seed, args.rush_visits)),
        ("random: 2 inputs flip per read", lambda: toggle_reads(model, args.seed, 2, args.toggle_reads)),
        ("random: all 28 flip per read", lambda: toggle_reads(model, args.seed, 28, args.toggle_reads)),
    ]
    for label, make in workloads:
        ticks = make()
        for name in ("ours", f"timer {float(args.timers.split(',')[0]):g} s"):
            reps.append(replay(model, label, name, ticks))
        print(f"events: {label} done  [{time.perf_counter() - started:.0f} s]", flush=True)

    day_rows = print_day(runs, traffic, hours, t0)
    always = next(r for r in runs if r.name == "always on").result.light_hours
    ours = next(r for r in runs if r.name == "ours")
    for r in runs:
        if r.name.startswith("timer"):
            ol, rl = ours.result.light_hours, r.result.light_hours
            print(
                f"ours uses {ol / always:.1%} of always on's light-hours ({always / ol:.1f}× less) and "
                f"{ol / rl:.2f}× the {r.name} baseline's; dark ahead: ours {ours.car_dark_s:.1f} car-s, "
                f"{r.name} {r.car_dark_s:.1f} car-s"
            )
    ev_rows = print_events(model, reps, g.poll_interval_s)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"run took {time.perf_counter() - started:.0f} s")
    if plot_path is not None and not args.no_plot:
        timer60 = next((r.name for r in runs if r.name.startswith("timer")), "")
        plot(model, runs, traffic, args.hours[0], plot_path, ["always on", timer60, "ours"])
        print(f"wrote {plot_path}")
    if args.json is not None:
        args.json.write_text(
            json.dumps({"machine": info, "args": vars(args), "day": day_rows, "events": ev_rows}, default=str, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
