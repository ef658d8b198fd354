"""The site config: the single source of truth for the grid tree, the broker,
gateways, their serial buses and devices, gates and garages.

One pydantic model, ``extra="forbid"`` everywhere, a title and description on
the fields a person edits. Cross-references (a device on a bus that does not
exist, a location that is not in the grid tree, two devices on one Modbus
address) are checked by :meth:`SiteConfig.reference_errors`, which names the
key path so the loader can point at the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sc.contracts.commands import DEFAULT_EMBEDDING_MODEL, EmbeddingModel
from sc.contracts.messages import EventKind, Severity
from sc.contracts.topics import ID_PATTERN

__all__ = [
    "MATCH_MARGIN",
    "MATCH_THRESHOLD",
    "BrokerConfig",
    "Building",
    "CameraConfig",
    "CloudAccount",
    "CloudRole",
    "Community",
    "ConsentText",
    "Department",
    "DepartmentKind",
    "DeviceConfig",
    "DeviceType",
    "DoorConfig",
    "DoorLine",
    "Garage",
    "GarageLevels",
    "GarageLight",
    "Gate",
    "GatewayConfig",
    "GatewayRole",
    "Lane",
    "LaneKind",
    "LightController",
    "MicroGrid",
    "MqttAccount",
    "OutboxConfig",
    "Place",
    "PlaceType",
    "PresenceSensor",
    "Privacy",
    "Routing",
    "RoutingRule",
    "SensorKind",
    "SensorModule",
    "SerialBusConfig",
    "SiteConfig",
    "SiteInfo",
    "Sla",
    "Stairwell",
    "Street",
    "Threshold",
    "TlsConfig",
    "Transport",
    "VisitorPolicy",
    "Worker",
]

Id = Annotated[str, Field(pattern=ID_PATTERN.pattern, description="lower-case id: a-z 0-9 - _")]
KeyPath = tuple[str | int, ...]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- grid tree


class Stairwell(_Config):
    id: Id
    name: str


class Building(_Config):
    id: Id
    name: str
    stairwells: list[Stairwell] = Field(default_factory=list)


class PlaceType(StrEnum):
    """The places a grid patrol covers (the 7 classes), plus where our devices sit."""

    GUARD_BOOTH = "guard_booth"
    REFUSE_ROOM = "refuse_room"
    BIKE_GARAGE = "bike_garage"
    WATER_PUMP = "water_pump"
    STAIRWELL = "stairwell"
    SUBSTATION = "substation"
    GATE = "gate"
    GARAGE = "garage"
    ROAD = "road"
    OTHER = "other"


class Place(_Config):
    id: Id
    name: str
    type: PlaceType


class MicroGrid(_Config):
    """微网格: the smallest unit a grid worker is responsible for."""

    id: Id
    name: str
    buildings: list[Building] = Field(default_factory=list)
    places: list[Place] = Field(default_factory=list)


class Community(_Config):
    """社区/居委."""

    id: Id
    name: str
    property_company: str = Field(default="", description="物业公司 managing it")
    micro_grids: list[MicroGrid] = Field(min_length=1)


class Street(_Config):
    """街道: the street office at the top of the tree."""

    id: Id
    name: str
    communities: list[Community] = Field(min_length=1)


# --------------------------------------------------------------------------- broker


class TlsConfig(_Config):
    ca_file: Path = Field(title="CA certificate", description="PEM file that signed the broker's certificate")
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(default=None, description="client key (mutual TLS)")


class BrokerConfig(_Config):
    host: str = Field(default="127.0.0.1", title="broker host")
    port: int = Field(default=1883, ge=1, le=65535)
    tls: TlsConfig | None = Field(default=None, description="TLS on when set")
    keepalive_s: int = Field(default=30, ge=5, le=3600)


class MqttAccount(_Config):
    """A broker account. The password lives in its own file (mode 0600), never in the YAML."""

    username: Id
    password_file: Path = Field(
        description="file holding the password; relative paths are relative to the config file; "
        "`sc broker provision` creates it"
    )


class CloudRole(StrEnum):
    """What a cloud account may do on the broker (sc/broker.py writes each role's ACL)."""

    INGEST = "ingest"  # the ingester: reads every message of the site (its share of them) and $SYS; writes nothing
    COMMANDS = "commands"  # the gate link: writes cmd; reads cmd-ack, the gateways' status and state
    MONITOR = "monitor"  # `sc monitor`, dashboards: reads everything of the site and $SYS; writes nothing


class CloudAccount(MqttAccount):
    """A cloud connection's account. The broker binds each client id to its account (``use_username_as_clientid``):
    each connection needs one of its own, so no account can take another's place."""

    roles: list[CloudRole] = Field(min_length=1, description="what it may publish and read")
    instance: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")] | None = Field(
        default=None,
        description="the cloud instance (`sc cloud run --instance`) whose ingester or gate link connects with it; "
        "none: for the monitor and tools",
    )

    @model_validator(mode="after")
    def _one_connection(self) -> CloudAccount:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError("a role is listed twice")
        if CloudRole.INGEST in self.roles and CloudRole.COMMANDS in self.roles:
            raise ValueError(
                "ingest and commands are two connections of one cloud instance: give each an account of its own"
            )
        return self


# --------------------------------------------------------------------------- devices


class DeviceType(StrEnum):
    SMOKE = "smoke"
    MANHOLE = "manhole"
    BIN = "bin"


class Transport(StrEnum):
    MODBUS = "modbus"  # Modbus RTU on an RS-485 bus of the gateway
    MQTT = "mqtt"  # MQTT-native (NB-IoT style): the device publishes uplinks itself


