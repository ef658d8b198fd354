#!/usr/bin/env python3
"""Cloud ingest benchmark: messages/s stored by one and two ``sc cloud run``
ingester processes, and alarm-to-work-order latency, side by side in one run
with ``mosquitto_sub`` draining the same stream as the baseline.

    .venv/bin/python bench/cloud_ingest.py [--count 50000] [--latency-count 300] [--rate 50]

Everything runs on this machine: a private Mosquitto provisioned from a copy of
configs/site.example.yaml (as the tests do), a fresh PostgreSQL database
``sc_bench_<random>`` on 127.0.0.1:5432 (migrated, dropped at the end), the
ingesters as real ``sc cloud run`` subprocesses (``--health-port`` for their
counters), and one paho publisher (gateway ``gw-heping-sensors``, MQTT 3.1.1,
QoS 1) in this process that sends a pre-encoded stream as fast as it can.

The stream (``--count`` messages over ``--devices`` devices of the gateway):
one ``status`` (online) per device first, then telemetry and events mixed
``1 - share : share`` (``--event-share``, default 0.2, i.e. every 5th message
is an event). Events are raised alarms cycling through smoke_alarm,
high_temperature and low_battery per device, so each device opens three
orders and every further alarm attaches to one of them (an alarm storm).

Throughput phases, one after the other, each on the same stream:

* ``baseline``  ``mosquitto_sub -q 1 -C N`` (cloud account, ``sc/v1/demo/#``),
                subscribed before the first publish; messages/s from the first
                publish until it has all N and exits;
* ``ours x1``   one ingester (instance 1); messages/s from the first publish
                until the ingesters' ``ingest.messages`` counters (counted after
                each batch's commit) reach N;
* ``ours x2``   two ingesters (instances 1 and 2, one share group).

Before each "ours" phase the tables are truncated, the ingesters started and
warmed up with 1,000 messages on other devices; after it every event id is
looked up in ``events`` (exit 1 with LOSS if one is missing), telemetry and
status counts are checked against the counters, and each device's state row
against the last telemetry and the status sent. The ingesters' persistent
MQTT sessions are removed after each phase (a disconnected member of a
Mosquitto share group keeps receiving its share, see docs/benchmarks.md).

A cost breakdown then runs the ingester's batch handler (``IngestWorker.handle``)
in this process without MQTT: pydantic validation alone, and validation plus
the database transaction, with the SQL statements counted and timed.

Latency: ``--latency-count`` alarms from distinct devices (each opens a new
order), paced at ``--rate``/s, into one idle ingester. "Ours" is the time from
just before ``publish()`` to the moment a LISTEN connection in this process
receives the NOTIFY that a trigger on ``work_orders`` (added for the
benchmark) sends when the order row is inserted, i.e. when its transaction has
committed. The baseline is a ``mosquitto_sub -F '%U %p'`` subscribed to the same
stream at the same time: publish to received, by its own receive timestamp
(both clocks are this host's CLOCK_REALTIME).

The broker's ``$SYS/broker/publish/messages/dropped`` is watched throughout
and must stay 0. A PNG (throughput bars and latency histograms) is written to
docs/cloud_ingest.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import queue
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as paho
import psycopg
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import event as sa_event

from cloud.db.engine import make_engine, make_sessions, migrate
from cloud.ingest.consumer import Inbound
from cloud.ingest.worker import IngestWorker
from cloud.workorders.routing import Router
from sc.config.loader import LoadedConfig, load_site_config
from sc.config.schema import CloudAccount, CloudRole
from sc.contracts.messages import (
    DEFAULT_SEVERITY,
    AlarmPayload,
    Event,
    EventKind,
    EventState,
    SmokeReading,
    Status,
    StatusState,
    Telemetry,
    decode,
    encode,
)
from sc.contracts.topics import Kind, Topic
from sc.mosquitto import MosquittoProcess, free_port
from sc.secrets import read_password

REPO = Path(__file__).resolve().parents[1]
GATEWAY = "gw-heping-sensors"
SUBSCRIPTION = "sc/v1/demo/#"
SHARED = "$share/ingest/sc/v1/demo/#"
ALARM_KINDS = (EventKind.SMOKE_ALARM, EventKind.HIGH_TEMPERATURE, EventKind.LOW_BATTERY)
PG_ADMIN_URL = os.environ.get("SC_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
WARMUP = 1000
POLL_S = 0.02

log = logging.getLogger("bench.cloud_ingest")


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


# --------------------------------------------------------------------------- setup


def make_site(tmp: Path, devices: list[str]) -> tuple[LoadedConfig, int, Path]:
    """Copy the example config into ``tmp/configs/site.yaml`` on a free port, give the publishing gateway the
    stream's ``devices`` (the ingester refuses a gateway speaking for devices the config does not give it), and
    load it."""
    port = free_port()
    text = (REPO / "configs" / "site.example.yaml").read_text(encoding="utf-8")
    if "port: 1883" not in text:
        raise BenchError("configs/site.example.yaml no longer contains 'port: 1883'; update the benchmark")
    (tmp / "configs").mkdir(parents=True)
    cfg = tmp / "configs" / "site.yaml"
    data = yaml.safe_load(text.replace("port: 1883", f"port: {port}"))
    # the benchmark's own readers: one connection each (the broker binds a client id to its account)
    data["cloud_accounts"] += [
        {"username": name, "password_file": f"../run/secrets/{name}.secret", "roles": ["monitor"]}
        for name in (WATCH_USER, SUB_USER)
    ]
    gw = next(g for g in data["gateways"] if g["id"] == GATEWAY)
    per_bus = 240
    for b in range(0, len(devices), per_bus):
        bus = f"bench-{b // per_bus}"
        gw["buses"].append({"id": bus, "port": f"../run/tty/{GATEWAY}.{bus}"})
        gw["devices"] += [
            {"id": d, "type": "smoke", "location": "hp-b1-u1", "bus": bus, "unit": i + 1}
            for i, d in enumerate(devices[b : b + per_bus])
        ]
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_site_config(cfg), port, cfg


#: the $SYS watcher's and the baseline subscriber's accounts (added to the config copy by make_site)
WATCH_USER = "bench-watch"
SUB_USER = "bench-sub"


def account(loaded: LoadedConfig, username: str) -> CloudAccount:
    return next(a for a in loaded.site.cloud_accounts if a.username == username)


def start_broker(loaded: LoadedConfig, workdir: Path, port: int) -> MosquittoProcess:
    """The production broker config (``sc.broker.mosquitto_conf``), without the harness's per-packet debug log.

    ``MosquittoProcess`` appends ``log_type all`` for the tests; at 50,000
    messages that is four log lines per message in the broker. This keeps the
    default log types and adds ``subscribe`` so the benchmark can see when a
    subscriber's SUBSCRIBE has been processed.
    """
    broker = MosquittoProcess(loaded, workdir, port=port)
    conf = broker.files.conf.read_text(encoding="utf-8")
    if "log_type all\n" not in conf:
        raise BenchError(f"{broker.files.conf}: expected the harness's 'log_type all' line")
    types = "".join(f"log_type {t}\n" for t in ("error", "warning", "notice", "information", "subscribe"))
    broker.files.conf.write_text(conf.replace("log_type all\n", types), encoding="utf-8")
    return broker.start()


class BrokerLog:
    """Waits for a line in the broker's log file (``<client id> <qos> <filter>`` on SUBSCRIBE)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def wait_for(self, needle: str, since: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with suppress(OSError), self.path.open("rb") as f:
                f.seek(since)
                if needle.encode() in f.read():
                    return True
            time.sleep(0.01)
        return False


