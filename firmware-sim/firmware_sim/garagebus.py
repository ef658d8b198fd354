"""The garage's devices as Modbus RTU slaves, and the garage itself in real time.

* :class:`LightControllerSim` - a Modbus-to-DALI light controller (register map in
  :mod:`devices.lighting`): a *write multiple registers* request is answered at
  once, then every group whose level changed is applied one DALI frame
  (``dali_frame_ms``) after the other; writing the broadcast register sets every
  group with one frame. No command for ``failsafe_s`` sets every group full.
  Every applied change is logged with its time. ``alive = False`` makes it
  ignore requests (with the bus's ``silent`` fault it is a dead controller).
* :class:`SensorModuleSim` - a digital-input module whose inputs are what the
  presence sensors wired to it see.
* :class:`GarageWorld` - agents (:mod:`firmware_sim.garage`) moving in real time,
  the sensors that see them, and the invariant checked against what the
  controllers' lamps really are at: what the simulator runs for ``sc sim run``,
  the demo and the end-to-end tests.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from pymodbus.simulator import DataType, SimData, SimDevice

from devices.lighting import BROADCAST_REGISTER, STATUS_FAILSAFE, STATUS_REGISTER
from edge.garage.model import GarageModel
from sc.config.schema import Garage, LightController, SensorModule

from .door import _set_bit
from .garage import Agent, SensorField, Violation, random_traffic

__all__ = ["GarageWorld", "LightControllerSim", "SensorModuleSim"]

log = logging.getLogger(__name__)

_WRITE_REGISTERS = frozenset({6, 16})
_READ_INPUT_REGISTERS = 4
_READ_DISCRETE_INPUTS = 2
_REGS = BROADCAST_REGISTER + 1


@dataclass(frozen=True)
class Applied:
    t: float
    group: int
    level: int


class LightControllerSim:
    def __init__(
        self, cfg: LightController, *, standby: int, full: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self.full = full
        self.clock = clock
        self._lock = threading.Lock()
        self.levels = [standby] * cfg.groups  # what the lamps are at
        self.table = [standby] * cfg.groups  # what was commanded
        self._pending: list[tuple[float, int, int]] = []
        self._dali_free = 0.0
        self.last_command = clock()
        self.failsafe = False
        self.alive = True
        self.log: list[Applied] = []
        self.writes = 0

    # ---------------------------------------------------------------- physics

    def advance(self) -> None:
        now = self.clock()
        with self._lock:
            due = [p for p in self._pending if p[0] <= now]
            self._pending = [p for p in self._pending if p[0] > now]
            for at, grp, lv in sorted(due):
                self._apply(at, grp, lv)
            if not self.failsafe and now - self.last_command >= self.cfg.failsafe_s:
                self.failsafe = True
                self._pending.clear()
                log.warning(
                    "light controller %s: no command for %.1f s: failsafe, all full", self.cfg.id, self.cfg.failsafe_s
                )
                for grp in range(self.cfg.groups):
                    self._apply(now, grp, self.full)

    def _apply(self, at: float, group: int, level: int) -> None:
        if self.levels[group] != level:
            self.levels[group] = level
            self.log.append(Applied(at, group, level))

    def command(self, address: int, values: list[int]) -> None:
        """What a register write does (also callable directly from tests)."""
        now = self.clock()
        frame = self.cfg.dali_frame_ms / 1000
        with self._lock:
            self.writes += 1
            self.last_command = now
            self.failsafe = False
            at = max(now, self._dali_free)
            if address == BROADCAST_REGISTER:
                at += frame
                for grp in range(self.cfg.groups):
                    self.table[grp] = values[0]
                    self._pending.append((at, grp, values[0]))
            else:
                for i, v in enumerate(values):
                    grp = address + i
                    if grp < self.cfg.groups and self.table[grp] != v:
                        self.table[grp] = v
                        at += frame
                        self._pending.append((at, grp, v))
            self._dali_free = at

    def group_levels(self) -> list[int]:
        self.advance()
        with self._lock:
            return list(self.levels)

    # ---------------------------------------------------------------- modbus

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        if not self.alive:
            return
        if function_code in _WRITE_REGISTERS and set_values is not None:
            self.command(address, [int(v) for v in set_values])
        elif function_code == _READ_INPUT_REGISTERS:
            self.advance()
            with self._lock:
                shown = list(self.levels) + [0] * (_REGS - len(self.levels))
                shown[STATUS_REGISTER] = STATUS_FAILSAFE if self.failsafe else 0
            for i in range(len(current_registers)):
                reg = start_address + i
                if 0 <= reg < _REGS:
                    current_registers[i] = shown[reg]

    def sim_device(self) -> SimDevice:
        return SimDevice(
            id=self.cfg.unit,
            simdata=(
                [SimData(0, values=False, datatype=DataType.BITS)],
                [SimData(0, values=False, datatype=DataType.BITS)],
                [SimData(0, count=_REGS, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=_REGS, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )


class SensorModuleSim:
    def __init__(self, cfg: SensorModule, bits: Callable[[], list[bool]]) -> None:
        self.cfg = cfg
        self.bits = bits
        self.reads = 0

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        if function_code == _READ_DISCRETE_INPUTS:
            self.reads += 1
            bits = self.bits()
            for i in range(self.cfg.inputs):
                _set_bit(current_registers, start_address, i, bits[i] if i < len(bits) else False)

    def sim_device(self) -> SimDevice:
        n_regs = math.ceil(self.cfg.inputs / 16)
        return SimDevice(
            id=self.cfg.unit,
            simdata=(
                [SimData(0, values=False, datatype=DataType.BITS)],
                [SimData(0, count=n_regs * 16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )


@dataclass
class GarageWorld:
    """A garage's agents, sensors and lamps in real time; :meth:`step` is called every ~50 ms."""

    garage: Garage
    agents: list[Agent] = field(default_factory=list)
    traffic_seed: int | None = None  # keep random traffic coming (the demo)
    grace_s: float = 0.6
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.model = GarageModel.build(self.garage)
        self.field = SensorField(self.model)
        lv = self.garage.levels
        self.controllers = {
            c.id: LightControllerSim(c, standby=lv.standby_pct, full=lv.full_pct, clock=self.clock)
            for c in self.garage.controllers
        }
        self.modules = {m.id: SensorModuleSim(m, partial(self.module_bits, m.id)) for m in self.garage.sensor_modules}
        self.violations: list[Violation] = []
        self.checked_car_s = 0.0
        self.checked_walker_s = 0.0
        self._lock = threading.Lock()
        self._bits: list[bool] = [False] * len(self.model.sensors)
        self._t0 = self.clock()
        self._last: float | None = None
        self._rng = random.Random(self.traffic_seed)
        self._next_batch = 0.0
        self._batches = 0
        self.stuck: dict[str, bool] = {}  # sensor id -> forced value

    def now(self) -> float:
        return self.clock() - self._t0

    def add(self, agents: list[Agent]) -> None:
        """Agents whose ``start`` is in world seconds (see :meth:`now`)."""
        with self._lock:
            self.agents += agents

    def module_bits(self, module: str) -> list[bool]:
        cfg = next(m for m in self.garage.sensor_modules if m.id == module)
        with self._lock:
            bits = [False] * cfg.inputs
            for s in self.model.sensors:
                if s.module == module:
                    forced = self.stuck.get(s.id)
                    bits[s.input] = self._bits[s.index] if forced is None else forced
            return bits

    def step(self) -> None:
        t = self.now()
        dt = 0.05 if self._last is None else min(0.5, t - self._last)
        self._last = t
        if self.traffic_seed is not None and t >= self._next_batch:
            batch = random_traffic(self.model, self._rng.randrange(1 << 30), duration_s=120, visits=3)
            for a in batch:
                a.id = f"{a.id}@{self._batches}"
                if a.start < math.inf:
                    a.start += t
            self._batches += 1
            self._next_batch = t + 120
            self.add(batch)
        with self._lock:
            agents = list(self.agents)
        for a in agents:
            if a.start == math.inf and a.after is not None and a.after.done:
                a.start = t
            a.step(t, dt)
        live = [a for a in agents if a.start <= t and not a.done]
        bits = self.field.read(t, live)
        with self._lock:
            self._bits = bits
            self.agents = [a for a in self.agents if not a.done]
        self._check(t, dt, live)

    def full_lights(self) -> list[bool]:
        levels = {cid: c.group_levels() for cid, c in self.controllers.items()}
        full = self.garage.levels.full_pct
        return [levels[lt.controller][lt.group] >= full for lt in self.model.lights]

    def _check(self, t: float, dt: float, live: list[Agent]) -> None:
        if not live:
            for c in self.controllers.values():
                c.advance()
            return
        full = self.full_lights()
        m = self.model
        for a in live:
            pos = a.place()
            if pos is None or t - a.moving_since < self.grace_s:
                continue
            if a.car and a.moving():
                self.checked_car_s += dt
                dark = [p for p in [pos, *a.ahead(self.garage.ahead_m)] if not m.lit(p, full)]
                if dark:
                    x, y = m.graph.xy(dark[0])
                    where = m.graph.describe_pos(dark[0])
                    self.violations.append(Violation(t, a.id, "dark ahead", where, round(x, 1), round(y, 1), len(dark)))
            elif not a.car:
                self.checked_walker_s += dt
                if not m.lit(pos, full):
                    x, y = m.graph.xy(pos)
                    where = m.graph.describe_pos(pos)
                    self.violations.append(
                        Violation(t, a.id, "standing in the dark", where, round(x, 1), round(y, 1), 0)
                    )

    def busy(self) -> bool:
        with self._lock:
            return any(not a.done for a in self.agents)
