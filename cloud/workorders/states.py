"""The work-order state machine: the one place that names a status or an action.

    open -> dispatched -> accepted -> on_site -> resolved -> closed
      ^                                             |          |
      +---------------- reopened <------------------+----------+

Acknowledging an alarm (the control room has seen it: its sound stops on
every screen) is recorded on the order but does not change its status.

Who may do what is part of the machine: a grid worker accepts, arrives and
resolves; the control room dispatches and closes; a resident closes (with a
rating) or reopens their own report; the scheduler (``system``) escalates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ACTIVE",
    "TRANSITIONS",
    "Action",
    "BadRequest",
    "HistoryEvent",
    "NotAllowed",
    "Role",
    "Status",
    "TransitionError",
    "WrongStatus",
    "allowed_actions",
    "next_status",
]


class Status(StrEnum):
    OPEN = "open"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


#: Statuses in which an order is still somebody's work (alarms attach to it).
ACTIVE = frozenset({Status.OPEN, Status.DISPATCHED, Status.ACCEPTED, Status.ON_SITE, Status.RESOLVED, Status.REOPENED})


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"
    ACCEPT = "accept"
    ARRIVE = "arrive"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"


class HistoryEvent(StrEnum):
    """What else the history records, besides people's actions (the ``action`` column holds either)."""

    OPEN = "open"  # an alarm or a report opened the order
    ALARM_AGAIN = "alarm_again"  # the device raised the alarm again while the order was open
    DEVICE_CLEARED = "device_cleared"  # the device says the condition ended
    ESCALATE = "escalate"  # a deadline passed: the next grid level up is told


class Role(StrEnum):
    OPERATOR = "operator"  # control room (property or grid centre)
    GRID_WORKER = "grid_worker"
    DEPARTMENT = "department"
    RESIDENT = "resident"
    ADMIN = "admin"
    SYSTEM = "system"  # the ingester and the scheduler


class TransitionError(ValueError):
    """An action that cannot be applied; the subclass says why."""


class NotAllowed(TransitionError):
    """The actor's role (or relation to the order) does not allow the action."""


class WrongStatus(TransitionError):
    """The order's status does not allow the action."""


class BadRequest(TransitionError):
    """The action's data is wrong (unknown worker, rating out of range, ...)."""


@dataclass(frozen=True)
class Rule:
    sources: frozenset[Status]
    target: Status | None  # None: the status stays as it is
    roles: frozenset[Role]


_STAFF = frozenset({Role.OPERATOR, Role.ADMIN})
_FIELD = frozenset({Role.GRID_WORKER, Role.DEPARTMENT, Role.OPERATOR, Role.ADMIN})

TRANSITIONS: dict[Action, Rule] = {
    Action.ACKNOWLEDGE: Rule(ACTIVE - {Status.RESOLVED}, None, _STAFF | {Role.DEPARTMENT}),
    Action.DISPATCH: Rule(
        frozenset({Status.OPEN, Status.REOPENED, Status.DISPATCHED}),
        Status.DISPATCHED,
        _STAFF | {Role.DEPARTMENT, Role.SYSTEM},
    ),
    Action.ACCEPT: Rule(frozenset({Status.DISPATCHED}), Status.ACCEPTED, _FIELD),
    Action.ARRIVE: Rule(frozenset({Status.ACCEPTED}), Status.ON_SITE, _FIELD),
    Action.RESOLVE: Rule(frozenset({Status.ACCEPTED, Status.ON_SITE}), Status.RESOLVED, _FIELD),
    Action.CLOSE: Rule(frozenset({Status.RESOLVED}), Status.CLOSED, _STAFF | {Role.RESIDENT}),
    Action.REOPEN: Rule(frozenset({Status.RESOLVED, Status.CLOSED}), Status.REOPENED, _STAFF | {Role.RESIDENT}),
}


def next_status(current: Status, action: Action, role: Role) -> Status:
    """The status after ``action``; raise :class:`TransitionError` saying why not."""
    rule = TRANSITIONS[action]
    if role not in rule.roles:
        allowed = ", ".join(sorted(r.value for r in rule.roles))
        raise NotAllowed(f"a {role.value} may not {action.value} an order (allowed: {allowed})")
    if current not in rule.sources:
        allowed = ", ".join(sorted(s.value for s in rule.sources))
        raise WrongStatus(f"cannot {action.value} an order that is {current.value} (only from {allowed})")
    return current if rule.target is None else rule.target


def allowed_actions(current: Status, role: Role) -> list[Action]:
    """The actions ``role`` may take on an order in ``current`` (before per-order checks such as ownership)."""
    return [a for a, rule in TRANSITIONS.items() if role in rule.roles and current in rule.sources]
