"""One supervisor for every long-running part, at the edge (asyncio tasks) and in the cloud (threads).

:class:`Parts` is what the supervisor knows of all the parts: a part that crashed is *degraded* by name in
``/health`` until it has run for ``clean_s`` without crashing again, or for good once it crashed too often and
stays down. :func:`supervised_thread` is a thread's target that runs a part and restarts it after a crash with a
growing pause (``edge/supervise.py`` does the same for asyncio tasks).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PartState", "Parts", "restart_pause", "supervised_thread"]

log = logging.getLogger(__name__)


@dataclass
class PartState:
    crashes: int = 0
    last_error: str = ""
    last_crash: float | None = None  # monotonic
    down: bool = False  # crashed too often: it stays down


class Parts:
    """The supervised parts' crashes, for ``/health`` (thread-safe)."""

    def __init__(self, *, clean_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clean_s = clean_s
        self.clock = clock
        self._lock = threading.Lock()
        self._parts: dict[str, PartState] = {}

    def crashed(self, name: str, exc: BaseException) -> None:
        with self._lock:
            p = self._parts.setdefault(name, PartState())
            p.crashes += 1
            p.last_error = f"{type(exc).__name__}: {exc}"[:300]
            p.last_crash = self.clock()

    def gave_up(self, name: str) -> None:
        with self._lock:
            self._parts.setdefault(name, PartState()).down = True

    def degraded(self) -> list[str]:
        """Parts down for good, or that crashed less than ``clean_s`` ago."""
        now = self.clock()
        with self._lock:
            return sorted(
                name
                for name, p in self._parts.items()
                if p.down or (p.last_crash is not None and now - p.last_crash < self.clean_s)
            )

    def health(self) -> dict[str, Any]:
        degraded = set(self.degraded())
        with self._lock:
            return {
                name: {"crashes": p.crashes, "last_error": p.last_error, "down": p.down, "degraded": name in degraded}
                for name, p in sorted(self._parts.items())
            }


def restart_pause(crashes: int, *, backoff_s: float, max_backoff_s: float) -> float:
    """Seconds before restart number ``crashes``: doubling from ``backoff_s``, at most ``max_backoff_s``."""
    return float(min(max_backoff_s, backoff_s * 2 ** (crashes - 1)))


def supervised_thread(
    name: str,
    run: Callable[[], None],
    stop: threading.Event,
    *,
    parts: Parts | None = None,
    max_restarts: int = 5,
    backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    on_give_up: Callable[[str], None] | None = None,
) -> Callable[[], None]:
    """A thread target: ``run()``, and after a crash log it, count it in ``parts`` and run it again after a growing
    pause; after ``max_restarts`` crashes it stays down (``on_give_up``). A ``run`` that returns, or a set
    ``stop``, ends it."""

    def target() -> None:
        crashes = 0
        while not stop.is_set():
            try:
                run()
                return
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
                stop.wait(restart_pause(crashes, backoff_s=backoff_s, max_backoff_s=max_backoff_s))

    return target
