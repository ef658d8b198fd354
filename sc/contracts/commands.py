"""Commands from the cloud to a gateway's device, and their answers: the one owner of their shape.

A :class:`Command` names what to do (:class:`CommandName`) and carries that
command's own arguments model (one per name, in :data:`ARGS_MODEL`): a command
built or decoded with arguments that do not fit its name is refused when it
is built, with the argument's name in the reason (``invalid Command:
args.expires: Input should be a valid integer``). The gateway answers with a
:class:`CommandAck`; its ``result`` is that command's result model
(:data:`RESULT_MODEL`, read back with :func:`result_of`).

Every command also says where it goes (``site``, ``gateway``, ``device``),
when it was issued (``ts``) and until when it may run (``expires``: at most
:data:`COMMAND_TTL_S` of its name after ``ts``: a ``door_open`` a few
seconds, a gallery change longer), and carries the cloud's Ed25519 signature
``sig`` over all of that (:mod:`sc.signing` signs and checks it). A gateway
runs a command at most once (its id) and only while it is valid.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from .messages import MAX_STATE_LIGHTS, ContractError, DeviceId, OverrideLevel, Reading, new_id, utcnow

__all__ = [
    "ARGS_MODEL",
    "COMMAND_ID_PATTERN",
    "COMMAND_TTL_S",
    "DEFAULT_EMBEDDING_MODEL",
    "EMBEDDING_B64_CHARS",
    "EMBEDDING_DIM",
    "EMBEDDING_DIMS",
    "RESULT_MODEL",
    "Command",
    "CommandAck",
    "CommandArgs",
    "CommandName",
    "CommandResult",
    "DoorOpenArgs",
    "DoorOpenResult",
    "EmbeddingModel",
    "GalleryDeleteArgs",
    "GalleryDeleteResult",
    "GalleryDigestArgs",
    "GalleryDigestResult",
    "GalleryPutArgs",
    "GalleryPutResult",
    "HealthArgs",
    "HealthResult",
    "LightsOverrideArgs",
    "LightsOverrideResult",
    "PassRevokeArgs",
    "PassRevokeResult",
    "PingArgs",
    "PingResult",
    "PollNowArgs",
    "PollNowResult",
    "decode_embedding_b64",
    "encode_embedding_b64",
    "result_of",
]


class CommandName(StrEnum):
    PING = "ping"  # answer with uptime and version
    POLL_NOW = "poll_now"  # read the device at once and answer with the reading
    HEALTH = "health"  # the gateway's full health report
    # gates
    GALLERY_PUT = "gallery_put"  # a resident's face embedding
    GALLERY_DELETE = "gallery_delete"
    GALLERY_DIGEST = "gallery_digest"  # answer with {resident: version} of the gate's gallery
    DOOR_OPEN = "door_open"  # a remote open grants one passage
    PASS_REVOKE = "pass_revoke"
    # garages
    LIGHTS_OVERRIDE = "lights_override"


#: How long after it was issued each command may still run, seconds. A door must not open long after someone
#: asked (the API waits a few seconds for the answer); a gallery change is resent, signed anew, until it is acked.
COMMAND_TTL_S: dict[CommandName, float] = {
    CommandName.PING: 30.0,
    CommandName.POLL_NOW: 30.0,
    CommandName.HEALTH: 30.0,
    CommandName.GALLERY_PUT: 3600.0,
    CommandName.GALLERY_DELETE: 3600.0,
    CommandName.GALLERY_DIGEST: 30.0,
    CommandName.DOOR_OPEN: 10.0,
    CommandName.PASS_REVOKE: 3600.0,
    CommandName.LIGHTS_OVERRIDE: 10.0,
}

#: Command ids: a UUID (what :func:`new_id` makes) or any other short id of these characters.
COMMAND_ID_PATTERN = r"^[A-Za-z0-9_.:-]{8,64}$"


class EmbeddingModel(StrEnum):
    """The face models whose embeddings travel: an embedding is only compared with embeddings of its own model."""

    DLIB_RESNET_V1 = "dlib-resnet-v1"  # face_recognition's ResNet descriptor (vision/faces.py)
    FACEPLUGIN_FR_FEATURE = "faceplugin-fr-feature"  # faceplugin's ArcFace-style recogniser (vision/onnx.py)


#: How many float32 each model's embedding has.
EMBEDDING_DIMS: dict[EmbeddingModel, int] = {
    EmbeddingModel.DLIB_RESNET_V1: 128,
    EmbeddingModel.FACEPLUGIN_FR_FEATURE: 512,
}
#: The model of an embedding that does not say (every gallery and command before models were named).
DEFAULT_EMBEDDING_MODEL = EmbeddingModel.DLIB_RESNET_V1
#: dlib's: 128 float32, base64 of their little-endian bytes.
EMBEDDING_DIM = EMBEDDING_DIMS[DEFAULT_EMBEDDING_MODEL]


def _b64_chars(dim: int) -> int:
    return 4 * ((dim * 4 + 2) // 3)


EMBEDDING_B64_CHARS = _b64_chars(EMBEDDING_DIM)


def encode_embedding_b64(vec: Any, model: EmbeddingModel = DEFAULT_EMBEDDING_MODEL) -> str:
    """Base64 of the model's little-endian float32s: how an embedding travels in a ``gallery_put``."""
    dim = EMBEDDING_DIMS[model]
    raw = np.asarray(vec, dtype="<f4").tobytes()
    if len(raw) != dim * 4:
        raise ValueError(f"a {model.value} embedding has {dim} values, not {len(raw) // 4}")
    return base64.b64encode(raw).decode()


