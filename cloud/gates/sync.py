"""The cloud's MQTT link to the gate and garage gateways: gallery sync, commands that wait for their
answer (a gate's remote open, a garage's light override), and the garages' live state.

Every enrolment change is planned in the database as one *delivery* per
gate (see :mod:`cloud.gates.store`). This thread sends what is due:

* a ``gallery_put`` (the embedding, base64 of 128 float32) or
  ``gallery_delete``, QoS 1, on the gate's ``cmd`` topic (and, the same way, a
  revoked visitor pass's ``pass_revoke``: :mod:`cloud.gates.passes`); the command id
  stays the same for every resend of one version, so a late answer still counts;
* the gate answers on ``cmd-ack``: ``ok`` marks the delivery acked;
  ``ok: false`` records the gate's error and retries with backoff;
* no answer within ``ack_timeout_s`` (doubling per attempt up to
  ``retry_max_s``): sent again;
* nothing is sent to a gateway whose retained status says offline (or that was
  never seen): its deliveries wait, and are all sent the moment its status
  goes online (every gateway re-announces itself on each reconnect);
* at most :data:`WINDOW` commands per gateway wait for an answer at once.

Several cloud processes may run this at once: due rows are locked
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL) while they are sent and pushed
forward, so only one process sends each; every process applies the answers.

:meth:`GateLink.command` sends any command to a device of a gate or garage
gateway and waits for its answer (:meth:`GateLink.request` for a gate: the
API's remote open; the garages' ``lights_override``). It is refused at once
when the gateway or the broker connection is down rather than queued: a door
must not open minutes after someone asked.

The garage gateways' ``state/{garage}`` messages and statuses go to the
:class:`cloud.garages.view.GarageView` given, if any.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.garages.view import GarageView
from sc.config.schema import SiteConfig
from sc.contracts.commands import (
    CommandAck,
    CommandArgs,
    CommandName,
    GalleryDeleteArgs,
    GalleryPutArgs,
    PassRevokeArgs,
    encode_embedding_b64,
)
from sc.contracts.messages import (
    ContractError,
    GarageState,
    Status,
    StatusState,
    decode,
    encode,
)
from sc.contracts.topics import Kind, Topic, TopicError, topic_filter
from sc.mqtt import MqttConnection, MqttCredentials
from sc.signing import CommandSigner
from sc.supervise import Parts, supervised_thread

from .passes import (
    due_revocations,
    mark_revocation_acked,
    resend_revocations,
    revocation_expires,
    revocations_in_flight,
)
from .store import (
    Op,
    community_gates,
    due_deliveries,
    embedding_of,
    gates_for,
    in_flight,
    mark_acked,
    mark_sent,
    plan_deliveries,
    reconcile_deliveries,
    resend_gateway,
    settle,
)

__all__ = ["GateLink", "GateUnavailable", "SyncCounters"]

log = logging.getLogger(__name__)

#: How often the whole resident table is compared with the deliveries (gates added to the config).
RECONCILE_S = 300.0
#: Gallery commands a gateway may have unanswered at once: a gateway queues at most 100 commands and drops
#: the rest, so a big enrolment (or a gate back after a long absence) goes out as answers come back.
WINDOW = 50


class GateUnavailable(Exception):
    """A command cannot be sent now (gateway offline, no broker connection); the message says which.

    (Named for the gates it was first written for; garage commands raise it too.)
    """


@dataclass
class SyncCounters:
    sent: int = 0
    resent: int = 0
    acked: int = 0
    refused: int = 0  # acks with ok=false
    stray_acks: int = 0  # answers to nothing pending (late duplicates, other commands, the wrong gateway)
    foreign_acks: int = 0  # an answer to a waiting command from another gateway or device than it went to
    gateway_online: int = 0  # offline -> online transitions that triggered a resend
    db_errors: int = 0


@dataclass
class _Waiter:
    gateway: str
    device: str
    done: threading.Event = field(default_factory=threading.Event)
    ack: CommandAck | None = None


class GateLink:
    """The gates' gallery sync, and for gate and garage gateways: commands that wait, statuses, live state."""

    def __init__(
        self,
        *,
        site: SiteConfig,
        sessions: sessionmaker[Session],
        credentials: MqttCredentials,
        client_id: str,
        interval_s: float = 2.0,
        ack_timeout_s: float = 30.0,
        retry_max_s: float = 600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        garages: GarageView | None = None,
        signer: CommandSigner,
        parts: Parts | None = None,
    ) -> None:
        self.site = site
        self.signer = signer
        self.site_id = site.site.id
        self.sessions = sessions
        self.interval_s = interval_s
        self.ack_timeout_s = ack_timeout_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self.gates = {g.id: g for g in site.gates}
        self.serves = community_gates(site)  # a face goes to its own community's gates only
        self.gateways = sorted({g.gateway for g in site.gates})  # gallery sync: the gates' gateways
        self.gates_gateways = frozenset(self.gateways)
        self.garage_gateways = sorted({g.gateway for g in site.garages})
        self.garages = garages
        linked = sorted({*self.gateways, *self.garage_gateways})
        #: each linked gateway's retained status: True online, False offline, absent: not heard of yet
        self.online: dict[str, bool] = {}
        self.counters = SyncCounters()
        subscriptions = tuple(topic_filter(site=self.site_id, gateway=gw, kind=Kind.CMD_ACK) for gw in linked)
        subscriptions += tuple(str(Topic(self.site_id, gw, Kind.STATUS, gw)) for gw in linked)
        if garages is not None:
            subscriptions += tuple(
                topic_filter(site=self.site_id, gateway=gw, kind=Kind.STATE) for gw in self.garage_gateways
            )
        self.conn = MqttConnection(
            broker=site.broker,
            client_id=client_id,
            credentials=credentials,
            subscriptions=subscriptions,
            on_message=self._on_message,
        )
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._held: list[tuple[str, Any]] = []  # taken from the inbox, not yet applied (database down)
        self._waiters: dict[str, _Waiter] = {}
        self._waiters_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_reconcile = float("-inf")
        self._thread = threading.Thread(
            target=supervised_thread("gate-link", self._run, self._stop, parts=parts), name="gate-link", daemon=True
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self, wait_s: float = 5.0) -> None:
        """Connect (raises :class:`sc.mqtt.AuthRefused` if the broker refuses) and start the sync thread."""
        self.conn.start()
        self.conn.wait_first_result(wait_s)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)
        self.conn.stop()

    def kick(self) -> None:
        """Something changed (an enrolment): send it now rather than at the next interval."""
        self._wake.set()

    # ------------------------------------------------------------------ commands that wait for their answer

    def request(self, *, gate: str, name: CommandName, args: CommandArgs, timeout: float) -> CommandAck | None:
        """Send a command to ``gate`` and wait up to ``timeout`` s for the gate's answer (None: no answer).

        :class:`KeyError` for a gate not in the site config, :class:`GateUnavailable`
        when it cannot be sent now.
        """
        g = self.gates[gate]
        return self.command(gateway=g.gateway, device=gate, name=name, args=args, timeout=timeout, what=f"gate {gate}")

    def command(
        self,
        *,
        gateway: str,
        device: str,
        name: CommandName,
        args: CommandArgs,
        timeout: float,
        what: str = "",
    ) -> CommandAck | None:
        """Send a command to ``device`` of ``gateway`` and wait up to ``timeout`` s for its answer (None: none).

        ``what`` names the device in errors (e.g. ``gate north``; default: its id). The command is signed, and
        expires when the wait ends (or sooner, at its name's COMMAND_TTL_S): a door never opens after the API
        answered that it did not.

        :class:`GateUnavailable` when it cannot be sent now (no broker connection, the
        gateway not online; a gateway this link does not follow is never online).
        """
        if not self.conn.connected:
            raise GateUnavailable("the cloud is not connected to the broker")
        if self.online.get(gateway) is not True:
            state = "offline" if gateway in self.online else "not heard from yet"
            raise GateUnavailable(f"gateway {gateway} of {what or device} is {state}")
        cmd = self.signer.command(gateway=gateway, device=device, name=name, args=args, ttl_s=timeout)
        waiter = _Waiter(gateway, device)
        with self._waiters_lock:
            self._waiters[cmd.id] = waiter
        try:
            self.conn.publish(str(Topic(self.site_id, gateway, Kind.CMD, device)), encode(cmd), qos=1)
            waiter.done.wait(timeout)
            return waiter.ack
        finally:
            with self._waiters_lock:
                self._waiters.pop(cmd.id, None)

    # ------------------------------------------------------------------ MQTT (network thread): no database here

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            t = Topic.parse(topic)
            if t.kind is Kind.CMD_ACK:
                ack = decode(CommandAck, payload)
                with self._waiters_lock:
                    waiter = self._waiters.get(ack.id)
                if waiter is not None:
                    if (waiter.gateway, waiter.device) != (t.gateway, t.device):
                        self.counters.foreign_acks += 1
                        raise ContractError(
                            f"an answer to command {ack.id} sent to {waiter.gateway}/{waiter.device} came from "
                            f"{t.gateway}/{t.device}"
                        )
                    waiter.ack = ack
                    waiter.done.set()
                    return
                self._inbox.put(("ack", (ack, t.gateway, t.device)))
            elif t.kind is Kind.STATUS and t.device == t.gateway:
                st = decode(Status, payload) if payload else None  # an empty retained message clears the status
                online = st is not None and st.state is StatusState.ONLINE
                was = self.online.get(t.gateway)
                self.online[t.gateway] = online
                if self.garages is not None and t.gateway in self.garage_gateways:
                    self.garages.gateway_status(t.gateway, online)
                if online and was is not True and t.gateway in self.gates_gateways:
                    self._inbox.put(("online", t.gateway))
                log.info("gate link: gateway %s is %s", t.gateway, "online" if online else "offline")
            elif t.kind is Kind.STATE:
                if self.garages is not None and payload:  # an empty retained message clears the state: keep the last
                    state = decode(GarageState, payload)
                    if state.garage != t.device:
                        raise ContractError(f"the state of garage {state.garage} came on {t.device}'s topic")
                    self.garages.put(t.gateway, state)
                return
            else:
                return
        except (TopicError, ContractError) as exc:
            log.warning("gate link: ignored a message on %s: %s", topic, exc)
            return
        self._wake.set()

    # ------------------------------------------------------------------ the sync thread

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.step()
            except SQLAlchemyError as exc:
                self.counters.db_errors += 1
                log.error("gate link: database error (will retry): %s", str(exc).splitlines()[0])
                self._stop.wait(min(5.0, self.interval_s))

    def step(self) -> int:
        """Apply the gates' answers, then send what is due; returns how many commands were sent."""
        while True:
            try:
                self._held.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        now = self.clock()
        gates = list(self.gates.values())
        with self.sessions.begin() as s:
            for what, item in self._held:
                if what == "ack":
                    self._apply_ack(s, item, now)
                elif what == "online":
                    n = resend_gateway(s, gateway=item, now=now) + resend_revocations(s, gateway=item, now=now)
                    self.counters.gateway_online += 1
                    if n:
                        log.info("gate link: gateway %s is back online: %d deliveries due now", item, n)
            reconcile = time.monotonic() - self._last_reconcile > RECONCILE_S
            if reconcile:
                planned = reconcile_deliveries(s, gates=gates, now=now, serves=self.serves)
                if planned:
                    log.info("gate link: planned %d gallery deliveries the gates were missing", planned)
        self._held.clear()
        if reconcile:
            self._last_reconcile = time.monotonic()
        if not self.conn.connected:
            return 0
        sent = 0
        with self.sessions.begin() as s:
            busy = in_flight(s, now=now)
            for gw, n in revocations_in_flight(s, now=now).items():
                busy[gw] = busy.get(gw, 0) + n
            due = [
                row
                for gw in self.gateways
                if self.online.get(gw) is True and busy.get(gw, 0) < WINDOW
                for row in due_deliveries(
                    s, now=now, gateways=[gw], gates=list(self.gates), limit=WINDOW - busy.get(gw, 0)
                )
            ]
            for d, r in due:
                if r.version != d.version:  # changed again since it was planned: plan the newest instead
                    plan_deliveries(s, resident=r, gates=gates_for(r, gates, self.serves), now=now)
                    if r.version != d.version:
                        continue
                args: CommandArgs
                if d.op == Op.PUT.value:
                    model = self.gates[d.gate].face_model
                    raw = embedding_of(s, resident_id=r.id, model=model)
                    if raw is None:  # enrolled before the site used this gate's model: only new photos can help
                        settle(d, ok=False, error=f"no {model.value} embedding: enrol the resident again", now=now,
                               base_s=self.retry_max_s, max_s=self.retry_max_s)  # fmt: skip
                        continue
                    emb = encode_embedding_b64(np.frombuffer(raw, dtype="<f4"), model)
                    name, args = (
                        CommandName.GALLERY_PUT,
                        GalleryPutArgs(resident=r.id, name=r.name[:120], model=model, embedding=emb, version=d.version),
                    )
                else:
                    name, args = CommandName.GALLERY_DELETE, GalleryDeleteArgs(resident=r.id, version=d.version)
                # signed anew for every send (each valid for its COMMAND_TTL_S), one id for all sends of one version
                cmd = self.signer.command(
                    gateway=d.gateway, device=d.gate, name=name, args=args, command_id=d.command_id
                )
                self.conn.publish(str(Topic(self.site_id, d.gateway, Kind.CMD, d.gate)), encode(cmd), qos=1)
                if d.attempts:
                    self.counters.resent += 1
                self.counters.sent += 1
                mark_sent(d, now=now, base_s=self.ack_timeout_s, max_s=self.retry_max_s)
                busy[d.gateway] = busy.get(d.gateway, 0) + 1
                sent += 1
            revoked = 0
            for gw in self.gateways:
                room = WINDOW - busy.get(gw, 0)
                if self.online.get(gw) is not True or room <= 0:
                    continue
                for pg, vp in due_revocations(s, now=now, gateways=[gw], gates=list(self.gates), limit=room):
                    assert pg.command_id is not None  # planned revocations have one
                    revoke = PassRevokeArgs(pass_id=vp.id, expires=revocation_expires(vp))
                    cmd = self.signer.command(
                        gateway=pg.gateway, device=pg.gate, name=CommandName.PASS_REVOKE, args=revoke,
                        command_id=pg.command_id,
                    )  # fmt: skip
                    self.conn.publish(str(Topic(self.site_id, pg.gateway, Kind.CMD, pg.gate)), encode(cmd), qos=1)
                    if pg.attempts:
                        self.counters.resent += 1
                    self.counters.sent += 1
                    mark_sent(pg, now=now, base_s=self.ack_timeout_s, max_s=self.retry_max_s)
                    revoked += 1
        if sent:
            log.info("gate link: sent %d gallery commands", sent)
        if revoked:
            log.info("gate link: sent %d pass revocations", revoked)
        return sent + revoked

    def _apply_ack(self, s: Session, item: tuple[CommandAck, str, str], now: datetime) -> None:
        ack, gateway, device = item
        d = mark_acked(
            s, command_id=ack.id, gateway=gateway, gate=device, ok=ack.ok, error=ack.error, now=now,
            base_s=self.ack_timeout_s, max_s=self.retry_max_s,
        )  # fmt: skip
        what = ""
        if d is not None:
            what = f"{d.op} of resident {d.resident} (version {d.version})"
        else:  # not a gallery change: a pass revocation?
            pg = mark_revocation_acked(
                s, command_id=ack.id, gateway=gateway, gate=device, ok=ack.ok, error=ack.error, now=now,
                base_s=self.ack_timeout_s, max_s=self.retry_max_s,
            )  # fmt: skip
            if pg is not None:
                what = f"the revocation of pass {pg.pass_id}"
        if not what:
            self.counters.stray_acks += 1
        elif ack.ok:
            self.counters.acked += 1
        else:
            self.counters.refused += 1
            log.warning("gate link: gate %s refused %s: %s", device, what, ack.error)

    def health(self) -> dict[str, Any]:
        return {
            "connected": self.conn.connected,
            "gateways": {gw: self.online.get(gw) for gw in sorted({*self.gateways, *self.garage_gateways})},
            "counters": vars(self.counters).copy(),
        }
