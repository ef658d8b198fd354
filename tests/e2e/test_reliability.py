"""Never lose an alarm: broker restarts, a killed edge, status and last will,
and a broker that only lets each account publish its own topics."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim.runner import Simulator, SimulatorThread
from firmware_sim.scenario import Scenario
from harness import Collector, EdgeThread, Site, edge_process, wait_until
from sc.contracts.commands import CommandAck, CommandName
from sc.contracts.messages import Event, EventKind, Status, StatusState, decode, encode
from sc.contracts.topics import Kind, Topic

BURST = 10_000
DEVICES = 10


def status_of(col: Collector, gateway: str, device: str | None = None) -> list[Status]:
    topic = str(Topic("test", gateway, Kind.STATUS, device or gateway))
    return [decode(Status, m.payload) for m in col.of_kind(Kind.STATUS) if m.topic == topic]


def assert_complete_and_ordered(events: list[Event], devices: int, per_device: int) -> int:
    """Every (device, seq) arrived; first arrivals in seq order; duplicates share the id."""
    first: dict[tuple[str, int], str] = {}
    order: dict[str, list[int]] = {}
    duplicates = 0
    for e in events:
        key = (e.device, e.seq)
        if key in first:
            assert first[key] == e.id, f"duplicate of {key} with a different id"
            duplicates += 1
            continue
        first[key] = e.id
        order.setdefault(e.device, []).append(e.seq)
    assert sorted(order) == sorted(f"burst-{i}" for i in range(devices))
    for device, seqs in order.items():
        assert seqs == list(range(1, per_device + 1)), f"{device}: lost or out of order"
    return duplicates


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"process ended before printing {text!r}: {proc.stderr.read() if proc.stderr else ''}")
        if line.strip() == text:
            return
    raise AssertionError(f"{text!r} not printed within {timeout} s")


@pytest.fixture
def persistent_collector(site: Site) -> Iterator[Collector]:
    col = Collector(site, username="observer-3", persistent=True).start()
    yield col
    col.stop()


# --------------------------------------------------------------------------- access control


def _connect(site: Site, user: str, password: str | None = None) -> tuple[paho.Client, list[str]]:
    result: list[str] = []
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-acl-test")
    c.username_pw_set(user, password if password is not None else site.password(user))
    c.on_connect = lambda cl, ud, fl, rc, pr: result.append(str(rc))
    c.connect("127.0.0.1", site.port)
    c.loop_start()
    wait_until(lambda: bool(result), 5)
    return c, result


def _publish_once(site: Site, user: str, topic: str, payload: bytes) -> None:
    """Connect as ``user``, publish one QoS 1 message, and go (every attempt on a connection of its own: with
    ``max_queued_messages 0`` Mosquitto 2.0.11 dropped the connection of a client whose publish it denied)."""
    c, rc = _connect(site, user)
    assert rc == ["Success"]
    c.publish(topic, payload, qos=1)
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()


def test_a_gateway_cannot_publish_as_another(site: Site) -> None:
    col = Collector(site).start()
    try:
        forged = encode(Status(state=StatusState.OFFLINE, reason="forged"))
        attempts = [
            ("gw-a", str(Topic("test", "gw-b", Kind.EVENT, "x"))),  # as another gateway
            ("gw-a", str(Topic("test", "gw-b", Kind.STATUS, "gw-b"))),
            ("gw-a", str(Topic("test", "gw-a", Kind.CMD, "smoke-1"))),  # a command to itself
            ("manhole-1", str(Topic("test", "gw-a", Kind.EVENT, "manhole-1"))),  # a device posing as its gateway
            ("manhole-1", str(Topic("test", "gw-a", Kind.UPLINK, "manhole-2"))),  # as another device
        ]
        for user, topic in attempts:
            _publish_once(site, user, topic, forged)
        own = str(Topic("test", "gw-a", Kind.STATUS, "gw-a"))
        _publish_once(site, "gw-a", own, encode(Status(state=StatusState.ONLINE)))
        # the allowed message arrives; none of the forged ones did (they were sent first)
        assert wait_until(lambda: any(m.topic == own for m in col.messages), 5)
        time.sleep(0.3)
        topics = [m.topic for m in col.messages if not m.topic.startswith("$SYS")]
        assert topics == [own]
        log = site.broker.log_path.read_text()
        for user, topic in attempts:
            # (the broker names a client by its account: use_username_as_clientid)
            assert f"Denied PUBLISH from {user} (d0, q1, r0, m1, '{topic}'" in log
    finally:
        col.stop()


def test_wrong_or_missing_credentials_fail_at_start_with_an_actionable_message(site: Site) -> None:
    c, rc = _connect(site, "gw-a", password="wrong")
    c.loop_stop()
    assert rc == ["Not authorized"]
    secret = site.loaded.resolve("../run/secrets/gw-a.secret")
    secret.write_text("not-the-password\n")
    p = edge_process(site, "edge", "run", "-g", "gw-a")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 3
    assert "refused client 'gw-a'" in err and "password" in err
    secret.unlink()
    p = edge_process(site, "edge", "run", "-g", "gw-a")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 3
    assert f"password file {secret} for account 'gw-a' does not exist" in err
    assert "sc broker provision" in err


# --------------------------------------------------------------------------- availability


def test_gateway_status_is_retained_with_a_last_will(site: Site) -> None:
    edge = edge_process(site, "edge", "run", "-g", "gw-b", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        col = Collector(site, client_id="c1").start()
        assert wait_until(lambda: [s.state for s in status_of(col, "gw-b")] == [StatusState.ONLINE], 10)
        col.stop()
        os.kill(edge.pid, signal.SIGKILL)  # no goodbye: the broker publishes the will
        edge.wait(10)
        col = Collector(site, client_id="c2").start()  # a newcomer sees the retained will
        assert wait_until(lambda: bool(status_of(col, "gw-b")), 10)
        last = status_of(col, "gw-b")[-1]
        assert (last.state, last.reason) == (StatusState.OFFLINE, "connection lost")
        col.stop()
    finally:
        if edge.poll() is None:
            edge.kill()
        edge.wait(10)
    # a clean stop says so
    edge = edge_process(site, "edge", "run", "-g", "gw-b", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    col = Collector(site, client_id="c3").start()
    try:
        assert wait_until(lambda: [s.state for s in status_of(col, "gw-b")][-1:] == [StatusState.ONLINE], 10)
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(15) == 0
        assert wait_until(lambda: status_of(col, "gw-b")[-1].reason == "gateway stopped", 5)
        assert status_of(col, "gw-b")[-1].state is StatusState.OFFLINE
    finally:
        col.stop()
        if edge.poll() is None:
            edge.kill()
            edge.wait()


def test_after_a_broker_restart_the_gateway_reannounces_and_takes_commands(site: Site) -> None:
    scenario = Scenario(name="idle", steps=[])
    sim = SimulatorThread(Simulator(site.loaded, gateways=["gw-a"], scenario=scenario)).start()
    edge = EdgeThread(site.loaded, "gw-a").start()
    try:
        edge.wait_ready()
        assert wait_until(lambda: edge.app.conn.connected, 10)
        site.broker.stop()
        assert wait_until(lambda: not edge.app.conn.connected, 10)
        # an alarm while the broker is away waits in the outbox
        sim.sim.sensors["smoke-1"].set({"smoke_density": 20.0})
        assert wait_until(lambda: edge.app.outbox.depth()["events"] == 1, 5)
        site.broker.start()
        col = Collector(site).start()
        assert wait_until(lambda: edge.app.conn.connects == 2, 20), "gateway did not reconnect"
        assert wait_until(lambda: [s.state for s in status_of(col, "gw-a")][-1:] == [StatusState.ONLINE], 10)
        assert wait_until(lambda: any(e.kind is EventKind.SMOKE_ALARM for e in col.events()), 10)
        assert wait_until(lambda: edge.app.outbox.depth()["events"] == 0, 5)
        ping = site.sign("gw-a", "gw-a", CommandName.PING)
        cloud = paho.Client(CallbackAPIVersion.VERSION2, client_id="cloud-cmd")
        cloud.username_pw_set("observer-2", site.password("observer-2"))
        cloud.connect("127.0.0.1", site.port)
        cloud.loop_start()
        cloud.publish(ping.topic, ping.payload, qos=1).wait_for_publish(5)
        assert wait_until(lambda: len(col.of_kind(Kind.CMD_ACK)) == 1, 10)
        ack = decode(CommandAck, col.of_kind(Kind.CMD_ACK)[0].payload)
        assert ack.id == ping.id and ack.ok and ack.result["uptime_s"] > 0
        cloud.loop_stop()
        col.stop()
    finally:
        edge.stop()
        sim.stop()


# --------------------------------------------------------------------------- bursts


@pytest.mark.slow
def test_burst_survives_a_broker_restart_with_nothing_lost(site: Site, persistent_collector: Collector) -> None:
    burst = edge_process(site, "edge", "burst", "-g", "gw-load", "--count", str(BURST), "--devices", str(DEVICES))
    try:
        wait_for_line(burst, "written 3000", 60)
        site.broker.restart(down_for=1.0)
        out, err = burst.communicate(timeout=180)
        assert burst.returncode == 0, err
        assert "all acknowledged" in out
        assert wait_until(lambda: len({(e.device, e.seq) for e in persistent_collector.events()}) >= BURST, 60)
        dupes = assert_complete_and_ordered(persistent_collector.events(), DEVICES, BURST // DEVICES)
        assert dupes < 2 * 500  # at most the in-flight window, twice
        assert wait_until(lambda: persistent_collector.dropped() is not None, 5)
        assert persistent_collector.dropped() == 0
    finally:
        if burst.poll() is None:
            burst.kill()
            burst.communicate()


@pytest.mark.slow
def test_edge_killed_mid_burst_loses_nothing_after_restart(site: Site, persistent_collector: Collector) -> None:
    args = ("edge", "burst", "-g", "gw-load", "--count", str(BURST), "--devices", str(DEVICES))
    first = edge_process(site, *args)
    wait_for_line(first, "written 4000", 60)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=10)
    got = len({(e.device, e.seq) for e in persistent_collector.events()})
    assert 0 < got < BURST, "the kill should land mid-burst"
    second = edge_process(site, *args)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    assert "all acknowledged" in out
    assert wait_until(lambda: len({(e.device, e.seq) for e in persistent_collector.events()}) >= BURST, 60)
    assert_complete_and_ordered(persistent_collector.events(), DEVICES, BURST // DEVICES)
    assert persistent_collector.dropped() == 0
