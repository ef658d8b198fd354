"""Keep a worker task alive: restart it after a crash, a bounded number of times."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["supervise"]

log = logging.getLogger(__name__)


async def supervise(
    name: str,
    factory: Callable[[], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
    *,
    max_restarts: int = 5,
    backoff_s: float = 1.0,
    on_give_up: Callable[[str], None] | None = None,
) -> None:
    """Run ``factory()``; if it raises, log it and run it again after a growing pause.

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
        except Exception:
            crashes += 1
            log.exception("worker %s crashed (%d of %d restarts used)", name, crashes, max_restarts)
            if crashes > max_restarts:
                log.error("worker %s crashed too often; it stays down", name)
                if on_give_up is not None:
                    on_give_up(name)
                return
            try:
                await asyncio.wait_for(stop.wait(), timeout=backoff_s * 2 ** (crashes - 1))
            except TimeoutError:
                pass