class Database:
    """A fresh database on the local PostgreSQL, migrated; dropped by :meth:`drop`."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"sc_bench_{uuid.uuid4().hex[:10]}"
        self.url = admin_url.rsplit("/", 1)[0] + f"/{self.name}"
        self.created = False

    def create(self) -> None:
        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'CREATE DATABASE "{self.name}"')
        except psycopg.OperationalError as exc:
            raise BenchError(f"PostgreSQL is not reachable at {self.admin_url} (set SC_BENCH_PG_ADMIN): {exc}") from exc
        self.created = True
        engine = make_engine(self.url)
        try:
            migrate(engine)
        finally:
            engine.dispose()

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.url, autocommit=True)

    def truncate(self) -> None:
        with self.connect() as c:
            c.execute(
                "TRUNCATE events, work_order_history, work_orders, devices, dead_letters RESTART IDENTITY CASCADE"
            )

    def drop(self) -> None:
        if not self.created:
            return
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.created = False


# --------------------------------------------------------------------------- the stream


@dataclass
class Stream:
    """Pre-encoded messages in publish order, and what the ingesters must make of them."""

    msgs: list[tuple[str, bytes]]
    kinds: list[Kind]
    event_ids: list[str]
    devices: list[str]
    last_telemetry_ts: dict[str, datetime]
    orders: int  # distinct (device, alarm kind) among the events: orders the stream opens
    n_status: int = 0
    n_telemetry: int = 0

    @property
    def n_events(self) -> int:
        return len(self.event_ids)

    def avg_bytes(self, kind: Kind) -> float:
        sizes = [len(p) for (_, p), k in zip(self.msgs, self.kinds, strict=True) if k is kind]
        return statistics.fmean(sizes) if sizes else 0.0


def build_stream(site: str, prefix: str, count: int, devices: int, event_share: float) -> Stream:
    devs = [f"{prefix}-{i:03d}" for i in range(devices)]
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    s = Stream([], [], [], devs, {}, 0)
    for d in devs[: min(devices, count)]:
        st = Status(state=StatusState.ONLINE, ts=base, reason="bench")
        s.msgs.append((str(Topic(site, GATEWAY, Kind.STATUS, d)), encode(st)))
        s.kinds.append(Kind.STATUS)
        s.n_status += 1
    seq = dict.fromkeys(devs, 0)
    pairs: set[tuple[str, EventKind]] = set()
    n_ev = n_tm = 0
    for j in range(count - s.n_status):
        ts = base + timedelta(milliseconds=j + 1)
        reading = SmokeReading(
            smoke_density=(j % 500) / 10, temperature_c=20 + (j % 100) / 10, battery_pct=90, alarm=False, fault=False
        )
        if int((j + 1) * event_share) > int(j * event_share):
            d = devs[n_ev % devices]
            kind = ALARM_KINDS[(n_ev // devices) % len(ALARM_KINDS)]
            seq[d] += 1
            alarm = AlarmPayload(rule="bench", value=reading.smoke_density, threshold=8.0, reading=reading)
            ev = Event(
                site=site, gateway=GATEWAY, device=d, ts=ts, seq=seq[d], kind=kind, state=EventState.RAISED,
                severity=DEFAULT_SEVERITY[kind], payload=alarm,
            )  # fmt: skip
            s.msgs.append((str(Topic(site, GATEWAY, Kind.EVENT, d)), encode(ev)))
            s.kinds.append(Kind.EVENT)
            s.event_ids.append(ev.id)
            pairs.add((d, kind))
            n_ev += 1
        else:
            d = devs[n_tm % devices]
            t = Telemetry(site=site, gateway=GATEWAY, device=d, ts=ts, reading=reading)
            s.msgs.append((str(Topic(site, GATEWAY, Kind.TELEMETRY, d)), encode(t)))
            s.kinds.append(Kind.TELEMETRY)
            s.last_telemetry_ts[d] = ts
            n_tm += 1
    s.n_telemetry = n_tm
    s.orders = len(pairs)
    return s


def build_alarms(site: str, count: int, prefix: str = "lat") -> tuple[list[tuple[str, bytes]], list[str]]:
    """One smoke alarm from each of ``count`` devices: every one opens a new order."""
    reading = SmokeReading(smoke_density=12.5, temperature_c=31.0, battery_pct=90, alarm=True, fault=False)
    alarm = AlarmPayload(rule="smoke_density >= 8", value=12.5, threshold=8.0, reading=reading)
    msgs: list[tuple[str, bytes]] = []
    ids: list[str] = []
    for i in range(count):
        d = f"{prefix}-{i:04d}"
        ev = Event(
            site=site, gateway=GATEWAY, device=d, ts=datetime.now(UTC), seq=1, kind=EventKind.SMOKE_ALARM,
            state=EventState.RAISED, severity=DEFAULT_SEVERITY[EventKind.SMOKE_ALARM], payload=alarm,
        )  # fmt: skip
        msgs.append((str(Topic(site, GATEWAY, Kind.EVENT, d)), encode(ev)))
        ids.append(ev.id)
    return msgs, ids


# --------------------------------------------------------------------------- MQTT clients in this process


class Publisher:
    """The gateway's side: a plain paho client (MQTT 3.1.1, QoS 1) with an in-flight window."""

    def __init__(self, loaded: LoadedConfig, inflight: int) -> None:
        gw = loaded.site.gateway(GATEWAY)
        self._lock = threading.Lock()
        self.acked = 0
        self._target = 0
        self._done = threading.Event()
        self._connected = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-publisher", clean_session=True,
            protocol=MQTTProtocolVersion.MQTTv311,
        )  # fmt: skip
        c.username_pw_set(gw.account.username, read_password(loaded, gw.account))
        c.max_inflight_messages_set(inflight)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        self.client = c
        c.connect(loaded.site.broker.host, loaded.site.broker.port, keepalive=60)
        c.loop_start()
        if not self._connected.wait(10):
            raise BenchError("publisher: not connected within 10 s")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            self.acked += 1
            if self.acked >= self._target:
                self._done.set()

    def send(self, msgs: list[tuple[str, bytes]]) -> int:
        """Hand every message to paho (it sends as the window allows); returns the PUBACK total to wait for."""
        with self._lock:
            self._target = self.acked + len(msgs)
            self._done.clear()
        publish = self.client.publish
        for topic, payload in msgs:
            info = publish(topic, payload, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise BenchError(f"publish failed: {paho.error_string(info.rc)}")
        return self._target

    def all_acked(self) -> bool:
        return self._done.is_set()

    def wait_acked(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SysWatch:
    """Watches ``$SYS/broker/publish/messages/dropped`` (must stay 0) for the whole run."""

    TOPIC = "$SYS/broker/publish/messages/dropped"

    def __init__(self, loaded: LoadedConfig) -> None:
        acct = account(loaded, WATCH_USER)
        self.values: list[int] = []
        self._subscribed = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-sys-watch", clean_session=True,
            protocol=MQTTProtocolVersion.MQTTv311,
        )  # fmt: skip
        c.username_pw_set(acct.username, read_password(loaded, acct))
        c.on_connect = lambda cl, ud, fl, rc, pr: None if rc.is_failure else cl.subscribe(self.TOPIC, qos=0)
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._on_message
        self._client = c
        c.connect(loaded.site.broker.host, loaded.site.broker.port, keepalive=60)
        c.loop_start()
        if not self._subscribed.wait(10):
            raise BenchError("$SYS watcher: no SUBACK within 10 s")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with suppress(ValueError):
            self.values.append(int(msg.payload))

    @property
    def dropped(self) -> int:
        return max(self.values, default=0)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def retire_session(loaded: LoadedConfig, instance: str) -> None:
    """End an ingester's persistent MQTT session (and so its place in the share group).

    Connects with its account (whose name is its client id), clean start and no session expiry, then
    disconnects: the broker discards the session. Call only when that ingester
    is stopped.
    """
    acct = loaded.site.cloud_account(CloudRole.INGEST, instance)
    client_id = acct.username  # (the broker makes every client id its account's name)
    ok = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    c.username_pw_set(acct.username, read_password(loaded, acct))
    c.on_connect = lambda cl, ud, fl, rc, pr: None if rc.is_failure else ok.set()
    c.connect(loaded.site.broker.host, loaded.site.broker.port, keepalive=30, clean_start=True)
    c.loop_start()
    try:
        if not ok.wait(10):
            raise BenchError(f"could not connect as {client_id} to end its session")
    finally:
        c.disconnect()
        c.loop_stop()


# --------------------------------------------------------------------------- processes


class Ingester:
    """``sc cloud run`` as a child process, with its ``/health`` counters."""

    def __init__(self, cfg: Path, db_url: str, instance: str, logdir: Path, client_id: str) -> None:
        self.instance = instance
        self.client_id = client_id  # its ingest account's name: the broker's client id for it
        self.port = free_port()
        self.log_path = logdir / f"ingester-{instance}-{uuid.uuid4().hex[:6]}.log"
        self._log: TextIO = self.log_path.open("w")
        cmd = [
            sys.executable, "-m", "sc.cli", "cloud", "run", "--config", str(cfg), "--database-url", db_url,
            "--instance", instance, "--health-port", str(self.port), "--log-level", "INFO",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)

    def health(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 503 while not connected: same JSON
            body = json.loads(exc.read())
        return body

    def messages(self) -> int:
        return int(self.health()["ingest"]["messages"])

    def wait_ready(self, broker_log: BrokerLog, since: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"ingester {self.instance} exited with {self.proc.returncode}: {self.tail()}")
            try:
                if self.health().get("healthy"):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        else:
            raise BenchError(f"ingester {self.instance} not healthy after {timeout:.0f} s: {self.tail()}")
        if not broker_log.wait_for(f"{self.client_id} 1 {SHARED}", since, max(1.0, deadline - time.monotonic())):
            raise BenchError(f"ingester {self.instance}: the broker never logged its subscription")

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def mosquitto_sub(port: int, password: str, user: str, count: int, client_id: str, out: Path,
                  fmt: str | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    cmd = [
        "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", password, "-q", "1",
        "-t", SUBSCRIPTION, "-C", str(count), "-i", client_id,
    ]  # fmt: skip
    if fmt is not None:
        cmd += ["-F", fmt]
    with out.open("wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.PIPE)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every process named ``postgres`` (server and backends)."""
    out: dict[int, float] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip() == "postgres":
                    out[int(p.name)] = proc_cpu_s(int(p.name))
            except OSError:
                continue
    return out


def machine_busy_s() -> float:
    """CPU seconds all processes on the machine have used since boot (non-idle jiffies of /proc/stat)."""
    try:
        vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(vals[:8]) - vals[3] - vals[4]) / CLK_TCK


def self_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds spent by each part of the system between :meth:`start` and :meth:`stop`."""

    broker_pid: int
    ingesters: list[Ingester] = field(default_factory=list)
    result: dict[str, float] = field(default_factory=dict)
    _t0: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self._t0 = {
            "ingesters": sum(i.cpu_s() for i in self.ingesters), "broker": proc_cpu_s(self.broker_pid),
            "postgres": postgres_cpu(), "bench": self_cpu_s(), "children": children_cpu_s(),
            "machine": machine_busy_s(),
        }  # fmt: skip

    def stop(self) -> None:
        pg0: dict[int, float] = self._t0["postgres"]
        self.result = {
            "ingesters": sum(i.cpu_s() for i in self.ingesters) - self._t0["ingesters"],
            "broker": proc_cpu_s(self.broker_pid) - self._t0["broker"],
            "postgres": sum(v - pg0.get(pid, 0.0) for pid, v in postgres_cpu().items()),
            "bench": self_cpu_s() - self._t0["bench"],
            "mosquitto_sub": children_cpu_s() - self._t0["children"],  # reaped children only
        }
        # everything else that ran meanwhile (the kernel's share of networking, other users of the machine)
        self.result["other"] = max(0.0, machine_busy_s() - self._t0["machine"] - sum(self.result.values()))


# --------------------------------------------------------------------------- throughput phases


@dataclass
class Throughput:
    name: str
    count: int
    seconds: float  # first publish -> all N received (baseline) / stored (ours)
    publish_s: float  # first publish -> the broker had acknowledged all N
    lost: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    processes: int = 0
    shares: list[int] = field(default_factory=list)  # messages per ingester
    orders_opened: int = 0
    attached: int = 0
    batches: int = 0
    max_queue: list[int] = field(default_factory=list)  # deepest hand-over queue seen in each ingester
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Env:
    loaded: LoadedConfig
    cfg: Path
    broker: MosquittoProcess
    broker_log: BrokerLog
    db: Database
    pub: Publisher
    sys_watch: SysWatch
    tmp: Path
    timeout: float
    cloud_user: str
    cloud_password: str
    running: list[Ingester] = field(default_factory=list)
    subs: list[subprocess.Popen[bytes]] = field(default_factory=list)


def run_baseline(env: Env, stream: Stream, name: str = "baseline") -> Throughput:
    out = env.tmp / f"{name}.out"
    since = env.broker_log.mark()
    client_id = f"bench-{name}"
    n = len(stream.msgs)
    meter = CpuMeter(env.broker.proc.pid if env.broker.proc else 0)
    sub = mosquitto_sub(env.broker.port, env.cloud_password, env.cloud_user, n, client_id, out)
    env.subs.append(sub)
    # (the broker names a client by its account: use_username_as_clientid)
    if not env.broker_log.wait_for(f"{env.cloud_user} 1 {SUBSCRIPTION}", since, 10):
        raise BenchError("mosquitto_sub did not subscribe within 10 s")
    meter.start()
    t0 = time.perf_counter()
    env.pub.send(stream.msgs)
    t_pub = float("nan")
    deadline = time.monotonic() + env.timeout
    while sub.poll() is None and time.monotonic() < deadline:
        if t_pub != t_pub and env.pub.all_acked():
            t_pub = time.perf_counter() - t0
        time.sleep(0.001)
    t_done = time.perf_counter() - t0
    if sub.poll() is None:
        sub.kill()
        sub.wait()
    meter.stop()
    if t_pub != t_pub:
        env.pub.wait_acked(env.timeout)
        t_pub = time.perf_counter() - t0
    got_ids: set[str] = set()
    lines = 0
    with out.open("rb") as f:
        for line in f:
            lines += 1
            if b'"seq"' in line:
                got_ids.add(json.loads(line)["id"])
    lost_events = len(set(stream.event_ids) - got_ids)
    lost = max(n - lines, lost_events)
    r = Throughput(name, n, t_done, t_pub, lost, meter.result, 0)
    if lost:
        r.notes.append(f"mosquitto_sub received {lines} of {n} messages; {lost_events} event ids missing")
    return r


def start_ingesters(env: Env, n: int) -> list[Ingester]:
    site = env.loaded.site
    ings: list[Ingester] = []
    since = env.broker_log.mark()
    for i in range(n):
        ing = Ingester(
            env.cfg,
            env.db.url,
            str(i + 1),
            env.tmp,
            env.loaded.site.cloud_account(CloudRole.INGEST, str(i + 1)).username,
        )
        env.running.append(ing)
        ings.append(ing)
    for ing in ings:
        ing.wait_ready(env.broker_log, since, 60)
    # warm up: every process stores some messages (other devices) before timing starts
    warm = build_stream(site.site.id, "warm", WARMUP, 10, 0.2)
    env.pub.send(warm.msgs)
    deadline = time.monotonic() + env.timeout
    while time.monotonic() < deadline:
        counts = [i.messages() for i in ings]
        if sum(counts) >= WARMUP and min(counts) > 0:
            break
        time.sleep(0.05)
    else:
        raise BenchError(f"warm-up: ingesters stored {[i.messages() for i in ings]} of {WARMUP} messages")
    return ings


def stop_ingesters(env: Env, ings: list[Ingester]) -> None:
    for ing in ings:
        ing.stop()
        env.running.remove(ing)
    for ing in ings:
        retire_session(env.loaded, ing.instance)


def sum_counters(ings: list[Ingester]) -> dict[str, int]:
    total: dict[str, int] = {}
    for ing in ings:
        for k, v in ing.health()["ingest"].items():
            if isinstance(v, int):
                total[k] = total.get(k, 0) + v
    return total


def run_ours(env: Env, stream: Stream, processes: int) -> Throughput:
    name = f"ours x{processes}"
    env.db.truncate()
    ings = start_ingesters(env, processes)
    try:
        before = sum_counters(ings)
        per_before = [i.messages() for i in ings]
        target = before["messages"] + len(stream.msgs)
        meter = CpuMeter(env.broker.proc.pid if env.broker.proc else 0, ings)
        meter.start()
        t0 = time.perf_counter()
        env.pub.send(stream.msgs)
        t_pub = float("nan")
        deadline = time.monotonic() + env.timeout
        done = False
        max_queue = [0] * len(ings)
        while time.monotonic() < deadline:
            if t_pub != t_pub and env.pub.all_acked():
                t_pub = time.perf_counter() - t0
            health = [i.health() for i in ings]
            for k, h in enumerate(health):
                max_queue[k] = max(max_queue[k], int(h["queue"]))
            if sum(int(h["ingest"]["messages"]) for h in health) >= target:
                done = True
                break
            time.sleep(POLL_S)
        t_done = time.perf_counter() - t0
        meter.stop()
        if t_pub != t_pub:
            env.pub.wait_acked(env.timeout)
            t_pub = time.perf_counter() - t0
        time.sleep(1.6)  # device state is written at most every device_flush_s (1 s) after a change
        after = sum_counters(ings)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        r = Throughput(name, len(stream.msgs), t_done, t_pub, 0, meter.result, processes)
        r.shares = [i.messages() - b for i, b in zip(ings, per_before, strict=True)]
        r.orders_opened = delta.get("orders_opened", 0)
        r.attached = delta.get("alarms_attached", 0)
        r.batches = delta.get("batches", 0)
        r.max_queue = max_queue
        if not done:
            r.notes.append(f"only {delta.get('messages', 0)} of {len(stream.msgs)} stored after {env.timeout:.0f} s")
        verify(env, stream, delta, r)
    finally:
        stop_ingesters(env, ings)
    return r


def verify(env: Env, stream: Stream, delta: dict[str, int], r: Throughput) -> None:
    """Every event stored once, telemetry and statuses counted, orders and device rows as expected."""
    prefix = stream.devices[0].rsplit("-", 1)[0] + "-%"
    with env.db.connect() as c:
        stored = {row[0] for row in c.execute("SELECT id FROM events WHERE device LIKE %s", (prefix,))}
        n_orders, alarms = c.execute(
            "SELECT count(*), coalesce(sum(alarm_count), 0) FROM work_orders WHERE device LIKE %s", (prefix,)
        ).fetchone() or (0, 0)
        dead = (c.execute("SELECT count(*) FROM dead_letters").fetchone() or (0,))[0]
        devices = {
            row[0]: (row[1], row[2])
            for row in c.execute("SELECT id, online, last_seen FROM devices WHERE id LIKE %s", (prefix,))
        }
    missing = set(stream.event_ids) - stored
    r.lost = len(missing)
    if missing:
        r.notes.append(f"LOSS: {len(missing)} of {stream.n_events} event ids not in the events table")
    checks = [
        ("events_new", delta.get("events_new", 0), stream.n_events),
        ("events_duplicate", delta.get("events_duplicate", 0), 0),
        ("telemetry", delta.get("telemetry", 0), stream.n_telemetry),
        ("statuses", delta.get("statuses", 0), stream.n_status),
        ("dead_letters", delta.get("dead_letters", 0) + int(dead), 0),
        ("work orders", int(n_orders), stream.orders),
        ("sum of alarm_count", int(alarms), stream.n_events),
        ("orders_opened", delta.get("orders_opened", 0), stream.orders),
    ]
    for what, got, want in checks:
        if got != want:
            r.notes.append(f"{what}: {got}, expected {want}")
            if what == "telemetry" and got < want:
                r.lost += want - got
    stale = [d for d, ts in stream.last_telemetry_ts.items() if d not in devices or devices[d][1] != ts]
    not_online = [d for d in stream.devices if d not in devices or devices[d][0] is not True]
    if stale:
        r.notes.append(
            f"device state: {len(stale)} of {len(stream.last_telemetry_ts)} devices show an older last_seen "
            "than their last telemetry"
        )
    if not_online:
        r.notes.append(f"device state: {len(not_online)} of {len(stream.devices)} devices not online "
                       "although each sent 'online'")  # fmt: skip


# --------------------------------------------------------------------------- cost breakdown (in-process)


@dataclass
class Breakdown:
    skip: int  # messages handled (untimed) before the timed part
    count: int
    batch: int
    decode_us: dict[str, float]  # per message kind: Topic.parse + pydantic decode, µs per message
    handle_s: float  # IngestWorker.handle over all batches
    decode_s: float  # of which: parse + validate (measured separately)
    sql_s: float  # of which: inside cursor.execute (psycopg + PostgreSQL round trip)
    statements: int
    commits: int
    events: int
    single_ms: list[float]  # handle() of a batch holding one new alarm (opens an order)
    checks_us: float = 0.0  # per message: the ownership checks (issue 12) on top of parse + validate
    validate_us: float = 0.0  # per message, the same messages: parse + validate alone

    @property
    def rate(self) -> float:
        return self.count / self.handle_s


def breakdown(loaded: LoadedConfig, db: Database, stream: Stream, count: int, batch: int) -> Breakdown:
    """Time ``IngestWorker.handle`` on ``count`` messages of the stream after its first ``skip`` (untimed)
    have opened every order: the alarm-storm steady state that most of the throughput phases are."""
    db.truncate()
    skip = min(2000, len(stream.msgs) // 2)
    count = min(count, len(stream.msgs) - skip)
    everything = [Inbound(t, p, i + 1, 1) for i, (t, p) in enumerate(stream.msgs[: skip + count])]
    head, inbound = everything[:skip], everything[skip:]
    kinds = stream.kinds[skip : skip + count]
    model: dict[Kind, Any] = {Kind.EVENT: Event, Kind.TELEMETRY: Telemetry, Kind.STATUS: Status}
    decode_us: dict[str, float] = {}
    decode_total = 0.0
    for k in (Kind.EVENT, Kind.TELEMETRY, Kind.STATUS):
        items = [m for m, kk in zip(inbound, kinds, strict=True) if kk is k]
        if not items:
            continue
        t0 = time.perf_counter()
        for m in items:
            Topic.parse(m.topic)
            decode(model[k], m.payload)
        dt = time.perf_counter() - t0
        decode_total += dt
        decode_us[k.value] = dt / len(items) * 1e6
    engine = make_engine(db.url)
    stats = {"n": 0, "s": 0.0, "commits": 0}
    starts: list[float] = []

    def before(*_: Any) -> None:
        starts.append(time.perf_counter())

    def after(*_: Any) -> None:
        stats["s"] += time.perf_counter() - starts.pop()
        stats["n"] += 1

    def on_commit(*_: Any) -> None:
        stats["commits"] += 1

    sa_event.listen(engine, "before_cursor_execute", before)
    sa_event.listen(engine, "after_cursor_execute", after)
    sa_event.listen(engine, "commit", on_commit)
    try:
        worker = IngestWorker(
            site=loaded.site, router=Router(loaded.site), sessions=make_sessions(engine),
            inbox=queue.Queue(), ack=lambda b: None, telemetry=None, batch_max=batch,
        )  # fmt: skip
        checks_us, validate_us = ownership_cost(worker, inbound, kinds, model)
        for i in range(0, len(head), batch):  # opens the orders; connects and compiles; not timed
            worker.handle(head[i : i + batch])
        stats.update(n=0, s=0.0, commits=0)
        t0 = time.perf_counter()
        for i in range(0, len(inbound), batch):
            worker.handle(inbound[i : i + batch])
        handle_s = time.perf_counter() - t0
        sql_s, n_sql, commits = float(stats["s"]), int(stats["n"]), int(stats["commits"])
        single_ms: list[float] = []
        solo, _ = build_alarms(loaded.site.site.id, 100, "solo")
        for i, (topic, payload) in enumerate(solo):
            time.sleep(0.01)
            t0 = time.perf_counter()
            worker.handle([Inbound(topic, payload, i + 1, 1)])
            single_ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        engine.dispose()
    n_events = sum(1 for k in kinds if k is Kind.EVENT)
    return Breakdown(
        skip, count, batch, decode_us, handle_s, decode_total, sql_s, n_sql, commits, n_events, single_ms,
        checks_us, validate_us,
    )  # fmt: skip


def ownership_cost(
    worker: IngestWorker, inbound: list[Inbound], kinds: list[Kind], model: dict[Kind, Any], rounds: int = 3
) -> tuple[float, float]:
    """µs per message of the ingester's source checks (the topic's gateway owns the device, a gate event from
    that gate, a reading of the device's type), and of parse + validate alone, on the same messages; best of
    ``rounds``, alternating."""
    pairs = [(m, k) for m, k in zip(inbound, kinds, strict=True) if k in model]
    with_checks: list[float] = []
    without: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for m, k in pairs:
            Topic.parse(m.topic)
            decode(model[k], m.payload)
        without.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for m, k in pairs:
            topic = Topic.parse(m.topic)
            msg = decode(model[k], m.payload)
            worker._check_source(topic)
            if isinstance(msg, Event):
                worker._check_event(msg)
            elif isinstance(msg, Telemetry):
                worker._check_reading(msg.device, msg.reading.type)
        with_checks.append(time.perf_counter() - t0)
    n = max(len(pairs), 1)
    return (min(with_checks) - min(without)) / n * 1e6, min(without) / n * 1e6


# --------------------------------------------------------------------------- latency


@dataclass
class LatencyResult:
    ours_ms: list[float]
    base_ms: list[float]
    to_batch_ms: list[float]  # publish -> the ingester's batch began (events.received_at)
    batch_to_commit_ms: list[float]  # batch began -> NOTIFY received here
    lost_ours: int
    lost_base: int
    seconds: float


NOTIFY_SQL = """
CREATE OR REPLACE FUNCTION bench_order_opened() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('bench_orders', NEW.first_event_id); RETURN NEW; END $$;
DROP TRIGGER IF EXISTS bench_order_opened ON work_orders;
CREATE TRIGGER bench_order_opened AFTER INSERT ON work_orders
    FOR EACH ROW EXECUTE FUNCTION bench_order_opened();
"""


class OrderListener:
    """LISTEN for the benchmark trigger's NOTIFY: the arrival time of each order's first event id."""

    def __init__(self, db: Database) -> None:
        self.conn = db.connect()
        self.conn.execute("LISTEN bench_orders")
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for n in self.conn.notifies(timeout=0.2):
                self.seen.setdefault(n.payload, time.time())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


def run_latency(env: Env, msgs: list[tuple[str, bytes]], ids: list[str], rate: float) -> LatencyResult:
    env.db.truncate()
    with env.db.connect() as c:
        c.execute(NOTIFY_SQL)
    ings = start_ingesters(env, 1)
    listener = OrderListener(env.db)
    out = env.tmp / "latency-baseline.out"
    try:
        since = env.broker_log.mark()
        sub = mosquitto_sub(env.broker.port, env.cloud_password, env.cloud_user, len(msgs), "bench-latency-sub",
                            out, fmt="%U %p")  # fmt: skip
        env.subs.append(sub)
        if not env.broker_log.wait_for(f"{env.cloud_user} 1 {SUBSCRIPTION}", since, 10):
            raise BenchError("latency: mosquitto_sub did not subscribe within 10 s")
        time.sleep(0.5)  # let the ingester go idle after its warm-up
        sent: dict[str, float] = {}
        interval = 1.0 / rate
        publish = env.pub.client.publish
        start = time.perf_counter()
        for k, ((topic, payload), eid) in enumerate(zip(msgs, ids, strict=True)):
            wait = start + k * interval - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent[eid] = time.time()
            publish(topic, payload, qos=1)
        seconds = time.perf_counter() - start
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (sub.poll() is None or any(i not in listener.seen for i in ids)):
            time.sleep(0.01)
        if sub.poll() is None:
            sub.kill()
            sub.wait()
        with env.db.connect() as c:
            received = {
                row[0]: float(row[1])
                for row in c.execute(
                    "SELECT id, extract(epoch FROM received_at) FROM events WHERE device LIKE %s", ("lat-%",)
                )
            }
    finally:
        listener.stop()
        stop_ingesters(env, ings)
    base_at: dict[str, float] = {}
    with out.open("rb") as f:
        for line in f:
            stamp, _, payload = line.partition(b" ")
            with suppress(ValueError, KeyError):
                base_at.setdefault(json.loads(payload)["id"], float(stamp))
    ours = [(listener.seen[i] - sent[i]) * 1e3 for i in ids if i in listener.seen]
    base = [(base_at[i] - sent[i]) * 1e3 for i in ids if i in base_at]
    to_batch = [(received[i] - sent[i]) * 1e3 for i in ids if i in received]
    to_commit = [(listener.seen[i] - received[i]) * 1e3 for i in ids if i in received and i in listener.seen]
    return LatencyResult(ours, base, to_batch, to_commit, len(ids) - len(ours), len(ids) - len(base), seconds)


# --------------------------------------------------------------------------- report


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def machine() -> dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": str(os.cpu_count())}
    with suppress(OSError, StopIteration):
        info["cpu"] = next(
            x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        )  # fmt: skip
        kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        info["ram"] = f"{kb / 1024 / 1024:.1f} GiB"
    return info


def source_state() -> str:
    """The commit measured, and which ingest-path files differ from it (the tree may hold uncommitted work)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()  # fmt: skip
        changed = subprocess.run(["git", "status", "--porcelain", "--", "cloud", "sc"], cwd=REPO, capture_output=True,
                                 text=True, timeout=10).stdout.split("\n")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    files = [line[3:] for line in changed if line.strip()]
    parts = []
    for f in files:
        with suppress(OSError):
            digest = hashlib.sha256((REPO / f).read_bytes()).hexdigest()[:10]
            parts.append(f"{f} (sha256 {digest})")
    return f"commit {head or '?'}" + (f", uncommitted changes in {', '.join(parts)}" if parts else ", clean")


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (anything else running on the machine skews the results)."""

    def sample() -> tuple[int, int]:
        vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(vals), vals[3] + vals[4]  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return float("nan")
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def print_report(tp: list[Throughput], stream: Stream, bd: Breakdown | None, lat: LatencyResult | None,
                 rate: float) -> None:  # fmt: skip
    names = list(dict.fromkeys(r.name for r in tp))
    base = [r for r in tp if r.name == "baseline"]
    print()
    print(
        f"Throughput: {len(stream.msgs)} messages (QoS 1): {stream.n_telemetry} telemetry "
        f"({stream.avg_bytes(Kind.TELEMETRY):.0f} B), {stream.n_events} events "
        f"({stream.avg_bytes(Kind.EVENT):.0f} B), {stream.n_status} status; {len(stream.devices)} devices"
    )
    print(
        f"{'':14} {'msg/s':>7} {'ours/base':>9} {'s':>6} {'pub acked s':>11} {'lost':>5}   "
        f"CPU s: {'ingester':>8} {'postgres':>8} {'broker':>6} {'bench':>6} {'sub':>5} {'other':>5} {'total':>6} "
        f"{'cores':>5}"
    )
    for name in names:
        rs = [r for r in tp if r.name == name]
        ratio = med([r.rate / b.rate for r, b in zip(rs, base, strict=False)])
        keys = ("ingesters", "postgres", "broker", "bench", "mosquitto_sub", "other")
        cpu = {k: med([r.cpu.get(k, 0.0) for r in rs]) for k in keys}
        total = sum(cpu.values())
        secs = med([r.seconds for r in rs])
        print(
            f"{name:14} {med([r.rate for r in rs]):7.0f} {ratio:9.2f} {secs:6.2f} "
            f"{med([r.publish_s for r in rs]):11.2f} {sum(r.lost for r in rs):5d}   "
            f"       {cpu['ingesters']:8.2f} {cpu['postgres']:8.2f} {cpu['broker']:6.2f} {cpu['bench']:6.2f} "
            f"{cpu['mosquitto_sub']:5.2f} {cpu['other']:5.2f} {total:6.2f} {total / secs:5.2f}"
        )
    cores = os.cpu_count() or 1
    for r in tp:
        other = r.cpu.get("other", 0.0)
        if other > 0.1 * r.seconds * cores:
            r.notes.append(
                f"other processes used {other:.1f} CPU s ({other / (r.seconds * cores):.0%} of the machine) during "
                "this phase: its figures are not trustworthy, run again on a quiet machine"
            )
    for r in tp:
        if r.processes:
            print(
                f"  {r.name}: messages per ingester {r.shares}, {r.batches} batches "
                f"(avg {r.count / max(r.batches, 1):.0f} msg), orders opened {r.orders_opened}, "
                f"alarms attached {r.attached}; deepest MQTT->database queue {r.max_queue} (limit 20000)"
            )
        for n in r.notes:
            print(f"  ! {r.name}: {n}")
    if bd is not None:
        print()
        print(
            f"Cost breakdown, in this process without MQTT: IngestWorker.handle on messages {bd.skip}-"
            f"{bd.skip + bd.count} of the stream (all orders already open), batches of {bd.batch}"
        )
        print(
            "  validate only (Topic.parse + pydantic): " + ", ".join(f"{k} {v:.1f} us" for k, v in bd.decode_us.items())
        )
        print(
            f"  ownership checks (issue 12): {bd.checks_us:.2f} us per message on top of parse + validate "
            f"{bd.validate_us:.1f} us: x{(bd.validate_us + bd.checks_us) / bd.validate_us:.3f} of the validation, "
            f"{bd.checks_us / (bd.handle_s / bd.count * 1e6) * 100:.2f} % of handle"
        )
        other = bd.handle_s - bd.decode_s - bd.sql_s
        print(
            f"  handle: {bd.rate:.0f} msg/s; {bd.handle_s / bd.count * 1e6:.0f} us per message = "
            f"validate {bd.decode_s / bd.count * 1e6:.0f} + inside cursor.execute {bd.sql_s / bd.count * 1e6:.0f}"
            f" + SQLAlchemy/other Python {other / bd.count * 1e6:.0f}"
        )
        print(
            f"  {bd.statements} SQL statements for {bd.events} events ({bd.statements / max(bd.events, 1):.2f} "
            f"per event), {bd.commits} commits"
        )
        print(
            f"  one new alarm alone (opens an order): handle p50 {percentile(bd.single_ms, 50):.2f} ms, "
            f"p99 {percentile(bd.single_ms, 99):.2f} ms"
        )
    if lat is not None:
        print()
        print(f"Latency: {len(lat.ours_ms)} alarms from distinct devices at {rate:.0f}/s, one idle ingester (ms)")
        print(f"{'':44} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'mean':>7} {'lost':>5}")
        rows = [
            ("baseline: publish -> mosquitto_sub received", lat.base_ms, lat.lost_base),
            ("ours: publish -> work order committed", lat.ours_ms, lat.lost_ours),
            ("  of which publish -> ingester batch start", lat.to_batch_ms, 0),
            ("  of which batch start -> order committed", lat.batch_to_commit_ms, 0),
        ]
        for label, xs, lost in rows:
            print(
                f"{label:44} {percentile(xs, 50):7.2f} {percentile(xs, 95):7.2f} {percentile(xs, 99):7.2f} "
                f"{max(xs, default=float('nan')):7.2f} {statistics.fmean(xs) if xs else float('nan'):7.2f} "
                f"{lost:5d}"
            )
        b50, b99 = percentile(lat.base_ms, 50), percentile(lat.base_ms, 99)
        print(
            f"  ours / baseline: p50 {percentile(lat.ours_ms, 50) / b50:.1f}x, "
            f"p99 {percentile(lat.ours_ms, 99) / b99:.1f}x"
        )


def plot(tp: list[Throughput], lat: LatencyResult | None, path: Path, rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110, gridspec_kw={"width_ratios": [1, 1.5]})
    names = list(dict.fromkeys(r.name for r in tp))
    rates = [med([r.rate for r in tp if r.name == n]) for n in names]
    labels = {"baseline": "mosquitto_sub\n(baseline)", "ours x1": "sc cloud run\n1 process",
              "ours x2": "sc cloud run\n2 processes"}  # fmt: skip
    colors = ["tab:gray", "tab:blue", "tab:green"]
    bars = ax1.bar([labels.get(n, n) for n in names], rates, color=colors[: len(names)])
    base = rates[names.index("baseline")] if "baseline" in names else float("nan")
    for b, v in zip(bars, rates, strict=True):
        label = f"{v:,.0f}\n({v / base:.2f}x)"
        ax1.annotate(label, (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=9)
    ax1.set_ylim(0, max(rates) * 1.15)
    ax1.set_ylabel("messages/s (first publish -> all received / stored)")
    ax1.set_title(f"Ingest throughput, {tp[0].count:,} messages, QoS 1", fontsize=10)
    ax1.grid(True, axis="y", alpha=0.25)
    if lat is not None and lat.ours_ms and lat.base_ms:
        allms = lat.ours_ms + lat.base_ms
        bins = list(np.logspace(np.log10(max(min(allms), 0.01)), np.log10(max(allms) * 1.01), 70))
        for xs, c, label in (
            (lat.base_ms, "tab:gray", "mosquitto_sub: publish -> received"),
            (lat.ours_ms, "tab:blue", "ours: publish -> work order committed"),
        ):
            ax2.hist(xs, bins=bins, histtype="step", linewidth=1.6, color=c,
                     label=f"{label}\np50 {percentile(xs, 50):.2f} ms, p99 {percentile(xs, 99):.2f} ms")  # fmt: skip
            ax2.axvline(percentile(xs, 99), color=c, linestyle=":", linewidth=1)
        ax2.set_xscale("log")
        ax2.set_xlabel("ms (log scale; dotted = p99)")
        ax2.set_ylabel("alarms")
        ax2.set_title(f"Alarm -> work order latency, {len(lat.ours_ms)} alarms at {rate:.0f}/s, 1 ingester",
                      fontsize=10)  # fmt: skip
        ax2.legend(fontsize=8)
        ax2.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- main


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM runs the clean-up like Ctrl-C does."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--count", type=int, default=50_000, help="messages per throughput phase (default 50000)")
    ap.add_argument("--devices", type=int, default=50, help="devices the stream is spread over (default 50)")
    ap.add_argument("--event-share", type=float, default=0.2, help="share of events in the stream (default 0.2)")
    ap.add_argument("--rounds", type=int, default=1, help="throughput rounds, rotating the order (default 1)")
    ap.add_argument("--latency-count", type=int, default=300, help="alarms in the latency phase (default 300)")
    ap.add_argument("--rate", type=float, default=50.0, help="alarms/s in the latency phase (default 50)")
    ap.add_argument("--breakdown-count", type=int, default=10_000,
                    help="messages for the in-process cost breakdown, 0 to skip (default 10000)")  # fmt: skip
    ap.add_argument("--inflight", type=int, default=None,
                    help="publisher's paho max in-flight (default: the gateway's outbox window, 500)")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each phase (default 120)")
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "cloud_ingest.png")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (config, broker and ingester logs)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.count <= args.devices or args.devices < 1 or args.rounds < 1 or args.rate <= 0:
        ap.error("--count must exceed --devices; --devices, --rounds and --rate must be positive")
    if not 0 < args.event_share <= 1 or args.latency_count < 1:
        ap.error("--event-share must be in (0, 1] and --latency-count positive")
    if shutil.which("mosquitto_sub") is None:
        print("mosquitto_sub is not installed (Debian package mosquitto-clients)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip

    wall = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="cloud-ingest-bench-"))
    db = Database(PG_ADMIN_URL)
    broker: MosquittoProcess | None = None
    pub: Publisher | None = None
    watch: SysWatch | None = None
    env: Env | None = None
    code = 0
    with sigterm_as_exit():
        try:
            bench_devices = [
                *(f"tp-{i:03d}" for i in range(args.devices)),
                *(f"warm-{i:03d}" for i in range(10)),
                *(f"lat-{i:04d}" for i in range(args.latency_count)),
                *(f"solo-{i:04d}" for i in range(100)),
            ]
            loaded, port, cfg = make_site(tmp, bench_devices)
            broker = start_broker(loaded, tmp / "broker", port)
            db.create()
            acct = account(loaded, SUB_USER)
            watch = SysWatch(loaded)
            gw = loaded.site.gateway(GATEWAY)
            pub = Publisher(loaded, args.inflight or gw.outbox.window)
            env = Env(loaded, cfg, broker, BrokerLog(broker.log_path), db, pub, watch, tmp, args.timeout,
                      acct.username, read_password(loaded, acct))  # fmt: skip
            m = machine()
            busy = cpu_busy()
            print(f"cloud_ingest: {m.get('cpu', '?')}, {m['cores']} cores, {m.get('ram', '?')}, Python {m['python']}, "
                  f"mosquitto on 127.0.0.1:{port}, PostgreSQL database {db.name}")  # fmt: skip
            print(f"  source: {source_state()}")
            print(f"  CPU busy before start (other processes): {busy:.0%}")
            if busy > 0.1:
                print("  warning: something else is using the CPUs; the figures will be lower and noisier")
            site_id = loaded.site.site.id
            stream = build_stream(site_id, "tp", args.count, args.devices, args.event_share)
            alarms, alarm_ids = build_alarms(site_id, args.latency_count)
            print(f"  stream: {len(stream.msgs)} messages, {stream.n_events} events -> {stream.orders} orders; "
                  f"publisher in-flight window {args.inflight or gw.outbox.window}")  # fmt: skip
            run_baseline(env, build_stream(site_id, "warm", WARMUP, 10, 0.2), "warmup")  # broker and publisher

            tp: list[Throughput] = []
            variants = ("baseline", "ours x1", "ours x2")
            for rnd in range(args.rounds):
                for v in variants[rnd % 3 :] + variants[: rnd % 3]:
                    r = run_baseline(env, stream) if v == "baseline" else run_ours(env, stream, int(v[-1]))
                    tp.append(r)
                    print(f"  round {rnd + 1} {v:9} {r.rate:7.0f} msg/s  ({r.seconds:.2f} s, publisher acked "
                          f"after {r.publish_s:.2f} s)  lost {r.lost}", flush=True)  # fmt: skip
            bd = None
            if args.breakdown_count > 0:
                bd = breakdown(loaded, db, stream, min(args.breakdown_count, len(stream.msgs)), 500)
                print(f"  breakdown: IngestWorker.handle alone {bd.rate:.0f} msg/s", flush=True)
            lat = run_latency(env, alarms, alarm_ids, args.rate)
            print(f"  latency: ours p50 {percentile(lat.ours_ms, 50):.2f} ms, baseline p50 "
                  f"{percentile(lat.base_ms, 50):.2f} ms", flush=True)  # fmt: skip

            print_report(tp, stream, bd, lat, args.rate)
            if not args.no_plot:
                plot(tp, lat, args.plot, args.rate)
                print(f"plot: {args.plot}")
            time.sleep(1.2)  # one more $SYS interval
            dropped = watch.dropped
            print(f"$SYS/broker/publish/messages/dropped: {dropped} ({len(watch.values)} updates seen)")
            print(f"total wall time {time.perf_counter() - wall:.1f} s")
            losses = [f"{r.name}: {r.lost} messages" for r in tp if r.lost]
            if lat.lost_ours or lat.lost_base:
                losses.append(f"latency: ours {lat.lost_ours}, baseline {lat.lost_base} alarms missing")
            if losses:
                for line in losses:
                    print(f"LOSS: {line}", file=sys.stderr)
                code = 1
            if dropped:
                print(f"LOSS: the broker dropped {dropped} messages", file=sys.stderr)
                code = 1
            if not watch.values:
                print("warning: no $SYS dropped value was received", file=sys.stderr)
            if code == 0:
                print("no loss: every event id of every phase was received / stored, and the broker dropped none")
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            code = 130
        finally:
            if env is not None:
                for ing in list(env.running):
                    with suppress(Exception):
                        ing.stop()
                for sub in env.subs:
                    if sub.poll() is None:
                        sub.kill()
                        sub.wait()
                    if sub.stderr is not None:
                        sub.stderr.close()
            for closer in (pub, watch):
                if closer is not None:
                    with suppress(Exception):
                        closer.stop()
            if broker is not None:
                broker.stop()
            try:
                db.drop()
            except psycopg.Error as exc:
                print(f"warning: could not drop database {db.name}: {exc}", file=sys.stderr)
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
