"""Finding 5 of issue 12: nothing larger than the contracts allow gets through the broker, and what the ingester
refuses is kept bounded (the first 4 KiB of each dead letter with its size, the newest DEAD_LETTERS_KEEP)."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cloud.app import CloudApp
from cloud.db.models import DeadLetter
from cloud.settings import CloudSettings
from cloud.workorders.store import DEAD_LETTER_PAYLOAD_BYTES
from harness import Collector, Site, wait_until
from sc.broker import MAX_PACKET_SIZE, MESSAGE_SIZE_LIMIT
from sc.contracts.messages import MAX_PAYLOAD_BYTES
from sc.contracts.topics import Kind, Topic

LIMIT = 60  # seconds: generous, what it waits for takes milliseconds on an idle machine


class Gateway:
    """A raw MQTT 3.1.1 client with a gateway's account, as the edge connects (sc/mqtt.py), that counts its
    connections and losses."""

    def __init__(self, site: Site, user: str = "gw-a") -> None:
        self.connects = 0
        self.losses: list[str] = []
        self._lock = threading.Lock()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=MQTTProtocolVersion.MQTTv311)
        c.username_pw_set(user, site.password(user))
        c.reconnect_delay_set(1, 2)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.connect("127.0.0.1", site.port)
        c.loop_start()
        self.client = c
        assert wait_until(lambda: self.connects == 1, LIMIT), f"{user} could not connect"

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        with self._lock:
            self.connects += 1

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        with self._lock:
            self.losses.append(str(rc))

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> paho.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(LIMIT)
        return info

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def arrived(col: Collector, topic: str) -> list[int]:
    """The sizes of what reached the subscriber on ``topic``, in order."""
    return [len(m.payload) for m in list(col.messages) if m.topic == topic]


def test_the_broker_limit_is_the_contracts() -> None:
    assert MESSAGE_SIZE_LIMIT == MAX_PAYLOAD_BYTES == 64 * 1024  # Mosquitto counts the payload only, as we do
    assert MAX_PACKET_SIZE > MESSAGE_SIZE_LIMIT + 65535  # a payload at the limit on the longest topic still fits


@pytest.mark.parametrize("qos", [0, 1])
def test_a_message_over_the_limit_is_dropped_by_the_broker_and_its_sender_stays_connected(site: Site, qos: int) -> None:
    conf = site.broker.files.conf.read_text()
    assert f"message_size_limit {MAX_PAYLOAD_BYTES}\n" in conf and f"max_packet_size {MAX_PACKET_SIZE}\n" in conf
    col = Collector(site).start()
    gw = Gateway(site)
    topic = str(Topic("test", "gw-a", Kind.TELEMETRY, "smoke-1"))
    try:
        over = gw.publish(topic, b"o" * (MAX_PAYLOAD_BYTES + 1), qos)
        assert over.is_published()  # at QoS 1 the broker completes the flow (PUBACK) and drops the message
        gw.publish(topic, b"a" * MAX_PAYLOAD_BYTES, qos)  # exactly the limit: through
        gw.publish(topic, b"small", qos)
        # messages of one sender on one topic arrive in order: once the later two are here, the first never comes
        assert wait_until(lambda: len(arrived(col, topic)) >= 2, LIMIT), arrived(col, topic)
        assert arrived(col, topic) == [MAX_PAYLOAD_BYTES, 5]
        assert (gw.connects, gw.losses) == (1, [])  # the same connection all along
        assert site.broker.proc is not None and site.broker.proc.poll() is None
        log = site.broker.log_path.read_text()
        assert f"Dropped too large PUBLISH from gw-a (d0, q{qos}, r0, m" in log
        assert f"'{topic}', ... ({MAX_PAYLOAD_BYTES + 1} bytes))" in log
    finally:
        gw.stop()
        col.stop()


def test_a_packet_far_over_the_limit_disconnects_only_its_sender_which_comes_back(site: Site) -> None:
    """The broker does not read a packet over max_packet_size into memory: it drops that connection (the sender's
    alone), and the sender's next connection works. (At QoS 0: a QoS 1 one would be sent again on reconnect.)"""
    col = Collector(site).start()
    gw = Gateway(site)
    topic = str(Topic("test", "gw-a", Kind.TELEMETRY, "smoke-1"))
    try:
        gw.client.publish(topic, b"h" * (1 << 20), qos=0)  # 1 MiB
        assert wait_until(lambda: gw.connects == 2, LIMIT), f"the sender did not come back: {gw.losses}"
        assert len(gw.losses) == 1
        assert "disconnected due to oversize packet" in site.broker.log_path.read_text()
        gw.publish(topic, b"after", 1)
        assert wait_until(lambda: arrived(col, topic) == [5], LIMIT), arrived(col, topic)
        assert col.connected.is_set()  # the subscriber was not touched
        assert site.broker.proc is not None and site.broker.proc.poll() is None
    finally:
        gw.stop()
        col.stop()


def test_the_largest_message_the_broker_passes_is_dead_lettered_cut_short_with_its_size(site: Site, db: Engine) -> None:
    settings = CloudSettings.model_validate(
        {"database_url": db.url.render_as_string(hide_password=False), "instance": "1", "device_flush_s": 0.2}
    )
    app = CloudApp(site.loaded, settings)
    app.start()
    gw = Gateway(site)
    topic = str(Topic("test", "gw-a", Kind.EVENT, "smoke-1"))
    try:
        gw.publish(topic, b"o" * (MAX_PAYLOAD_BYTES + 1))  # dropped by the broker: the ingester never sees it
        largest = bytes(range(256)) * (MAX_PAYLOAD_BYTES // 256)  # not an event, and as large as the broker allows
        gw.publish(topic, largest)
        gw.publish(topic, b"{not json")

        def dead() -> list[DeadLetter]:
            with Session(db) as s:
                return list(s.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars())

        assert wait_until(lambda: len(dead()) >= 2, LIMIT), "the ingester kept no dead letters"
        big, small = dead()
        assert (big.topic, big.size, big.payload) == (topic, MAX_PAYLOAD_BYTES, largest[:DEAD_LETTER_PAYLOAD_BYTES])
        assert DEAD_LETTER_PAYLOAD_BYTES == 4096
        assert big.reason.startswith("invalid Event"), big.reason
        assert (small.size, small.payload) == (9, b"{not json")  # a small one is kept whole
        assert app.worker.counters.dead_letters == 2
    finally:
        gw.stop()
        app.stop()
