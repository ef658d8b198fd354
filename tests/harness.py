"""The test harness: real servers on free ports, started and stopped by the tests.

* :class:`Site` - a copy of a site config in a temp dir with its own private
  Mosquitto (accounts and ACL generated from that config).
* :class:`Collector` - a subscriber with the cloud account that records what
  arrives (optionally a persistent session that survives broker restarts).
* :class:`EdgeThread` - the real edge gateway app on its own event loop.
* :class:`InfluxProcess` - InfluxDB 1.x (Debian ``influxdb``) on free ports
  (lives in :mod:`sc.influxd`, which the demo uses too).
* PostgreSQL: the server already running on 127.0.0.1:5432; a database is
  created and dropped per test run (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.app import EdgeApp, read_password
from sc.config.loader import LoadedConfig, load_site_config
from sc.contracts.commands import COMMAND_TTL_S, CommandAck, CommandName
from sc.contracts.messages import Event, decode, new_id, utcnow
from sc.contracts.topics import Kind, Topic
from sc.influxd import InfluxProcess
from sc.mosquitto import MosquittoProcess, free_port
from sc.passes import generate_key, load_private_key
from sc.signing import sign_body
from sc.waiting import wait_until

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Site:
    root: Path
    config_path: Path
    loaded: LoadedConfig
    broker: MosquittoProcess

    def password(self, username: str) -> str:
        for a in self.broker.files.accounts:
            if a.username == username:
                return a.password_file.read_text().strip()
        raise KeyError(username)

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def command_key(self) -> Path:
        """The cloud's command signing key of this site (the config's command_public_key is its .pub.pem)."""
        return self.root / "keys" / "commands.pem"

    def sign(
        self,
        gateway: str,
        device: str,
        name: CommandName | str,
        args: dict[str, Any] | None = None,
        *,
        command_id: str | None = None,
        ttl_s: float | None = None,
        issued: datetime | None = None,
        **body: Any,
    ) -> Signed:
        """A command signed with the site's key as the cloud signs one (sc/signing.py), from a raw body: its
        arguments are not checked here, so a test can send what the cloud's models would never build. ``body``
        overrides fields of the signed body (e.g. ``site="elsewhere"``)."""
        ts = issued or utcnow()
        known = {n.value: n for n in CommandName}
        ttl = ttl_s if ttl_s is not None else COMMAND_TTL_S[known[str(name)]] if str(name) in known else 30.0
        raw: dict[str, Any] = {
            "v": 1,
            "id": command_id or new_id(),
            "ts": _iso(ts),
            "expires": _iso(ts + timedelta(seconds=ttl)),
            "site": self.loaded.site.site.id,
            "gateway": gateway,
            "device": device,
            "name": str(name),
            "args": args or {},
            **body,
        }
        raw["sig"] = sign_body(load_private_key(self.command_key), raw)
        topic = str(Topic(self.loaded.site.site.id, gateway, Kind.CMD, device))
        return Signed(topic, str(raw["id"]), str(name), json.dumps(raw).encode())


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Signed:
    """A command's bytes ready to publish on ``topic``."""

    topic: str
    id: str
    name: str
    payload: bytes


def make_site(tmp: Path, template: Path = DATA / "site.yaml") -> Site:
    port = free_port()
    (tmp / "configs").mkdir(parents=True, exist_ok=True)
    key = tmp / "keys" / "commands.pem"
    if not key.exists():  # the config's command_public_key: ../keys/commands.pub.pem
        generate_key(key, key.with_suffix(".pub.pem"))
    text = template.read_text(encoding="utf-8").replace("port: 1883", f"port: {port}")
    cfg = tmp / "configs" / "site.yaml"
    cfg.write_text(text, encoding="utf-8")
    loaded = load_site_config(cfg)
    broker = MosquittoProcess(loaded, tmp / "broker", port=port)
    return Site(tmp, cfg, loaded, broker)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float


