"""Start and stop a private Mosquitto (the Debian ``mosquitto`` package) as a
plain process: for the demo and the test harness. Production runs the broker
as a service (see docker-compose.yml)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from sc.config.loader import LoadedConfig

from .broker import BrokerFiles, ServerTls, provision

__all__ = ["MosquittoError", "MosquittoProcess", "free_port", "wait_port"]

log = logging.getLogger(__name__)


class MosquittoError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class MosquittoProcess:
    def __init__(
        self, loaded: LoadedConfig, workdir: Path, *, port: int | None = None, tls: ServerTls | None = None
    ) -> None:
        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            raise MosquittoError("mosquitto is not installed: sudo apt-get install mosquitto")
        self.exe = exe
        self.port = port or free_port()
        self.workdir = workdir
        self.log_path = workdir / "mosquitto.log"
        self.files: BrokerFiles = provision(
            loaded,
            workdir,
            port=self.port,
            persistence_dir=workdir / "data",
            run_as="root" if os.geteuid() == 0 else None,
            tls=tls,
        )
        # log to a file so a test can read why a client was refused
        with self.files.conf.open("a") as f:
            f.write(f"log_dest file {self.log_path}\nlog_type all\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> MosquittoProcess:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.files.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait_port(self.port, timeout):
            err = b""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                err = self.proc.stderr.read()
            self.stop()
            raise MosquittoError(f"mosquitto did not start on port {self.port}: {err.decode(errors='replace')}")
        log.info("mosquitto pid=%d listening on 127.0.0.1:%d", self.proc.pid, self.port)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()