class Threshold(_Config):
    """Hysteresis on one reading: raise at ``raise_at``, clear at ``clear_at``.

    ``raise_at > clear_at`` means "alarm when above" (smoke, temperature);
    ``raise_at < clear_at`` means "alarm when below" (battery).
    """

    raise_at: float
    clear_at: float
    samples: int = Field(default=2, ge=1, le=100, description="consecutive samples to raise")
    clear_samples: int = Field(default=2, ge=1, le=100, description="consecutive samples to clear")
    severity: Severity | None = Field(default=None, description="override the kind's default severity")

    @model_validator(mode="after")
    def _hysteresis(self) -> Threshold:
        if self.raise_at == self.clear_at:
            raise ValueError("raise_at and clear_at must differ (hysteresis stops flapping)")
        return self


class DeviceConfig(_Config):
    id: Id
    type: DeviceType
    location: Id = Field(description="id of a micro-grid, building, stairwell or place")
    transport: Transport = Transport.MODBUS
    bus: Id | None = Field(default=None, description="serial bus id (modbus transport)")
    unit: int | None = Field(default=None, ge=1, le=247, description="Modbus slave address")
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    offline_after: int = Field(default=3, ge=1, le=100, description="failed polls in a row before device_offline")
    expire_after_s: float | None = Field(
        default=None,
        gt=0,
        description="mqtt transport: no uplink for this long means offline (default: 3 x poll_interval_s)",
    )
    bin_depth_cm: float = Field(default=100.0, gt=10, le=400, description="bin: sensor to bottom")
    rules: dict[EventKind, Threshold] = Field(
        default_factory=dict, description="override the device type's default thresholds"
    )
    account: MqttAccount | None = Field(default=None, description="mqtt transport: the device's own broker account")

    @model_validator(mode="after")
    def _transport_fields(self) -> DeviceConfig:
        if self.transport is Transport.MODBUS and (self.bus is None or self.unit is None):
            raise ValueError("a modbus device needs `bus` and `unit`")
        if self.transport is Transport.MQTT:
            if self.bus is not None or self.unit is not None:
                raise ValueError("an mqtt device has no `bus` or `unit`")
            if self.account is None:
                raise ValueError("an mqtt device needs its own `account` (username, password_file)")
        return self

    @property
    def expire_after(self) -> float:
        return self.expire_after_s if self.expire_after_s is not None else 3 * self.poll_interval_s


class SerialBusConfig(_Config):
    id: Id
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0 (relative paths: config dir)")
    baudrate: int = Field(default=9600, ge=1200, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=0.5, gt=0, le=10, description="reply timeout per request")


class OutboxConfig(_Config):
    path: Path | None = Field(
        default=None, description="SQLite file; default var/<gateway>/outbox.db beside the config"
    )
    max_mb: float = Field(default=512, gt=0, description="disk budget; telemetry is shed first")
    warn_pct: float = Field(default=80, gt=0, le=100, description="log loudly above this fill")
    synchronous: Literal["full", "normal"] = Field(
        default="full", description="full: fsync every commit (survives power loss)"
    )
    window: int = Field(default=500, ge=1, le=65535, description="unacknowledged publishes in flight")


class GatewayRole(StrEnum):
    GATE = "gate"
    GARAGE = "garage"
    SENSORS = "sensors"


class GatewayConfig(_Config):
    id: Id
    name: str
    role: GatewayRole
    location: Id
    account: MqttAccount
    buses: list[SerialBusConfig] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    telemetry_interval_s: float = Field(
        default=60.0, gt=0, description="send a reading at most this often per device (events: at once)"
    )
    health_port: int | None = Field(default=None, ge=0, le=65535, description="HTTP /health; 0 = any free port")


class CameraConfig(_Config):
    """Where a gate's frames come from."""

    source: str = Field(
        title="Frame source",
        description=(
            "usb:<index> (a V4L2 camera), rtsp://... or http(s)://... (a stream), file:<path> (a video file, "
            "relative to the config), synthetic:<scene> (a firmware-sim scene, for tests and demos)"
        ),
    )
    width: int = Field(default=1280, ge=160, le=3840, title="Frame width asked of the camera")
    height: int = Field(default=720, ge=120, le=2160, title="Frame height asked of the camera")
    fps: float = Field(default=25.0, gt=0, le=120, title="Frames per second asked of the camera")
    stale_after_s: float = Field(
        default=3.0, gt=0, le=600, title="Frozen after", description="no new frame (or the same frame) for this long"
    )
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600, title="Longest wait between reconnects")

    @field_validator("source")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        schemes = ("usb:", "rtsp://", "rtsps://", "http://", "https://", "file:", "synthetic:")
        if not value.startswith(schemes):
            raise ValueError(f"unknown camera source {value!r}: start it with one of {', '.join(schemes)}")
        if value.startswith("usb:") and not value[4:].isdigit():
            raise ValueError(f"usb camera source needs a device index, e.g. usb:0 (got {value!r})")
        return value


class DoorConfig(_Config):
    """The door controller: a relay that unlocks the door and the door's contact (open/closed)."""

    bus: Id = Field(title="Serial bus", description="the gateway's RS-485 bus the controller is on")
    unit: int = Field(ge=1, le=247, title="Modbus slave address")
    relay_coil: int = Field(default=0, ge=0, le=65535, title="Coil that unlocks the door while on")
    contact_input: int = Field(default=0, ge=0, le=65535, title="Discrete input: 1 = door open")
    unlock_s: float = Field(default=3.0, gt=0, le=60, title="How long the lock stays released per grant")
    held_open_after_s: float = Field(default=30.0, gt=0, le=3600, title="door_held_open after this long open")
    poll_interval_s: float = Field(default=0.1, gt=0, le=5, title="Door contact poll interval")


