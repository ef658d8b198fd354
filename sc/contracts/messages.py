"""Message models carried on the topics of :mod:`sc.contracts.topics`.

Every message is JSON, validated by these pydantic models on both ends, and
carries the schema version ``v``. Events carry a globally unique ``id`` (the
idempotency key of the whole system), the edge time ``ts`` and a per-device
sequence number ``seq`` so a consumer can check order and spot gaps.

Use :func:`encode` to serialise and :func:`decode` to parse bytes off the
wire; :func:`decode` raises :class:`ContractError` with a reason a person can
read (oversized, not JSON, wrong shape) and never anything else.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from .topics import ID_PATTERN

__all__ = [
    "CLEARED_BY",
    "CLOUD_KINDS",
    "DEFAULT_SEVERITY",
    "MAX_PAYLOAD_BYTES",
    "MAX_SNAPSHOT_B64",
    "MAX_STATE_FAULTS",
    "MAX_STATE_LIGHTS",
    "MAX_STATE_TRACKS",
    "RECORD_KINDS",
    "AlarmPayload",
    "BinReading",
    "CommandRefusedPayload",
    "ConnectivityPayload",
    "ContractError",
    "DeviceId",
    "EntryMethod",
    "Event",
    "EventKind",
    "EventPayload",
    "EventState",
    "FaultPayload",
    "GarageFault",
    "GarageFaultKind",
    "GarageState",
    "GatePayload",
    "GhostState",
    "LightState",
    "ManholeReading",
    "OverrideLevel",
    "Reading",
    "Severity",
    "SmokeReading",
    "Status",
    "StatusState",
    "Telemetry",
    "TrackKind",
    "TrackState",
    "Uplink",
    "decode",
    "encode",
    "new_id",
    "utcnow",
]

#: Anything larger than this on any topic is refused (dead-lettered) unread.
MAX_PAYLOAD_BYTES = 64 * 1024

DeviceId = Annotated[str, Field(pattern=ID_PATTERN.pattern)]


class ContractError(ValueError):
    """Bytes that are not a valid message of the expected kind."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A new globally unique event id (UUID4, canonical text form)."""
    return str(uuid.uuid4())


class _Model(BaseModel):
    # NaN and infinity cannot be written as JSON: refuse them when a message is built
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- readings


class SmokeReading(_Model):
    """A photoelectric smoke detector's reading."""

    type: Literal["smoke"] = "smoke"
    smoke_density: float = Field(ge=0, le=100, description="obscuration, %/m")
    temperature_c: float = Field(ge=-40, le=125)
    battery_pct: int = Field(ge=0, le=100)
    alarm: bool = Field(description="the detector's own alarm flag")
    fault: bool = Field(description="the detector's own fault flag (dirty chamber, sensor error)")


class ManholeReading(_Model):
    """A manhole-cover monitor: tilt, water level under the cover, lid switch."""

    type: Literal["manhole"] = "manhole"
    tilt_deg: float = Field(ge=-90, le=90)
    water_level_cm: float = Field(ge=0, le=500, description="water level below the cover")
    lid_open: bool
    battery_pct: int = Field(ge=0, le=100)


class BinReading(_Model):
    """A smart refuse bin: ultrasonic distance to the rubbish, temperature."""

    type: Literal["bin"] = "bin"
    distance_cm: float = Field(ge=0, le=400, description="ultrasonic distance to the rubbish top")
    fill_pct: float = Field(ge=0, le=100)
    temperature_c: float = Field(ge=-40, le=125)
    battery_pct: int = Field(ge=0, le=100)


Reading = Annotated[SmokeReading | ManholeReading | BinReading, Field(discriminator="type")]


# --------------------------------------------------------------------------- events


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"


