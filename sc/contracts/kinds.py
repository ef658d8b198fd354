"""Which message model each topic kind carries (snapshots are binary and have none)."""

from __future__ import annotations

from pydantic import BaseModel

from .commands import Command, CommandAck
from .messages import Event, GarageState, Status, Telemetry, Uplink
from .topics import Kind

__all__ = ["MODEL_FOR_KIND"]

#: The model each topic kind carries.
MODEL_FOR_KIND: dict[Kind, type[BaseModel]] = {
    Kind.STATUS: Status,
    Kind.TELEMETRY: Telemetry,
    Kind.EVENT: Event,
    Kind.CMD: Command,
    Kind.CMD_ACK: CommandAck,
    Kind.UPLINK: Uplink,
    Kind.STATE: GarageState,  # garages are the only devices with a live state so far
}
