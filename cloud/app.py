"""The cloud daemon (``sc cloud run``): starts its parts in order, stops them in reverse.

    database (schema checked) -> telemetry writer -> ingest worker -> MQTT consumer
    -> escalation scheduler -> privacy (retention, unconfirmed removals)
    -> gate link (gallery sync, remote open; garages' commands and live state) -> health endpoint -> API

Run several with different ``--instance`` names against one broker: the
shared subscription splits the stream and the database keeps every event and
every open order unique.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sc.config.loader import LoadedConfig
from sc.config.schema import CloudAccount, CloudRole
from sc.contracts.messages import Telemetry
from sc.contracts.topics import PREFIX, SCHEMA_VERSION
from sc.health import HealthServer
from sc.mosquitto import free_port
from sc.mqtt import AuthRefused, MqttCredentials
from sc.passes import generate_key
from sc.secrets import SecretError, read_password
from sc.signing import CommandSigner, load_signer
from sc.supervise import Parts
from sc.waiting import wait_until

from .db.engine import SchemaError, make_engine, make_sessions, require_current
from .garages.view import GarageView
from .gates.sync import GateLink
from .ingest.consumer import Inbound, IngestConsumer
from .ingest.worker import IngestWorker
from .privacy import PrivacyJob
from .scheduler import EscalationScheduler
from .settings import CloudSettings
from .telemetry.history import TelemetryHistory
from .telemetry.influx import InfluxWriter, to_line
from .workorders.routing import Router, RoutingError
from .workorders.store import EventOutcome

__all__ = ["CloudApp", "CloudStartupError"]

log = logging.getLogger(__name__)


class CloudStartupError(Exception):
    """The cloud cannot start; the message says what to do."""


class _InfluxSink:
    def __init__(self, writer: InfluxWriter) -> None:
        self.writer = writer

    def submit_telemetry(self, t: Telemetry) -> None:
        self.writer.submit(to_line(t))


class CloudApp:
    def __init__(
        self,
        loaded: LoadedConfig,
        settings: CloudSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_outcomes: Callable[[list[EventOutcome]], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.on_outcomes = on_outcomes
        self.settings = settings
        self.clock = clock
        site = loaded.site
        try:  # every connection has an account of its own (the broker binds a client id to its account)
            self.ingest_account = site.cloud_account(CloudRole.INGEST, settings.instance)
            self.commands_account = (
                site.cloud_account(CloudRole.COMMANDS, settings.instance) if site.gates or site.garages else None
            )
        except KeyError as exc:
            raise CloudStartupError(str(exc.args[0])) from exc
        try:
            self.router = Router(site)
        except RoutingError as exc:
            raise CloudStartupError(str(exc)) from exc
        self.engine = make_engine(settings.database_url)
        try:
            require_current(self.engine)
        except SchemaError as exc:
            raise CloudStartupError(str(exc)) from exc
        except Exception as exc:  # cannot connect at all
            raise CloudStartupError(f"cannot reach the database: {str(exc).splitlines()[0]}") from exc
        self.sessions = make_sessions(self.engine)
        # the ingester's own engine and pool: nothing the API does (streams, slow queries) can take its connections
        self.ingest_engine = make_engine(settings.database_url)
        self.ingest_sessions = make_sessions(self.ingest_engine)
        self.stop_event = threading.Event()
        self.influx: InfluxWriter | None = None
        self.health_server: HealthServer | None = None
        self._api_server: Any = None
        self.api_port: int | None = None
        self.api_ctx: Any = None  # the API's context (cloud.api.deps.ApiContext) once it serves
        self.gate_link: GateLink | None = None
        self.parts = Parts()  # the supervised threads' crashes, for /health
        self.garage_view: GarageView | None = None

    def start(self) -> None:
        site = self.loaded.site
        s = self.settings
        if s.influx_url:
            self.influx = InfluxWriter(
                url=s.influx_url, database=s.influx_database, token=s.influx_token, org=s.influx_org,
                bucket=s.influx_bucket,
            )  # fmt: skip
            self.influx.start()
        else:
            log.warning("no InfluxDB configured (--influx-url): telemetry updates device state but is not stored")
        inbox: queue.Queue[Inbound] = queue.Queue(maxsize=s.queue_max)
        self.consumer = IngestConsumer(
            broker=site.broker,
            credentials=MqttCredentials(self.ingest_account.username, self._password(self.ingest_account)),
            client_id=self.ingest_account.username,
            topic_filter=f"{PREFIX}/{SCHEMA_VERSION}/{site.site.id}/#",
            share_group=s.share_group,
            out=inbox,
            session_expiry_s=s.session_expiry_s,
        )
        self.worker = IngestWorker(
            site=site, router=self.router, sessions=self.ingest_sessions, inbox=inbox, ack=self.consumer.ack,
            telemetry=_InfluxSink(self.influx) if self.influx else None, batch_max=s.batch_max,
            device_flush_s=s.device_flush_s, clock=self.clock, on_outcomes=self.on_outcomes,
            media_dir=Path(s.media_dir), parts=self.parts,
        )  # fmt: skip
        self.worker.start()
        try:
            self.consumer.start()
        except AuthRefused as exc:
            self.worker.stop()
            raise CloudStartupError(f"{exc}. Check the cloud account's password file.") from exc
        self.scheduler = EscalationScheduler(
            sessions=self.sessions,
            router=self.router,
            interval_s=s.escalation_interval_s,
            clock=self.clock,
            parts=self.parts,
        )
        self.scheduler.start()
        self.privacy = PrivacyJob(
            site=site, sessions=self.sessions, router=self.router, media_dir=Path(s.media_dir),
            check_s=s.privacy_check_s, purge_s=s.retention_interval_h * 3600, clock=self.clock, parts=self.parts,
        )  # fmt: skip
        self.privacy.start()
        if site.garages:
            self.garage_view = GarageView(site, clock=self.clock)
        if self.commands_account is not None:
            self.gate_link = GateLink(
                site=site, sessions=self.sessions,
                credentials=MqttCredentials(self.commands_account.username, self._password(self.commands_account)),
                client_id=self.commands_account.username, interval_s=s.gate_sync_interval_s,
                ack_timeout_s=s.gate_ack_timeout_s, retry_max_s=s.gate_retry_max_s, clock=self.clock,
                garages=self.garage_view, signer=self._signer(s), parts=self.parts,
            )  # fmt: skip
            try:
                self.gate_link.start()
            except AuthRefused as exc:
                self.gate_link = None
                self.privacy.stop()
                self.scheduler.stop()
                self.consumer.stop()
                self.worker.stop()
                raise CloudStartupError(f"{exc}. Check the cloud account's password file.") from exc
        if s.health_port is not None:
            self.health_server = HealthServer(s.health_port, self.health)
            self.health_server.start()
        if s.api_port is not None:
            self._start_api(s)
        log.info(
            "cloud instance %s started: database %s, telemetry %s",
            s.instance, self.engine.url.render_as_string(hide_password=True), s.influx_url or "not stored",
        )  # fmt: skip

    def _start_api(self, s: CloudSettings) -> None:
        import uvicorn

        from .api.app import create_api
        from .api.deps import ApiContext, LiveStreams
        from .api.ratelimit import SignInLimits
        from .gates.enrolment import Enroller, site_models

        ctx = ApiContext(
            site=self.loaded.site, router=self.router, sessions=self.sessions, clock=self.clock,
            token_ttl=timedelta(hours=s.token_ttl_h), media_dir=Path(s.media_dir), pass_key=self._pass_key(s),
            gates=self.gate_link, door_open_timeout_s=s.door_open_timeout_s, telemetry=self._history(s),
            garages=self.garage_view, feed_replay_max=s.live_replay_max,
            streams=LiveStreams(per_user=s.live_streams_per_user, total=s.live_streams_max),
            scrypt_n=s.password_scrypt_n, enroller=Enroller(site_models(self.loaded.site)),
            signin_limits=SignInLimits(
                failures=s.signin_failures, attempts=s.signin_attempts, window_s=s.signin_window_s
            ),
        )  # fmt: skip
        self.api_ctx = ctx
        self.api_port = s.api_port or free_port()
        config = uvicorn.Config(
            create_api(ctx), host=s.api_host, port=self.api_port, log_level="warning", lifespan="off"
        )
        server = self._api_server = uvicorn.Server(config)
        failed: list[BaseException] = []

        def serve() -> None:
            try:
                server.run()
            except BaseException as exc:  # uvicorn exits (SystemExit) when it cannot bind: the port is taken
                failed.append(exc)

        thread = self._api_thread = threading.Thread(target=serve, name="api", daemon=True)
        thread.start()
        wait_until(lambda: server.started or not thread.is_alive(), 10)
        if not server.started:
            why = "the port is taken or cannot be bound" if failed else "not listening after 10 s"
            raise CloudStartupError(f"the API did not start on {s.api_host}:{self.api_port}: {why}")
        log.info("API at http://%s:%d/docs", s.api_host, self.api_port)

    def _history(self, s: CloudSettings) -> TelemetryHistory | None:
        """The readings reader for the API, from the writer's settings (None: no InfluxDB 1.x)."""
        if not s.influx_url:
            return None
        try:
            return TelemetryHistory(
                url=s.influx_url, database=s.influx_database, token=s.influx_token, org=s.influx_org,
                bucket=s.influx_bucket,
            )  # fmt: skip
        except ValueError as exc:
            log.warning("the API will not serve readings: %s", exc)
            return None

    def _signer(self, s: CloudSettings) -> CommandSigner:
        """The command signer; its key is made at the first start (give the .pub.pem to every gateway)."""
        key_file = Path(s.command_key_file)
        public = key_file.with_suffix(".pub.pem")
        if not key_file.exists():
            generate_key(key_file, public)
            log.warning(
                "made a new command signing key %s; give %s to every gateway (command_public_key)", key_file, public
            )
        try:
            return load_signer(key_file, site=self.loaded.site.site.id)
        except (OSError, ValueError) as exc:
            raise CloudStartupError(f"cannot load the command signing key {key_file}: {exc}") from exc

    def _pass_key(self, s: CloudSettings) -> Any:
        from sc.passes import load_private_key

        key_file = Path(s.pass_key_file)
        public = key_file.with_suffix(".pub.pem")
        if not key_file.exists():
            generate_key(key_file, public)
            log.warning("made a new visitor-pass signing key %s; give %s to every gate", key_file, public)
        try:
            return load_private_key(key_file)
        except (OSError, ValueError) as exc:
            raise CloudStartupError(f"cannot load the visitor-pass key {key_file}: {exc}") from exc

    def _password(self, account: CloudAccount) -> str:
        try:
            return read_password(self.loaded, account)
        except SecretError as exc:
            raise CloudStartupError(str(exc)) from exc

    def stop(self) -> None:
        log.info("cloud instance %s stopping", self.settings.instance)
        if self.api_ctx is not None:
            self.api_ctx.stopping.set()  # live feeds end at their next poll
            self.api_ctx.hasher.shutdown(wait=False, cancel_futures=True)
        if self._api_server is not None:
            self._api_server.should_exit = True
            self._api_thread.join(10)
        if self.health_server is not None:
            self.health_server.stop()
        if self.gate_link is not None:
            self.gate_link.stop()
        self.privacy.stop()
        self.scheduler.stop()
        # Take no more, store what was delivered, then leave the share group for good. If the
        # database cannot take the rest in time, keep the session: the broker re-delivers on restart.
        self.consumer.pause()
        drained = wait_until(lambda: self.worker.counters.messages >= self.consumer.received, 10.0)
        self.consumer.stop(end_session=drained)
        self.worker.stop()
        if not drained:
            log.warning("cloud instance %s stopped with messages not yet stored: the broker keeps them for its return",
                        self.settings.instance)  # fmt: skip
        if self.influx is not None:
            self.influx.stop(timeout=5)
        self.engine.dispose()
        self.ingest_engine.dispose()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.start()
        self.stop_event.wait()
        self.stop()
        return 0

    def health(self) -> dict[str, Any]:
        return {
            "instance": self.settings.instance,
            "healthy": self.consumer.connected.is_set() and not self.parts.degraded(),
            "degraded": self.parts.degraded(),
            "parts": self.parts.health(),
            "mqtt": {"connected": self.consumer.connected.is_set(), "received": self.consumer.received},
            "ingest": vars(self.worker.counters).copy(),
            "queue": self.worker.inbox.qsize(),
            "escalated": self.scheduler.escalated,
            "privacy": self.privacy.health(),
            "gates": self.gate_link.health() if self.gate_link else None,
            "garages": self.garage_view.health() if self.garage_view else None,
            "telemetry": self.influx.stats() if self.influx else None,
        }