class DoorLine(_Config):
    """The door threshold in the camera image, in fractions of the frame (0..1), and which way is in."""

    a: tuple[float, float] = Field(title="One end of the line (x, y)")
    b: tuple[float, float] = Field(title="The other end (x, y)")
    inside: Literal["left", "right"] = Field(
        default="left", description="which side of a->b is inside the community (left = counter-clockwise)"
    )
    alarm: bool = Field(
        default=True,
        title="Tailgating alarm",
        description=(
            "raise tailgating when more people cross inwards than were let in (each grant lets one in; a door with "
            "no reader lets nobody in, so every inward crossing is one); false: count only"
        ),
    )
    person_height: float | None = Field(
        default=None,
        gt=0.02,
        le=1.0,
        title="A person's height at the line",
        description=(
            "how tall a person standing on the door line looks, a share of the frame height (feet to head): the "
            "people counter's scale; none: a door camera's, people large and close (a high or far camera: set it)"
        ),
    )

    @field_validator("a", "b")
    @classmethod
    def _in_frame(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= v <= 1.0 for v in value):
            raise ValueError(f"door line points are fractions of the frame, 0..1 (got {value})")
        return value

    @model_validator(mode="after")
    def _not_a_point(self) -> DoorLine:
        if abs(self.a[0] - self.b[0]) + abs(self.a[1] - self.b[1]) < 0.05:
            raise ValueError("the door line's ends are (almost) the same point")
        return self


#: Each face model's match threshold (an embedding distance) where a gate's config gives none: dlib's is the one
#: face_recognition's users know; the ONNX recogniser's is a cosine of 0.5 (docs/face-models.md).
MATCH_THRESHOLD: dict[EmbeddingModel, float] = {
    EmbeddingModel.DLIB_RESNET_V1: 0.40,
    EmbeddingModel.FACEPLUGIN_FR_FEATURE: 1.00,
}

#: Each face model's open-set margin where a gate's config gives none: a grant needs the best resident this much
#: nearer than the second best (a tenth of the threshold: docs/face-models.md, "Open set").
MATCH_MARGIN: dict[EmbeddingModel, float] = {
    EmbeddingModel.DLIB_RESNET_V1: 0.04,
    EmbeddingModel.FACEPLUGIN_FR_FEATURE: 0.10,
}


class Gate(_Config):
    id: Id
    name: str
    location: Id
    gateway: Id
    camera: CameraConfig | None = Field(default=None, title="Camera (none: passes only by other readers)")
    door: DoorConfig | None = Field(default=None, title="Door controller (none: decisions are only reported)")
    door_line: DoorLine | None = Field(default=None, title="Door line for anti-tailgating (none: not counted)")
    faces: bool = Field(
        default=True,
        title="Recognise faces",
        description="false: a door that only counts people across its door line (a stairwell): no face detection",
    )
    face_model: EmbeddingModel = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        title="Face model",
        description=(
            "what the gate recognises faces with (docs/face-models.md); its embeddings only match its own model's, "
            "so changing it means enrolling the residents again"
        ),
    )
    threshold: float | None = Field(
        default=None,
        gt=0.0,
        lt=2.0,
        title="Face match threshold",
        description=(
            "largest embedding distance accepted as a match (none: the model's own, MATCH_THRESHOLD); "
            "`sc gate report` proposes one from data"
        ),
    )
    margin: float | None = Field(
        default=None,
        ge=0.0,
        lt=2.0,
        title="Face match margin",
        description=(
            "a grant needs the best resident at least this much nearer than the second best, so that a stranger "
            "between two residents is not let in as either (none: the model's own, MATCH_MARGIN); "
            "`sc gate report` proposes one from data"
        ),
    )
    min_face_px: int = Field(
        default=108,
        ge=40,
        le=1000,
        title="Smallest face to act on",
        description="face height in full-frame pixels; decisions are made from one detector step (1.2x) under it",
    )
    liveness_frames: int = Field(
        default=3, ge=1, le=50, title="Frames of evidence", description="frames a face must be tracked before a grant"
    )
    stranger_after_s: float | None = Field(
        default=10.0, gt=0, title="stranger_at_gate after", description="loitering unknown face; none = never report"
    )
    pass_public_key: Path | None = Field(
        default=None, title="Visitor pass public key (PEM)", description="written by the cloud; none: passes refused"
    )
    gallery: Path | None = Field(
        default=None, title="Gallery file", description="default var/<gateway>/<gate>/gallery.db beside the config"
    )

    @property
    def match_threshold(self) -> float:
        """The threshold the gate decides with: the config's, or its face model's own."""
        return self.threshold if self.threshold is not None else MATCH_THRESHOLD[self.face_model]

    @property
    def match_margin(self) -> float:
        """The open-set margin the gate decides with: the config's, or its face model's own."""
        return self.margin if self.margin is not None else MATCH_MARGIN[self.face_model]


class LaneKind(StrEnum):
    DRIVE = "drive"  # a driving lane
    RAMP = "ramp"  # the way in and out
    AISLE = "aisle"  # a lane lined with parking spaces
    WALKWAY = "walkway"  # people only (to the lift lobby)


Point = tuple[float, float]


class Lane(_Config):
    """A lane drawn on the garage plan as a polyline, in metres. Lanes meet where one's end lies on another."""

    id: Id
    kind: LaneKind = LaneKind.DRIVE
    points: list[Point] = Field(min_length=2, title="Polyline (x, y) in metres")