@dataclass
class Collector:
    """Subscribes as an observer account (tests/data/site.yaml: reads everything, may send commands) and records
    everything that arrives."""

    site: Site
    topic_filter: str = "sc/v1/#"
    client_id: str = "test-collector"
    persistent: bool = False
    username: str = "observer"
    messages: list[Received] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=not self.persistent,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        c.username_pw_set(self.username, self.site.password(self.username))
        c.reconnect_delay_set(1, 2)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = self._on_message
        self.client = c

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            client.subscribe(self.topic_filter, qos=1)
            client.subscribe("$SYS/broker/publish/messages/dropped", qos=0)
            self.connected.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic()))

    def start(self) -> Collector:
        self.client.connect("127.0.0.1", self.site.port, keepalive=5)
        self.client.loop_start()
        assert self.connected.wait(10), "collector could not connect"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def of_kind(self, kind: Kind) -> list[Received]:
        with self._lock:
            msgs = list(self.messages)
        out = []
        for m in msgs:
            if m.topic.startswith("$SYS"):
                continue
            if Topic.parse(m.topic).kind is kind:
                out.append(m)
        return out

    def events(self) -> list[Event]:
        return [decode(Event, m.payload) for m in self.of_kind(Kind.EVENT)]

    def ack_of(self, command_id: str) -> CommandAck | None:
        for m in self.of_kind(Kind.CMD_ACK):
            ack = decode(CommandAck, m.payload)
            if ack.id == command_id:
                return ack
        return None

    def command(self, cmd: Signed, *, tries: int = 3, wait_s: float = 5.0) -> CommandAck:
        """Send ``cmd`` as the cloud does (cloud/gates/sync.py): resend an unanswered command (the same bytes);
        return the gateway's ack (the test fails if none comes)."""
        for _ in range(tries):
            self.client.publish(cmd.topic, cmd.payload, qos=1).wait_for_publish(wait_s)
            if wait_until(lambda: self.ack_of(cmd.id) is not None, wait_s):
                break
        ack = self.ack_of(cmd.id)
        assert ack is not None, f"no answer to {cmd.name} on {cmd.topic}"
        return ack

    def dropped(self) -> int | None:
        with self._lock:
            vals = [m.payload for m in self.messages if m.topic == "$SYS/broker/publish/messages/dropped"]
        return int(vals[-1]) if vals else None


class EdgeThread:
    """Runs the real :class:`EdgeApp` on its own event loop in a background thread."""

    def __init__(self, loaded: LoadedConfig, gateway: str, *, health_port: int | None = None) -> None:
        self.app = EdgeApp(loaded, gateway, health_port=health_port)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"edge-{gateway}", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def go() -> None:
            self._stop = asyncio.Event()
            self._loop.call_soon(self._started.set)
            await self.app.main(self._stop)

        try:
            self._loop.run_until_complete(go())
        except BaseException as exc:
            self.error = exc
        finally:
            self._started.set()
            self._loop.close()

    def start(self) -> EdgeThread:
        self._thread.start()
        self._started.wait(10)
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        ok = wait_until(lambda: self.error is not None or hasattr(self.app, "forwarder"), timeout)
        if self.error is not None:
            raise self.error
        assert ok, "edge did not start"

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "edge did not stop"

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def sc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sc.cli", *args]


def edge_process(
    site: Site, *args: str, stdout: int = subprocess.PIPE, stderr: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    """``sc <args> --config <site>`` in a child process (read or close its pipes)."""
    return subprocess.Popen(
        sc_command(*args, "--config", str(site.config_path)),
        stdout=stdout,
        stderr=stderr,
        text=True,
        cwd=REPO,
    )


__all__ = [
    "Collector",
    "EdgeThread",
    "InfluxProcess",
    "Site",
    "edge_process",
    "make_site",
    "read_password",
    "sc_command",
    "wait_until",
]


class TcpProxy:
    """A TCP forwarder between a client and the broker that can cut or black-hole the network.

    * ``cut()`` - close every connection and refuse new ones (a cable pulled at the switch)
    * ``blackhole()`` - keep connections open but drop every byte (a dead link nobody notices)
    * ``heal()`` - forward normally again
    """

    def __init__(self, upstream_port: int) -> None:
        import socket

        self.upstream_port = upstream_port
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._srv.getsockname()[1])
        self.mode = "ok"
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        self._srv.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode != "ok":
                client.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, up]
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.mode == "ok":
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.mode = "cut"
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def blackhole(self) -> None:
        self.mode = "blackhole"

    def heal(self) -> None:
        if self.mode == "blackhole":  # the old connections are dead to both ends: drop them
            self.cut()
        self.mode = "ok"

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._srv.close()


