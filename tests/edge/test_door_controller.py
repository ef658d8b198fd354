"""The door controller against a simulated relay board over real Modbus RTU on linked ptys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from devices.modbus import DeviceReadError, ModbusBus
from edge.gate.door import DoorController, DoorEvent
from firmware_sim.door import DoorControllerSim
from sc.config.schema import DoorConfig, SerialBusConfig
from sc.contracts.messages import EventKind

UNIT, COIL, CONTACT = 5, 3, 7
UNLOCK_S = 0.3
# No test here bounds how long anything took (that depends on the machine's load): the controller and the sim
# share one monotonic clock, and the checks are on the order of what happened and on what the code guarantees
# (the relay goes off no earlier than the last grant plus unlock_s).


@pytest.fixture
def sim() -> Iterator[DoorControllerSim]:
    with DoorControllerSim(unit=UNIT, relay_coil=COIL, contact_input=CONTACT, auto_close_s=None).start() as s:
        yield s


@dataclass
class Rig:
    ctl: DoorController
    events: list[DoorEvent] = field(default_factory=list)
    contact: list[tuple[float, bool]] = field(default_factory=list)

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]


def rig(sim: DoorControllerSim, **door: float) -> Rig:
    cfg = DoorConfig.model_validate(
        {
            "bus": "door",
            "unit": UNIT,
            "relay_coil": COIL,
            "contact_input": CONTACT,
            "unlock_s": UNLOCK_S,
            "held_open_after_s": 5.0,
            "poll_interval_s": 0.03,
            **door,
        }
    )
    bus = ModbusBus(SerialBusConfig(id="door", port=sim.client_port, timeout_s=0.1), sim.client_port)
    r = Rig(DoorController(bus, cfg, gate="north"))
    r.ctl.on_event = r.events.append
    r.ctl.on_contact = lambda t, is_open: r.contact.append((t, is_open))
    return r


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for ``cond`` (a generous limit: what it waits for takes a fraction of a second on an idle machine)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout:g} s: {cond.__doc__ or 'the condition'}")
        await asyncio.sleep(0.01)


def play(
    sim: DoorControllerSim, body: Callable[[Rig], Awaitable[None]], *, run_loop: bool = True, **door: float
) -> None:
    """Build the controller on a fresh event loop and run ``body`` (with the run loop polling, or without);
    then stop, lock and close the bus."""

    async def main() -> None:
        r = rig(sim, **door)
        stop = asyncio.Event()
        task = asyncio.create_task(r.ctl.run(stop)) if run_loop else None
        try:
            await body(r)
            assert task is None or not task.done(), "the run loop ended on its own"
        finally:
            stop.set()
            if task is not None:
                await asyncio.wait_for(task, 3.0)
            await r.ctl.aclose()
            r.ctl.bus.close()

    asyncio.run(main())


class Clock:
    """One clock for the controller and the sim that moves only when the test says: the relay's timing is exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def on_clock(r: Rig, sim: DoorControllerSim) -> Clock:
    clock = Clock()
    r.ctl.clock = clock
    sim.clock = clock
    return clock


async def still(cond: Callable[[], bool]) -> None:
    """``cond`` holds now and a while later (the relay task had its chances to run: it polls every 0.03 s)."""
    assert cond()
    await asyncio.sleep(0.15)
    assert cond()


def test_unlock_releases_the_relay_for_unlock_s(sim: DoorControllerSim) -> None:
    async def main(r: Rig) -> None:
        clock = on_clock(r, sim)
        await r.ctl.unlock()
        assert sim.relay_on and r.ctl.relay_on
        assert r.ctl.release_until == UNLOCK_S
        clock.now = UNLOCK_S - 0.01
        await still(lambda: sim.relay_on)  # not before unlock_s
        clock.now = UNLOCK_S
        await until(lambda: not sim.relay_on)
        await until(lambda: not r.ctl.relay_on)  # its reply reaches the edge a moment later
        assert sim.pulses() == [(0.0, UNLOCK_S)]
        assert (r.ctl.counters.writes, r.ctl.counters.write_failures) == (2, 0)

    play(sim, main, run_loop=False)


def test_a_second_grant_extends_the_release(sim: DoorControllerSim) -> None:
    async def main(r: Rig) -> None:
        clock = on_clock(r, sim)
        await r.ctl.unlock()
        clock.now = 0.2
        await r.ctl.unlock()  # 0.2 s into a 0.3 s release
        assert r.ctl.release_until == 0.2 + UNLOCK_S
        clock.now = UNLOCK_S + 0.1
        await still(lambda: sim.relay_on)  # past the first grant's end: still released
        clock.now = 0.2 + UNLOCK_S
        await until(lambda: not sim.relay_on)
        assert sim.pulses() == [(0.0, 0.2 + UNLOCK_S)]  # one pulse, not two

    play(sim, main, run_loop=False)


