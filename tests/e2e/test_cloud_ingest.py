"""Simulated devices -> edge -> Mosquitto -> ingesters -> PostgreSQL and InfluxDB: exact rows out."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cloud.app import CloudApp
from cloud.db.models import Base, DeadLetter, DeviceState, EventRow, WorkOrder, WorkOrderHistory
from cloud.settings import CloudSettings
from firmware_sim.runner import Simulator, SimulatorThread
from firmware_sim.scenario import Scenario
from harness import EdgeThread, InfluxProcess, Site, TcpProxy, edge_process, wait_until
from sc.contracts.messages import (
    AlarmPayload,
    EntryMethod,
    Event,
    EventKind,
    EventState,
    GatePayload,
    Severity,
    SmokeReading,
    Status,
    StatusState,
    Telemetry,
    encode,
)
from sc.contracts.topics import Kind, Topic

#: The test site's load gateway: its devices burst-0 .. burst-19 exist for raw publishers like these.
LOAD = "gw-load"


def cloud(site: Site, db: Engine, instance: str = "1", **kw: object) -> CloudApp:
    settings = CloudSettings.model_validate(
        {
            "database_url": db.url.render_as_string(hide_password=False),
            "instance": instance,
            "device_flush_s": 0.2,
            **kw,
        }
    )
    app = CloudApp(site.loaded, settings)
    app.start()
    return app


def count(db: Engine, model: type[Base]) -> int:
    with Session(db) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def orders(db: Engine) -> list[WorkOrder]:
    with Session(db) as s:
        return list(s.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars())


def test_alarms_become_routed_work_orders_and_telemetry_lands_in_influxdb(
    site: Site, db: Engine, influxdb: InfluxProcess
) -> None:
    app = cloud(site, db, influx_url=influxdb.url, influx_database="e2e_ingest")
    sim = SimulatorThread(Simulator(site.loaded, gateways=["gw-a"], scenario=Scenario())).start()
    edge = EdgeThread(site.loaded, "gw-a").start()
    try:
        edge.wait_ready()
        assert wait_until(lambda: count(db, DeviceState) == 6, 10)  # the gateway and its 5 devices
        sim.sim.sensors["smoke-1"].set({"smoke_density": 20.0})
        sim.sim.sensors["bin-1"].set({"fill_pct": 99.0})
        sim.sim.fault("smoke-2", "silent")
        assert wait_until(lambda: len(orders(db)) == 3, 10), [o.kind for o in orders(db)]
        sim.sim.fault("smoke-2", "none")
        assert wait_until(lambda: all(o.cleared_at for o in orders(db) if o.kind == "device_offline"), 10)
        got = {(o.device, o.kind, o.category, o.department, o.assignee, o.status) for o in orders(db)}
        assert got == {
            ("smoke-1", "smoke_alarm", "fire", "fire", "w-fire", "dispatched"),
            ("bin-1", "bin_full", "sanitation", "property", "w-prop", "dispatched"),
            ("smoke-2", "device_offline", "device", "property", "w-prop", "dispatched"),
        }

        def online(device: str) -> bool | None:
            with Session(db) as s:
                row = s.get(DeviceState, device)
                return row.online if row is not None else None

        assert wait_until(lambda: online("smoke-2") is True, 5)
        with Session(db) as s:
            gw = s.get(DeviceState, "gw-a")
            assert gw is not None and gw.is_gateway and gw.online is True
        assert count(db, EventRow) == 4  # smoke, bin, offline, online
        assert wait_until(lambda: bool(_influx_devices(influxdb, "e2e_ingest")), 10)
        assert wait_until(lambda: _influx_devices(influxdb, "e2e_ingest") >= {"smoke-1", "bin-1", "manhole-1"}, 10)
        assert app.health()["healthy"] is True
    finally:
        edge.stop()
        sim.stop()
        app.stop()


def _influx_devices(influx: InfluxProcess, dbname: str) -> set[str]:
    try:
        res = influx.query('SHOW TAG VALUES WITH KEY = "device"', db=dbname)
    except OSError:
        return set()
    out: set[str] = set()
    for series in res["results"][0].get("series", []):
        out |= {v[1] for v in series["values"]}
    return out


def _event(device: str, seq: int, gateway: str = "gw-a") -> Event:
    r = SmokeReading(smoke_density=12, temperature_c=25, battery_pct=90, alarm=False, fault=False)
    return Event(
        site="test", gateway=gateway, device=device, ts=datetime.now(UTC), seq=seq, kind=EventKind.SMOKE_ALARM,
        state=EventState.RAISED, severity=Severity.CRITICAL,
        payload=AlarmPayload(rule="smoke_density >= 8", value=12, threshold=8, reading=r),
    )  # fmt: skip


def _gateway_client(site: Site, user: str = "gw-a") -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-raw")
    c.username_pw_set(user, site.password(user))
    c.connect("127.0.0.1", site.port)
    c.loop_start()
    return c


def test_duplicates_and_bad_messages_two_ingesters(site: Site, db: Engine) -> None:
    apps = [cloud(site, db, instance="1"), cloud(site, db, instance="2")]
    gw = _gateway_client(site)
    try:
        ev = _event("smoke-1", 1)
        topic = str(Topic("test", "gw-a", Kind.EVENT, "smoke-1"))
        for _ in range(5):  # the same event, five times (an outbox replay, QoS 1 redelivery)
            gw.publish(topic, encode(ev), qos=1).wait_for_publish(5)
        gw.publish(topic, b"{not json", qos=1).wait_for_publish(5)
        gw.publish(
            str(Topic("test", "gw-a", Kind.EVENT, "smoke-2")), encode(_event("smoke-1", 2)), qos=1
        ).wait_for_publish(5)
        gw.publish(str(Topic("test", "gw-a", Kind.TELEMETRY, "smoke-1")), b'{"v": 2}', qos=1).wait_for_publish(5)
        assert wait_until(lambda: count(db, DeadLetter) == 3, 10)
        assert wait_until(lambda: sum(a.worker.counters.messages for a in apps) >= 8, 10)
        assert count(db, EventRow) == 1
        [o] = orders(db)
        assert o.alarm_count == 1
        with Session(db) as s:
            dead = {(d.topic, d.reason, d.payload) for d in s.execute(select(DeadLetter)).scalars()}
        assert {(t, r.split(":")[0], p) for t, r, p in dead} >= {(topic, "invalid Event", b"{not json")}
        reasons = {r for _, r, _ in dead}
        assert "event names test/gw-a/smoke-1 but came on test/gw-a/smoke-2" in reasons
        assert any(r.startswith("invalid Telemetry: v: Input should be 1") for r in reasons), reasons
        assert sum(a.worker.counters.events_duplicate for a in apps) == 4
    finally:
        gw.loop_stop()
        for a in apps:
            a.stop()


def test_a_gateway_speaking_for_what_it_does_not_own_is_refused_and_opens_nothing(site: Site, db: Engine) -> None:
    """Finding 1 of issue 12: with its own broker account, on its own topic prefix, gw-b (the gates' gateway)
    reports a smoke alarm of gw-a's detector, telemetry and an offline status for it, a made-up device, a
    gate event naming a gate of the wrong gateway and a gate event from a sensor. None may count."""
    app = cloud(site, db)
    gw = _gateway_client(site, "gw-b")
    try:
        reading = SmokeReading(smoke_density=30, temperature_c=25, battery_pct=90, alarm=True, fault=False)
        now = datetime.now(UTC)
        forged = [
            (Topic("test", "gw-b", Kind.EVENT, "smoke-1"), encode(_event("smoke-1", 1, "gw-b"))),
            (Topic("test", "gw-b", Kind.EVENT, "made-up-1"), encode(_event("made-up-1", 1, "gw-b"))),
            (
                Topic("test", "gw-b", Kind.TELEMETRY, "smoke-1"),
                encode(Telemetry(site="test", gateway="gw-b", device="smoke-1", ts=now, reading=reading)),
            ),
            (
                Topic("test", "gw-b", Kind.STATUS, "smoke-2"),
                encode(Status(state=StatusState.OFFLINE, ts=now, reason="forged")),
            ),
            (  # a gate event of gw-b's own gate that names another gate in its payload
                Topic("test", "gw-b", Kind.EVENT, "north"),
                encode(_gate_event("gw-b", "north", gate="south", kind=EventKind.ENTRY)),
            ),
            (  # a smoke alarm reported by a gate: the gate is gw-b's, but a gate has no smoke reading
                Topic("test", "gw-b", Kind.EVENT, "north"),
                encode(_event("north", 2, "gw-b")),
            ),
            (  # an alarm only the cloud raises (cloud/privacy.py), from the gate's own gateway
                Topic("test", "gw-b", Kind.EVENT, "north"),
                encode(_gate_event("gw-b", "north", gate="north", kind=EventKind.GALLERY_DELETE_OVERDUE)),
            ),
        ]
        for topic, payload in forged:
            gw.publish(str(topic), payload, qos=1).wait_for_publish(5)
        assert wait_until(lambda: count(db, DeadLetter) == len(forged), 10), count(db, DeadLetter)
        assert app.worker.counters.refused_source == len(forged)
        assert count(db, EventRow) == 0 and orders(db) == []
        with Session(db) as s:
            assert s.get(DeviceState, "smoke-1") is None and s.get(DeviceState, "smoke-2") is None
            reasons = sorted(d.reason for d in s.execute(select(DeadLetter)).scalars())
        assert reasons == sorted(
            [
                "gateway 'gw-b' spoke for 'smoke-1', which the site config gives to 'gw-a'",
                "gateway 'gw-b' spoke for 'smoke-1', which the site config gives to 'gw-a'",
                "gateway 'gw-b' spoke for 'smoke-2', which the site config gives to 'gw-a'",
                "device 'made-up-1' is not in the site config",
                "gate 'north' reported an event of gate 'south'",
                "a smoke reading from 'north', which is not a sensor",
                "gallery_delete_overdue is raised by the cloud only, not by a gateway",
            ]
        )
        # the same gateway's own gate event is taken
        gw.publish(
            str(Topic("test", "gw-b", Kind.EVENT, "north")),
            encode(_gate_event("gw-b", "north", gate="north", kind=EventKind.ENTRY)),
            qos=1,
        ).wait_for_publish(5)
        assert wait_until(lambda: count(db, EventRow) == 1, 10)
        assert app.worker.counters.refused_source == len(forged)
    finally:
        gw.loop_stop()
        app.stop()


def test_a_message_the_database_cannot_store_is_refused_alone_and_ingestion_goes_on(site: Site, db: Engine) -> None:
    """A stolen gateway password must not stop the alarms: a sequence number past PostgreSQL's bigint and a NUL
    character in a text are dead-lettered with the reason, the batch's other messages are stored, and so is what
    comes after. (Before the contract bounded seq, the database refused it and the ingester retried that batch
    forever; a value the database refuses now takes the batch apart and dead-letters that message alone.)"""
    app = cloud(site, db, batch_max=50)
    gw = _gateway_client(site)
    try:
        topic = str(Topic("test", "gw-a", Kind.EVENT, "smoke-1"))
        huge = encode(_event("smoke-1", 1)).replace(b'"seq":1,', b'"seq":18446744073709551616,')
        nul = encode(_event("smoke-2", 1)).replace(b'"rule":"smoke_density >= 8"', b'"rule":"smoke\\u0000"')
        assert huge != encode(_event("smoke-1", 1)) and b"\\u0000" in nul
        for payload in (huge, nul):
            gw.publish(topic if payload is huge else str(Topic("test", "gw-a", Kind.EVENT, "smoke-2")), payload,
                       qos=1).wait_for_publish(5)  # fmt: skip
        good = _event("smoke-3", 1)
        gw.publish(str(Topic("test", "gw-a", Kind.EVENT, "smoke-3")), encode(good), qos=1).wait_for_publish(5)
        assert wait_until(lambda: len(orders(db)) == 1 and count(db, DeadLetter) == 2, 15), (
            orders(db),
            count(db, DeadLetter),
        )
        assert orders(db)[0].device == "smoke-3"
        with Session(db) as s:
            reasons = sorted(d.reason for d in s.execute(select(DeadLetter)).scalars())
        assert reasons == [
            "invalid Event: a NUL character (\\u0000) in a text",
            "invalid Event: seq: Input should be less than or equal to 9223372036854775807",
        ]
        later = _event("smoke-1", 2)
        gw.publish(topic, encode(later), qos=1).wait_for_publish(5)
        assert wait_until(lambda: len(orders(db)) == 2, 10)
    finally:
        gw.loop_stop()
        app.stop()


def _gate_event(gateway: str, device: str, *, gate: str, kind: EventKind) -> Event:
    return Event(
        site="test", gateway=gateway, device=device, ts=datetime.now(UTC), seq=1, kind=kind,
        state=EventState.RAISED, severity=Severity.INFO, payload=GatePayload(gate=gate, method=EntryMethod.FACE),
    )  # fmt: skip


@pytest.mark.slow
def test_a_burst_split_over_two_ingesters_is_stored_exactly_once(site: Site, db: Engine) -> None:
    apps = [cloud(site, db, instance="1"), cloud(site, db, instance="2")]
    try:
        burst = edge_process(site, "edge", "burst", "-g", "gw-load", "--count", "5000", "--devices", "10")
        _, err = burst.communicate(timeout=180)
        assert burst.returncode == 0, err
        assert wait_until(lambda: count(db, EventRow) == 5000, 60), count(db, EventRow)
        time.sleep(0.5)
        assert count(db, EventRow) == 5000
        shares = [a.worker.counters.events_new for a in apps]
        assert sum(shares) == 5000 and min(shares) > 0, shares  # both ingesters took part
        # each synthetic device alternates raised/cleared: one order each, 250 alarms on it
        got = Counter((o.device, o.alarm_count, o.kind) for o in orders(db))
        assert got == Counter({(f"burst-{i}", 250, "smoke_alarm"): 1 for i in range(10)})
        # the load gateway's devices are placed where the site config says
        assert {o.location for o in orders(db)} == {"b1-u1"}
    finally:
        for a in apps:
            a.stop()


@pytest.mark.slow
def test_an_ingester_killed_mid_burst_loses_nothing(site: Site, db: Engine, tmp_path: Path) -> None:
    url = db.url.render_as_string(hide_password=False)
    args = ["cloud", "run", "--database-url", url, "--instance", "k1", "--log-level", "WARNING"]
    ingester = edge_process(site, *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _session_exists(site, "cloud-ingest-k1"), 15)
        burst = edge_process(site, "edge", "burst", "-g", "gw-load", "--count", "5000", "--devices", "10")
        assert wait_until(lambda: count(db, EventRow) > 500, 60)
        ingester.kill()
        ingester.wait(10)
        stored_at_kill = count(db, EventRow)
        _, err = burst.communicate(timeout=180)
        assert burst.returncode == 0, err  # the broker took everything while the ingester was down
        assert stored_at_kill < 5000
        ingester = edge_process(site, *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: count(db, EventRow) == 5000, 90), count(db, EventRow)
        time.sleep(0.5)
        assert count(db, EventRow) == 5000
        with Session(db) as s:
            rows = s.execute(select(EventRow.device, func.count()).group_by(EventRow.device)).all()
            per_device = {device: n for device, n in rows}
            opened = s.execute(select(func.count()).where(WorkOrderHistory.action == "open")).scalar_one()
        assert per_device == {f"burst-{i}": 500 for i in range(10)}
        assert opened == 10
    finally:
        ingester.kill()
        ingester.wait(10)


def _session_exists(site: Site, client_id: str) -> bool:
    return f"as {client_id} (" in site.broker.log_path.read_text()


def _publish_fast(site: Site, messages: list[tuple[str, bytes]], client_id: str = "gw-load-burst") -> None:
    """Publish QoS 1 as fast as paho goes, and wait for every PUBACK.

    At most 20,000 are handed to paho unacknowledged: its message ids are 16 bits,
    and a queue longer than 65,535 would reuse an id that is still waiting.
    """
    done = threading.Event()
    room = threading.Semaphore(20_000)
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        room.release()
        if acked == len(messages):
            done.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    c.username_pw_set("gw-load", site.password("gw-load"))
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.connect("127.0.0.1", site.port)
    c.loop_start()
    for topic, payload in messages:
        assert room.acquire(timeout=60), "the broker stopped acknowledging"
        c.publish(topic, payload, qos=1)
    assert done.wait(180), f"only {acked} of {len(messages)} acknowledged"
    c.disconnect()
    c.loop_stop()


@pytest.mark.slow
def test_100k_messages_published_faster_than_the_ingesters_take_them_all_arrive(site: Site, db: Engine) -> None:
    """Mosquitto's default queue limit would drop most of this; our broker config and sessions drop none."""
    apps = [cloud(site, db, instance="1", queue_max=2000), cloud(site, db, instance="2", queue_max=2000)]
    sys_dropped: list[int] = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="sys-watch")
    watcher.username_pw_set("monitor", site.password("monitor"))
    watcher.on_message = lambda c, u, m: sys_dropped.append(int(m.payload))
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe("$SYS/broker/publish/messages/dropped")
    watcher.connect("127.0.0.1", site.port)
    watcher.loop_start()
    try:
        reading = SmokeReading(smoke_density=1.0, temperature_c=22, battery_pct=90, alarm=False, fault=False)
        messages: list[tuple[str, bytes]] = []
        seq = dict.fromkeys(range(10), 0)
        for i in range(100_000):
            dev = f"burst-{i % 10}"
            if i % 10 == 9:  # one in ten is an alarm
                seq[i % 10] += 1
                ev = _event(dev, seq[i % 10], LOAD)
                messages.append((str(Topic("test", LOAD, Kind.EVENT, dev)), encode(ev)))
            else:
                t = Telemetry(site="test", gateway=LOAD, device=dev, ts=datetime.now(UTC), reading=reading)
                messages.append((str(Topic("test", LOAD, Kind.TELEMETRY, dev)), encode(t)))
        _publish_fast(site, messages)  # how fast is bench/cloud_ingest.py's question, not this test's

        def telemetry() -> int:
            return sum(a.worker.counters.telemetry for a in apps)

        def events() -> int:
            return sum(a.worker.counters.events_new for a in apps)

        # Every message arrives. A QoS 1 redelivery (an ingester that lost its keep-alive on a busy
        # machine gets its unacknowledged messages again) is one more telemetry point with the same
        # tags and time, which InfluxDB overwrites, and one more duplicate event, which is not stored.
        assert wait_until(lambda: telemetry() >= 90_000 and events() >= 10_000, 180), (telemetry(), events())
        assert events() == 10_000
        assert count(db, EventRow) == 10_000
        assert sum(a.worker.counters.dead_letters for a in apps) == 0
        assert all(a.worker.counters.messages > 10_000 for a in apps), [a.worker.counters.messages for a in apps]
        assert wait_until(lambda: bool(sys_dropped), 5)
        assert sys_dropped[-1] == 0
    finally:
        watcher.loop_stop()
        for a in apps:
            a.stop()


