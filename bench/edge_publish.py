#!/usr/bin/env python3
"""Edge publish benchmark: sensor events per second through the edge into the
broker, and event-created-to-arrived latency, side by side in one run with a
bare paho publisher as the baseline.

    .venv/bin/python bench/edge_publish.py [--count 20000] [--rounds 3] [--latency-count 2000] [--rate 500]

Everything runs on this machine: the script provisions a private Mosquitto
from a copy of configs/site.example.yaml (as the tests do), connects a
subscriber with the monitor account (``sc/v1/demo/#``, QoS 1) in this process,
and measures three publishers on the same broker, one after the other, in
``--rounds`` rounds (rotating order; medians reported):

* ``baseline``    bare paho-mqtt 2.x client (gateway account, MQTT 3.1.1),
                  pre-encoded Event JSON, QoS 1, no disk;
* ``edge-full``   the real edge path Outbox -> Forwarder -> MqttConnection
                  (``edge.app.build_pipeline``), outbox ``synchronous=full``
                  (every event fsynced before it may be sent);
* ``edge-normal`` the same with ``synchronous=normal`` (WAL, no fsync per commit).

Throughput: N events written/published as fast as possible; events/s until the
broker has acknowledged (PUBACK) all of them. Latency: M events, one at a time
at a paced rate, from "event created" (just before the outbox write / the bare
publish) to "arrived at the subscriber" (same process, same perf_counter clock).

The subscriber must receive every event id of every phase; any loss makes the
script exit 1. A latency histogram is written to docs/edge_publish_latency.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.app import Pipeline, build_pipeline, read_password
from sc.config.loader import LoadedConfig, load_site_config
from sc.config.schema import CloudRole, GatewayConfig
from sc.contracts.messages import (
    AlarmPayload,
    Event,
    EventKind,
    EventState,
    Severity,
    SmokeReading,
    encode,
)
from sc.contracts.topics import Kind, Topic
from sc.mosquitto import MosquittoProcess, free_port

REPO = Path(__file__).resolve().parents[1]
GATEWAY = "gw-heping-sensors"
SUBSCRIPTION = "sc/v1/demo/#"

log = logging.getLogger("bench.edge_publish")


# --------------------------------------------------------------------------- setup


def make_site(tmp: Path) -> tuple[LoadedConfig, int]:
    """Copy the example config into ``tmp/configs/site.yaml`` on a free port and load it."""
    port = free_port()
    text = (REPO / "configs" / "site.example.yaml").read_text(encoding="utf-8")
    if "port: 1883" not in text:
        raise SystemExit("configs/site.example.yaml no longer contains 'port: 1883'; update the benchmark")
    (tmp / "configs").mkdir(parents=True)
    cfg = tmp / "configs" / "site.yaml"
    cfg.write_text(text.replace("port: 1883", f"port: {port}"), encoding="utf-8")
    return load_site_config(cfg), port


class Subscriber:
    """The cloud side: counts arrivals on ``sc/v1/demo/#`` (QoS 1).

    The callback only timestamps and keeps the payload; parsing happens later
    in the main thread so the subscriber steals as little as possible from
    the publishers it measures.
    """

    def __init__(self, loaded: LoadedConfig) -> None:
        acct = loaded.site.cloud_account(CloudRole.MONITOR)
        self.arrivals: list[tuple[float, bytes | bytearray]] = []
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="bench-cloud-ingest",
            clean_session=True,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        c.username_pw_set(acct.username, read_password(loaded, acct))
        c.max_inflight_messages_set(0)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = self._on_message
        self._client = c
        self._host, self._port = loaded.site.broker.host, loaded.site.broker.port

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("subscriber refused: %s", reason)
            return
        self._connected.set()
        client.subscribe(SUBSCRIPTION, qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        t = time.perf_counter()
        if "/event/" in msg.topic:
            self.arrivals.append((t, msg.payload))

    def start(self) -> None:
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise SystemExit("subscriber: no SUBACK from the broker within 10 s (see the broker log)")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# --------------------------------------------------------------------------- events


@dataclass
class Batch:
    """Pre-encoded events for one phase: round-robin over devices, seq 1.. per device."""

    name: str
    order: list[tuple[str, int, str]]  # (device, seq, event id) in publish order
    topic: dict[str, str]
    payload: dict[tuple[str, int], bytes]
    ids: set[str] = field(default_factory=set)


def make_batch(loaded: LoadedConfig, name: str, count: int, devices: int) -> Batch:
    site = loaded.site.site.id
    reading = SmokeReading(smoke_density=12.5, temperature_c=31.0, battery_pct=90, alarm=True, fault=False)
    alarm = AlarmPayload(rule="smoke_density >= 8", value=12.5, threshold=8.0, reading=reading)
    devs = [f"bench-{name}-{i}" for i in range(devices)]
    topic = {d: str(Topic(site, GATEWAY, Kind.EVENT, d)) for d in devs}
    seq = dict.fromkeys(devs, 0)
    order: list[tuple[str, int, str]] = []
    payload: dict[tuple[str, int], bytes] = {}
    now = datetime.now(UTC)
    for i in range(count):
        d = devs[i % devices]
        seq[d] += 1
        eid = str(uuid.uuid4())
        ev = Event(
            id=eid,
            site=site,
            gateway=GATEWAY,
            device=d,
            ts=now,
            seq=seq[d],
            kind=EventKind.SMOKE_ALARM,
            state=EventState.RAISED if seq[d] % 2 else EventState.CLEARED,
            severity=Severity.CRITICAL,
            payload=alarm,
        )
        payload[(d, seq[d])] = encode(ev)
        order.append((d, seq[d], eid))
    return Batch(name, order, topic, payload, {eid for _, _, eid in order})


def builder(batch: Batch, device: str, want_seq: int) -> Callable[[int], tuple[str, bytes]]:
    """``put_event``'s build callback, handing back the pre-encoded event for the seq the outbox assigns."""

    def build(seq: int) -> tuple[str, bytes]:
        if seq != want_seq:
            raise RuntimeError(f"outbox assigned seq {seq} to {device}, expected {want_seq} (outbox not fresh?)")
        return batch.topic[device], batch.payload[(device, seq)]

    return build


