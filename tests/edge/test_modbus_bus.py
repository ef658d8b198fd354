"""devices.modbus.ModbusBus when its serial port goes away: it reopens the port itself, backing off, and a
cancelled request ends cancelled (issue 12, finding 7: the demo's gateways took 30 s and more to stop).

pymodbus's own reconnect task looped on Python 3.11's ``wait_for``, which can swallow a cancellation; once a port
had vanished, that task kept ``asyncio.run`` waiting for ever at shutdown. The bus now runs no such task, and
re-raises a cancellation that an await inside pymodbus swallowed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator

import pytest

from devices.modbus import REOPEN_BACKOFF_MAX_S, DeviceReadError, ModbusBus
from firmware_sim.door import DoorControllerSim
from sc.config.schema import SerialBusConfig

UNIT, COIL, CONTACT = 5, 3, 7


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeClient:
    """Stands in for pymodbus's client: a port that cannot be opened; counts the tries."""

    def __init__(self) -> None:
        self.connected = False
        self.tries = 0

    async def connect(self) -> bool:
        self.tries += 1
        return False

    def close(self) -> None:
        pass


@pytest.fixture
def door() -> Iterator[DoorControllerSim]:
    with DoorControllerSim(unit=UNIT, relay_coil=COIL, contact_input=CONTACT, auto_close_s=None).start() as s:
        yield s


def _bus(port: str, clock: Clock | None = None) -> ModbusBus:
    cfg = SerialBusConfig(id="rs485-1", port=port, timeout_s=0.1)
    return ModbusBus(cfg, port) if clock is None else ModbusBus(cfg, port, clock=clock)


def test_a_vanished_port_leaves_no_reconnect_task_behind(door: DoorControllerSim) -> None:
    async def main() -> None:
        bus = _bus(door.client_port)
        assert await bus.read_discrete_inputs(UNIT, CONTACT) == [False]
        door.stop()  # the pseudo-terminal goes away, as the demo's did when its simulator ended
        for _ in range(20):
            try:
                await bus.read_discrete_inputs(UNIT, CONTACT)
            except DeviceReadError:
                pass
            await asyncio.sleep(0.05)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert [f"{t.get_name()}: {t.get_coro()}" for t in others] == []  # nothing of pymodbus's own is left
        bus.close()

    asyncio.run(main())


def test_a_port_that_cannot_be_opened_is_tried_again_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        clock = Clock()
        bus = _bus("/nonexistent/tty", clock)
        fake = FakeClient()
        bus._client = fake  # type: ignore[assignment]
        tried_at: list[float] = []
        for k in range(400):  # 40 s of requests, ten a second
            clock.now = 100.0 + k / 10
            before = fake.tries
            with pytest.raises(DeviceReadError, match="serial port /nonexistent/tty is not open"):
                await bus.read_registers(1)
            if fake.tries > before:
                tried_at.append(clock.now - 100.0)
        gaps = [round(b - a, 1) for a, b in itertools.pairwise(tried_at)]
        assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, REOPEN_BACKOFF_MAX_S]
        assert set(gaps[4:]) == {REOPEN_BACKOFF_MAX_S}
        assert bus.open_failures == len(tried_at)

    with caplog.at_level(logging.WARNING, logger="devices.modbus"):
        asyncio.run(main())
    opened = [r for r in caplog.records if "could not be opened" in r.getMessage()]
    assert 10 <= len(opened) <= 14  # one per try (a few a minute), not one per request


def test_a_cancellation_swallowed_inside_pymodbus_is_raised_again() -> None:
    """What Python 3.11's ``wait_for`` does when the inner call completes as the task is cancelled."""

    class Swallowing(FakeClient):
        async def connect(self) -> bool:
            self.tries += 1
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                return False  # the cancellation is lost here
            return False

    async def main() -> None:
        bus = _bus("/nonexistent/tty")
        bus._client = Swallowing()  # type: ignore[assignment]
        give_up = asyncio.Event()  # ends the worker if the cancellation stays lost (the test fails, not hangs)

        async def poll_for_ever() -> None:
            while not give_up.is_set():  # the way a worker loops: only a cancellation ends it
                try:
                    await bus.read_registers(1)
                except DeviceReadError:
                    await asyncio.sleep(0)

        task = asyncio.create_task(poll_for_ever())
        await asyncio.sleep(0.05)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        give_up.set()
        await asyncio.wait({task}, timeout=5)
        assert task in done and task.cancelled(), "the worker carried on after its cancellation"

    asyncio.run(main())