def test_a_database_outage_loses_nothing(site: Site, db: Engine) -> None:
    """The ingester's database connection is cut mid-stream; it retries and acknowledges only what it stored."""
    proxy = TcpProxy(db.url.port or 5432)
    url = db.url.set(port=proxy.port).render_as_string(hide_password=False)
    app = CloudApp(site.loaded, CloudSettings.model_validate({"database_url": url, "device_flush_s": 0.2}))
    app.start()
    try:
        first = [
            (str(Topic("test", LOAD, Kind.EVENT, f"burst-{i}")), encode(_event(f"burst-{i}", 1, LOAD)))
            for i in range(20)
        ]
        _publish_fast(site, first, client_id="gw-load-1")
        assert wait_until(lambda: count(db, EventRow) == 20, 20)
        proxy.cut()
        second = [
            (str(Topic("test", LOAD, Kind.EVENT, f"burst-{i}")), encode(_event(f"burst-{i}", 2, LOAD)))
            for i in range(20)
        ]
        _publish_fast(site, second, client_id="gw-load-2")  # the broker takes them; the ingester cannot store them
        assert wait_until(lambda: app.worker.counters.db_errors > 0, 10)
        time.sleep(1.0)
        assert count(db, EventRow) == 20
        proxy.heal()
        assert wait_until(lambda: count(db, EventRow) == 40, 30), count(db, EventRow)
        assert app.health()["healthy"] is True
        [alarms] = {o.alarm_count for o in orders(db)}
        assert alarms == 2 and len(orders(db)) == 20
    finally:
        app.stop()
        proxy.close()


def test_a_cleanly_stopped_ingester_leaves_the_share_group(site: Site, db: Engine) -> None:
    """After a clean stop the remaining ingester takes the whole stream; nothing waits for the one that left."""
    first, second = cloud(site, db, instance="1"), cloud(site, db, instance="2")
    try:
        second.stop()
        msgs = [
            (str(Topic("test", LOAD, Kind.EVENT, f"burst-{i}")), encode(_event(f"burst-{i}", 1, LOAD)))
            for i in range(20)
        ]
        _publish_fast(site, msgs)
        assert wait_until(lambda: count(db, EventRow) == 20, 10), count(db, EventRow)
        assert first.worker.counters.events_new == 20
    finally:
        first.stop()