class LightController(_Config):
    """A lighting controller on RS-485 (Modbus RTU) driving DALI groups: one holding register per group."""

    id: Id
    bus: Id = Field(title="Serial bus")
    unit: int = Field(ge=1, le=247, title="Modbus slave address")
    groups: int = Field(default=16, ge=1, le=16, title="DALI groups it drives")
    dali_frame_ms: float = Field(
        default=25.0, gt=0, le=500, title="DALI frame time", description="one group command on the lighting bus"
    )
    failsafe_s: float = Field(
        default=3.0,
        ge=1,
        le=600,
        title="Failsafe after",
        description="the controller sets every group to full when no command came for this long",
    )


class GarageLight(_Config):
    id: Id
    at: Point = Field(title="Position (x, y) in metres, above a lane")
    controller: Id
    group: int = Field(ge=0, le=15, title="DALI group on its controller")


class SensorModule(_Config):
    """A digital-input module on RS-485 (Modbus RTU) the presence sensors are wired to."""

    id: Id
    bus: Id
    unit: int = Field(ge=1, le=247)
    inputs: int = Field(default=16, ge=1, le=64, title="Discrete inputs it has")
    offline_after: int = Field(default=3, ge=1, le=100, title="Failed polls in a row before device_offline")


class SensorKind(StrEnum):
    MICROWAVE = "microwave"  # radar: anything moving within range_m
    BEAM = "beam"  # infrared beam across the lane: something at the beam


class PresenceSensor(_Config):
    id: Id
    kind: SensorKind = SensorKind.MICROWAVE
    at: Point = Field(title="Position (x, y) in metres, on or beside a lane")
    range_m: float = Field(default=6.0, gt=0, le=30, title="Coverage along the lanes either side")
    module: Id = Field(title="Input module it is wired to")
    input: int = Field(ge=0, le=63, title="Discrete input on the module")
    stuck_after_s: float = Field(
        default=300.0, gt=0, title="Stuck on after", description="on this long without a break: lighting_fault"
    )


class GarageLevels(_Config):
    standby_pct: int = Field(default=20, ge=0, le=100, title="Standby level", description="where nobody is")
    full_pct: int = Field(default=100, ge=1, le=100, title="Full level", description="around cars and people")

    @model_validator(mode="after")
    def _order(self) -> GarageLevels:
        if self.standby_pct >= self.full_pct:
            raise ValueError("standby_pct must be below full_pct")
        return self


class Garage(_Config):
    """An underground garage whose lights follow cars and people (docs/garage.md)."""

    id: Id
    name: str
    location: Id
    gateway: Id
    lanes: list[Lane] = Field(default_factory=list, title="Lanes (none: the garage has no light control)")
    entrances: list[Point] = Field(default_factory=list, title="Where cars come in (x, y)")
    lobbies: list[Point] = Field(default_factory=list, title="Lift lobbies (x, y)")
    controllers: list[LightController] = Field(default_factory=list)
    lights: list[GarageLight] = Field(default_factory=list)
    sensor_modules: list[SensorModule] = Field(default_factory=list)
    sensors: list[PresenceSensor] = Field(default_factory=list)
    levels: GarageLevels = Field(default_factory=GarageLevels)
    light_reach_m: float = Field(
        default=5.0,
        gt=0,
        le=30,
        title="Light reach",
        description="a light at full lights the lane this far either side",
    )
    ahead_m: float = Field(default=15.0, ge=5, le=100, title="Lit ahead of a car (at least)")
    ahead_s: float = Field(default=3.0, ge=0, le=30, title="Lit ahead of a car (seconds of travel, if further)")
    behind_m: float = Field(default=3.0, ge=0, le=50, title="Kept lit behind a car")
    pedestrian_m: float = Field(default=8.0, ge=2, le=50, title="Lit around a person on foot")
    hold_s: float = Field(
        default=6.0, ge=0, le=600, title="Dim behind after", description="a light stays full this long"
    )
    lost_after_s: float = Field(
        default=6.0, gt=0, le=120, title="Track lost after", description="no sensor has seen it this long"
    )
    lost_hold_s: float = Field(
        default=60.0, ge=0, le=3600, title="Lost track hold", description="its zone stays full this long (parked car)"
    )
    poll_interval_s: float = Field(default=0.05, gt=0, le=5, title="Sensor poll interval")
    refresh_s: float = Field(
        default=1.0,
        gt=0,
        le=300,
        title="Rewrite all levels every",
        description="keeps the controllers' failsafe quiet: must be well below their failsafe_s",
    )
    state_interval_s: float = Field(
        default=1.0,
        ge=0.2,
        le=60,
        title="Publish the live state every",
        description="the garage's levels, tracks and faults for the control room's map (retained, QoS 0)",
    )
    fire_devices: list[Id] | None = Field(
        default=None,
        title="Fire alarm from",
        description="smoke devices whose alarm sets the whole garage full (default: this gateway's smoke "
        "devices located at the garage)",
    )


class DepartmentKind(StrEnum):
    PROPERTY = "property"  # 物业: the property company's engineering team
    GRID = "grid"  # 网格: the community / street grid office
    FIRE = "fire"
    SANITATION = "sanitation"
    MUNICIPAL = "municipal"  # roads, manholes, drainage
    UTILITY = "utility"  # water, power
    POLICE = "police"
    OTHER = "other"


class Department(_Config):
    """Who handles work orders: a property company's team, a street office, a city service."""

    id: Id
    name: str
    kind: DepartmentKind
    communities: list[Id] = Field(default_factory=list, description="communities it serves (empty: all)")


