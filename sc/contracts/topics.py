"""The MQTT topic schema: the one place that spells a topic.

    sc/v1/{site}/{gateway}/{kind}/{device}

``site``, ``gateway`` and ``device`` are identifiers (lower-case letters,
digits, ``-`` and ``_``; see :data:`ID_PATTERN`), so they can never contain
the MQTT separators and wildcards ``/ + #`` or start a ``$`` system topic.
A gateway's own status uses its own id as ``device``.

Build topics with :class:`Topic` (validated when built) and subscription
filters with :func:`topic_filter`; parse what arrives with
:meth:`Topic.parse`, which raises :class:`TopicError` with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ID_PATTERN",
    "PREFIX",
    "SCHEMA_VERSION",
    "Kind",
    "Topic",
    "TopicError",
    "check_id",
    "topic_filter",
]

PREFIX = "sc"
SCHEMA_VERSION = "v1"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class TopicError(ValueError):
    """A topic or identifier that does not follow the schema."""


class Kind(StrEnum):
    """What a topic carries."""

    STATUS = "status"  # retained birth / last will, per gateway and per device
    TELEMETRY = "telemetry"  # periodic readings
    EVENT = "event"  # alarms and state changes, via the edge outbox
    SNAPSHOT = "snapshot"  # evidence images (gate issue)
    CMD = "cmd"  # cloud -> gateway commands
    CMD_ACK = "cmd-ack"  # gateway -> cloud command results
    UPLINK = "uplink"  # MQTT-native (NB-IoT style) sensor -> its gateway, raw reports
    STATE = "state"  # latest live state of a device (a garage), retained, QoS 0: each message replaces the last


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid identifier, else raise :class:`TopicError`."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise TopicError(
            f"invalid {what} {value!r}: use 1-64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """One concrete topic. Every field is validated when the object is built."""

    site: str
    gateway: str
    kind: Kind
    device: str

    def __post_init__(self) -> None:
        check_id(self.site, "site id")
        check_id(self.gateway, "gateway id")
        check_id(self.device, "device id")
        if not isinstance(self.kind, Kind):
            try:
                object.__setattr__(self, "kind", Kind(self.kind))
            except ValueError as exc:
                raise TopicError(f"unknown topic kind {self.kind!r}") from exc

    def __str__(self) -> str:
        return f"{PREFIX}/{SCHEMA_VERSION}/{self.site}/{self.gateway}/{self.kind.value}/{self.device}"

    @classmethod
    def parse(cls, topic: str) -> Topic:
        """Parse a concrete topic; raise :class:`TopicError` saying what is wrong."""
        parts = topic.split("/")
        if len(parts) != 6:
            raise TopicError(f"topic {topic!r} has {len(parts)} levels, expected 6")
        prefix, version, site, gateway, kind, device = parts
        if prefix != PREFIX:
            raise TopicError(f"topic {topic!r} does not start with {PREFIX!r}")
        if version != SCHEMA_VERSION:
            raise TopicError(f"topic {topic!r} has schema version {version!r}, expected {SCHEMA_VERSION!r}")
        try:
            k = Kind(kind)
        except ValueError as exc:
            raise TopicError(f"topic {topic!r} has unknown kind {kind!r}") from exc
        return cls(site=site, gateway=gateway, kind=k, device=device)


def topic_filter(
    *,
    site: str | None = None,
    gateway: str | None = None,
    kind: Kind | None = None,
    device: str | None = None,
) -> str:
    """A subscription filter; ``None`` means any (``+``)."""
    levels = [PREFIX, SCHEMA_VERSION]
    for value, what in ((site, "site id"), (gateway, "gateway id")):
        levels.append("+" if value is None else check_id(value, what))
    levels.append("+" if kind is None else Kind(kind).value)
    levels.append("+" if device is None else check_id(device, "device id"))
    return "/".join(levels)
