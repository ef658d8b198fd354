"""The ingester's MQTT side: a shared subscription with manual acknowledgements.

Why paho rather than aiomqtt here: aiomqtt acknowledges a QoS 1 message as
soon as it arrives, before we have stored it, so an ingester killed between
the two would lose that alarm. paho 2 lets us acknowledge after the database
commit (``manual_ack``), and measured on this kind of machine it drains about
twice as fast (see ../shared/DESIGN.md).

* ``$share/{group}/sc/v1/{site}/#``: N ingesters split the stream.
* MQTT 5 with a persistent session (fixed client id per instance, session
  expiry of a day): messages delivered but not acknowledged when the process
  dies are delivered again when it comes back.
* Backpressure, not loss: the hand-over queue is bounded; when the database
  falls behind the network thread waits, TCP pushes back, and the broker keeps
  the rest (its config sets no queue limit).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sc.config.schema import BrokerConfig
from sc.mqtt import AuthRefused, MqttCredentials, apply_tls

__all__ = ["Inbound", "IngestConsumer"]

log = logging.getLogger(__name__)
SESSION_EXPIRY_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int


class IngestConsumer:
    def __init__(
        self,
        *,
        broker: BrokerConfig,
        credentials: MqttCredentials,
        client_id: str,
        topic_filter: str,
        share_group: str,
        out: queue.Queue[Inbound],
        session_expiry_s: int = SESSION_EXPIRY_S,
    ) -> None:
        self.session_expiry_s = session_expiry_s
        self.broker = broker
        self.client_id = client_id
        self.subscription = f"$share/{share_group}/{topic_filter}"
        self.out = out
        self.connected = threading.Event()
        self._first = threading.Event()
        self.refused: ReasonCode | None = None
        self.received = 0
        self.connects = 0
        self._stopping = False
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        c.username_pw_set(credentials.username, credentials.password)
        c.manual_ack_set(True)
        c.reconnect_delay_set(1, 30)
        c.max_inflight_messages_set(0)
        apply_tls(c, broker)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._client = c

    def start(self, wait_s: float = 5.0) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s, clean_start=False, properties=props
        )
        self._client.loop_start()
        self._first.wait(wait_s)
        if self.refused is not None and not self.connected.is_set():
            self.stop()
            raise AuthRefused(f"broker refused ingester {self.client_id!r}: {self.refused}")

    def pause(self) -> None:
        """Stop taking new messages (unsubscribe); what was delivered can still be acknowledged."""
        if self.connected.is_set():
            self._client.unsubscribe(self.subscription)

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect. ``end_session``: tell the broker to forget this member now.

        Only after everything received was stored and acknowledged: a member
        whose session ends takes no further share of the stream, while one
        that merely disconnects (a crash) keeps receiving its share, queued
        for when it comes back.
        """
        self._stopping = True
        props = None
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
        self._client.disconnect(properties=props)
        self._client.loop_stop()

    def ack(self, messages: list[Inbound]) -> None:
        """Acknowledge messages that are safely stored (call after the commit)."""
        for m in messages:
            if m.qos > 0:
                self._client.ack(m.mid, m.qos)

    # network thread
    def _on_connect(
        self, client: paho.Client, userdata: object, flags: paho.ConnectFlags, reason: ReasonCode, props: object
    ) -> None:
        if reason.is_failure:
            self.refused = reason
            log.error("ingester %s: connection refused: %s", self.client_id, reason)
            self._first.set()
            return
        self.connects += 1
        client.subscribe(self.subscription, qos=1)
        self.connected.set()
        self._first.set()
        log.info(
            "ingester %s connected (session %s), subscribed %s",
            self.client_id, "resumed" if flags.session_present else "new", self.subscription,
        )  # fmt: skip

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: object, reason: ReasonCode, props: object
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and not self._stopping:
            log.warning("ingester %s disconnected: %s; reconnecting", self.client_id, reason)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self.received += 1
        item = Inbound(msg.topic, bytes(msg.payload), int(msg.mid), int(msg.qos))
        while True:  # block the network thread rather than drop: TCP pushes back to the broker
            try:
                self.out.put(item, timeout=1.0)
                return
            except queue.Full:
                if self._stopping:
                    return
                log.warning("ingester %s: database is behind, %d messages waiting", self.client_id, self.out.qsize())