def test_the_contact_reads_the_door(sim: DoorControllerSim) -> None:
    async def main(r: Rig) -> None:
        assert await r.ctl.read_contact() is False
        assert sim.push() is False  # locked: it does not open
        assert await r.ctl.read_contact() is False
        await r.ctl.unlock()
        assert sim.push() is True
        assert await r.ctl.read_contact() is True
        sim.close()
        assert await r.ctl.read_contact() is False
        assert r.ctl.counters.polls == 4 and r.ctl.counters.poll_failures == 0
        await r.ctl.aclose()
        assert not sim.relay_on  # shutdown locks the door

    play(sim, main, run_loop=False)


def test_a_forced_door_is_reported_and_a_granted_one_is_not(sim: DoorControllerSim) -> None:
    async def body(r: Rig) -> None:
        await r.ctl.unlock()
        sim.push()
        await until(lambda: r.ctl.monitor.is_open)
        sim.close()
        await until(lambda: not r.ctl.monitor.is_open)
        assert r.events == []
        await until(lambda: not sim.relay_on)
        await asyncio.sleep(0.6)  # past the grace after the release
        sim.push(force=True)
        await until(lambda: EventKind.DOOR_FORCED in r.kinds())
        await asyncio.sleep(0.2)  # still open: reported once
        assert r.kinds() == [EventKind.DOOR_FORCED]
        assert r.events[0].reason == "the door opened while locked"
        assert [o for _, o in r.contact] == [True, False, True]
        assert r.ctl.monitor.openings == 2 and r.ctl.monitor.forced_openings == 1

    play(sim, body)


def test_held_open_then_closed(sim: DoorControllerSim) -> None:
    async def body(r: Rig) -> None:
        await r.ctl.unlock()
        sim.hold()
        sim.push()
        await until(lambda: EventKind.DOOR_HELD_OPEN in r.kinds())
        assert r.ctl.monitor.opened_at is not None
        await asyncio.sleep(0.2)
        sim.close()
        await until(lambda: EventKind.DOOR_CLOSED in r.kinds())
        held, closed = r.events
        assert (held.kind, closed.kind) == (EventKind.DOOR_HELD_OPEN, EventKind.DOOR_CLOSED)
        assert held.seconds is not None and held.seconds >= 0.4  # raised once open for held_open_after_s
        assert closed.seconds is not None and closed.seconds == pytest.approx(closed.at - held.at + held.seconds)
        assert closed.seconds >= 0.6 - 1e-6  # held open, then 0.2 s more before it closed

    play(sim, body, held_open_after_s=0.4)


def test_the_door_closes_by_itself_unless_held() -> None:
    clock = [0.0]
    sim = DoorControllerSim(auto_close_s=2.0, clock=lambda: clock[0])
    sim.set_relay(True)
    assert sim.push()
    clock[0] = 1.9
    assert sim.is_open
    clock[0] = 2.0
    assert not sim.is_open
    sim.hold()
    assert sim.push()
    clock[0] = 10.0
    assert sim.is_open
    sim.close()
    sim.set_relay(False)
    assert sim.pulses() == [(0.0, 10.0)]
    assert sim.push(force=True) and sim.forced_openings == 1 and sim.openings == 3


def test_a_silent_controller_is_one_fault_then_one_recovery(sim: DoorControllerSim) -> None:
    async def body(r: Rig) -> None:
        await until(lambda: r.ctl.online is True)
        sim.set_fault("silent")
        await until(lambda: EventKind.DEVICE_OFFLINE in r.kinds())
        failures = r.ctl.counters.poll_failures
        await until(lambda: r.ctl.counters.poll_failures >= failures + 3)  # still retrying
        assert r.kinds() == [EventKind.DEVICE_OFFLINE]
        assert "no valid reply within 0.1 s" in r.events[0].reason
        with pytest.raises(DeviceReadError):  # a grant while it is silent says so
            await r.ctl.unlock()
        sim.set_fault("none")
        await until(lambda: EventKind.DEVICE_ONLINE in r.kinds())
        await until(lambda: not sim.relay_on or sim.pulses()[-1][1] is not None)
        await asyncio.sleep(0.2)
        assert r.kinds() == [EventKind.DEVICE_OFFLINE, EventKind.DEVICE_ONLINE]
        online = r.events[1]
        assert online.reason == "answering again" and online.seconds is not None and online.seconds > 0
        assert not sim.relay_on  # the relay task switched off whatever the lost grant may have switched on

    play(sim, body)


def test_garbage_replies_are_counted_and_survived(sim: DoorControllerSim) -> None:
    async def body(r: Rig) -> None:
        await until(lambda: r.ctl.online is True)
        sim.set_fault("garbage")
        await until(lambda: r.ctl.counters.poll_failures >= 2)
        sim.set_fault("none")
        await until(lambda: r.ctl.online is True and r.ctl.counters.poll_failures > 0)
        polls = r.ctl.counters.polls
        await until(lambda: r.ctl.counters.polls > polls + 3)
        await r.ctl.unlock()  # the bus works again, for writes too
        assert sim.push()
        await until(lambda: r.ctl.monitor.is_open)
        assert EventKind.DOOR_FORCED not in r.kinds()

    play(sim, body)
