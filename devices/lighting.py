"""Garage lighting devices on RS-485 (Modbus RTU): register maps and bus timing.

**Light controller** (a Modbus-to-DALI gateway): each DALI group is one holding
register holding its level in percent (0-100). Writing several registers in one
*write multiple registers* (function 16) frame is one Modbus request; the
controller then sends one DALI group command per group whose level changed,
each taking ``dali_frame_ms`` (about 25 ms) on the lighting bus. Writing
:data:`BROADCAST_REGISTER` sets every group at once with one DALI broadcast
frame (the fire alarm). Input registers 0..groups-1 read back the level each
group is at; :data:`STATUS_REGISTER` has the controller's status bits. A
controller that gets no command for ``failsafe_s`` sets every group to full
on its own (its failsafe): a dead gateway never leaves the garage dark.

=============================  ===========================================
holding 0..15                  group level % (0-100), read/write
holding 32                     broadcast level % (write: all groups)
input 0..15                    level each group is at now
input 32                       status: b0 failsafe active, b1 DALI bus fault
=============================  ===========================================

**Sensor module** (a digital-input module): discrete input N is 1 while the
presence sensor wired to input N sees something (function 2).

:func:`frame_s` and friends give how long requests take on the wire, which the
simulator enforces and the controller plans with.
"""

from __future__ import annotations

import math

__all__ = [
    "BROADCAST_REGISTER",
    "STATUS_FAILSAFE",
    "STATUS_REGISTER",
    "TURNAROUND_S",
    "frame_s",
    "read_inputs_s",
    "write_levels_s",
]

BROADCAST_REGISTER = 32
STATUS_REGISTER = 32
STATUS_FAILSAFE = 1
STATUS_DALI_FAULT = 2

#: A slave's time between the end of a request and the start of its reply.
TURNAROUND_S = 0.003


def _char_s(baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    bits = 1 + 8 + (0 if parity == "N" else 1) + stopbits
    return bits / baudrate


def frame_s(nbytes: int, baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """Seconds one RTU frame of ``nbytes`` takes, with the 3.5-character silence that ends it."""
    return (nbytes + 3.5) * _char_s(baudrate, parity, stopbits)


def write_levels_s(count: int, baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """A *write multiple registers* request of ``count`` registers and its 8-byte reply."""
    return frame_s(9 + 2 * count, baudrate, parity, stopbits) + TURNAROUND_S + frame_s(8, baudrate, parity, stopbits)


def read_inputs_s(count: int, baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """A *read discrete inputs* request (8 bytes) and its reply (5 bytes + the packed bits)."""
    reply = 5 + math.ceil(count / 8)
    return frame_s(8, baudrate, parity, stopbits) + TURNAROUND_S + frame_s(reply, baudrate, parity, stopbits)
