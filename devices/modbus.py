"""One RS-485 bus, driven as Modbus RTU master through pymodbus.

The bus is half duplex: one request at a time, so every request on a bus
(register and input reads, coil writes) goes through one lock. A failed
request raises :class:`DeviceReadError` with the reason (timeout, bad frame,
exception response), which the sensor service and the door controller count
per device.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from sc.config.schema import SerialBusConfig

from .registers import REGISTER_COUNT

__all__ = ["DeviceReadError", "ModbusBus"]

log = logging.getLogger(__name__)
# pymodbus logs every failed frame at ERROR with a traceback; we count and log them ourselves.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class DeviceReadError(Exception):
    """A device did not give a usable answer."""


class ModbusBus:
    def __init__(self, cfg: SerialBusConfig, port: str) -> None:
        self.cfg = cfg
        self.port = port
        self._lock = asyncio.Lock()
        self._client = AsyncModbusSerialClient(
            port,
            baudrate=cfg.baudrate,
            parity=cfg.parity,
            stopbits=cfg.stopbits,
            bytesize=8,
            timeout=cfg.timeout_s,
            retries=0,
            reconnect_delay=0.5,
            reconnect_delay_max=5.0,
        )

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> bool:
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:
            log.warning("bus=%s port=%s open failed: %s", self.cfg.id, self.port, exc)
            return False
        if not ok:
            log.warning("bus=%s port=%s could not be opened", self.cfg.id, self.port)
        return bool(ok)

    async def _request(self, what: str, call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """Send one request under the bus lock; any unusable answer becomes :class:`DeviceReadError`.

        ``what`` (may be empty) prefixes the reason, e.g. ``"unit 5 write coil 3=on: "``.
        """
        async with self._lock:
            if not self._client.connected and not await self.connect():
                raise DeviceReadError(f"serial port {self.port} is not open")
            try:
                rr = await call()
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
        self._client.close()