# --------------------------------------------------------------------------- publishers


class BarePublisher:
    """The baseline: a plain paho client, QoS 1, nothing on disk."""

    def __init__(self, loaded: LoadedConfig, inflight: int) -> None:
        gw = loaded.site.gateway(GATEWAY)
        self._lock = threading.Lock()
        self.acked = 0
        self._target = 0
        self._done = threading.Event()
        self._connected = threading.Event()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="bench-bare-publisher",
            clean_session=True,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        c.username_pw_set(gw.account.username, read_password(loaded, gw.account))
        c.max_inflight_messages_set(inflight)
        c.max_queued_messages_set(0)
        c.on_connect = lambda cl, ud, fl, rc, pr: None if rc.is_failure else self._connected.set()
        c.on_publish = self._on_publish
        self.client = c
        c.connect(loaded.site.broker.host, loaded.site.broker.port, keepalive=30)
        c.loop_start()
        if not self._connected.wait(10):
            raise SystemExit("bare publisher: not connected within 10 s")

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            self.acked += 1
            if self.acked >= self._target:
                self._done.set()

    def expect(self, total_acks: int) -> None:
        with self._lock:
            self._target = total_acks
            self._done.clear()
            if self.acked >= total_acks:
                self._done.set()

    def wait_all_acked(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def open_edge(loaded: LoadedConfig, tmp: Path, synchronous: str, name: str) -> Pipeline:
    """The real pipeline of the gateway, with a fresh outbox of the given durability."""
    gw = loaded.site.gateway(GATEWAY)
    ob = gw.outbox.model_copy(update={"synchronous": synchronous, "path": tmp / "var" / name / "outbox.db"})
    gw2: GatewayConfig = gw.model_copy(update={"outbox": ob})
    pipe = build_pipeline(loaded, gw2)
    pipe.conn.start()
    pipe.conn.wait_first_result(10.0)
    if not pipe.conn.wait_connected(10.0):
        raise SystemExit(f"{name}: the edge connection did not come up within 10 s")
    pipe.forwarder.start()
    return pipe


def close_edge(pipe: Pipeline) -> None:
    pipe.forwarder.stop()
    pipe.conn.stop()
    pipe.outbox.close()


def wait_edge_acked(pipe: Pipeline, total: int, timeout: float) -> bool:
    """Until the forwarder has sent ``total`` rows and none is waiting for its PUBACK."""
    deadline = time.monotonic() + timeout
    fw = pipe.forwarder
    while time.monotonic() < deadline:
        if fw.sent >= total and fw.inflight == 0:
            return True
        time.sleep(0.002)
    return False


def wait_edge_drained(pipe: Pipeline, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipe.outbox.depth()["events"] == 0:
            return True
        time.sleep(0.01)
    return False


# --------------------------------------------------------------------------- phases


@dataclass
class Throughput:
    name: str
    count: int
    write_s: float  # until the last event was handed over (bare publish / outbox commit)
    acked_s: float  # until the broker acknowledged the last one
    delivered_s: float = float("nan")  # until the subscriber had the last one
    drained_s: float = float("nan")  # edge only: until the outbox was empty again
    lost: int = 0
    duplicates: int = 0

    @property
    def rate(self) -> float:
        return self.count / self.acked_s


@dataclass
class Latency:
    name: str
    ms: list[float]
    write_ms: list[float]  # time spent in the outbox write (edge) / the publish() call (baseline)
    seconds: float
    lost: int = 0
    duplicates: int = 0

    def pct(self, p: float) -> float:
        return percentile(self.ms, p)


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def collect(sub: Subscriber, start_index: int, batch: Batch, timeout: float) -> tuple[dict[str, float], int, int]:
    """Wait until every id of ``batch`` arrived; returns id -> first arrival time, lost, duplicates.

    Parsing is deferred until enough messages have arrived (or the timeout), so
    this thread does not compete for the GIL with the threads being measured.
    """
    first: dict[str, float] = {}
    dup = 0
    i = start_index
    deadline = time.monotonic() + timeout
    while True:
        need = len(batch.ids) - len(first)
        while len(sub.arrivals) - i < need and time.monotonic() < deadline:
            time.sleep(0.02)
        n = len(sub.arrivals)
        for t, payload in sub.arrivals[i:n]:
            eid = json.loads(payload)["id"]
            if eid not in batch.ids:
                continue  # another phase's straggler
            if eid in first:
                dup += 1
            else:
                first[eid] = t
        i = n
        if len(first) == len(batch.ids) or time.monotonic() >= deadline:
            break
    return first, len(batch.ids) - len(first), dup


def throughput_baseline(pub: BarePublisher, sub: Subscriber, batch: Batch, timeout: float) -> Throughput:
    mark = len(sub.arrivals)
    pub.expect(pub.acked + len(batch.order))
    publish = pub.client.publish
    t0 = time.perf_counter()
    for d, seq, _ in batch.order:
        info = publish(batch.topic[d], batch.payload[(d, seq)], qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise SystemExit(f"baseline publish failed: {paho.error_string(info.rc)}")
    t_write = time.perf_counter() - t0
    ok = pub.wait_all_acked(timeout)
    t_acked = time.perf_counter() - t0
    if not ok:
        print(f"  ! baseline: only {pub.acked} PUBACKs after {timeout:.0f} s", file=sys.stderr)
    first, lost, dup = collect(sub, mark, batch, timeout)
    delivered = (max(first.values()) - t0) if first else float("nan")
    return Throughput(batch.name, len(batch.order), t_write, t_acked, delivered, float("nan"), lost, dup)


def throughput_edge(pipe: Pipeline, sub: Subscriber, batch: Batch, timeout: float) -> Throughput:
    mark = len(sub.arrivals)
    put = pipe.outbox.put_event
    sent_before = pipe.forwarder.sent
    t0 = time.perf_counter()
    for d, seq, _ in batch.order:
        put(d, builder(batch, d, seq))
    t_write = time.perf_counter() - t0
    ok = wait_edge_acked(pipe, sent_before + len(batch.order), timeout)
    t_acked = time.perf_counter() - t0
    if not ok:
        print(
            f"  ! {batch.name}: forwarder sent={pipe.forwarder.sent} inflight={pipe.forwarder.inflight} "
            f"after {timeout:.0f} s",
            file=sys.stderr,
        )
    drained = wait_edge_drained(pipe, timeout)
    t_drained = time.perf_counter() - t0 if drained else float("nan")
    first, lost, dup = collect(sub, mark, batch, timeout)
    delivered = (max(first.values()) - t0) if first else float("nan")
    return Throughput(batch.name, len(batch.order), t_write, t_acked, delivered, t_drained, lost, dup)


def paced(
    batch: Batch, rate: float, send: Callable[[str, int, str], None]
) -> tuple[dict[str, float], list[float], float]:
    """Call ``send`` for each event at ``rate``/s; returns id -> t0, per-call durations (ms), seconds."""
    t0s: dict[str, float] = {}
    write_ms: list[float] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    for k, (d, seq, eid) in enumerate(batch.order):
        wait = start + k * interval - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        t0s[eid] = t0
        send(d, seq, eid)
        write_ms.append((time.perf_counter() - t0) * 1e3)
    return t0s, write_ms, time.perf_counter() - start


def latency_run(
    name: str, sub: Subscriber, batch: Batch, rate: float, send: Callable[[str, int, str], None], timeout: float
) -> Latency:
    mark = len(sub.arrivals)
    t0s, write_ms, seconds = paced(batch, rate, send)
    first, lost, dup = collect(sub, mark, batch, timeout)
    ms = [(first[eid] - t0s[eid]) * 1e3 for eid in t0s if eid in first]
    return Latency(name, ms, write_ms, seconds, lost, dup)


# --------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import os

        info["cores"] = str(os.cpu_count())
        kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        info["ram"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    return info


def plot(lat: list[Latency], path: Path, rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    allms = [x for r in lat for x in r.ms]
    if not allms:
        return
    lo, hi = max(min(allms), 0.01), max(allms)
    bins = list(np.logspace(np.log10(lo), np.log10(hi * 1.01), 80))
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    colors = {"baseline": "tab:gray", "edge-full": "tab:red", "edge-normal": "tab:blue"}
    for r in lat:
        c = colors.get(r.name)
        ax.hist(
            r.ms,
            bins=bins,
            histtype="step",
            linewidth=1.6,
            color=c,
            label=f"{r.name}: p50 {r.pct(50):.2f} ms, p99 {r.pct(99):.2f} ms",
        )
        ax.axvline(r.pct(99), color=c, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("event created -> arrived at subscriber (ms, log scale; dotted = p99)")
    ax.set_ylabel("events")
    n = len(lat[0].ms)
    ax.set_title(f"Edge publish latency, {n} events each at {rate:.0f}/s, QoS 1, local Mosquitto")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


VARIANTS = ("baseline", "edge-full", "edge-normal")


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def report(tp: list[Throughput], lat: list[Latency], args: argparse.Namespace, rounds: int) -> None:
    by = {v: [r for r in tp if r.name == v] for v in VARIANTS}
    base = by["baseline"]
    print()
    print(
        f"Throughput: {args.count} events per phase x {rounds} round(s), QoS 1; "
        "events/s = events / seconds until the broker acknowledged the last one"
    )
    print(
        f"{'':12} {'events/s':>9} {'min-max':>13} {'ours/base':>9} {'acked s':>8} {'written s':>9} "
        f"{'delivered s':>11} {'drained s':>9} {'lost':>5} {'dup':>4}"
    )
    for v in VARIANTS:
        rs = by[v]
        rates = [r.rate for r in rs]
        ratio = med([r.rate / b.rate for r, b in zip(rs, base, strict=True)])
        print(
            f"{v:12} {med(rates):9.0f} {f'{min(rates):.0f}-{max(rates):.0f}':>13} {ratio:9.2f} "
            f"{med([r.acked_s for r in rs]):8.2f} {med([r.write_s for r in rs]):9.2f} "
            f"{fmt(med([r.delivered_s for r in rs])):>11} {fmt(med([r.drained_s for r in rs])):>9} "
            f"{sum(r.lost for r in rs):5d} {sum(r.duplicates for r in rs):4d}"
        )
    pooled = {
        v: Latency(
            v,
            [x for r in lat if r.name == v for x in r.ms],
            [x for r in lat if r.name == v for x in r.write_ms],
            sum(r.seconds for r in lat if r.name == v),
            sum(r.lost for r in lat if r.name == v),
            sum(r.duplicates for r in lat if r.name == v),
        )
        for v in VARIANTS
    }
    bl = pooled["baseline"]
    print()
    print(
        f"Latency: {len(bl.ms)} events per variant, one at a time at {args.rate:.0f}/s, "
        "event created -> arrived at the subscriber (ms)"
    )
    print(
        f"{'':12} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'mean':>7} {'p50 x':>6} {'p99 x':>6} "
        f"{'write p50':>9} {'write p99':>9} {'lost':>5}"
    )
    for v in VARIANTS:
        r = pooled[v]
        print(
            f"{v:12} {r.pct(50):7.2f} {r.pct(95):7.2f} {r.pct(99):7.2f} {max(r.ms, default=float('nan')):7.2f} "
            f"{statistics.fmean(r.ms) if r.ms else float('nan'):7.2f} "
            f"{r.pct(50) / bl.pct(50):6.2f} {r.pct(99) / bl.pct(99):6.2f} "
            f"{percentile(r.write_ms, 50):9.3f} {percentile(r.write_ms, 99):9.3f} {r.lost:5d}"
        )
    print()
    print("events/s: median over rounds; ours/base: median of the per-round ratios to the bare paho baseline.")
    print("written: until the last event was in the outbox (edge) / handed to paho (baseline); delivered: until")
    print("the subscriber had the last one; drained: until the outbox was empty again. p50 x, p99 x: ratio to")
    print("the baseline; write: time inside put_event (edge) / publish() (baseline), ms.")
    return None


def fmt(x: float, nd: int = 2) -> str:
    return "-" if x != x else f"{x:.{nd}f}"  # nan -> "-"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--count", type=int, default=20000, help="events per throughput phase (default 20000)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="throughput rounds; each runs all three variants, in rotating order (default 3)",
    )
    ap.add_argument(
        "--latency-count",
        type=int,
        default=2000,
        help="latency events per variant, split over the rounds (default 2000)",
    )
    ap.add_argument(
        "--rate", type=float, default=500.0, help="paced rate of the latency phases, events/s (default 500)"
    )
    ap.add_argument("--devices", type=int, default=10, help="devices the events are spread over (default 10)")
    ap.add_argument(
        "--baseline-inflight",
        type=int,
        default=None,
        help="paho max in-flight for the baseline (default: the gateway's outbox window, 500)",
    )
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for acks / arrivals per phase")
    ap.add_argument(
        "--plot",
        type=Path,
        default=REPO / "docs" / "edge_publish_latency.png",
        help="latency histogram PNG (default docs/edge_publish_latency.png)",
    )
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (config, broker log, outboxes)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.count < 1 or args.rounds < 1 or args.latency_count < args.rounds or args.rate <= 0:
        ap.error("--count, --rounds, --rate must be positive and --latency-count at least --rounds")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    wall = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="edge-publish-bench-"))
    broker: MosquittoProcess | None = None
    sub: Subscriber | None = None
    pub: BarePublisher | None = None
    try:
        loaded, port = make_site(tmp)
        broker = MosquittoProcess(loaded, tmp / "broker", port=port).start()
        gw = loaded.site.gateway(GATEWAY)
        inflight = args.baseline_inflight or gw.outbox.window
        m = machine()
        print(
            f"edge_publish: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('ram', '?')}, "
            f"Python {m['python']}, mosquitto on 127.0.0.1:{port}"
        )
        print(
            f"  gateway {GATEWAY}: outbox window {gw.outbox.window}; baseline paho max_inflight {inflight}; "
            f"{args.rounds} round(s) of {args.count} events per variant"
        )
        sub = Subscriber(loaded)
        sub.start()
        pub = BarePublisher(loaded, inflight)
        throughput_baseline(pub, sub, make_batch(loaded, "warmup", 500, 1), args.timeout)  # warm broker + subscriber

        lat_per_round = [
            args.latency_count // args.rounds + (1 if i < args.latency_count % args.rounds else 0)
            for i in range(args.rounds)
        ]
        tp: list[Throughput] = []
        lat: list[Latency] = []
        for rnd in range(args.rounds):
            order = VARIANTS[rnd % 3 :] + VARIANTS[: rnd % 3]  # rotate so no variant always goes first
            for v in order:
                short = v.removeprefix("edge-")[:4]
                tb = make_batch(loaded, f"tp{rnd}-{short}", args.count, args.devices)
                lb = make_batch(loaded, f"lat{rnd}-{short}", lat_per_round[rnd], args.devices)
                if v == "baseline":
                    r = throughput_baseline(pub, sub, tb, args.timeout)

                    def bare_send(d: str, seq: int, eid: str, lb: Batch = lb) -> None:
                        pub.client.publish(lb.topic[d], lb.payload[(d, seq)], qos=1)

                    lr = latency_run(v, sub, lb, args.rate, bare_send, args.timeout)
                else:
                    sync = v.removeprefix("edge-")
                    pipe = open_edge(loaded, tmp, sync, f"{v}-tp{rnd}")
                    try:
                        r = throughput_edge(pipe, sub, tb, args.timeout)
                    finally:
                        close_edge(pipe)
                    pipe = open_edge(loaded, tmp, sync, f"{v}-lat{rnd}")
                    try:
                        put = pipe.outbox.put_event

                        def edge_send(d: str, seq: int, eid: str, put: Any = put, lb: Batch = lb) -> None:
                            put(d, builder(lb, d, seq))

                        lr = latency_run(v, sub, lb, args.rate, edge_send, args.timeout)
                    finally:
                        close_edge(pipe)
                r.name = v
                tp.append(r)
                lat.append(lr)
                print(
                    f"  round {rnd + 1} {v:11}  {r.rate:7.0f} events/s   latency p50 {lr.pct(50):5.2f} ms  "
                    f"p99 {lr.pct(99):6.2f} ms   lost {r.lost + lr.lost}",
                    flush=True,
                )

        report(tp, lat, args, args.rounds)
        if not args.no_plot:
            pooled = [Latency(v, [x for r in lat if r.name == v for x in r.ms], [], 0.0) for v in VARIANTS]
            plot(pooled, args.plot, args.rate)
            print(f"latency histogram: {args.plot}")
        print(f"total wall time {time.perf_counter() - wall:.1f} s")

        lost = [(r.name, "throughput", r.lost) for r in tp if r.lost]
        lost += [(r.name, "latency", r.lost) for r in lat if r.lost]
        if lost:
            for name, phase, n in lost:
                print(f"LOSS: {name} {phase} phase: {n} events never reached the subscriber", file=sys.stderr)
            return 1
        print("no loss: the subscriber received every event id of every phase")
        return 0
    finally:
        if pub is not None:
            pub.stop()
        if sub is not None:
            sub.stop()
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