def decode_embedding_b64(
    text: str, model: EmbeddingModel = DEFAULT_EMBEDDING_MODEL
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The float32 of a ``model`` embedding in a command; ValueError (with the reason) if they cannot be one."""
    dim = EMBEDDING_DIMS[model]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"embedding is not base64: {exc}") from exc
    if len(raw) != dim * 4:
        raise ValueError(f"embedding has {len(raw)} bytes, {dim * 4} expected for {model.value}")
    vec = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(vec)):
        raise ValueError("embedding holds NaN or infinity")
    if not np.any(vec):
        raise ValueError("embedding has zero length (all zeros)")
    return vec


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


ResidentId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]
#: Unix seconds, within what a 64-bit time and a JSON number keep exactly
UnixSeconds = Annotated[int, Field(ge=0, le=2**53)]

# --------------------------------------------------------------------------- arguments, one model per name


class PingArgs(_Part):
    """No arguments."""


class PollNowArgs(_Part):
    """No arguments: the device is the command topic's."""


class HealthArgs(_Part):
    """No arguments."""


class GalleryPutArgs(_Part):
    resident: ResidentId
    name: str = Field(default="", max_length=120, description="shown to the guard; never used to decide")
    model: EmbeddingModel = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="the face model that made the embedding; a gate of another refuses it",
    )
    embedding: str = Field(
        min_length=min(_b64_chars(d) for d in EMBEDDING_DIMS.values()),
        max_length=max(_b64_chars(d) for d in EMBEDDING_DIMS.values()),
        description="base64 of the model's little-endian float32 (encode_embedding_b64)",
    )
    version: int = Field(ge=0, le=2**63 - 1, description="grows with every change of the resident")

    @field_validator("embedding")
    @classmethod
    def _embedding(cls, v: str, info: ValidationInfo) -> str:
        decode_embedding_b64(v, info.data.get("model", DEFAULT_EMBEDDING_MODEL))  # model is checked before this
        return v


class GalleryDeleteArgs(_Part):
    resident: ResidentId
    version: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="a tombstone: an older put never brings the resident back"
    )


class GalleryDigestArgs(_Part):
    """No arguments."""


class DoorOpenArgs(_Part):
    """The gate is the command topic's device."""

    by: str = Field(min_length=1, max_length=120, description="who asked (the user id), for the entry record")


class PassRevokeArgs(_Part):
    pass_id: str = Field(min_length=8, max_length=40, pattern=r"^[A-Za-z0-9_-]+$", description="the pass's pid")
    expires: UnixSeconds | None = Field(
        default=None, description="until when the gate keeps the revocation (the pass's end); none: 8 days"
    )


class LightsOverrideArgs(_Part):
    level: OverrideLevel = Field(description="full, standby, off, or auto (back to the gateway's own decision)")
    lights: list[DeviceId] | None = Field(
        default=None, min_length=1, max_length=MAX_STATE_LIGHTS, description="light ids; none: every light"
    )
    for_s: float | None = Field(default=None, gt=0, le=7 * 86400, description="seconds; none: until changed")


CommandArgs = (
    PingArgs
    | PollNowArgs
    | HealthArgs
    | GalleryPutArgs
    | GalleryDeleteArgs
    | GalleryDigestArgs
    | DoorOpenArgs
    | PassRevokeArgs
    | LightsOverrideArgs
)

ARGS_MODEL: dict[CommandName, type[_Part]] = {
    CommandName.PING: PingArgs,
    CommandName.POLL_NOW: PollNowArgs,
    CommandName.HEALTH: HealthArgs,
    CommandName.GALLERY_PUT: GalleryPutArgs,
    CommandName.GALLERY_DELETE: GalleryDeleteArgs,
    CommandName.GALLERY_DIGEST: GalleryDigestArgs,
    CommandName.DOOR_OPEN: DoorOpenArgs,
    CommandName.PASS_REVOKE: PassRevokeArgs,
    CommandName.LIGHTS_OVERRIDE: LightsOverrideArgs,
}

# --------------------------------------------------------------------------- results, one model per name


class PingResult(_Part):
    uptime_s: float = Field(ge=0)
    version: str


class PollNowResult(_Part):
    reading: Reading