class EventKind(StrEnum):
    SMOKE_ALARM = "smoke_alarm"
    HIGH_TEMPERATURE = "high_temperature"
    DEVICE_FAULT = "device_fault"
    LOW_BATTERY = "low_battery"
    MANHOLE_OPEN = "manhole_open"
    WATER_LEVEL_HIGH = "water_level_high"
    BIN_FULL = "bin_full"
    BIN_FIRE = "bin_fire"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_ONLINE = "device_online"
    # gates (see docs/contracts.md, "Gates"); the device is the gate's id
    ENTRY = "entry"  # a person was let in (face, visitor pass, remote open): an entry record, not an alarm
    ENTRY_REFUSED = "entry_refused"  # a pass was refused or a face failed the liveness checks
    STRANGER_AT_GATE = "stranger_at_gate"  # an unknown face loitered at the gate
    TAILGATING = "tailgating"  # more people crossed the door line than entries were granted
    DOOR_HELD_OPEN = "door_held_open"
    DOOR_CLOSED = "door_closed"  # the clear of door_held_open
    DOOR_FORCED = "door_forced"  # the door opened without a grant
    CAMERA_OFFLINE = "camera_offline"
    CAMERA_ONLINE = "camera_online"
    # garages (see docs/garage.md); the device is a light controller or a presence sensor
    LIGHTING_FAULT = "lighting_fault"  # a sensor stuck on, a controller reporting a fault: its zone is kept full
    LIGHTING_RESTORED = "lighting_restored"  # the clear of lighting_fault
    # any gateway; the device is the gateway itself
    COMMAND_REFUSED = "command_refused"  # unsigned, forged, expired or misaddressed commands reached the gateway
    # raised by the cloud itself, never accepted from a gateway (CLOUD_KINDS); the device is the gate
    GALLERY_DELETE_OVERDUE = "gallery_delete_overdue"  # a gate has not confirmed a resident's removal in time


#: The severity an event kind has unless the site config says otherwise.
DEFAULT_SEVERITY: dict[EventKind, Severity] = {
    EventKind.SMOKE_ALARM: Severity.CRITICAL,
    EventKind.HIGH_TEMPERATURE: Severity.MAJOR,
    EventKind.DEVICE_FAULT: Severity.WARNING,
    EventKind.LOW_BATTERY: Severity.INFO,
    EventKind.MANHOLE_OPEN: Severity.MAJOR,
    EventKind.WATER_LEVEL_HIGH: Severity.MAJOR,
    EventKind.BIN_FULL: Severity.INFO,
    EventKind.BIN_FIRE: Severity.CRITICAL,
    EventKind.DEVICE_OFFLINE: Severity.WARNING,
    EventKind.DEVICE_ONLINE: Severity.INFO,
    EventKind.ENTRY: Severity.INFO,
    EventKind.ENTRY_REFUSED: Severity.INFO,
    EventKind.STRANGER_AT_GATE: Severity.WARNING,
    EventKind.TAILGATING: Severity.MAJOR,
    EventKind.DOOR_HELD_OPEN: Severity.WARNING,
    EventKind.DOOR_CLOSED: Severity.INFO,
    EventKind.DOOR_FORCED: Severity.MAJOR,
    EventKind.CAMERA_OFFLINE: Severity.MAJOR,
    EventKind.CAMERA_ONLINE: Severity.INFO,
    EventKind.LIGHTING_FAULT: Severity.MAJOR,
    EventKind.LIGHTING_RESTORED: Severity.INFO,
    EventKind.COMMAND_REFUSED: Severity.MAJOR,
    EventKind.GALLERY_DELETE_OVERDUE: Severity.MAJOR,
}

#: Records, not alarms: stored and shown, never turned into a work order.
RECORD_KINDS: frozenset[EventKind] = frozenset({EventKind.ENTRY, EventKind.ENTRY_REFUSED})

#: Raised by the cloud (cloud/privacy.py): an ingester refuses them from any gateway.
CLOUD_KINDS: frozenset[EventKind] = frozenset({EventKind.GALLERY_DELETE_OVERDUE})

#: An event of the key kind ends the condition raised by the value kind.
CLEARED_BY: dict[EventKind, EventKind] = {
    EventKind.DEVICE_ONLINE: EventKind.DEVICE_OFFLINE,
    EventKind.CAMERA_ONLINE: EventKind.CAMERA_OFFLINE,
    EventKind.DOOR_CLOSED: EventKind.DOOR_HELD_OPEN,
    EventKind.LIGHTING_RESTORED: EventKind.LIGHTING_FAULT,
}


class EventState(StrEnum):
    RAISED = "raised"  # a condition began (one per incident, debounced)
    CLEARED = "cleared"  # it ended; a person still closes the work order


