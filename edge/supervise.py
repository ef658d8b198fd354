"""Keep a worker task alive: restart it after a crash, a bounded number of times, and say so in /health.

:func:`supervise` runs one part; :class:`Parts` is what the supervisor knows of
all of them: a part that crashed is *degraded* by name in ``/health`` until it
has run for ``clean_s`` without crashing again, or for good once it crashed too
often and stays down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

__all__ = ["PartState", "Parts", "supervise"]

log = logging.getLogger(__name__)


@dataclass
class PartState:
    crashes: int = 0
    last_error: str = ""
    last_crash: float | None = None  # monotonic
    down: bool = False  # crashed too often: it stays down


class Parts:
    """The supervised parts' crashes, for ``/health`` (touched from the event loop only)."""

    def __init__(self, *, clean_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clean_s = clean_s
        self.clock = clock
        self._parts: dict[str, PartState] = {}

    def crashed(self, name: str, exc: BaseException) -> None:
        p = self._parts.setdefault(name, PartState())
        p.crashes += 1
        p.last_error = f"{type(exc).__name__}: {exc}"[:300]
        p.last_crash = self.clock()

    def gave_up(self, name: str) -> None:
        self._parts.setdefault(name, PartState()).down = True

    def degraded(self) -> list[str]:
        """Parts down for good, or that crashed less than ``clean_s`` ago."""
        now = self.clock()
        return sorted(
            name
            for name, p in self._parts.items()
            if p.down or (p.last_crash is not None and now - p.last_crash < self.clean_s)
        )

    def health(self) -> dict[str, Any]:
        degraded = set(self.degraded())
        return {
            name: {"crashes": p.crashes, "last_error": p.last_error, "down": p.down, "degraded": name in degraded}
            for name, p in sorted(self._parts.items())
        }


async def supervise(
    name: str,
    factory: Callable[[], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
    *,
    max_restarts: int = 5,
    backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    parts: Parts | None = None,
    on_give_up: Callable[[str], None] | None = None,
) -> None:
    """Run ``factory()``; if it raises, log it and run it again after a growing pause (at most ``max_backoff_s``).

    After ``max_restarts`` crashes the worker stays down and ``on_give_up`` is
    called (the gateway reports itself unhealthy). A worker that returns
    normally, or a set ``stop``, ends supervision.
    """
    crashes = 0
    while not stop.is_set():
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            crashes += 1
            if parts is not None:
                parts.crashed(name, exc)
            log.exception("worker %s crashed (%d of %d restarts used)", name, crashes, max_restarts)
            if crashes > max_restarts:
                log.error("worker %s crashed too often; it stays down", name)
                if parts is not None:
                    parts.gave_up(name)
                if on_give_up is not None:
                    on_give_up(name)
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(max_backoff_s, backoff_s * 2 ** (crashes - 1)))
            except TimeoutError:
                pass
