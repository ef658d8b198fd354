"""Start and stop a private InfluxDB 1.x (``influxd`` from Debian's ``influxdb``) as a plain
process on free ports in a work dir: for the demo and the test harness. Production runs
InfluxDB as a service (see docker-compose.yml)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from sc.mosquitto import free_port, wait_port
from sc.waiting import wait_until

__all__ = ["InfluxProcess", "influxd_installed"]


def influxd_installed() -> bool:
    return shutil.which("influxd") is not None


class InfluxProcess:
    """InfluxDB 1.x (``influxd`` from Debian's ``influxdb``) on free ports in a work dir."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("influxd")
        if exe is None:
            raise RuntimeError("influxd is not installed: run ./scripts/setup.sh (Debian package influxdb)")
        self.exe = exe
        self.workdir = workdir
        self.http_port = free_port()
        self.rpc_port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "influxdb.conf"
        self.conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{workdir}/meta"\n'
            f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.http_port}"\n  log-enabled = false\n'
            f"[monitor]\n  store-enabled = false\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.http_port}"

    def start(self) -> InfluxProcess:
        with (self.workdir / "influxd.log").open("wb") as logf:
            self.proc = subprocess.Popen([self.exe, "-config", str(self.conf)], stdout=subprocess.DEVNULL, stderr=logf)
        if not wait_port(self.http_port, 30) or not wait_until(self._ping, 30, 0.1):
            self.stop()
            raise RuntimeError(f"influxd did not start; see {self.workdir / 'influxd.log'}")
        return self

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1) as r:
                return bool(r.status == 204)
        except OSError:
            return False

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        params = {"q": q, **({"db": db} if db else {})}
        req = urllib.request.Request(self.url + "/query", data=urllib.parse.urlencode(params).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def write(self, db: str, lines: str) -> int:
        req = urllib.request.Request(f"{self.url}/write?db={db}&precision=ns", data=lines.encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