class AlarmPayload(_Model):
    """A threshold condition on a reading, with the reading that tripped or cleared it."""

    type: Literal["alarm"] = "alarm"
    rule: str = Field(description="which field and comparison, e.g. 'smoke_density >= 8.0'")
    value: float
    threshold: float
    reading: Reading


class ConnectivityPayload(_Model):
    """A device stopped or resumed answering."""

    type: Literal["connectivity"] = "connectivity"
    reason: str
    consecutive_failures: int = Field(ge=0)
    last_seen: AwareDatetime | None = None


class FaultPayload(_Model):
    """The device reports a fault, or keeps sending readings that cannot be right."""

    type: Literal["fault"] = "fault"
    reason: str
    reading: Reading | None = None


class EntryMethod(StrEnum):
    FACE = "face"
    PASS = "pass"  # a visitor pass (QR)
    REMOTE = "remote"  # opened by the control room (door_open command)
    CARD = "card"


#: A JPEG snapshot inside an event, base64: small enough for one MQTT message.
MAX_SNAPSHOT_B64 = 48 * 1024


class GatePayload(_Model):
    """What happened at a gate: an entry, a refusal, a stranger, tailgating, the door, the camera."""

    type: Literal["gate"] = "gate"
    gate: DeviceId
    reason: str = Field(default="", max_length=500, description="why refused / what was seen, for a person")
    method: EntryMethod | None = None
    person: str | None = Field(default=None, max_length=120, description="resident id, or 'visitor:<name>'")
    distance: float | None = Field(default=None, ge=0, le=4, description="face: embedding distance to the match")
    track: int | None = Field(default=None, ge=0, description="the vision loop's track id")
    grants: int | None = Field(default=None, ge=0, description="tailgating: passages granted while the door was open")
    crossings: int | None = Field(default=None, ge=0, description="tailgating: people counted crossing the door line")
    seconds: float | None = Field(default=None, ge=0, description="door held open / loitering for this long")
    snapshot_jpeg: str | None = Field(default=None, max_length=MAX_SNAPSHOT_B64, description="base64 JPEG")


class CommandRefusedPayload(_Model):
    """Commands the gateway would not run: the first of a burst at once, the rest counted into the next event."""

    type: Literal["command"] = "command"
    refusal: str = Field(max_length=40, description="why: unsigned, forged, expired, wrong_target... (sc.signing)")
    reason: str = Field(max_length=500, description="for a person")
    command: str = Field(default="", max_length=64, description="the refused command's id, if it had one")
    name: str = Field(default="", max_length=40, description="its name, if it could be read")
    refused: int = Field(ge=1, description="commands refused since the last such event, this one included")


EventPayload = Annotated[
    AlarmPayload | ConnectivityPayload | FaultPayload | GatePayload | CommandRefusedPayload, Field(discriminator="type")
]


class Event(_Model):
    """An alarm or state change. Delivered at least once; ``id`` makes it idempotent."""

    v: Literal[1] = 1
    id: str = Field(default_factory=new_id, min_length=8, max_length=64)
    site: DeviceId
    gateway: DeviceId
    device: DeviceId
    ts: AwareDatetime = Field(description="when it happened, edge clock, UTC")
    seq: int = Field(ge=1, le=2**63 - 1, description="per-device sequence number assigned by the edge outbox")
    kind: EventKind
    state: EventState
    severity: Severity
    payload: EventPayload


class Telemetry(_Model):
    v: Literal[1] = 1
    site: DeviceId
    gateway: DeviceId
    device: DeviceId
    ts: AwareDatetime
    reading: Reading


class StatusState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Status(_Model):
    """Retained availability of a gateway (birth / last will) or of one device."""

    v: Literal[1] = 1
    state: StatusState
    ts: AwareDatetime | None = Field(
        default=None, description="when the state began; absent in a last will (set at connect time)"
    )
    reason: str = ""
    version: str = ""


class Uplink(_Model):
    """What an MQTT-native (NB-IoT style) sensor sends its gateway."""

    v: Literal[1] = 1
    ts: AwareDatetime | None = None
    reading: Reading


# --------------------------------------------------------------------------- live state (garages)