class HealthResult(_Part):
    """The gateway's health report, as its ``/health`` serves it (its parts are the gateway's own)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    gateway: DeviceId
    healthy: bool


class GalleryPutResult(_Part):
    applied: bool = Field(description="false: the gate holds a newer version")
    residents: int = Field(ge=0)


class GalleryDeleteResult(_Part):
    deleted: bool
    residents: int = Field(ge=0)


class GalleryDigestResult(_Part):
    residents: dict[str, int] = Field(description="resident: version")


class DoorOpenResult(_Part):
    opened: bool


class PassRevokeResult(_Part):
    revoked: str


class LightsOverrideResult(_Part):
    level: OverrideLevel
    lights: int = Field(ge=0, description="how many lights it set")
    for_s: float | None = None


CommandResult = (
    PingResult
    | PollNowResult
    | HealthResult
    | GalleryPutResult
    | GalleryDeleteResult
    | GalleryDigestResult
    | DoorOpenResult
    | PassRevokeResult
    | LightsOverrideResult
)

RESULT_MODEL: dict[CommandName, type[_Part]] = {
    CommandName.PING: PingResult,
    CommandName.POLL_NOW: PollNowResult,
    CommandName.HEALTH: HealthResult,
    CommandName.GALLERY_PUT: GalleryPutResult,
    CommandName.GALLERY_DELETE: GalleryDeleteResult,
    CommandName.GALLERY_DIGEST: GalleryDigestResult,
    CommandName.DOOR_OPEN: DoorOpenResult,
    CommandName.PASS_REVOKE: PassRevokeResult,
    CommandName.LIGHTS_OVERRIDE: LightsOverrideResult,
}

# --------------------------------------------------------------------------- the command and its answer


def _args_error(title: str, exc: ValidationError) -> ValidationError:
    """The arguments' validation errors, located under ``args`` (``args.expires``, not ``expires``)."""
    details: list[InitErrorDetails] = []
    for e in exc.errors():
        d: InitErrorDetails = {"type": e["type"], "loc": ("args", *e["loc"]), "input": e["input"]}
        if "ctx" in e:
            d["ctx"] = e["ctx"]
        details.append(d)
    return ValidationError.from_exception_data(title, details)


class Command(_Part):
    """A signed command for one device of one gateway (see the module's docstring)."""

    v: Literal[1] = 1
    id: str = Field(default_factory=new_id, pattern=COMMAND_ID_PATTERN, description="unique: run at most once")
    ts: AwareDatetime = Field(default_factory=utcnow, description="when the cloud issued it")
    expires: AwareDatetime = Field(description="it may not run after this (at most COMMAND_TTL_S after ts)")
    site: DeviceId
    gateway: DeviceId
    device: DeviceId = Field(description="the command topic's device: a sensor, a gate, a garage or the gateway")
    name: CommandName
    args: CommandArgs = Field(description="the arguments model of this name (ARGS_MODEL)")
    sig: str | None = Field(
        default=None, max_length=128, description="base64url Ed25519 over the rest (sc.signing); none: unsigned"
    )

    @model_validator(mode="before")
    @classmethod
    def _typed_args(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            model = ARGS_MODEL[CommandName(str(data.get("name")))]
        except ValueError:
            return data  # the name's own validation says what is wrong with it
        args = data.get("args", {})
        if isinstance(args, dict):
            try:
                data = {**data, "args": model.model_validate(args)}
            except ValidationError as exc:
                raise _args_error(cls.__name__, exc) from None
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Command:
        expected = ARGS_MODEL[self.name]
        if type(self.args) is not expected:
            raise ValueError(
                f"the arguments of {self.name.value} are {expected.__name__}, not {type(self.args).__name__}"
            )
        if self.expires <= self.ts:
            raise ValueError("a command must expire after it was issued")
        return self

    def lifetime_s(self) -> float:
        return (self.expires - self.ts).total_seconds()

    def valid_at(self, now: datetime) -> bool:
        return now <= self.expires


class CommandAck(_Part):
    """A gateway's answer to a command: ``ok`` and the command's result model, or ``ok: false`` and why."""

    v: Literal[1] = 1
    id: str = Field(max_length=64, description="the command's id (empty: the command had none that could be read)")
    ts: AwareDatetime = Field(default_factory=utcnow)
    ok: bool
    error: str = Field(default="", description="why not (ok: false), for a person")
    result: dict[str, Any] = Field(default_factory=dict, description="the command's result model (RESULT_MODEL)")


def result_of(name: CommandName, ack: CommandAck) -> CommandResult:
    """The typed result of an ``ok`` answer to a ``name`` command; :class:`ContractError` if it is not one."""
    if not ack.ok:
        raise ContractError(f"the {name.value} command was refused: {ack.error}")
    try:
        return RESULT_MODEL[name].model_validate(ack.result)  # type: ignore[return-value]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(result)"
        raise ContractError(f"invalid {name.value} result: {where}: {first['msg']}") from exc
