"""Simulated devices -> edge gateway -> real Mosquitto -> subscriber: exact events out."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_sim.runner import Simulator, SimulatorThread
from firmware_sim.scenario import Scenario
from harness import Collector, EdgeThread, Site, wait_until
from sc.contracts.commands import CommandAck, CommandName
from sc.contracts.messages import (
    EventKind,
    EventState,
    Severity,
    SmokeReading,
    Status,
    StatusState,
    Telemetry,
    Uplink,
    decode,
    encode,
)
from sc.contracts.topics import Kind, Topic


@pytest.fixture
def collector(site: Site) -> Iterator[Collector]:
    col = Collector(site).start()
    yield col
    col.stop()


def run_sim(site: Site, steps: list[dict[str, object]], duration: float) -> SimulatorThread:
    scenario = Scenario.model_validate({"name": "test", "duration_s": duration, "steps": steps})
    return SimulatorThread(Simulator(site.loaded, gateways=["gw-a"], scenario=scenario)).start()


def triples(col: Collector) -> Counter[tuple[str, str, str]]:
    return Counter((e.device, e.kind.value, e.state.value) for e in col.events())


def test_scenario_gives_exactly_the_expected_events(site: Site, collector: Collector) -> None:
    sim = run_sim(
        site,
        [
            {"at": 0.5, "device": "smoke-1", "set": {"smoke_density": 12.0}},
            {"at": 2.0, "device": "smoke-1", "set": {"smoke_density": 0.5}},
            {"at": 0.5, "device": "bin-1", "set": {"fill_pct": 95.0}},
            {"at": 0.8, "device": "smoke-2", "fault": "silent"},
            {"at": 2.2, "device": "smoke-2", "fault": "none"},
            {"at": 0.6, "device": "manhole-1", "set": {"lid_open": True, "tilt_deg": 25.0}},
            # smoke-3 wanders between the thresholds (raise 8, clear 4): one alarm, no flapping
            {"at": 0.3, "device": "smoke-3", "set": {"smoke_density": 9.0}},
            {"at": 0.7, "device": "smoke-3", "set": {"smoke_density": 6.0}},
            {"at": 1.0, "device": "smoke-3", "set": {"smoke_density": 9.5}},
            {"at": 1.3, "device": "smoke-3", "set": {"smoke_density": 5.0}},
            {"at": 1.6, "device": "smoke-3", "set": {"smoke_density": 9.0}},
        ],
        duration=60,
    )
    edge = EdgeThread(site.loaded, "gw-a").start()
    try:
        edge.wait_ready()
        expected = Counter(
            {
                ("smoke-1", "smoke_alarm", "raised"): 1,
                ("smoke-1", "smoke_alarm", "cleared"): 1,
                ("bin-1", "bin_full", "raised"): 1,
                ("smoke-2", "device_offline", "raised"): 1,
                ("smoke-2", "device_online", "cleared"): 1,
                ("manhole-1", "manhole_open", "raised"): 1,
                ("smoke-3", "smoke_alarm", "raised"): 1,
            }
        )
        assert wait_until(lambda: triples(collector) == expected, 15), triples(collector)
        # and nothing more turns up afterwards
        wait_until(lambda: False, 1.0)
        assert triples(collector) == expected
        events = collector.events()
        by_device: dict[str, list[int]] = {}
        for e in events:
            by_device.setdefault(e.device, []).append(e.seq)
            assert e.gateway == "gw-a" and e.site == "test"
        assert {d: s for d, s in by_device.items()} == {
            "smoke-1": [1, 2],
            "bin-1": [1],
            "smoke-2": [1, 2],
            "manhole-1": [1],
            "smoke-3": [1],
        }
        alarm = next(
            e
            for e in events
            if e.kind is EventKind.SMOKE_ALARM and e.state is EventState.RAISED and e.device == "smoke-1"
        )
        assert alarm.severity is Severity.CRITICAL
        assert alarm.payload.type == "alarm" and alarm.payload.value == 12.0 and alarm.payload.threshold == 8.0
        assert len({e.id for e in events}) == len(events)
        # telemetry flows for every device, Modbus and MQTT-native alike
        tele = {decode(Telemetry, m.payload).device for m in collector.of_kind(Kind.TELEMETRY)}
        assert tele == {"smoke-1", "smoke-2", "smoke-3", "bin-1", "manhole-1"}
        # the retained device status followed smoke-2 down and up again
        states = [
            decode(Status, m.payload).state
            for m in collector.of_kind(Kind.STATUS)
            if m.topic == str(Topic("test", "gw-a", Kind.STATUS, "smoke-2"))
        ]
        assert states == [StatusState.ONLINE, StatusState.OFFLINE, StatusState.ONLINE]
        assert edge.app.counters.poll_failures >= 3
    finally:
        edge.stop()
        sim.stop()
    assert edge.error is None


def test_broken_frames_and_implausible_readings_are_counted_not_fatal(site: Site, collector: Collector) -> None:
    sim = run_sim(
        site,
        [
            {"at": 0.3, "device": "smoke-1", "fault": "garbage"},
            {"at": 1.5, "device": "smoke-1", "fault": "none"},
            {"at": 0.3, "device": "smoke-2", "fault": "bad_crc"},
            {"at": 1.5, "device": "smoke-2", "fault": "none"},
            {"at": 0.3, "device": "smoke-3", "raw": [65535, 250, 90, 0]},
            {"at": 1.5, "device": "smoke-3", "raw": None},
        ],
        duration=60,
    )
    edge = EdgeThread(site.loaded, "gw-a").start()
    try:
        edge.wait_ready()
        expected = Counter(
            {
                ("smoke-1", "device_offline", "raised"): 1,
                ("smoke-1", "device_online", "cleared"): 1,
                ("smoke-2", "device_offline", "raised"): 1,
                ("smoke-2", "device_online", "cleared"): 1,
                ("smoke-3", "device_fault", "raised"): 1,
                ("smoke-3", "device_fault", "cleared"): 1,
            }
        )
        assert wait_until(lambda: triples(collector) == expected, 15), triples(collector)
        fault = next(e for e in collector.events() if e.kind is EventKind.DEVICE_FAULT and e.state is EventState.RAISED)
        assert fault.payload.type == "fault" and "implausible" in fault.payload.reason
        assert edge.app.counters.bad_readings >= 3
        assert edge.app.counters.poll_failures >= 6
        # the gateway is still healthy and polling
        polls = edge.app.counters.polls
        assert wait_until(lambda: edge.app.counters.polls > polls + 10, 30), "the gateway stopped polling"
    finally:
        edge.stop()
        sim.stop()
    assert edge.error is None


def _client(site: Site, user: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-test")
    c.username_pw_set(user, site.password(user))
    c.connect("127.0.0.1", site.port)
    c.loop_start()
    return c


def test_malformed_uplinks_and_commands_are_dead_lettered_with_reason(
    site: Site, collector: Collector, tmp_path: Path
) -> None:
    sim = run_sim(site, [], duration=60)
    edge = EdgeThread(site.loaded, "gw-a").start()
    device = _client(site, "manhole-1")
    cloud = _client(site, "observer-2")
    try:
        edge.wait_ready()
        assert wait_until(lambda: edge.app.conn.connected, 10)
        uplink = str(Topic("test", "gw-a", Kind.UPLINK, "manhole-1"))
        device.publish(uplink, b"\x00\xff not json", qos=1).wait_for_publish(5)
        device.publish(
            uplink,
            encode(
                Uplink(
                    reading=SmokeReading(smoke_density=1, temperature_c=20, battery_pct=90, alarm=False, fault=False)
                )
            ),
            qos=1,
        ).wait_for_publish(5)
        device.publish(uplink, b"{" + b" " * 70_000 + b"}", qos=1).wait_for_publish(5)  # the broker drops it
        cmd_topic = str(Topic("test", "gw-a", Kind.CMD, "smoke-1"))
        cloud.publish(cmd_topic, b'{"name": "self_destruct"}', qos=1).wait_for_publish(5)
        ok = site.sign("gw-a", "smoke-1", CommandName.POLL_NOW)
        cloud.publish(cmd_topic, ok.payload, qos=1).wait_for_publish(5)
        # (the oversized one never reaches the gateway: the broker's message_size_limit, tests/e2e/test_message_size.py)
        assert wait_until(lambda: edge.app.counters.malformed_messages == 2, 5), edge.app.counters
        assert wait_until(lambda: edge.app.counters.commands_refused == 1, 5), edge.app.counters
        reasons = [r for _, r, _ in edge.app.outbox.dead_letters()]
        assert any("Invalid JSON" in r for r in reasons), reasons
        assert any("reading type 'smoke' but device 'manhole-1' is a manhole" in r for r in reasons), reasons
        assert any(r == "unsigned: the command carries no signature" for r in reasons), reasons
        # the unsigned one is answered refused; the valid command still works: poll_now answers with a reading
        assert wait_until(lambda: len(collector.of_kind(Kind.CMD_ACK)) == 2, 5)
        refused, ack = (decode(CommandAck, m.payload) for m in collector.of_kind(Kind.CMD_ACK))
        assert (refused.id, refused.ok, refused.error) == (
            "",
            False,
            "refused: unsigned: the command carries no signature",
        )
        assert ack.id == ok.id and ack.ok is True
        assert ack.result["reading"]["type"] == "smoke" and ack.result["reading"]["smoke_density"] == 0.3
    finally:
        device.loop_stop()
        cloud.loop_stop()
        edge.stop()
        sim.stop()
    assert edge.error is None


def test_mqtt_native_device_that_goes_silent_is_reported_offline(site: Site, collector: Collector) -> None:
    sim = run_sim(
        site,
        [
            {"at": 0.5, "device": "manhole-1", "fault": "silent"},
            {"at": 3.0, "device": "manhole-1", "fault": "none"},
        ],
        duration=60,
    )
    edge = EdgeThread(site.loaded, "gw-a").start()
    try:
        edge.wait_ready()
        expected = Counter({("manhole-1", "device_offline", "raised"): 1, ("manhole-1", "device_online", "cleared"): 1})
        assert wait_until(lambda: triples(collector) == expected, 10), triples(collector)
        offline = next(e for e in collector.events() if e.kind is EventKind.DEVICE_OFFLINE)
        assert offline.payload.type == "connectivity" and offline.payload.reason == "no uplink for 1 s"
    finally:
        edge.stop()
        sim.stop()


def test_health_endpoint_reports_the_gateway(site: Site) -> None:
    import urllib.request

    sim = run_sim(site, [], duration=60)
    edge = EdgeThread(site.loaded, "gw-a", health_port=0).start()
    try:
        edge.wait_ready()
        assert wait_until(lambda: edge.app.conn.connected and edge.app.counters.polls > 8, 10)
        with urllib.request.urlopen(f"http://127.0.0.1:{edge.app.health_port}/health", timeout=5) as r:
            assert r.status == 200
            body = json.loads(r.read())
        assert body["gateway"] == "gw-a" and body["healthy"] is True and body["mqtt"]["connected"] is True
        assert set(body["devices"]) == {"smoke-1", "smoke-2", "smoke-3", "bin-1", "manhole-1"}
        assert body["devices"]["smoke-1"]["online"] is True
        site.broker.stop()
        assert wait_until(lambda: not edge.app.conn.connected, 10)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{edge.app.health_port}/health", timeout=5)
            raise AssertionError("expected 503 while the broker is down")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert json.loads(exc.read())["mqtt"]["connected"] is False
    finally:
        edge.stop()
        sim.stop()
