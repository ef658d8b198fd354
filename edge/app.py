"""The edge gateway daemon: starts its parts in order and stops them in reverse.

    outbox -> forwarder -> MQTT connection -> sensor service -> health endpoint

One asyncio loop runs the sensor service and command handling; the MQTT
connection and the forwarder have their own threads; a single stop event
(SIGTERM / SIGINT) ends everything, and the gateway's retained status is set
to offline on a clean stop (the broker's last will covers the unclean ones).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import sc
from sc.config.loader import LoadedConfig
from sc.config.schema import GatewayConfig, MqttAccount, Transport
from sc.contracts.commands import (
    Command,
    CommandAck,
    CommandName,
    DoorOpenArgs,
    DoorOpenResult,
    GalleryDeleteArgs,
    GalleryDigestResult,
    GalleryPutArgs,
    HealthResult,
    LightsOverrideArgs,
    PassRevokeArgs,
    PassRevokeResult,
    PingResult,
    PollNowResult,
)
from sc.contracts.messages import (
    CommandRefusedPayload,
    EventKind,
    EventState,
    Status,
    StatusState,
    encode,
)
from sc.contracts.topics import Kind, Topic, TopicError, topic_filter
from sc.health import HealthServer
from sc.mqtt import AuthRefused, MqttConnection, MqttCredentials, MqttError
from sc.passes import load_public_key
from sc.secrets import SecretError
from sc.secrets import read_password as _read_password
from sc.signing import CommandRefusal, CommandRefused, CommandVerifier, load_verifier
from vision.models import ModelError

from .commands import RefusalEvents, SeenCommands
from .forwarder import Forwarder
from .garage.service import GarageService
from .gate.gallery import GalleryError
from .gate.service import GateService
from .outbox import Outbox
from .sensors.detect import Transition
from .sensors.service import Counters, EventSink, SensorService
from .supervise import Parts, supervise

__all__ = ["EdgeApp", "Pipeline", "StartupError", "build_pipeline", "read_password"]

log = logging.getLogger(__name__)


#: How long stopping waits for the gateway's parts before it cancels the ones still running.
STOP_WAIT_S = 5.0


class StartupError(Exception):
    """The gateway cannot start; the message says what to do."""


def read_password(loaded: LoadedConfig, account: MqttAccount) -> str:
    try:
        return _read_password(loaded, account)
    except SecretError as exc:
        raise StartupError(str(exc)) from exc


@dataclass
class Pipeline:
    """The store-and-forward path every gateway has: outbox -> forwarder -> MQTT."""

    outbox: Outbox
    forwarder: Forwarder
    conn: MqttConnection


def build_pipeline(
    loaded: LoadedConfig,
    gw: GatewayConfig,
    *,
    birth: Callable[[], tuple[str, bytes]] | None = None,
    subscriptions: tuple[str, ...] = (),
    on_message: Callable[[str, bytes], None] | None = None,
) -> Pipeline:
    """Open the gateway's outbox and build (not start) its forwarder and MQTT connection."""
    password = read_password(loaded, gw.account)
    ob = gw.outbox
    outbox_path = loaded.resolve(ob.path or Path("var") / gw.id / "outbox.db")
    outbox = Outbox(
        outbox_path, max_bytes=int(ob.max_mb * 1024 * 1024), warn_pct=ob.warn_pct, synchronous=ob.synchronous
    )
    depth = outbox.depth()
    log.info(
        "gateway=%s outbox %s holds %d events, %d telemetry from before",
        gw.id,
        outbox_path,
        depth["events"],
        depth["telemetry"],
    )
    forwarder = Forwarder(outbox, window=ob.window)
    status_topic = str(Topic(loaded.site.site.id, gw.id, Kind.STATUS, gw.id))
    conn = MqttConnection(
        broker=loaded.site.broker,
        client_id=gw.id,
        credentials=MqttCredentials(gw.account.username, password),
        will=(status_topic, encode(Status(state=StatusState.OFFLINE, reason="connection lost"))),
        birth=birth,
        subscriptions=subscriptions,
        on_message=on_message,
    )
    forwarder.attach(conn)
    return Pipeline(outbox, forwarder, conn)


