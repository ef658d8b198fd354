"""One RS-485 bus, driven as Modbus RTU master through pymodbus.

The bus is half duplex: one request at a time, so every request on a bus
(register and input reads, coil writes) goes through one lock. A failed
request raises :class:`DeviceReadError` with the reason (timeout, bad frame,
exception response), which the sensor service and the door controller count
per device.

The bus opens (and reopens) its serial port itself, on the next request, no
sooner than a backoff (0.5 s doubling to 5 s) after a failed open: pymodbus's
own reconnect task is off (``reconnect_delay=0``). That task, looping on
Python 3.11's ``wait_for``, could swallow its cancellation at shutdown and
keep ``asyncio.run`` waiting for ever once a port had gone away; and a port
that has gone away is now tried a few times a minute, not at every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from sc.config.schema import SerialBusConfig

from .registers import REGISTER_COUNT

__all__ = ["DeviceReadError", "ModbusBus"]

log = logging.getLogger(__name__)
#: after a failed open, the next try waits this long, doubling up to the max; an open port resets it
REOPEN_BACKOFF_S = 0.5
REOPEN_BACKOFF_MAX_S = 5.0
# pymodbus logs every failed frame at ERROR with a traceback; we count and log them ourselves.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class DeviceReadError(Exception):
    """A device did not give a usable answer."""


def _raise_if_cancelled() -> None:
    """Raise the cancellation an await swallowed: Python 3.11's ``wait_for`` (inside pymodbus) returns the inner
    result when it completes as the task is cancelled, so the task would carry on as if never told to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class ModbusBus:
    def __init__(self, cfg: SerialBusConfig, port: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.port = port
        self.clock = clock
        self._lock = asyncio.Lock()
        self._backoff = 0.0  # seconds to wait after the last failed open (0: none failed)
        self._next_open = 0.0  # clock time before which the port is not tried again
        #: failed opens since the port was last open
        self.open_failures = 0
        self._client = AsyncModbusSerialClient(
            port,
            baudrate=cfg.baudrate,
            parity=cfg.parity,
            stopbits=cfg.stopbits,
            bytesize=8,
            timeout=cfg.timeout_s,
            retries=0,
            reconnect_delay=0,  # no reconnect task of its own: this class reopens the port (see the module doc)
        )

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> bool:
        """Open the serial port now; False (and the next automatic try backs off) if it cannot be opened."""
        try:
            ok = bool(await self._client.connect())
            problem = "could not be opened"
        except (OSError, ModbusException) as exc:
            ok, problem = False, f"open failed: {exc}"
        _raise_if_cancelled()
        if ok:
            if self.open_failures:
                log.info("bus=%s port=%s open again after %d failed tries", self.cfg.id, self.port, self.open_failures)
            self._backoff, self._next_open, self.open_failures = 0.0, 0.0, 0
            return True
        self.open_failures += 1
        self._backoff = min(REOPEN_BACKOFF_MAX_S, self._backoff * 2 or REOPEN_BACKOFF_S)
        self._next_open = self.clock() + self._backoff
        log.warning("bus=%s port=%s %s", self.cfg.id, self.port, problem)
        return False

    async def _ensure_open(self) -> bool:
        """Under the bus lock: the port is open, or opened now unless the last failed try was too recent."""
        if self._client.connected:
            return True
        if self.clock() < self._next_open:
            return False
        return await self.connect()

    async def _request(self, what: str, call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """Send one request under the bus lock; any unusable answer becomes :class:`DeviceReadError`.

        ``what`` (may be empty) prefixes the reason, e.g. ``"unit 5 write coil 3=on: "``.
        """
        async with self._lock:
            if not await self._ensure_open():
                raise DeviceReadError(f"serial port {self.port} is not open")
            try:
                rr = await call()
                _raise_if_cancelled()
            except ModbusIOException as exc:
                raise DeviceReadError(
                    f"{what}no valid reply within {self.cfg.timeout_s:g} s (silent, or a broken frame / bad CRC)"
                ) from exc
            except ModbusException as exc:
                raise DeviceReadError(f"{what}no valid reply: {exc}") from exc
            except (TimeoutError, OSError) as exc:
                raise DeviceReadError(f"{what}serial error: {exc}") from exc
        if rr.isError():
            raise DeviceReadError(f"{what}exception response {rr}")
        return rr

    async def read_registers(self, unit: int, count: int = REGISTER_COUNT) -> list[int]:
        """Read ``count`` input registers from address 0 (function 4): a sensor's whole register map."""
        rr = await self._request(
            "",  # the sensor service names the device; its reasons read as before
            lambda: self._client.read_input_registers(0, count=count, device_id=unit),
        )
        regs = list(rr.registers)
        if len(regs) != count:
            raise DeviceReadError(f"expected {count} registers, got {len(regs)}")
        return regs

    async def read_discrete_inputs(self, unit: int, address: int, count: int = 1) -> list[bool]:
        """Read ``count`` discrete inputs from ``address`` (function 2), e.g. a door contact."""
        what = f"unit {unit} read discrete inputs {address}+{count}: "
        rr = await self._request(what, lambda: self._client.read_discrete_inputs(address, count=count, device_id=unit))
        bits = [bool(b) for b in rr.bits]
        if len(bits) < count:  # the reply packs bits into whole bytes: more is padding, fewer is a bad frame
            raise DeviceReadError(f"{what}expected {count} inputs, got {len(bits)}")
        return bits[:count]

    async def write_coil(self, unit: int, address: int, value: bool) -> None:
        """Set one coil (function 5), e.g. a door relay; the device's echo must confirm the value."""
        what = f"unit {unit} write coil {address}={'on' if value else 'off'}: "
        rr = await self._request(what, lambda: self._client.write_coil(address, value, device_id=unit))
        echoed = bool(rr.bits[0]) if rr.bits else None
        if rr.address != address or echoed is not value:
            raise DeviceReadError(f"{what}the reply confirms coil {rr.address}={echoed}")

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        """Write holding registers from ``address`` (function 16); the reply must confirm address and count."""
        what = f"unit {unit} write registers {address}+{len(values)}: "
        rr = await self._request(what, lambda: self._client.write_registers(address, values, device_id=unit))
        if rr.address != address or rr.count != len(values):
            raise DeviceReadError(f"{what}the reply confirms registers {rr.address}+{rr.count}")

    async def read_input_registers(self, unit: int, address: int, count: int) -> list[int]:
        """Read ``count`` input registers from ``address`` (function 4)."""
        what = f"unit {unit} read input registers {address}+{count}: "
        rr = await self._request(what, lambda: self._client.read_input_registers(address, count=count, device_id=unit))
        regs = list(rr.registers)
        if len(regs) != count:
            raise DeviceReadError(f"{what}expected {count} registers, got {len(regs)}")
        return regs

    def close(self) -> None:
        """Close the serial port (idempotent); a later request opens it again."""
        self._client.close()
