"""The latest live state of every garage of the site, as heard in this process.

The cloud's MQTT link to the gateways (:class:`cloud.gates.sync.GateLink`)
hands every ``state/{garage}`` message (:class:`GarageState`, retained, about
once a second) to :meth:`GarageView.put` and every garage gateway's retained
status to :meth:`GarageView.gateway_status`. A state is **stale** when it was
received more than ``stale_after_s`` ago or its gateway's status is not
online (a gateway that stopped or died leaves its last state retained).

A state that arrives from a gateway other than the garage's own, or for a
garage not in the site config, is counted and ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sc.config.schema import SiteConfig
from sc.contracts.messages import GarageState

__all__ = ["GarageView", "LiveState"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveState:
    """A garage's latest state as this process heard it."""

    state: GarageState
    received_at: datetime
    age_s: float
    stale: bool


@dataclass
class ViewCounters:
    states: int = 0
    ignored: int = 0  # an unknown garage, or not from its own gateway


class GarageView:
    def __init__(
        self,
        site: SiteConfig,
        *,
        stale_after_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.gateway_of = {g.id: g.gateway for g in site.garages}
        self.gateways = sorted(set(self.gateway_of.values()))
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.counters = ViewCounters()
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[GarageState, datetime]] = {}
        self._online: dict[str, bool] = {}
        self._warned: set[tuple[str, str]] = set()

    def put(self, gateway: str, state: GarageState) -> bool:
        """A state heard on ``gateway``'s topic (MQTT thread); False: not this site's garage there, ignored."""
        if self.gateway_of.get(state.garage) != gateway:
            self.counters.ignored += 1
            if (gateway, state.garage) not in self._warned:
                self._warned.add((gateway, state.garage))
                log.warning("garage view: ignored the state of garage %s from gateway %s: not its gateway",
                            state.garage, gateway)  # fmt: skip
            return False
        with self._lock:
            self._latest[state.garage] = (state, self.clock())
        self.counters.states += 1
        return True

    def gateway_status(self, gateway: str, online: bool) -> None:
        with self._lock:
            self._online[gateway] = online

    def latest(self, garage: str) -> LiveState | None:
        """The garage's latest state, its age and whether it is stale; None: nothing heard yet."""
        with self._lock:
            heard = self._latest.get(garage)
            online = self._online.get(self.gateway_of.get(garage, ""))
        if heard is None:
            return None
        state, received_at = heard
        age = max(0.0, (self.clock() - received_at).total_seconds())
        return LiveState(state, received_at, round(age, 3), stale=age > self.stale_after_s or online is not True)

    def health(self) -> dict[str, object]:
        with self._lock:
            heard = dict(self._latest)
        now = self.clock()
        return {
            "counters": vars(self.counters).copy(),
            "age_s": {g: round((now - at).total_seconds(), 1) for g, (_s, at) in heard.items()},
        }
