"""A console feed of what the gateways send: one validated line per event,
status change and command result; malformed messages are counted and shown
with the reason. Used by ``sc monitor`` and the demo."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sc.config.loader import LoadedConfig
from sc.config.schema import MqttAccount
from sc.contracts.commands import CommandAck
from sc.contracts.kinds import MODEL_FOR_KIND
from sc.contracts.messages import ContractError, Event, Status, Telemetry, decode
from sc.contracts.topics import Kind, Topic, TopicError
from sc.mqtt import MqttConnection, MqttCredentials

__all__ = ["Monitor"]

log = logging.getLogger(__name__)


def _fmt_event(ev: Event) -> str:
    p = ev.payload
    detail = getattr(p, "rule", None) or getattr(p, "reason", "")
    value = f" value={p.value:g}" if hasattr(p, "value") else ""
    return (
        f"EVENT {ev.severity.value.upper():8} {ev.kind.value:17} {ev.state.value:7} "
        f"{ev.gateway}/{ev.device} seq={ev.seq} [{detail}]{value} id={ev.id[:8]}"
    )


class Monitor:
    def __init__(
        self,
        loaded: LoadedConfig,
        account: MqttAccount,
        password: str,
        *,
        out: Callable[[str], None] = print,
        telemetry: bool = False,
    ) -> None:
        site = loaded.site
        self.out = out
        self.telemetry = telemetry
        self.malformed = 0
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self.conn = MqttConnection(
            broker=site.broker,
            client_id=account.username,
            credentials=MqttCredentials(account.username, password),
            subscriptions=(f"sc/v1/{site.site.id}/#",),
            on_message=self._on_message,
        )

    def start(self) -> None:
        self.conn.start()

    def stop(self) -> None:
        self.conn.stop()

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            t = Topic.parse(topic)
            model = MODEL_FOR_KIND.get(t.kind)
            if model is None or t.kind in (Kind.UPLINK, Kind.CMD):
                return  # raw device uplinks and commands are not the gateways' output
            msg = decode(model, payload)
        except (TopicError, ContractError) as exc:
            self.malformed += 1
            self.out(f"MALFORMED {topic}: {exc}")
            return
        now = datetime.now(UTC).strftime("%H:%M:%S")
        if isinstance(msg, Event):
            with self._lock:
                self.events.append(msg)
            self.out(f"{now} {_fmt_event(msg)}")
        elif isinstance(msg, Status):
            who = "gateway" if t.device == t.gateway else "device "
            extra = f" ({msg.reason})" if msg.reason else ""
            self.out(f"{now} STATUS {who} {t.gateway}/{t.device}: {msg.state.value.upper()}{extra}")
        elif isinstance(msg, CommandAck):
            self.out(f"{now} ACK {t.gateway}/{t.device} cmd={msg.id[:8]} ok={msg.ok} {msg.error or msg.result}")
        elif isinstance(msg, Telemetry) and self.telemetry:
            self.out(f"{now} TELEMETRY {t.gateway}/{t.device} {msg.reading.model_dump(exclude={'type'})}")
