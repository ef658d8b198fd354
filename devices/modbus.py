"""One RS-485 bus, driven as Modbus RTU master through pymodbus.

The bus is half duplex: one request at a time, so every read on a bus goes
through one lock. A failed read raises :class:`DeviceReadError` with the
reason (timeout, bad frame, exception response), which the sensor service
counts per device.
"""

from __future__ import annotations

import asyncio
import logging

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException, ModbusIOException

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

    async def read_registers(self, unit: int, count: int = REGISTER_COUNT) -> list[int]:
        async with self._lock:
            if not self._client.connected and not await self.connect():
                raise DeviceReadError(f"serial port {self.port} is not open")
            try:
                rr = await self._client.read_input_registers(0, count=count, device_id=unit)
            except ModbusIOException as exc:
                raise DeviceReadError(
                    f"no valid reply within {self.cfg.timeout_s:g} s (silent, or a broken frame / bad CRC)"
                ) from exc
            except ModbusException as exc:
                raise DeviceReadError(f"no valid reply: {exc}") from exc
            except (TimeoutError, OSError) as exc:
                raise DeviceReadError(f"serial error: {exc}") from exc
        if rr.isError():
            raise DeviceReadError(f"exception response {rr}")
        regs = list(rr.registers)
        if len(regs) != count:
            raise DeviceReadError(f"expected {count} registers, got {len(regs)}")
        return regs

    def close(self) -> None:
        self._client.close()
