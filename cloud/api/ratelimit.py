"""Sign-in limits: per account and per address, in this API process (each process keeps its own).

An account that failed ``failures`` times within ``window_s`` is refused (429) until the oldest of those failures
is older than the window, right password or not; an address that tried ``attempts`` times within the window is
refused the same way. A good sign-in clears its account's failures. The tables are bounded: the least recently
used keys go first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["Limited", "SignInLimits"]

#: keys kept per table at most (accounts, addresses)
MAX_KEYS = 10_000


class Limited(Exception):
    """Refused for now; ``retry_after_s`` says for how long."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Window:
    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def _fresh(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            return deque()
        while hits and now - hits[0] >= self.window_s:
            hits.popleft()
        return hits

    def wait_s(self, key: str, now: float) -> float:
        """0 when ``key`` may go on; else the seconds until its oldest hit leaves the window."""
        hits = self._fresh(key, now)
        return 0.0 if len(hits) < self.limit else self.window_s - (now - hits[0])

    def hit(self, key: str, now: float) -> None:
        hits = self._fresh(key, now)
        hits.append(now)
        self._hits[key] = hits
        self._hits.move_to_end(key)
        while len(self._hits) > MAX_KEYS:
            self._hits.popitem(last=False)

    def clear(self, key: str) -> None:
        self._hits.pop(key, None)


class SignInLimits:
    def __init__(
        self,
        *,
        failures: int = 5,
        attempts: int = 60,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._accounts = _Window(failures, window_s)
        self._addresses = _Window(attempts, window_s)

    def attempt(self, account: str, address: str) -> None:
        """Count a sign-in attempt from ``address``; :class:`Limited` if it may not be tried now."""
        now = self.clock()
        with self._lock:
            wait = self._accounts.wait_s(account, now)
            if wait > 0:
                raise Limited(
                    f"too many wrong passwords for {account!r}: try again in {math.ceil(wait)} s", math.ceil(wait)
                )
            wait = self._addresses.wait_s(address, now)
            if wait > 0:
                raise Limited(f"too many sign-ins from {address}: try again in {math.ceil(wait)} s", math.ceil(wait))
            self._addresses.hit(address, now)

    def failed(self, account: str) -> None:
        with self._lock:
            self._accounts.hit(account, self.clock())

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._accounts.clear(account)
