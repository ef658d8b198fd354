"""Turn wanted group levels into as few, well-ordered Modbus writes as possible.

One :class:`ControllerLink` per light controller remembers what the controller
has confirmed. :meth:`ControllerLink.writes` compares a new plan with it and
returns at most two *write multiple registers* requests: first every group that
gets brighter (safety first: the controller sends its DALI frames in register
order, and a slow bus must never delay light ahead of a car behind dimming),
then every group that dims. Each request covers the changed groups' register
range in one frame, so a bus at 9600 baud carries one request per controller
per decision, not one per light. Every ``refresh_s`` the whole table is written
again (it keeps the controller's failsafe quiet and repairs a controller that
rebooted). A write that is not confirmed leaves the link's idea of the
controller unchanged, so the next plan sends it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from devices.lighting import BROADCAST_REGISTER

__all__ = ["CONTROLLER_OFFLINE_AFTER", "MODULE_PROBE_S", "ControllerLink", "Write"]

#: Writes in a row a controller leaves unconfirmed before it is offline.
CONTROLLER_OFFLINE_AFTER = 3
#: An offline sensor module is tried again this often (s).
MODULE_PROBE_S = 2.0


@dataclass(frozen=True)
class Write:
    controller: str
    address: int
    values: tuple[int, ...]
    brighten: bool

    @property
    def broadcast(self) -> bool:
        return self.address == BROADCAST_REGISTER


@dataclass
class ControllerLink:
    id: str
    groups: int
    refresh_s: float
    confirmed: list[int | None] = field(default_factory=list)
    last_write: float = -math.inf
    failures: int = 0
    writes_sent: int = 0
    writes_failed: int = 0

    def __post_init__(self) -> None:
        if not self.confirmed:
            self.confirmed = [None] * self.groups

    def writes(self, t: float, wanted: list[int], *, fire: bool, full: int) -> list[Write]:
        """The requests that bring the controller to ``wanted`` (one level per group)."""
        if fire:
            # one broadcast sets every group full, then nothing but the refresh (a broadcast again) until the
            # alarm ends: comparing group by group would dim the groups without lights (the plan leaves them
            # at 0) and broadcast again, over and over
            if any(c != full for c in self.confirmed) or t - self.last_write >= self.refresh_s:
                return [Write(self.id, BROADCAST_REGISTER, (full,), brighten=True)]
            return []
        if t - self.last_write >= self.refresh_s:
            return [Write(self.id, 0, tuple(wanted), brighten=True)]
        up = [g for g in range(self.groups) if wanted[g] != self.confirmed[g] and wanted[g] >= (self.confirmed[g] or 0)]
        down = [g for g in range(self.groups) if wanted[g] != self.confirmed[g] and g not in up]
        out: list[Write] = []
        for changed, brighten in ((up, True), (down, False)):
            if changed:
                lo, hi = min(changed), max(changed)
                # inside the range: groups not changing (and, in the first request, groups about to dim)
                # keep their confirmed level, which costs the controller no DALI frame
                done = set(changed) | (set() if brighten else set(up))
                values = tuple(wanted[g] if g in done else (self.confirmed[g] or 0) for g in range(lo, hi + 1))
                out.append(Write(self.id, lo, values, brighten=brighten))
        return out

    def confirm(self, t: float, write: Write) -> None:
        self.writes_sent += 1
        self.failures = 0
        self.last_write = t
        if write.broadcast:
            self.confirmed = [write.values[0]] * self.groups
            return
        for i, v in enumerate(write.values):
            self.confirmed[write.address + i] = v

    def failed(self) -> None:
        self.writes_failed += 1
        self.failures += 1
