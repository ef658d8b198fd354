"""A simulated gate door controller: a Modbus RTU relay board and the door it locks.

The controller is one Modbus slave with

* coil ``relay_coil``: on = the lock is released (the edge writes it, function 5);
* discrete input ``contact_input``: on = the door is open (the edge polls it, function 2).

Behind the registers sits a tiny physical model that a test or a scene drives:
:meth:`DoorControllerSim.push` (someone pushes the door: it opens only while
the relay is on, unless ``force=True``), :meth:`~DoorControllerSim.close`,
:meth:`~DoorControllerSim.hold` (the door is held or propped open), and the
door closing by itself ``auto_close_s`` after it opened. Every relay change is
recorded with its time, so a test can measure the unlock pulse the edge gave.

The model is thread-safe: the pymodbus server reads and writes it from its
own event loop while a test pushes the door from another thread.

:meth:`DoorControllerSim.start` serves it alone on its own :class:`PtyBus`
(with the bus's fault injection: ``silent``, ``garbage``, ``bad_crc``) from a
background thread; :meth:`DoorControllerSim.sim_device` gives the pymodbus
device for a server that simulates a whole RS-485 line.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from sc.config.schema import DoorConfig

from .ptybus import Fault, PtyBus

__all__ = ["DoorControllerSim", "RelayChange"]

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_COIL_FUNCTIONS = frozenset({1, 5, 15})  # read coils, write single coil, write multiple coils
_READ_DISCRETE_INPUTS = 2


@dataclass(frozen=True, slots=True)
class RelayChange:
    """The relay switched at ``at`` (the sim's clock) to ``on``."""

    at: float
    on: bool


def _set_bit(registers: list[int], start_register: int, address: int, value: bool) -> None:
    """Set bit ``address`` in a pymodbus bit block (16 bits a register, bit 0 first) that starts at register
    ``start_register``."""
    index = address // 16 - start_register
    if not 0 <= index < len(registers):
        return
    bits = SimUtils.registersToBits([registers[index]])
    bits[address % 16] = value
    registers[index] = SimUtils.bitsToRegisters(bits)[0]


class DoorControllerSim:
    """The relay, the contact and the door, as a Modbus slave; see the module docstring."""

    def __init__(
        self,
        *,
        unit: int = 1,
        relay_coil: int = 0,
        contact_input: int = 0,
        auto_close_s: float | None = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.unit = unit
        self.relay_coil = relay_coil
        self.contact_input = contact_input
        self.auto_close_s = auto_close_s
        self.clock = clock
        self._lock = threading.Lock()
        self._relay = False
        self._open = False
        self._opened_at: float | None = None
        self._held = False
        self.relay_log: list[RelayChange] = []
        self.openings = 0
        self.forced_openings = 0
        # serving (start/stop)
        self.bus: PtyBus | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @classmethod
    def from_config(
        cls, cfg: DoorConfig, *, auto_close_s: float | None = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> DoorControllerSim:
        """A sim at the unit and addresses a site config's door names."""
        return cls(
            unit=cfg.unit,
            relay_coil=cfg.relay_coil,
            contact_input=cfg.contact_input,
            auto_close_s=auto_close_s,
            clock=clock,
        )

    # ---------------------------------------------------------------- physics

    def _advance(self) -> None:
        """Close a door whose self-closer has had ``auto_close_s`` (caller holds the lock)."""
        if (
            self._open
            and not self._held
            and self.auto_close_s is not None
            and self._opened_at is not None
            and self.clock() - self._opened_at >= self.auto_close_s
        ):
            self._open = False
            self._opened_at = None
            log.info("door sim unit=%d closed by itself", self.unit)

    @property
    def relay_on(self) -> bool:
        """The relay's coil: on = the lock is released."""
        with self._lock:
            return self._relay

    @property
    def is_open(self) -> bool:
        """The door contact: True while the door is open."""
        with self._lock:
            self._advance()
            return self._open

    def set_relay(self, on: bool) -> None:
        """Switch the relay (what a Modbus coil write does); a change is recorded in :attr:`relay_log`."""
        with self._lock:
            if on == self._relay:
                return
            self._relay = on
            self.relay_log.append(RelayChange(self.clock(), on))
        log.info("door sim unit=%d relay %s", self.unit, "on (lock released)" if on else "off (locked)")

    def push(self, *, force: bool = False) -> bool:
        """Someone pushes the door. It opens if the lock is released, or if ``force`` (a forced door).

        Returns whether the door is open afterwards.
        """
        with self._lock:
            self._advance()
            if self._open:
                return True
            if not (self._relay or force):
                return False
            self._open = True
            self._opened_at = self.clock()
            self.openings += 1
            forced = not self._relay
            self.forced_openings += forced
        log.info("door sim unit=%d opened%s", self.unit, " by force while locked" if forced else "")
        return True

    def hold(self) -> None:
        """The door is held (or propped) open: no self-closing until :meth:`close`.

        On a closed door it applies to the next opening.
        """
        with self._lock:
            self._held = True
        log.info("door sim unit=%d held open", self.unit)

    def close(self) -> None:
        """The door is shut (and no longer held)."""
        with self._lock:
            was_open = self._open
            self._open = False
            self._opened_at = None
            self._held = False
        if was_open:
            log.info("door sim unit=%d closed", self.unit)

    def pulses(self) -> list[tuple[float, float | None]]:
        """The relay's on periods as ``(on_at, off_at)``; ``off_at`` is None while it is still on."""
        with self._lock:
            changes = list(self.relay_log)
        out: list[tuple[float, float | None]] = []
        for change in changes:
            if change.on:
                out.append((change.at, None))
            elif out and out[-1][1] is None:
                out[-1] = (out[-1][0], change.at)
        return out

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
        """pymodbus action: apply coil writes to the model and show the model in the bit blocks."""
        if function_code in _COIL_FUNCTIONS:
            if set_values is not None and address <= self.relay_coil < address + len(set_values):
                self.set_relay(bool(set_values[self.relay_coil - address]))
            _set_bit(current_registers, start_address, self.relay_coil, self.relay_on)
        elif function_code == _READ_DISCRETE_INPUTS:
            _set_bit(current_registers, start_address, self.contact_input, self.is_open)

    def sim_device(self) -> SimDevice:
        """The pymodbus device: one coil and one discrete input (the register blocks are unused)."""
        return SimDevice(
            id=self.unit,
            simdata=(
                [SimData(self.relay_coil, values=False, datatype=DataType.BITS)],
                [SimData(self.contact_input, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )

    # ---------------------------------------------------------------- serving alone on a pty

    @property
    def client_port(self) -> str:
        """The serial device the edge opens (after :meth:`start`)."""
        if self.bus is None:
            raise RuntimeError("the door sim is not started")
        return self.bus.client_port

    def set_fault(self, fault: Fault | str) -> None:
        """Inject a fault on the sim's replies: ``silent``, ``garbage``, ``bad_crc`` or ``none``."""
        if self.bus is None:
            raise RuntimeError("the door sim is not started")
        self.bus.set_fault(self.unit, fault)

    def start(self, *, link: Path | None = None, baudrate: int = 9600, timeout: float = 5.0) -> DoorControllerSim:
        """Serve the controller on a new :class:`PtyBus` from a background thread; returns when it listens."""
        self.bus = PtyBus(link=link).start()
        self._thread = threading.Thread(target=self._main, args=(baudrate,), name=f"door-sim-{self.unit}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError("door sim did not start")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"door sim failed: {self._error}") from self._error
        log.info("door sim unit=%d serving at %s", self.unit, self.bus.client_port)
        return self

    def _main(self, baudrate: int) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(baudrate))
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self, baudrate: int) -> None:
        assert self.bus is not None
        self._stop = asyncio.Event()
        server = ModbusSerialServer(
            [self.sim_device()], port=self.bus.server_port, baudrate=baudrate, ignore_missing_devices=True
        )
        try:
            await server.serve_forever(background=True)
            self._ready.set()
            await self._stop.wait()
        finally:
            await server.shutdown()  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        """Stop serving and close the ptys."""
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(5)
        if self.bus is not None:
            self.bus.close()

    def __enter__(self) -> DoorControllerSim:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