class Worker(_Config):
    """A grid worker (网格员) or a department's staff member who takes orders on a phone."""

    id: Id
    name: str
    department: Id
    grids: list[Id] = Field(default_factory=list, description="micro-grids (or communities) this person covers")


class Sla(_Config):
    respond_min: float = Field(gt=0, description="minutes from opening to first response (accepted)")
    resolve_min: float = Field(gt=0, description="minutes from opening to resolved")


def _default_sla() -> dict[Severity, Sla]:
    return {
        Severity.CRITICAL: Sla(respond_min=5, resolve_min=60),
        Severity.MAJOR: Sla(respond_min=30, resolve_min=240),
        Severity.WARNING: Sla(respond_min=120, resolve_min=1440),
        Severity.INFO: Sla(respond_min=480, resolve_min=4320),
    }


class RoutingRule(_Config):
    """First matching rule decides the department. Empty lists match anything."""

    categories: list[str] = Field(default_factory=list, description="work-order categories, e.g. fire, manhole")
    kinds: list[EventKind] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    within: Id | None = Field(default=None, description="only locations under this grid-tree id")
    department: Id


class Routing(_Config):
    rules: list[RoutingRule] = Field(default_factory=list)
    default_department: Id
    sla: dict[Severity, Sla] = Field(default_factory=_default_sla, description="deadlines per severity")
    escalation_levels: int = Field(
        default=2, ge=0, le=5, description="how many grid levels up an order may escalate (micro-grid -> street: 2)"
    )

    @model_validator(mode="after")
    def _all_severities(self) -> Routing:
        missing = [s.value for s in Severity if s not in self.sla]
        if missing:
            raise ValueError(f"sla needs every severity; missing {', '.join(missing)}")
        return self


class VisitorPolicy(_Config):
    """What a resident may grant visitors: passes are signed QR codes the gates check offline."""

    per_resident_per_day: int = Field(
        default=10,
        ge=0,
        le=1000,
        title="Passes per resident per day",
        description="passes one resident may create in any 24 hours (0: residents may not invite; staff may)",
    )
    max_days: int = Field(
        default=7,
        ge=1,
        le=7,
        title="Longest pass (days)",
        description="a gate keeps a revocation for 8 days, so no pass may last longer than 7",
    )
    max_uses: int = Field(default=10, ge=1, le=100, title="Most entries per pass")


class ConsentText(_Config):
    """A text a resident agrees to before their face is enrolled; enrolment names its version."""

    version: Id = Field(title="Version", description="what the enrolment names, e.g. face-entry-2026-01")
    text: str = Field(min_length=20, title="What the resident agrees to")


DEFAULT_CONSENT = ConsentText(
    version="face-entry-1",
    text=(
        "我同意物业公司使用我的人脸特征值（不保存照片）在本小区门禁刷脸通行；我可以随时撤回，撤回后特征值从云端和"
        "每个门禁删除。 I agree that the property company uses a template of my face (no photo is kept) to let me "
        "in at this community's gates; I may withdraw at any time, and it is then deleted from the cloud and from "
        "every gate."
    ),
)


class Privacy(_Config):
    """How long personal data is kept, and what a resident agrees to: enforced by the cloud's daily retention job."""

    consent: list[ConsentText] = Field(
        default_factory=lambda: [DEFAULT_CONSENT],
        min_length=1,
        title="Consent texts",
        description="oldest first; the last is the one enrolment asks for (older ones stay for the records)",
    )
    face_crops_days: int = Field(
        default=30, ge=1, le=3650, title="Face crops kept (days)", description="the face crop of each entry or refusal"
    )
    stranger_frames_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        title="Stranger and alarm frames kept (days)",
        description="the frames of strangers at the gate, tailgating and door alarms",
    )
    entries_days: int = Field(
        default=180,
        ge=1,
        le=3650,
        title="Entries kept (days)",
        description="who came in at which gate and when; a removed resident's entries go after this too",
    )
    audit_days: int = Field(
        default=365, ge=30, le=3650, title="Audit log kept (days)", description="who viewed snapshots, opened doors"
    )
    deletion_alarm_min: float = Field(
        default=60,
        ge=1,
        le=10080,
        title="Removal unconfirmed alarm (minutes)",
        description="a gate that has not confirmed a resident's removal this long after it raises an alarm",
    )

    @model_validator(mode="after")
    def _unique_versions(self) -> Privacy:
        versions = [c.version for c in self.consent]
        twice = sorted({v for v in versions if versions.count(v) > 1})
        if twice:
            raise ValueError(f"consent versions must differ: {', '.join(twice)} appear more than once")
        return self

    @property
    def current_consent(self) -> ConsentText:
        return self.consent[-1]


class SiteInfo(_Config):
    id: Id
    name: str
    timezone: str = "Asia/Shanghai"


