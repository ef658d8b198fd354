"""Keep a worker task alive: restart it after a crash, a bounded number of times, and say so in /health.

:func:`supervise` runs one part as an asyncio task; :class:`sc.supervise.Parts`
is what the supervisor knows of all of them (the cloud's threads use the same,
with :func:`sc.supervise.supervised_thread`): a part that crashed is *degraded*
by name in ``/health`` until it has run for ``clean_s`` without crashing again,
or for good once it crashed too often and stays down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sc.supervise import Parts, PartState, restart_pause

__all__ = ["PartState", "Parts", "supervise"]

log = logging.getLogger(__name__)


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
                pause = restart_pause(crashes, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
                await asyncio.wait_for(stop.wait(), timeout=pause)
            except TimeoutError:
                pass
