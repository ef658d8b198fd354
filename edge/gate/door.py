"""The gate's door: the lock relay the edge releases per grant, and what the door contact says.

Two parts:

* :class:`DoorMonitor` is pure logic on an injected clock: fed the door
  contact and whether the lock is released, it says when the door was
  forced (opened while locked), held open too long, and closed again. The
  anti-tailgating counter reads its open window (:attr:`DoorMonitor.opened_at`).
* :class:`DoorController` drives the real controller over Modbus RTU
  (:class:`~devices.modbus.ModbusBus`): :meth:`~DoorController.unlock`
  switches the relay coil on and a background task switches it off
  ``unlock_s`` after the *last* grant; :meth:`~DoorController.run` polls the
  contact, feeds the monitor, and reports :class:`DoorEvent` objects through a
  callback, including ``device_offline`` once when the controller stops
  answering and ``device_online`` once when it answers again.

Times are seconds on one monotonic clock (``time.monotonic`` unless a test
injects another); whoever turns a :class:`DoorEvent` into a contract event
stamps it with wall-clock time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from devices.modbus import DeviceReadError, ModbusBus
from sc.config.schema import DoorConfig
from sc.contracts.messages import EventKind

__all__ = ["DEFAULT_GRACE_S", "DoorController", "DoorCounters", "DoorEvent", "DoorMonitor"]

log = logging.getLogger(__name__)

#: An opening this soon after the lock was last seen released is not forced (the relay may just have dropped).
DEFAULT_GRACE_S = 0.5


@dataclass(frozen=True, slots=True)
class DoorEvent:
    """Something the door did (or its controller): what, when (monotonic seconds), for how long, and why."""

    kind: EventKind
    at: float
    seconds: float | None
    reason: str


class DoorMonitor:
    """Door-contact logic, no I/O: forced door, held open, closed again.

    * The door opening while the lock is not released, and was not released
      within ``grace_s`` before, is :attr:`EventKind.DOOR_FORCED` (once per opening).
    * Open without a break for ``held_open_after_s``: :attr:`EventKind.DOOR_HELD_OPEN`
      (once per opening, with the seconds open so far); when that door closes,
      :attr:`EventKind.DOOR_CLOSED` with the seconds it was open.

    The contact is sampled: an opening and closing between two feeds is not seen.
    """

    def __init__(self, *, held_open_after_s: float, grace_s: float = DEFAULT_GRACE_S) -> None:
        if held_open_after_s <= 0:
            raise ValueError("held_open_after_s must be positive")
        self.held_open_after_s = held_open_after_s
        self.grace_s = grace_s
        self.is_open = False
        self.opened_at: float | None = None
        self.openings = 0
        self.forced_openings = 0
        self.held_open = False  # door_held_open raised for the current opening, not yet cleared
        self.last_unlocked_at: float | None = None
        self._last_now: float | None = None

    def open_for(self, now: float) -> float:
        """Seconds the door has been open at ``now`` (0 while closed)."""
        return now - self.opened_at if self.opened_at is not None else 0.0

    def feed(self, now: float, *, open: bool, unlocked: bool) -> list[DoorEvent]:
        """One sample: the contact (``open``) and whether the lock is (or was since the last sample) released.

        Returns the events this sample causes, oldest first. ``now`` must not go back.
        """
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"time went back: {now} after {self._last_now}")
        self._last_now = now
        if unlocked:
            self.last_unlocked_at = now
        events: list[DoorEvent] = []
        if open and not self.is_open:
            self.is_open = True
            self.opened_at = now
            self.openings += 1
            if self.last_unlocked_at is None or now - self.last_unlocked_at > self.grace_s:
                self.forced_openings += 1
                events.append(DoorEvent(EventKind.DOOR_FORCED, now, None, "the door opened while locked"))
        elif not open and self.is_open:
            seconds = self.open_for(now)
            if self.held_open:
                events.append(
                    DoorEvent(EventKind.DOOR_CLOSED, now, seconds, f"the door closed after {seconds:.1f} s open")
                )
            self.is_open = False
            self.opened_at = None
            self.held_open = False
        if self.is_open and not self.held_open and self.open_for(now) >= self.held_open_after_s:
            self.held_open = True
            seconds = self.open_for(now)
            events.append(
                DoorEvent(
                    EventKind.DOOR_HELD_OPEN,
                    now,
                    seconds,
                    f"the door has been open for {seconds:.1f} s (limit {self.held_open_after_s:g} s)",
                )
            )
        return events


@dataclass
class DoorCounters:
    """What the controller did on the bus, for /health and tests."""

    polls: int = 0
    poll_failures: int = 0
    writes: int = 0
    write_failures: int = 0
    events: int = 0


class DoorController:
    """The door controller on an RS-485 bus: relay per grant, contact polling, events and availability.

    ``gate`` names the door in logs; ``on_event`` gets every :class:`DoorEvent` and ``on_contact``
    every change of the contact (both called on the event loop, errors logged, never raised);
    ``offline_after`` failed requests in a row make the controller offline; ``grace_s`` is the
    monitor's grace after a release; ``clock`` is the monotonic clock all times are on.
    """

    def __init__(
        self,
        bus: ModbusBus,
        cfg: DoorConfig,
        *,
        gate: str = "door",
        on_event: Callable[[DoorEvent], None] | None = None,
        on_contact: Callable[[float, bool], None] | None = None,
        offline_after: int = 3,
        grace_s: float = DEFAULT_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.cfg = cfg
        self.gate = gate
        self.on_event = on_event
        self.on_contact = on_contact
        self.offline_after = offline_after
        self.clock = clock
        self.monitor = DoorMonitor(held_open_after_s=cfg.held_open_after_s, grace_s=grace_s)
        self.counters = DoorCounters()
        self.online: bool | None = None  # None until the controller first answers or is declared offline
        self.last_error: str | None = None
        self._failures_in_row = 0
        self._offline_since: float | None = None
        self._release_until = -math.inf
        self._relay_maybe_on = False  # on, or a write to switch it on may have landed
        self._released_since_feed = False
        self._relay_lock = asyncio.Lock()
        self._keeper: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- state

    @property
    def relay_on(self) -> bool:
        """Whether the lock may be released (on, or a switch-on whose answer was lost)."""
        return self._relay_maybe_on

    @property
    def release_until(self) -> float | None:
        """When the relay goes off (the last grant plus ``unlock_s``), or None while it is off."""
        return self._release_until if self._relay_maybe_on else None

    # ---------------------------------------------------------------- relay

    async def unlock(self, now: float | None = None) -> None:
        """Release the lock for ``unlock_s`` from ``now`` (the controller's clock; default: now).

        A grant while the lock is released extends it. Raises :class:`DeviceReadError` if the
        controller does not confirm; the relay is switched off at the deadline all the same.
        """
        now = self.clock() if now is None else now
        async with self._relay_lock:
            self._release_until = max(self._release_until, now + self.cfg.unlock_s)
            self._relay_maybe_on = True
            self._released_since_feed = True
            if self._keeper is None or self._keeper.done():
                self._keeper = asyncio.create_task(self._keep_relay(), name=f"door-relay-{self.gate}")
            log.info("door gate=%s unlocked until +%.1f s", self.gate, self._release_until - self.clock())
            await self._write_relay(True)

    async def lock(self) -> None:
        """Switch the relay off now (shutdown, or a remote 'lock').

        Raises :class:`DeviceReadError` if the controller does not confirm; the relay task
        then keeps trying to switch it off.
        """
        async with self._relay_lock:
            self._release_until = -math.inf
            try:
                await self._write_relay(False)
            except DeviceReadError:
                if self._keeper is None or self._keeper.done():
                    self._relay_maybe_on = True  # unknown: keep trying to switch it off
                    self._keeper = asyncio.create_task(self._keep_relay(), name=f"door-relay-{self.gate}")
                raise
            await self._stop_keeper()
        log.info("door gate=%s locked", self.gate)

    async def _stop_keeper(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None and not keeper.done():
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _keep_relay(self) -> None:
        """Background task: switch the relay off once the last grant's ``unlock_s`` has passed; retry until done."""
        warned = False
        while self._relay_maybe_on:
            delay = self._release_until - self.clock()
            if delay > 0:  # look again at the deadline (a grant moves it) or after a poll interval (a lock)
                await asyncio.sleep(min(delay, self.cfg.poll_interval_s))
                continue
            async with self._relay_lock:
                if self.clock() < self._release_until:
                    continue  # extended while we waited for the lock
                try:
                    await self._write_relay(False)
                except DeviceReadError as exc:
                    if not warned:
                        log.warning("door gate=%s relay could not be switched off, retrying: %s", self.gate, exc)
                        warned = True
                else:
                    log.info("door gate=%s relay off (locked)", self.gate)
                    return
            await asyncio.sleep(self.cfg.poll_interval_s)

    async def _write_relay(self, on: bool) -> None:
        self.counters.writes += 1
        try:
            await self.bus.write_coil(self.cfg.unit, self.cfg.relay_coil, on)
        except DeviceReadError as exc:
            self.counters.write_failures += 1
            self._failed(str(exc))
            raise
        self._answered()
        if not on:
            self._relay_maybe_on = False

    # ---------------------------------------------------------------- contact

    async def read_contact(self) -> bool:
        """Poll the door contact once: True = open. Raises :class:`DeviceReadError` (counted)."""
        self.counters.polls += 1
        try:
            bits = await self.bus.read_discrete_inputs(self.cfg.unit, self.cfg.contact_input, 1)
        except DeviceReadError as exc:
            self.counters.poll_failures += 1
            self._failed(str(exc))
            raise
        self._answered()
        return bits[0]

    async def run(self, stop: asyncio.Event) -> None:
        """Poll the contact every ``poll_interval_s`` until ``stop``, feeding the monitor; lock the door at the end.

        Each change of the contact goes to ``on_contact(t, open)`` (the vision loop's grant
        window). Events go to ``on_event``: the monitor's door events, and ``device_offline`` (once,
        with the reason) after ``offline_after`` failed requests in a row, ``device_online``
        (once) at the next answer. A failing controller is retried at every poll.
        """
        interval = self.cfg.poll_interval_s
        log.info("door gate=%s polling unit %d on bus %s every %g s", self.gate, self.cfg.unit, self.cfg.bus, interval)
        next_poll = self.clock()
        try:
            while not stop.is_set():
                try:
                    is_open = await self.read_contact()
                except DeviceReadError:
                    pass  # counted, and reported by _failed once the controller counts as offline
                else:
                    now = self.clock()
                    changed = is_open != self.monitor.is_open
                    unlocked = self._relay_maybe_on or self._released_since_feed
                    self._released_since_feed = False
                    for ev in self.monitor.feed(now, open=is_open, unlocked=unlocked):
                        self._emit(ev)
                    if changed:
                        self._contact_changed(now, is_open)
                next_poll += interval
                delay = next_poll - self.clock()
                if delay <= 0:  # fell behind (timeouts): poll again now, without a burst to catch up
                    next_poll = self.clock()
                    continue
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Switch the relay off if the lock may be released (best effort) and stop the relay task."""
        try:
            if self._relay_maybe_on:
                await self.lock()
        except DeviceReadError as exc:
            log.warning("door gate=%s could not lock at shutdown: %s", self.gate, exc)
        finally:
            async with self._relay_lock:
                await self._stop_keeper()

    # ---------------------------------------------------------------- availability and events

    def _failed(self, reason: str) -> None:
        self._failures_in_row += 1
        self.last_error = reason
        log.debug("door gate=%s request failed (%d in a row): %s", self.gate, self._failures_in_row, reason)
        if self.online is not False and self._failures_in_row >= self.offline_after:
            self.online = False
            now = self.clock()
            self._offline_since = now
            self._emit(DoorEvent(EventKind.DEVICE_OFFLINE, now, None, reason))

    def _answered(self) -> None:
        self._failures_in_row = 0
        if self.online is False:
            now = self.clock()
            down = now - self._offline_since if self._offline_since is not None else None
            self._emit(DoorEvent(EventKind.DEVICE_ONLINE, now, down, "answering again"))
        self.online = True
        self._offline_since = None

    def _contact_changed(self, now: float, is_open: bool) -> None:
        log.debug("door gate=%s contact %s", self.gate, "open" if is_open else "closed")
        if self.on_contact is None:
            return
        try:
            self.on_contact(now, is_open)
        except Exception:  # a broken consumer must not stop the door from being watched
            log.exception("door gate=%s contact callback failed", self.gate)

    def _emit(self, ev: DoorEvent) -> None:
        self.counters.events += 1
        log.log(
            logging.WARNING if ev.kind is EventKind.DEVICE_OFFLINE else logging.INFO,
            "door gate=%s %s%s: %s",
            self.gate,
            ev.kind.value,
            f" ({ev.seconds:.1f} s)" if ev.seconds is not None else "",
            ev.reason,
        )
        if self.on_event is None:
            return
        try:
            self.on_event(ev)
        except Exception:  # a broken consumer must not stop the door from being watched
            log.exception("door gate=%s event callback failed for %s", self.gate, ev.kind.value)