class EdgeApp:
    def __init__(self, loaded: LoadedConfig, gateway_id: str, *, health_port: int | None = None) -> None:
        self.loaded = loaded
        self.site = loaded.site
        try:
            self.gw: GatewayConfig = self.site.gateway(gateway_id)
        except KeyError as exc:
            raise StartupError(str(exc.args[0])) from exc
        self.health_port = health_port if health_port is not None else self.gw.health_port
        self.counters = Counters()
        self.started = time.monotonic()
        self.stop_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.gates: dict[str, GateService] = {}
        self.garages: dict[str, GarageService] = {}
        self.parts = Parts()
        self.verifier = self._verifier()
        self.refusals = RefusalEvents()

    def _verifier(self) -> CommandVerifier:
        key = self.site.command_public_key
        path = None if key is None else self.loaded.resolve(key)
        try:
            verifier = load_verifier(path, site=self.site.site.id, gateway=self.gw.id)
        except (OSError, ValueError) as exc:
            raise StartupError(
                f"command_public_key {path} is not usable ({exc}); copy the cloud's public command key "
                "(commands.pub.pem, written at its first start) there, or remove the setting to refuse all commands"
            ) from exc
        if path is None:
            log.warning("gateway=%s has no command_public_key: every command from the cloud is refused", self.gw.id)
        return verifier

    # ---------------------------------------------------------------- topics

    def _topic(self, kind: Kind, device: str) -> str:
        return str(Topic(self.site.site.id, self.gw.id, kind, device))

    def _birth(self) -> tuple[str, bytes]:
        st = Status(state=StatusState.ONLINE, ts=datetime.now(UTC), version=sc.__version__)
        return self._topic(Kind.STATUS, self.gw.id), encode(st)

    # ---------------------------------------------------------------- run

    def run(self) -> int:
        return asyncio.run(self.main())

    async def main(self, stop: asyncio.Event | None = None) -> int:
        self._commands: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=100)
        self._loop = asyncio.get_running_loop()
        self.stop_event = stop or asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._loop.add_signal_handler(sig, self.stop_event.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        site, gw = self.site.site.id, self.gw.id
        pipe = build_pipeline(
            self.loaded,
            self.gw,
            birth=self._birth,
            subscriptions=(
                topic_filter(site=site, gateway=gw, kind=Kind.CMD),
                topic_filter(site=site, gateway=gw, kind=Kind.UPLINK),
            ),
            on_message=self._on_message,
        )
        self.outbox, self.forwarder, self.conn = pipe.outbox, pipe.forwarder, pipe.conn
        self.seen = SeenCommands(self.loaded.resolve(Path("var") / gw / "commands.db"))
        self.sink = EventSink(
            site=site, gateway=gw, outbox=self.outbox, set_retained=self.conn.set_retained, counters=self.counters
        )
        self.sensors = SensorService(
            gateway=self.gw, sink=self.sink, resolve=lambda p: self.loaded.resolve(p), counters=self.counters
        )
        self.gates = self._build_gates()
        self.garages = self._build_garages()
        health: HealthServer | None = None
        self.conn.start()
        try:
            await asyncio.to_thread(self.conn.wait_first_result, 5.0)
        except AuthRefused as exc:
            self.conn.stop()
            self.outbox.close()
            raise StartupError(f"{exc}. Check the account's password file and the broker's password file.") from exc
        if not self.conn.connected:
            log.warning(
                "broker %s:%d not reachable yet; events are kept in the outbox until it is",
                self.site.broker.host,
                self.site.broker.port,
            )
        self.forwarder.start()
        stop = self.stop_event

        def supervised(name: str, factory: Callable[[], Any], on_give_up: Callable[[str], None] | None = None) -> Any:
            return asyncio.create_task(
                supervise(name, factory, stop, parts=self.parts, on_give_up=on_give_up), name=name
            )

        sensors_task = asyncio.create_task(self.sensors.run(self.stop_event), name="sensors")
        heartbeat = supervised("heartbeat", self._heartbeat)
        commands = supervised("commands", self._command_worker)
        gate_tasks = [supervised(f"gate-{gid}", partial(g.run, stop)) for gid, g in self.gates.items()]
        gate_tasks += [
            supervised(
                f"garage-{gid}",
                partial(g.run, stop),
                on_give_up=lambda _name, g=g: setattr(g, "dead", True),  # type: ignore[misc]
            )
            for gid, g in self.garages.items()
        ]
        if self.health_port is not None:
            health = HealthServer(self.health_port, self.health)
            self.health_port = health.port
            health.start()
        try:
            await self.stop_event.wait()
        finally:
            log.info("edge gateway=%s stopping", gw)
            if health is not None:
                health.stop()
            self._loop = None
            heartbeat.cancel()
            commands.cancel()
            tasks = [sensors_task, heartbeat, commands, *gate_tasks]
            _, late = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
            if late:  # a part that ignores its stop: cancelled, and the gateway stops all the same
                log.warning(
                    "gateway=%s: %s did not stop within %g s", gw, ", ".join(t.get_name() for t in late), STOP_WAIT_S
                )
                for t in late:
                    t.cancel()
                await asyncio.wait(late, timeout=1.0)
            for g in self.gates.values():
                g.close()
            # give the forwarder a moment to drain what is already in flight
            deadline = time.monotonic() + 2.0
            while self.conn.connected and self.forwarder.inflight and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            self.forwarder.stop()
            offline = Status(state=StatusState.OFFLINE, ts=datetime.now(UTC), reason="gateway stopped")
            self.conn.stop(final=(self._topic(Kind.STATUS, gw), encode(offline)))
            self.outbox.close()
            self.seen.close()
            log.info("edge gateway=%s stopped", gw)
        return 0

    def _build_gates(self) -> dict[str, GateService]:
        """A gate service for each gate this gateway runs (see docs/gates.md)."""
        gates: dict[str, GateService] = {}
        var_dir = self.loaded.resolve(Path("var") / self.gw.id)
        for configured in self.site.gates_of(self.gw.id):
            # file paths in the config are relative to the config file
            gate = configured.model_copy(
                update={
                    "pass_public_key": configured.pass_public_key and self.loaded.resolve(configured.pass_public_key),
                    "gallery": configured.gallery and self.loaded.resolve(configured.gallery),
                }
            )
            if gate.pass_public_key is not None:
                try:
                    load_public_key(gate.pass_public_key)
                except (OSError, ValueError) as exc:
                    raise StartupError(
                        f"gate {gate.id}: pass_public_key {gate.pass_public_key} is not usable ({exc}); copy the "
                        "cloud's public pass key (.pub.pem) there, or remove the setting to refuse all passes"
                    ) from exc
            try:
                gates[gate.id] = GateService(
                    gate=gate,
                    site=self.site.site.id,
                    base_dir=self.loaded.base_dir,
                    var_dir=var_dir,
                    emit=self.sink.event,
                    bus_for=self.sensors.buses.get,
                )
            except ModelError as exc:
                raise StartupError(f"gate {gate.id}: face_model {gate.face_model.value}: {exc}") from exc
            log.info(
                "gate=%s on gateway=%s camera=%s", gate.id, self.gw.id, gate.camera.source if gate.camera else "none"
            )
        return gates

    def _build_garages(self) -> dict[str, GarageService]:
        """A garage service for each garage with lanes this gateway runs (see docs/garage.md)."""
        garages: dict[str, GarageService] = {}
        for garage in self.site.garages_of(self.gw.id):
            if not garage.lanes:
                log.info("garage=%s has no lanes configured: no light control", garage.id)
                continue
            svc = GarageService(
                garage=garage,
                gateway=self.gw,
                emit=self.sink.event,
                set_status=self.sink.device_status,
                bus_for=self.sensors.buses.get,
                publish_state=self._publish_state,
            )
            self.sink.observers.append(svc.on_event)
            garages[garage.id] = svc
        return garages

    def _publish_state(self, device: str, payload: bytes) -> bool:
        """A device's live state, retained, QoS 0; False (not sent, not queued) while the broker is down."""
        if not self.conn.connected:
            return False
        try:
            self.conn.publish(self._topic(Kind.STATE, device), payload, qos=0, retain=True)
        except MqttError:
            return False
        return True

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(60)
            h = await asyncio.to_thread(self.health)  # counts outbox rows: off the loop
            log.info(
                "heartbeat gateway=%s mqtt=%s outbox=%s sent=%d acked=%d polls=%d failures=%d events=%d",
                self.gw.id,
                "up" if h["mqtt"]["connected"] else "DOWN",
                h["outbox"]["depth"],
                h["forwarder"]["sent"],
                h["forwarder"]["acknowledged"],
                self.counters.polls,
                self.counters.poll_failures,
                self.counters.events,
            )

    # ---------------------------------------------------------------- messages (MQTT thread)

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            t = Topic.parse(topic)
        except TopicError as exc:
            self._dead_letter(topic, payload, str(exc))
            return
        if t.kind is Kind.UPLINK:
            self.sensors.on_uplink(t.device, payload)
        elif t.kind is Kind.CMD:
            self._on_command(t, payload)
        else:
            self._dead_letter(topic, payload, f"gateway does not take {t.kind.value} messages")

    def _dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        self.counters.malformed_messages += 1
        self.outbox.dead_letter(topic, payload, reason)
        log.warning("dead-lettered message on %s: %s", topic, reason)

    def _on_command(self, t: Topic, payload: bytes) -> None:
        """Hand a command's bytes to the command worker (checked there: nothing here can fail on them)."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._enqueue_command, t.device, payload)
        except RuntimeError:  # loop closing: we are shutting down
            pass

    def _enqueue_command(self, device: str, payload: bytes) -> None:
        try:
            self._commands.put_nowait((device, payload))
        except asyncio.QueueFull:
            self.counters.commands_dropped += 1
            log.warning("command queue full: dropped a command for %s (%d bytes)", device, len(payload))

    async def _command_worker(self) -> None:
        while True:
            try:
                device, payload = await asyncio.wait_for(self._commands.get(), timeout=60.0)
            except TimeoutError:
                await self._report_refusals(self.refusals.due())
                await asyncio.to_thread(self.seen.prune)
                continue
            await self.handle_command(device, payload)

    async def handle_command(self, device: str, payload: bytes) -> None:
        """Check one command and run it at most once; always answer (unless the answer cannot be sent)."""
        try:
            cmd = self.verifier.verify(device, payload)
        except CommandRefused as exc:
            await self._refuse(device, payload, exc)
            return
        seen = await asyncio.to_thread(
            self.seen.claim, cmd.id, device=device, name=cmd.name.value, expires=cmd.expires.timestamp()
        )
        if seen is not None:
            self.counters.commands_duplicate += 1
            log.info("command %s id=%s for %s came again: answered as before, not run again", cmd.name, cmd.id, device)
            if seen.ack is not None:
                self._publish_ack(device, seen.ack)
            else:  # claimed, then the gateway stopped before it answered: it may have run; never run it twice
                self._publish_ack(
                    device,
                    encode(CommandAck(id=cmd.id, ok=False, error="already received; not run again (no answer kept)")),
                )
            return
        ack = await self._execute(device, cmd)
        data = encode(ack)
        await asyncio.to_thread(self.seen.answered, cmd.id, data)
        self._publish_ack(device, data)

    async def _refuse(self, device: str, payload: bytes, exc: CommandRefused) -> None:
        """Answer ``ok: false`` with the reason, keep it with the dead letters, and report it (rate-limited)."""
        self.counters.commands_refused += 1
        log.warning("refused a command for %s: %s", device, exc)
        await asyncio.to_thread(self.outbox.dead_letter, self._topic(Kind.CMD, device), payload, str(exc))
        ack = CommandAck(id=exc.command_id, ok=False, error=f"refused: {exc}"[:1000])
        self._publish_ack(device, encode(ack))
        if exc.refusal is not CommandRefusal.NO_KEY:  # a gateway set up without a key: its log says so once
            await self._report_refusals(self.refusals.refused(exc))

    async def _report_refusals(self, due: tuple[CommandRefused, int] | None) -> None:
        if due is None:
            return
        exc, count = due
        payload = CommandRefusedPayload(
            refusal=exc.refusal.value, reason=str(exc)[:500], command=exc.command_id, name=exc.name, refused=count
        )
        t = Transition(EventKind.COMMAND_REFUSED, EventState.RAISED, payload)
        await asyncio.to_thread(self.sink.event, self.gw.id, t, datetime.now(UTC))

    def _publish_ack(self, device: str, data: bytes) -> None:
        try:
            self.conn.publish(self._topic(Kind.CMD_ACK, device), data, qos=1)
        except MqttError as exc:  # the cloud resends what it needs; a copy gets the kept answer
            self.counters.acks_lost += 1
            log.warning("could not send the answer to a command for %s: %s", device, exc)

    async def _execute(self, device: str, cmd: Command) -> CommandAck:
        log.info("command name=%s device=%s id=%s", cmd.name.value, device, cmd.id)
        try:
            result = await self._run_command(device, cmd)
        except CommandFailed as exc:
            self.counters.commands_failed += 1
            return CommandAck(id=cmd.id, ok=False, error=str(exc)[:1000])
        except Exception as exc:  # a fault of ours: answered, logged, counted; the worker goes on
            self.counters.command_errors += 1
            log.exception("command %s id=%s for %s failed inside the gateway", cmd.name.value, cmd.id, device)
            return CommandAck(id=cmd.id, ok=False, error=f"the gateway failed: {type(exc).__name__}: {exc}"[:1000])
        self.counters.commands_run += 1
        return CommandAck(id=cmd.id, ok=True, result=result.model_dump(mode="json", exclude_none=True))

    async def _run_command(self, device: str, cmd: Command) -> BaseModel:
        a = cmd.args
        if cmd.name is CommandName.PING:
            return PingResult(uptime_s=round(time.monotonic() - self.started, 3), version=sc.__version__)
        if cmd.name is CommandName.HEALTH:
            return HealthResult.model_validate(await asyncio.to_thread(self.health))
        if cmd.name is CommandName.POLL_NOW:
            dev = self.sensors.devices.get(device)
            if dev is None:
                raise CommandFailed(f"gateway {self.gw.id} has no device {device!r}")
            if dev.transport is Transport.MQTT:
                raise CommandFailed(f"{device} is MQTT-native and reports on its own schedule")
            reading = await self.sensors.poll_device(dev)
            if reading is None:
                raise CommandFailed(f"{device} did not give a usable reading")
            return PollNowResult(reading=reading)
        if isinstance(a, LightsOverrideArgs):
            garage = self.garages.get(device)
            if garage is None:
                raise CommandFailed(f"gateway {self.gw.id} has no garage {device!r} with light control")
            try:
                return garage.override(a)
            except ValueError as exc:
                raise CommandFailed(str(exc)) from exc
        gate = self.gates.get(device)
        if gate is None:
            raise CommandFailed(f"gateway {self.gw.id} has no gate {device!r}")
        try:
            if isinstance(a, GalleryPutArgs):
                return await asyncio.to_thread(gate.gallery_put, a)
            if isinstance(a, GalleryDeleteArgs):
                return await asyncio.to_thread(gate.gallery_delete, a)
            if cmd.name is CommandName.GALLERY_DIGEST:
                return GalleryDigestResult(residents=await asyncio.to_thread(gate.gallery.digest))
            if isinstance(a, DoorOpenArgs):
                await gate.remote_open(a.by)
                return DoorOpenResult(opened=True)
            if isinstance(a, PassRevokeArgs):
                expires = a.expires if a.expires is not None else int(time.time() + 8 * 86400)
                await asyncio.to_thread(gate.revoke_pass, a.pass_id, expires)
                return PassRevokeResult(revoked=a.pass_id)
        except GalleryError as exc:
            raise CommandFailed(str(exc)) from exc
        raise CommandFailed(f"{cmd.name.value} is not a command for gate {device}")  # pragma: no cover

    # ---------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        depth = self.outbox.depth()
        connected = self.conn.connected
        return {
            "gateway": self.gw.id,
            "healthy": connected
            and not self.outbox.near_full
            and not self.sensors.dead_workers
            and not any(g.dead for g in self.gates.values())
            and not any(g.dead for g in self.garages.values())
            and not self.parts.degraded(),
            "dead_workers": list(self.sensors.dead_workers),
            "degraded": self.parts.degraded(),
            "parts": self.parts.health(),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "mqtt": {"connected": connected, "connects": self.conn.connects, "disconnects": self.conn.disconnects},
            "outbox": {
                "depth": depth,
                "used_mb": round(self.outbox.used_bytes() / 1e6, 3),
                "near_full": self.outbox.near_full,
                "shed_telemetry": self.outbox.shed_telemetry,
            },
            "forwarder": {
                "sent": self.forwarder.sent,
                "acknowledged": self.forwarder.acknowledged,
                "inflight": self.forwarder.inflight,
                "errors": self.forwarder.errors,
            },
            "counters": vars(self.counters).copy(),
            "devices": self.sensors.health(),
            "gates": {gid: g.health() for gid, g in self.gates.items()},
            "garages": {gid: g.health() for gid, g in self.garages.items()},
        }


class CommandFailed(Exception):
    """A command that could not be carried out; the ack says why."""
