"""An honest MQTT connection (paho-mqtt 2.x, its own network thread).

* ``connected`` is true only after the broker accepted the connection
  (CONNACK success), never merely because a socket opened.
* A retained *birth* message is published on every (re)connect, and the
  broker holds a retained *last will* saying offline; a clean stop replaces it
  with an explicit offline message.
* Subscriptions are (re)made in every on-connect, so a broker restart never
  leaves a gateway deaf.
* Retained state registered with :meth:`set_retained` is re-published on
  every reconnect (the broker may have lost it).
* QoS 1 messages published while the connection is down stay in paho's
  memory and are re-sent in order after reconnect; callers bound how many
  they hand over (see :mod:`edge.forwarder`).
* A refused connection (bad password, not authorised) is reported as such.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from sc.config.schema import BrokerConfig

__all__ = ["AuthRefused", "MqttConnection", "MqttCredentials", "MqttError", "apply_tls"]

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


def apply_tls(client: paho.Client, broker: BrokerConfig) -> None:
    """Turn TLS on for ``client`` when the site config gives the broker's CA (and a client certificate)."""
    if broker.tls is not None:
        client.tls_set(
            ca_certs=str(broker.tls.ca_file),
            certfile=str(broker.tls.cert_file) if broker.tls.cert_file else None,
            keyfile=str(broker.tls.key_file) if broker.tls.key_file else None,
        )


class MqttError(Exception):
    """Our wrapper around MQTT failures."""


class AuthRefused(MqttError):
    """The broker refused our credentials: retrying will not help."""


@dataclass(frozen=True, slots=True)
class MqttCredentials:
    username: str
    password: str


class MqttConnection:
    def __init__(
        self,
        *,
        broker: BrokerConfig,
        client_id: str,
        credentials: MqttCredentials | None,
        will: tuple[str, bytes] | None = None,
        birth: Callable[[], tuple[str, bytes]] | None = None,
        subscriptions: tuple[str, ...] = (),
        on_message: MessageHandler | None = None,
        clean_session: bool = True,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self._birth = birth
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._ack_lock = threading.Lock()
        self._pending: dict[int, Callable[[], None] | None] = {}
        self._early: set[int] = set()
        self._connected = threading.Event()
        self._first_result = threading.Event()
        self._retained: dict[str, bytes] = {}
        self._retained_lock = threading.Lock()
        self.refused: ReasonCode | None = None
        self._stopping = False
        self.connects = 0
        self.disconnects = 0

        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        c.max_queued_messages_set(0)  # we bound what we hand over ourselves
        c.max_inflight_messages_set(0)
        c.reconnect_delay_set(min_delay=max(1, int(min_backoff_s)), max_delay=int(max_backoff_s))
        if credentials is not None:
            c.username_pw_set(credentials.username, credentials.password)
        if will is not None:
            c.will_set(will[0], will[1], qos=1, retain=True)
        apply_tls(c, broker)
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_message = self._handle_message
        c.on_publish = self._handle_publish
        self._client = c

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        log.info("mqtt client=%s connecting to %s:%d", self.client_id, self.broker.host, self.broker.port)
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self._client.loop_start()

    def wait_first_result(self, timeout: float) -> None:
        """Wait for the first CONNACK; raise :class:`AuthRefused` if the broker said no.

        A broker that cannot be reached is not an error here: we keep trying
        in the background and the outbox holds what we cannot send.
        """
        self._first_result.wait(timeout)
        if self.refused is not None and not self._connected.is_set():
            raise AuthRefused(
                f"broker {self.broker.host}:{self.broker.port} refused client {self.client_id!r}: {self.refused}"
            )

    def stop(self, final: tuple[str, bytes] | None = None, timeout: float = 2.0) -> None:
        """Publish ``final`` (e.g. a retained offline status) if connected, then disconnect."""
        if final is not None and self._connected.is_set():
            done = threading.Event()
            self.publish(final[0], final[1], qos=1, retain=True, on_ack=done.set)
            done.wait(timeout)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # ---------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def set_retained(self, topic: str, payload: bytes) -> None:
        """Publish retained state now (if connected) and again after every reconnect."""
        with self._retained_lock:
            self._retained[topic] = payload
        if self.connected:
            self.publish(topic, payload, qos=1, retain=True)

    # ---------------------------------------------------------------- publish

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        on_ack: Callable[[], None] | None = None,
    ) -> int:
        """Hand a message to paho; ``on_ack`` runs (network thread) when the broker has it.

        If the connection is down the message waits in paho's memory and is
        sent after the next reconnect, in order. Every publish of this
        connection goes through here, so each message id is claimed exactly
        once even when its acknowledgement beats ``publish()``'s return.
        """
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        mid = int(info.mid)
        with self._ack_lock:
            early = mid in self._early
            if early:
                self._early.discard(mid)
            else:
                self._pending[mid] = on_ack
        if early and on_ack is not None:
            on_ack()
        return mid

    # ---------------------------------------------------------------- callbacks (network thread)

    def _handle_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            self.refused = reason
            log.error("mqtt client=%s connection REFUSED by broker: %s", self.client_id, reason)
            self._first_result.set()
            return
        self.refused = None
        self.connects += 1
        for topic_filter in self._subscriptions:
            client.subscribe(topic_filter, qos=1)
        if self._birth is not None:
            topic, payload = self._birth()
            self.publish(topic, payload, qos=1, retain=True)
        with self._retained_lock:
            retained = list(self._retained.items())
        for topic, payload in retained:
            self.publish(topic, payload, qos=1, retain=True)
        self._connected.set()
        self._first_result.set()
        log.info(
            "mqtt client=%s connected to %s:%d (connect #%d, %d subscriptions, %d retained re-announced)",
            self.client_id,
            self.broker.host,
            self.broker.port,
            self.connects,
            len(self._subscriptions),
            len(retained),
        )

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and self._stopping:
            log.info("mqtt client=%s disconnected (stopping)", self.client_id)
        elif was:
            self.disconnects += 1
            log.warning("mqtt client=%s disconnected: %s; reconnecting with backoff", self.client_id, reason)
        else:
            self._first_result.set()

    def _handle_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(msg.topic, bytes(msg.payload))
        except Exception:  # a handler bug must not kill the network thread
            log.exception("mqtt client=%s handler failed on topic %s", self.client_id, msg.topic)

    def _handle_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        with self._ack_lock:
            if mid not in self._pending:
                self._early.add(mid)  # acknowledged before publish() returned
                return
            callback = self._pending.pop(mid)
        if callback is not None:
            callback()