#: Bounds of a garage's live state: far above a real garage, and the encoded message stays under the payload limit.
MAX_STATE_LIGHTS = 500
MAX_STATE_TRACKS = 100
MAX_STATE_FAULTS = 50
Metres = Annotated[float, Field(ge=-100_000, le=100_000)]


class OverrideLevel(StrEnum):
    """The control room's ``lights_override`` levels: the base level of the lights it names."""

    FULL = "full"
    STANDBY = "standby"
    OFF = "off"
    AUTO = "auto"  # no override: back to the gateway's own decision


class LightState(_Model):
    id: DeviceId
    level: int = Field(ge=0, le=100, description="the level its DALI group was last commanded, %")
    full: bool = Field(description="the gateway wants it full (a car, a person, a fault, fire, an override)")
    override: OverrideLevel | None = Field(default=None, description="the control room's base level, if set")
    override_left_s: float | None = Field(
        default=None, ge=0, description="seconds the override has left; none: until changed"
    )

    @model_validator(mode="after")
    def _override(self) -> LightState:
        if self.override is OverrideLevel.AUTO:
            raise ValueError("a light without an override has none: auto is not a state")
        if self.override is None and self.override_left_s is not None:
            raise ValueError("override_left_s without an override")
        return self


class TrackKind(StrEnum):
    CAR = "car"
    PERSON = "person"
    UNKNOWN = "unknown"  # not known yet


class TrackState(_Model):
    """Something the gateway follows: where its sensor is, how fast and which way it goes."""

    id: int = Field(ge=0)
    kind: TrackKind
    x: Metres
    y: Metres
    speed_mps: float = Field(ge=0, le=100, description="0: not measured yet")
    heading_deg: float | None = Field(
        default=None, ge=-180, le=180, description="on the plan, 0 = +x, counter-clockwise; none: not known"
    )
    sensor: DeviceId = Field(description="the presence sensor that saw it last")


class GhostState(_Model):
    """Where a track was lost (a parked car): its zone stays full for a while."""

    track: int = Field(ge=0)
    x: Metres
    y: Metres
    left_s: float = Field(ge=0, description="how long its zone stays full")


class GarageFaultKind(StrEnum):
    OFFLINE = "offline"  # a sensor module or light controller that does not answer
    FAULT = "fault"  # a controller reporting failsafe or a DALI bus fault
    STUCK = "stuck"  # a presence sensor on without a break
    BLIND = "blind"  # a presence sensor that missed movers


class GarageFault(_Model):
    device: DeviceId
    kind: GarageFaultKind
    reason: str = Field(default="", max_length=200)


class GarageState(_Model):
    """A garage's live state, about once a second, retained with QoS 0: each one replaces the last."""

    v: Literal[1] = 1
    garage: DeviceId
    ts: AwareDatetime = Field(description="when the gateway took it")
    lights: list[LightState] = Field(max_length=MAX_STATE_LIGHTS)
    tracks: list[TrackState] = Field(default_factory=list, max_length=MAX_STATE_TRACKS)
    ghosts: list[GhostState] = Field(default_factory=list, max_length=MAX_STATE_TRACKS)
    faults: list[GarageFault] = Field(default_factory=list, max_length=MAX_STATE_FAULTS)
    fire: bool = Field(default=False, description="a smoke alarm has every light full")
    fire_devices: list[DeviceId] = Field(default_factory=list, max_length=MAX_STATE_FAULTS)

    @model_validator(mode="after")
    def _unique_lights(self) -> GarageState:
        ids = [lt.id for lt in self.lights]
        if len(set(ids)) != len(ids):
            raise ValueError("light ids must be unique")
        return self


# --------------------------------------------------------------------------- wire helpers

M = TypeVar("M", bound=BaseModel)


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def decode(model: type[M], data: bytes) -> M:
    """Parse ``data`` as ``model``; raise :class:`ContractError` with a readable reason."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(data)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    if b"\\u0000" in data:  # JSON's only way to say NUL: no text of ours holds one, and PostgreSQL cannot store it
        raise ContractError(f"invalid {model.__name__}: a NUL character (\\u0000) in a text")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(message)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ContractError(f"invalid {model.__name__}: {where}: {first['msg']}{more}") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # pragma: no cover - pydantic wraps most
        raise ContractError(f"invalid {model.__name__}: {exc}") from exc