class SiteConfig(_Config):
    """The whole site: `configs/site.example.yaml` shows every section."""

    version: Literal[1] = Field(description="config schema version")
    site: SiteInfo
    street: Street
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    cloud_accounts: list[CloudAccount] = Field(
        default_factory=list,
        description="the cloud's broker accounts: per instance one ingest and one commands account, and monitors",
    )
    command_public_key: Path | None = Field(
        default=None,
        title="Command public key (PEM)",
        description="the cloud's public command-signing key (.pub.pem, written by the cloud at its first start); "
        "every gateway runs only the commands it verifies; none: every command is refused",
    )
    gateways: list[GatewayConfig] = Field(min_length=1)
    gates: list[Gate] = Field(default_factory=list)
    garages: list[Garage] = Field(default_factory=list)
    departments: list[Department] = Field(default_factory=list)
    workers: list[Worker] = Field(default_factory=list)
    routing: Routing | None = Field(default=None, description="how alarms become work orders (the cloud)")
    visitors: VisitorPolicy = Field(default_factory=VisitorPolicy, title="Visitor passes")
    privacy: Privacy = Field(default_factory=Privacy, title="Retention and consent")

    # ---------------------------------------------------------------- lookups

    def gateway(self, gateway_id: str) -> GatewayConfig:
        for gw in self.gateways:
            if gw.id == gateway_id:
                return gw
        known = ", ".join(g.id for g in self.gateways)
        raise KeyError(f"no gateway {gateway_id!r} in the site config (known: {known})")

    def cloud_account(self, role: CloudRole, instance: str | None = None) -> CloudAccount:
        """The account of ``role`` for cloud ``instance`` (none: the first of that role, preferring one with no
        other role, for the tools); KeyError with what to add to the config."""
        fits = [a for a in self.cloud_accounts if role in a.roles and (instance is None or a.instance == instance)]
        if fits:
            return min(fits, key=lambda a: len(a.roles))  # an account for just this, if there is one
        where = f" for instance {instance!r}" if instance is not None else ""
        raise KeyError(
            f"the site config has no cloud account with role {role.value}{where}: add one under cloud_accounts, "
            f"e.g. {{username: cloud-{role.value}{'-' + instance if instance else ''}, password_file: "
            f"../run/secrets/cloud-{role.value}{'-' + instance if instance else ''}.secret, roles: [{role.value}]"
            f"{', instance: ' + repr(instance) if instance else ''}}}, then run `sc broker provision`"
        )

    def locations(self) -> Iterator[tuple[str, KeyPath]]:
        """Every id of the grid tree with its key path."""
        yield self.street.id, ("street",)
        for ci, c in enumerate(self.street.communities):
            cp: KeyPath = ("street", "communities", ci)
            yield c.id, cp
            for mi, m in enumerate(c.micro_grids):
                mp = (*cp, "micro_grids", mi)
                yield m.id, mp
                for bi, b in enumerate(m.buildings):
                    bp = (*mp, "buildings", bi)
                    yield b.id, bp
                    for si, s in enumerate(b.stairwells):
                        yield s.id, (*bp, "stairwells", si)
                for pi, p in enumerate(m.places):
                    yield p.id, (*mp, "places", pi)

    def location_chain(self, location_id: str) -> list[str]:
        """Ids from the street down to ``location_id`` (for routing and escalation)."""
        for loc, path in self.locations():
            if loc == location_id:
                chain: list[str] = []
                node: object = self
                for key in path:
                    node = node[key] if isinstance(key, int) else getattr(node, key)  # type: ignore[index]
                    if hasattr(node, "id"):
                        chain.append(node.id)
                return chain
        raise KeyError(location_id)

    def reference_errors(self) -> list[tuple[KeyPath, str]]:
        """Cross-reference problems, each with the key path it is about."""
        errors: list[tuple[KeyPath, str]] = []
        seen: dict[str, KeyPath] = {}
        for loc, path in self.locations():
            if loc in seen:
                errors.append(((*path, "id"), f"location id {loc!r} is used twice (also at {_fmt(seen[loc])})"))
            seen[loc] = path
        device_ids: dict[str, KeyPath] = {}
        for gi, gw in enumerate(self.gateways):
            gp: KeyPath = ("gateways", gi)
            if gw.location not in seen:
                errors.append(((*gp, "location"), f"unknown location {gw.location!r}"))
            if any(g.id == gw.id for g in self.gateways[:gi]):
                errors.append(((*gp, "id"), f"gateway id {gw.id!r} is used twice"))
            buses = {b.id for b in gw.buses}
            if len(buses) != len(gw.buses):
                errors.append(((*gp, "buses"), "two buses share an id"))
            addresses: dict[tuple[str, int], str] = {}
            for di, dev in enumerate(gw.devices):
                dp: KeyPath = (*gp, "devices", di)
                if dev.id in device_ids:
                    errors.append(
                        ((*dp, "id"), f"device id {dev.id!r} is used twice (also at {_fmt(device_ids[dev.id])})")
                    )
                device_ids[dev.id] = dp
                if dev.id == gw.id:
                    errors.append(((*dp, "id"), "a device cannot have its gateway's id"))
                if dev.location not in seen:
                    errors.append(((*dp, "location"), f"unknown location {dev.location!r}"))
                if dev.bus is not None:
                    if dev.bus not in buses:
                        errors.append(((*dp, "bus"), f"gateway {gw.id!r} has no bus {dev.bus!r}"))
                    elif dev.unit is not None:
                        key = (dev.bus, dev.unit)
                        if key in addresses:
                            errors.append(
                                ((*dp, "unit"), f"bus {dev.bus!r} unit {dev.unit} is already {addresses[key]!r}")
                            )
                        addresses[key] = dev.id
        taken: dict[tuple[CloudRole, str], int] = {}
        for ai, acct in enumerate(self.cloud_accounts):
            for role in (CloudRole.INGEST, CloudRole.COMMANDS):
                if role in acct.roles and acct.instance is not None:
                    if (role, acct.instance) in taken:
                        errors.append(
                            (("cloud_accounts", ai, "instance"),
                             f"instance {acct.instance!r} already has a {role.value} account "
                             f"({self.cloud_accounts[taken[role, acct.instance]].username})")
                        )  # fmt: skip
                    taken[role, acct.instance] = ai
        dept_ids = {d.id for d in self.departments}
        community_ids = {c.id for c in self.street.communities}
        for i, d in enumerate(self.departments):
            if any(x.id == d.id for x in self.departments[:i]):
                errors.append((("departments", i, "id"), f"department id {d.id!r} is used twice"))
            for j, c in enumerate(d.communities):
                if c not in community_ids:
                    errors.append((("departments", i, "communities", j), f"unknown community {c!r}"))
        for i, w in enumerate(self.workers):
            if w.department not in dept_ids:
                errors.append((("workers", i, "department"), f"unknown department {w.department!r}"))
            for j, g in enumerate(w.grids):
                if g not in seen:
                    errors.append((("workers", i, "grids", j), f"unknown grid {g!r}"))
        if self.routing is not None:
            if self.routing.default_department not in dept_ids:
                errors.append(
                    (("routing", "default_department"), f"unknown department {self.routing.default_department!r}")
                )
            for i, r in enumerate(self.routing.rules):
                if r.department not in dept_ids:
                    errors.append((("routing", "rules", i, "department"), f"unknown department {r.department!r}"))
                if r.within is not None and r.within not in seen:
                    errors.append((("routing", "rules", i, "within"), f"unknown location {r.within!r}"))
        gateway_ids = {g.id for g in self.gateways}
        for section in ("gates", "garages"):
            for i, item in enumerate(getattr(self, section)):
                if item.gateway not in gateway_ids:
                    errors.append(((section, i, "gateway"), f"unknown gateway {item.gateway!r}"))
                if item.location not in seen:
                    errors.append(((section, i, "location"), f"unknown location {item.location!r}"))
        for i, gate in enumerate(self.gates):
            if any(g.id == gate.id for g in self.gates[:i]):
                errors.append((("gates", i, "id"), f"gate id {gate.id!r} is used twice"))
            if gate.id in device_ids:
                errors.append((("gates", i, "id"), f"gate id {gate.id!r} is also a device id"))
            if gate.door is not None and gate.gateway in gateway_ids:
                gw = self.gateway(gate.gateway)
                if gate.door.bus not in {b.id for b in gw.buses}:
                    errors.append((("gates", i, "door", "bus"), f"gateway {gw.id!r} has no bus {gate.door.bus!r}"))
                elif any(d.bus == gate.door.bus and d.unit == gate.door.unit for d in gw.devices):
                    errors.append(
                        (("gates", i, "door", "unit"), f"bus {gate.door.bus!r} unit {gate.door.unit} is a sensor")
                    )
        for i, garage in enumerate(self.garages):
            errors += self._garage_errors(i, garage, gateway_ids, device_ids)
        owners: dict[str, tuple[str, KeyPath]] = {}
        for dev_id, gw_id, path in self.topic_devices():
            reported = any(p[: len(path) - 1] == path[:-1] for p, _ in errors)  # said already, another way
            if dev_id in owners and owners[dev_id][0] != gw_id and not reported:
                errors.append(
                    (path, f"id {dev_id!r} is also used at {_fmt(owners[dev_id][1])} of gateway {owners[dev_id][0]!r}: "
                     "each device belongs to one gateway")
                )  # fmt: skip
            owners.setdefault(dev_id, (gw_id, path))
        return errors

    def _garage_errors(
        self, i: int, garage: Garage, gateway_ids: set[str], device_ids: dict[str, KeyPath]
    ) -> list[tuple[KeyPath, str]]:
        from sc.lanes import LaneGraph, LaneGraphError  # geometry; kept out of the import of the schema

        gp: KeyPath = ("garages", i)
        errors: list[tuple[KeyPath, str]] = []
        if any(g.id == garage.id for g in self.garages[:i]):
            errors.append(((*gp, "id"), f"garage id {garage.id!r} is used twice"))
        gw = self.gateway(garage.gateway) if garage.gateway in gateway_ids else None
        buses = {b.id for b in gw.buses} if gw else set()
        used: dict[tuple[str, int], str] = {}
        if gw is not None:
            used.update({(d.bus, d.unit): d.id for d in gw.devices if d.bus is not None and d.unit is not None})
            used.update({(g.door.bus, g.door.unit): f"{g.id} door" for g in self.gates_of(gw.id) if g.door})
            for other in self.garages[:i]:
                if other.gateway == gw.id:
                    used.update({(c.bus, c.unit): c.id for c in other.controllers})
                    used.update({(m.bus, m.unit): m.id for m in other.sensor_modules})
        ids: dict[str, KeyPath] = {}
        for section in ("controllers", "sensor_modules", "sensors", "lights"):
            for j, item in enumerate(getattr(garage, section)):
                p: KeyPath = (*gp, section, j)
                if item.id in ids or item.id in device_ids:
                    errors.append(((*p, "id"), f"id {item.id!r} is used twice"))
                ids[item.id] = p
                if section in ("controllers", "sensor_modules") and gw is not None:
                    if item.bus not in buses:
                        errors.append(((*p, "bus"), f"gateway {gw.id!r} has no bus {item.bus!r}"))
                    elif (item.bus, item.unit) in used:
                        errors.append(
                            (
                                (*p, "unit"),
                                f"bus {item.bus!r} unit {item.unit} is already {used[(item.bus, item.unit)]!r}",
                            )
                        )
                    used[(item.bus, item.unit)] = item.id
        for j, lc in enumerate(garage.controllers):
            if lc.failsafe_s < 2 * garage.refresh_s:
                errors.append(
                    (
                        (*gp, "controllers", j, "failsafe_s"),
                        f"failsafe_s {lc.failsafe_s:g} must be at least twice the garage's refresh_s "
                        f"({garage.refresh_s:g}): the controller would go to failsafe between refreshes",
                    )
                )
        controllers = {c.id: c for c in garage.controllers}
        for j, light in enumerate(garage.lights):
            c = controllers.get(light.controller)
            if c is None:
                errors.append(((*gp, "lights", j, "controller"), f"unknown controller {light.controller!r}"))
            elif light.group >= c.groups:
                errors.append(((*gp, "lights", j, "group"), f"controller {c.id!r} has groups 0-{c.groups - 1}"))
        modules = {m.id: m for m in garage.sensor_modules}
        wired: dict[tuple[str, int], str] = {}
        for j, sensor in enumerate(garage.sensors):
            m = modules.get(sensor.module)
            if m is None:
                errors.append(((*gp, "sensors", j, "module"), f"unknown sensor module {sensor.module!r}"))
                continue
            if sensor.input >= m.inputs:
                errors.append(((*gp, "sensors", j, "input"), f"module {m.id!r} has inputs 0-{m.inputs - 1}"))
            elif (m.id, sensor.input) in wired:
                errors.append(
                    (
                        (*gp, "sensors", j, "input"),
                        f"input {sensor.input} of {m.id!r} is {wired[(m.id, sensor.input)]!r}",
                    )
                )
            wired[(m.id, sensor.input)] = sensor.id
        if garage.fire_devices is not None and gw is not None:
            smoke = {d.id for g in self.gateways for d in g.devices if d.type is DeviceType.SMOKE}
            for j, dev in enumerate(garage.fire_devices):
                if dev not in smoke:
                    errors.append(((*gp, "fire_devices", j), f"{dev!r} is not a smoke device of the site"))
        if not garage.lanes:
            if garage.lights or garage.sensors:
                errors.append(((*gp, "lanes"), "lights and sensors need lanes to be placed on"))
            return errors
        if not garage.lights or not garage.sensors:
            errors.append((gp, "a garage with lanes needs lights and sensors"))
            return errors
        try:
            graph = LaneGraph({lane.id: lane.points for lane in garage.lanes})
        except LaneGraphError as exc:
            errors.append(((*gp, "lanes"), str(exc)))
            return errors
        near = max(3.0, garage.light_reach_m)
        placed: list[tuple[str, int, str, Point]] = [("lights", j, x.id, x.at) for j, x in enumerate(garage.lights)]
        placed += [("sensors", j, x.id, x.at) for j, x in enumerate(garage.sensors)]
        for section, j, item_id, at in placed:
            _, d = graph.project(at)
            if d > near:
                errors.append(((*gp, section, j, "at"), f"{item_id} is {d:.1f} m from the nearest lane"))
        for section, points in (("entrances", garage.entrances), ("lobbies", garage.lobbies)):
            for j, pt in enumerate(points):
                _, d = graph.project(pt)
                if d > near:
                    errors.append(((*gp, section, j), f"{pt} is {d:.1f} m from the nearest lane"))
        lit = [sp for light in garage.lights for sp in graph.around(graph.project(light.at)[0], garage.light_reach_m)]
        for gap in graph.gaps(lit)[:3]:
            errors.append(
                ((*gp, "lights"), f"{graph.describe(gap)} is out of every light's reach ({garage.light_reach_m:g} m)")
            )
        return errors

    def topic_devices(self) -> Iterator[tuple[str, str, KeyPath]]:
        """Every id that may stand as a topic's device: (id, the gateway that owns it, where it is configured).

        A gateway speaks for itself, its sensors, its gates and its garages with their controllers,
        sensor modules, presence sensors and lights; the ingester accepts nothing else from it.
        """
        for gi, gw in enumerate(self.gateways):
            yield gw.id, gw.id, ("gateways", gi, "id")
            for di, dev in enumerate(gw.devices):
                yield dev.id, gw.id, ("gateways", gi, "devices", di, "id")
        for i, gate in enumerate(self.gates):
            yield gate.id, gate.gateway, ("gates", i, "id")
        for i, garage in enumerate(self.garages):
            yield garage.id, garage.gateway, ("garages", i, "id")
            for section in ("controllers", "sensor_modules", "sensors", "lights"):
                for j, item in enumerate(getattr(garage, section)):
                    yield item.id, garage.gateway, ("garages", i, section, j, "id")

    def device_locations(self) -> dict[str, str]:
        """Id of every topic device (see :meth:`topic_devices`) -> the grid-tree location it is at (a garage's
        parts are at their garage's)."""
        out: dict[str, str] = {}
        for gw in self.gateways:
            out.setdefault(gw.id, gw.location)
            for dev in gw.devices:
                out.setdefault(dev.id, dev.location)
        for gate in self.gates:
            out.setdefault(gate.id, gate.location)
        for garage in self.garages:
            out.setdefault(garage.id, garage.location)
            for section in ("controllers", "sensor_modules", "sensors", "lights"):
                for item in getattr(garage, section):
                    out.setdefault(item.id, garage.location)
        return out

    def device_owners(self) -> dict[str, str]:
        """Device id -> the id of the gateway that owns it (see :meth:`topic_devices`)."""
        owners: dict[str, str] = {}
        for dev, gw, _ in self.topic_devices():
            owners.setdefault(dev, gw)  # a config that gives one id twice is refused at start anyway
        return owners

    def garages_of(self, gateway_id: str) -> list[Garage]:
        return [g for g in self.garages if g.gateway == gateway_id]

    def gates_of(self, gateway_id: str) -> list[Gate]:
        return [g for g in self.gates if g.gateway == gateway_id]


def _fmt(path: KeyPath) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out
