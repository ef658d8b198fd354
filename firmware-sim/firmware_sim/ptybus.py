"""A simulated RS-485 line: two linked pseudo-terminals with a wire in between.

    edge (pymodbus client) <-> pty B ==wire== pty A <-> simulated slaves (pymodbus server)

Both ends are real serial devices (``/dev/pts/N``) that pyserial opens like a
USB adapter; stable symlinks can point at them so a site config names a fixed
path. The wire copies bytes between them and is where faults are injected per
slave address, as a broken field bus would show them:

* ``silent``  - the slave's replies never arrive (unplugged, dead)
* ``garbage`` - the reply is replaced by random bytes
* ``bad_crc`` - the reply arrives with its CRC corrupted

A reply is recognised by its first byte (the slave address). Each write by
the server is one whole RTU frame, which is how pymodbus writes them.
"""

from __future__ import annotations

import logging
import os
import random
import select
import threading
import tty
from enum import StrEnum
from pathlib import Path

__all__ = ["Fault", "PtyBus"]

log = logging.getLogger(__name__)


class Fault(StrEnum):
    NONE = "none"
    SILENT = "silent"
    GARBAGE = "garbage"
    BAD_CRC = "bad_crc"


def _open_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    return master, slave, os.ttyname(slave)


class PtyBus:
    """Two linked ptys. ``server_port`` for the simulated slaves, ``client_port`` for the edge."""

    def __init__(self, *, link: Path | None = None, seed: int = 0) -> None:
        self._a_master, self._a_slave, self.server_port = _open_pty()
        self._b_master, self._b_slave, self.client_port = _open_pty()
        self.faults: dict[int, Fault] = {}
        self.frames_to_client = 0
        self.frames_faulted = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._link = link
        if link is not None:
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(self.client_port)
        self._thread = threading.Thread(target=self._run, name="ptybus", daemon=True)

    def start(self) -> PtyBus:
        self._thread.start()
        return self

    def set_fault(self, unit: int, fault: Fault | str) -> None:
        self.faults[unit] = Fault(fault)
        log.info("ptybus %s unit=%d fault=%s", self.client_port, unit, Fault(fault).value)

    def _tamper(self, frame: bytes) -> bytes | None:
        if not frame:
            return frame
        fault = self.faults.get(frame[0], Fault.NONE)
        if fault is Fault.NONE:
            return frame
        self.frames_faulted += 1
        if fault is Fault.SILENT:
            return None
        if fault is Fault.GARBAGE:
            return bytes(self._rng.randrange(256) for _ in range(len(frame)))
        return frame[:-1] + bytes([frame[-1] ^ 0x5A])  # bad CRC

    def _run(self) -> None:
        fds = [self._a_master, self._b_master]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if fd == self._b_master:  # edge -> slaves
                    os.write(self._a_master, data)
                else:  # slaves -> edge
                    self.frames_to_client += 1
                    out = self._tamper(data)
                    if out:
                        os.write(self._b_master, out)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        for fd in (self._a_master, self._a_slave, self._b_master, self._b_slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._link is not None and self._link.is_symlink():
            self._link.unlink()