def via_proxy(loaded: LoadedConfig, port: int) -> LoadedConfig:
    """The same site config, with the broker reached through ``port``."""
    site = loaded.site.model_copy(update={"broker": loaded.site.broker.model_copy(update={"port": port})})
    return LoadedConfig(site=site, path=loaded.path)


def garage_site(tmp: Path, *, failsafe_s: float | None = None) -> Site:
    """The test site with firmware-sim's example garage (``garage-1``) on gw-a's buses rs485-2 (lights) and
    rs485-3 (sensors), its lights full on smoke-1's alarm."""
    import yaml

    from firmware_sim.garagelayout import EXAMPLE_LANES, layout

    cfg: dict[str, Any] = yaml.safe_load((DATA / "site.yaml").read_text(encoding="utf-8"))
    gw = next(g for g in cfg["gateways"] if g["id"] == "gw-a")
    gw["buses"] += [
        {"id": "rs485-2", "port": "../run/tty/gw-a.rs485-2", "baudrate": 9600, "timeout_s": 0.2},
        {"id": "rs485-3", "port": "../run/tty/gw-a.rs485-3", "baudrate": 9600, "timeout_s": 0.1},
    ]
    garage = layout(EXAMPLE_LANES, gid="garage-1", name="Garage", location="g1", gateway="gw-a")
    garage["fire_devices"] = ["smoke-1"]
    if failsafe_s is not None:
        for c in garage["controllers"]:
            c["failsafe_s"] = failsafe_s
    cfg["garages"] = [garage]
    template = tmp / "template.yaml"
    template.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return make_site(tmp, template)


# --------------------------------------------------------------------------- the cloud's API in tests

API_PASSWORD = "correct horse battery"
#: the tests' users get a cheap password hash (each test creates several); sign-in makes it anew at today's cost,
#: as for any user whose hash is older than the current parameters
TEST_SCRYPT_N = 2**10


def api_settings(db: Any, tmp: Path, **extra: Any) -> Any:
    """:class:`cloud.settings.CloudSettings` for a test cloud with its API on a free port: the test database
    ``db`` (an Engine), media and the visitor-pass key under ``tmp``, no escalation during the test."""
    from cloud.settings import CloudSettings

    return CloudSettings.model_validate(
        {
            "database_url": db.url.render_as_string(hide_password=False),
            "api_port": 0,
            "escalation_interval_s": 3600,
            "media_dir": str(tmp / "media"),
            "pass_key_file": str(tmp / "keys" / "pass.pem"),
            "command_key_file": str(tmp / "keys" / "commands.pem"),
            "password_scrypt_n": TEST_SCRYPT_N,
            **extra,
        }
    )


def add_api_users(db: Any, users: dict[str, tuple[Any, str | None, str | None]], *, now: Any = None) -> None:
    """Create ``users`` (id -> (role, department, location)), each named by its id, password :data:`API_PASSWORD`."""
    from datetime import UTC, datetime

    from cloud.db.engine import make_sessions
    from cloud.users import create_user

    with make_sessions(db).begin() as s:
        for uid, (role, dept, loc) in users.items():
            create_user(
                s, user_id=uid, name=uid, role=role, password=API_PASSWORD, now=now or datetime.now(UTC),
                department=dept, location=loc, scrypt_n=TEST_SCRYPT_N,
            )  # fmt: skip


def api_tokens(base: str, users: Any) -> dict[str, str]:
    """Sign each of ``users`` in at the API at ``base``: id -> bearer token."""
    import httpx

    tokens = {}
    with httpx.Client(base_url=base, timeout=10) as c:
        for uid in users:
            r = c.post("/api/v1/auth/token", data={"username": uid, "password": API_PASSWORD})
            assert r.status_code == 200, r.text
            tokens[uid] = r.json()["access_token"]
    return tokens
