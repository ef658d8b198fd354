"""``sc demo``: the whole system on one machine, and the control room to watch it.

:class:`DemoStack` starts, in order: a private Mosquitto on a free port
(accounts and ACL generated from the config), a private InfluxDB when
``influxd`` is installed, the cloud (SQLite, ingesters, API and the
control-room page) with a sign-in for the operator and every grid worker of
the config, the residents the gate cameras know, the simulated devices of every
gateway playing a scenario, and one edge gateway per simulated gateway (in a
thread with its own event loop). :meth:`DemoStack.stop` stops them in reverse,
each wait bounded, so Ctrl-C ends the demo in a few seconds.
``sc demo`` prints what reaches the broker and each work order opened, and the
browser tests drive the same stack.

The simulated devices run for as long as the demo does: once the scenario has
played they keep running in the state it left them in (``after=hold``, the
default: the wall shows what the scenario did, and nothing more), or with
``after=repeat`` (``sc demo --repeat``) its devices go back to normal and it
plays again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from firmware_sim.scenario import AfterScenario
from sc.config.loader import LoadedConfig

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from cloud.app import CloudApp
    from cloud.monitor import Monitor
    from cloud.workorders.store import EventOutcome
    from edge.app import EdgeApp
    from firmware_sim.runner import SimulatorThread
    from sc.config.schema import SiteConfig
    from sc.influxd import InfluxProcess
    from sc.mosquitto import MosquittoProcess

__all__ = ["DemoStack", "run_demo"]

log = logging.getLogger(__name__)

#: how long stopping waits for the edge gateways' thread (they stop in a second or two)
EDGES_STOP_WAIT_S = 10.0


class DemoStack:
    """Everything ``sc demo`` runs, started in order by :meth:`start` and stopped in reverse by :meth:`stop`."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        scenario: Path,
        speed: float = 1.0,
        password: str | None = None,
        workdir: Path | None = None,
        api_port: int = 0,
        monitor: bool = False,
        on_outcomes: Callable[[list[EventOutcome]], None] | None = None,
        show_garages: bool = False,
        after: AfterScenario = AfterScenario.HOLD,
    ) -> None:
        self.loaded = loaded
        self.scenario = scenario
        self.speed = speed
        self.after = after
        self.password = password or secrets.token_urlsafe(9)
        self.workdir = workdir or loaded.resolve("../run/demo")
        self.api_port = api_port
        self.with_monitor = monitor
        self.on_outcomes = on_outcomes
        self.show_garages = show_garages
        self.broker: MosquittoProcess | None = None
        self.influx: InfluxProcess | None = None
        self.cloud: CloudApp | None = None
        self.monitor: Monitor | None = None
        self.sim: SimulatorThread | None = None
        self.apps: list[EdgeApp] = []
        self.users: list[str] = []
        self._edges: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._edge_stop: asyncio.Event | None = None
        self._edges_up = threading.Event()
        #: gateways whose daemon stopped with an error (the others keep running), with the error
        self.failed_gateways: dict[str, str] = {}

    @property
    def site(self) -> SiteConfig:
        return self.cfg.site

    @property
    def api_url(self) -> str:
        assert self.cloud is not None and self.cloud.api_port is not None, "start() first"
        return f"http://127.0.0.1:{self.cloud.api_port}"

    @property
    def db_path(self) -> Path:
        return self.workdir / "cloud.db"

    def start(self) -> DemoStack:
        """Start every part in order; if one fails, stop those already started and raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> DemoStack:
        from cloud.app import CloudApp
        from cloud.db.engine import make_engine, make_sessions, migrate
        from cloud.monitor import Monitor
        from cloud.settings import CloudSettings
        from edge.app import EdgeApp, read_password
        from firmware_sim.runner import Simulator, SimulatorThread
        from firmware_sim.scenario import load_scenario
        from sc.config.schema import CloudRole
        from sc.mosquitto import MosquittoProcess

        loaded = self.loaded
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker = MosquittoProcess(loaded, self.workdir / "broker").start()
        site = loaded.site.model_copy(
            update={"broker": loaded.site.broker.model_copy(update={"port": self.broker.port})}
        )
        camera_gateways = {g.gateway for g in site.gates if g.camera is not None}
        demo_gateways = [g for g in site.gateways if g.devices or g.id in camera_gateways or _has_garage(site, g.id)]
        site = site.model_copy(update={"gateways": [g.model_copy(update={"health_port": 0}) for g in site.gateways]})
        self.cfg = LoadedConfig(site=site, path=loaded.path)
        self.scenario_data = load_scenario(self.scenario)
        if self.with_monitor:
            account = site.cloud_account(CloudRole.MONITOR)
            self.monitor = Monitor(self.cfg, account, read_password(self.cfg, account))
            self.monitor.start()
        self.db_path.unlink(missing_ok=True)
        db_url = f"sqlite:///{self.db_path}"
        engine = make_engine(db_url)
        migrate(engine)
        self._create_users(make_sessions(engine))
        engine.dispose()
        self.influx = _start_influx(self.workdir / "influx")
        settings = CloudSettings(
            database_url=db_url,
            api_port=self.api_port,
            influx_url=self.influx.url if self.influx else None,
            media_dir=str(self.workdir / "media"),
            command_key_file=str(_command_key_file(self.cfg)),
            pass_key_file=str(_pass_key_file(self.cfg)),
        )
        self.cloud = CloudApp(self.cfg, settings, on_outcomes=self.on_outcomes)
        self.cloud.start()
        _enrol_demo_residents(self.cfg)
        self.sim = SimulatorThread(
            Simulator(self.cfg, scenario=self.scenario_data, speed=self.speed, garage_traffic=0, after=self.after)
        ).start()
        self.apps = [EdgeApp(self.cfg, g.id) for g in demo_gateways]
        self._edges = threading.Thread(target=self._run_edges, name="demo-edges", daemon=True)
        self._edges.start()
        if not self._edges_up.wait(30):
            raise RuntimeError("the demo's gateways did not start within 30 s")
        return self

    def stop(self) -> None:
        """Stop every part started, in reverse order; every wait is bounded, and a part that fails to stop is
        logged and does not keep the others (the broker, InfluxDB: child processes) running."""
        parts: list[tuple[str, Callable[[], None]]] = [("edge gateways", self._stop_edges)]
        if self.sim is not None:
            parts.append(("simulated devices", self.sim.stop))
        if self.monitor is not None:
            parts.append(("monitor", self._stop_monitor))
        if self.cloud is not None:
            parts.append(("cloud", self.cloud.stop))
        if self.influx is not None:
            parts.append(("InfluxDB", self.influx.stop))
        if self.broker is not None:
            parts.append(("Mosquitto", self.broker.stop))
        for name, stop in parts:
            try:
                stop()
            except Exception:
                log.exception("demo: stopping the %s failed", name)

    def _stop_edges(self) -> None:
        if self._loop is not None and self._edge_stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._edge_stop.set)
            except RuntimeError:  # their loop has ended already (a gateway failed)
                pass
        if self._edges is not None:
            self._edges.join(EDGES_STOP_WAIT_S)
            if self._edges.is_alive():
                log.warning("the demo's edge gateways did not stop within %g s; leaving them", EDGES_STOP_WAIT_S)

    def _stop_monitor(self) -> None:
        assert self.monitor is not None
        time.sleep(0.5)  # the last events on their way
        self.monitor.stop()

    # ------------------------------------------------------------------ parts

    def _create_users(self, sessions: sessionmaker[Session]) -> None:
        """The operator and every grid worker of the config, all with the demo's password."""
        from cloud.users import create_user
        from cloud.workorders.states import Role

        now = datetime.now(UTC)
        with sessions.begin() as s:
            create_user(
                s, user_id="operator", name="Demo operator", role=Role.OPERATOR, password=self.password, now=now
            )
            self.users = ["operator"]
            for w in self.loaded.site.workers:
                create_user(
                    s, user_id=w.id, name=w.name, role=Role.GRID_WORKER, password=self.password, now=now,
                    department=w.department,
                )  # fmt: skip
                self.users.append(w.id)

    def _run_edges(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._edge_stop = asyncio.Event()
            stop = self._edge_stop

            async def run_one(app: EdgeApp) -> None:
                try:
                    await app.main(stop)
                except Exception as exc:  # one gateway that cannot run does not take the others down
                    self.failed_gateways[app.gw.id] = f"{type(exc).__name__}: {exc}"
                    log.error("demo: gateway %s stopped: %s", app.gw.id, exc)

            runs = [asyncio.create_task(run_one(a)) for a in self.apps]
            self._edges_up.set()
            garages = (
                asyncio.create_task(_show_garages(self.apps, self.sim, self._edge_stop)) if self.show_garages else None
            )
            await asyncio.gather(*runs)
            if garages is not None:
                garages.cancel()

        asyncio.run(main())


def _private_beside(loaded: LoadedConfig, public: Path | None, default: str) -> Path:
    """A cloud private key beside the public half the site config hands out (x.pub.pem -> x.pem), so the cloud
    and the gateways find the same pair wherever the demo is started; ``default`` (cwd-relative) without one."""
    if public is None:
        return Path(default)
    path = loaded.resolve(public)
    return path.with_name(path.name.removesuffix(".pub.pem") + ".pem")


def _command_key_file(loaded: LoadedConfig) -> Path:
    return _private_beside(loaded, loaded.site.command_public_key, "run/keys/commands.pem")


def _pass_key_file(loaded: LoadedConfig) -> Path:
    public = next((g.pass_public_key for g in loaded.site.gates if g.pass_public_key is not None), None)
    return _private_beside(loaded, public, "run/keys/visitor-pass.pem")


def _has_garage(site: SiteConfig, gateway: str) -> bool:
    return any(g.gateway == gateway for g in site.garages)


def run_demo(
    loaded: LoadedConfig,
    *,
    scenario: Path,
    speed: float,
    duration: float | None,
    api_port: int = 8000,
    password: str | None = None,
    after: AfterScenario = AfterScenario.HOLD,
) -> int:
    """Run the demo in the foreground: until ``duration`` s have passed, else until Ctrl-C (or SIGTERM)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from cloud.db.models import WorkOrder

    stack: DemoStack | None = None

    def show_orders(outcomes: list[EventOutcome]) -> None:
        assert stack is not None and stack.cloud is not None
        with Session(stack.cloud.engine) as s:
            for o in outcomes:
                if o.opened and o.order_id is not None:
                    wo = s.get(WorkOrder, o.order_id)
                    if wo is not None:
                        print(
                            f"         WORK ORDER #{wo.id} {wo.status.upper()}: {wo.category}/{wo.subcategory} "
                            f"at {wo.location} -> {wo.department} / {wo.assignee or 'nobody yet'}; "
                            f"respond by {wo.respond_by:%m-%d %H:%M}, resolve by {wo.resolve_by:%m-%d %H:%M} UTC"
                        )

    stack = DemoStack(
        loaded, scenario=scenario, speed=speed, password=password, api_port=api_port, monitor=True,
        on_outcomes=show_orders, show_garages=True, after=after,
    )  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started = time.monotonic()
    from cloud.app import CloudStartupError

    try:
        stack.start()  # stops what it started if a part fails
    except CloudStartupError as exc:
        hint = " (--api-port 0 takes any free port)" if "port is taken" in str(exc) else ""
        print(f"demo: the cloud cannot start: {exc}{hint}", file=sys.stderr)
        return 1
    try:
        sc_ = stack.scenario_data
        assert stack.broker is not None
        print(
            f"demo: Mosquitto on 127.0.0.1:{stack.broker.port}; {len(stack.apps)} gateways; scenario {sc_.name!r} "
            f"({(sc_.duration_s or 60) / speed:.0f} s, "
            + ("then again and again" if after is AfterScenario.REPEAT else "then the devices carry on as it left them")
            + ")"
            + (f"; stops after {duration:.0f} s" if duration else "")
        )
        workers = ", ".join(stack.users[1:4]) + (", ..." if len(stack.users) > 4 else "")
        print(
            f"demo: control room at {stack.api_url}/ (API docs at /docs): sign in as operator, or as a grid worker "
            f"({workers}), password {stack.password}\n"
        )
        stop.wait(duration)
    finally:
        stack.stop()
    with Session(stack.cloud.engine) as s:  # type: ignore[union-attr]
        orders = list(s.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars())
    print(f"\ndemo: {len(orders)} work orders in {stack.db_path}:")
    for wo in orders:
        cleared = ", device says cleared" if wo.cleared_at else ""
        print(
            f"  #{wo.id} {wo.status:10} {wo.severity:8} {wo.kind:16} {wo.location:14} -> {wo.department} / "
            f"{wo.assignee or '-'} (alarms: {wo.alarm_count}{cleared})"
        )
    assert stack.monitor is not None
    by_kind: dict[str, int] = {}
    for ev in stack.monitor.events:
        key = f"{ev.kind.value}/{ev.state.value}"
        by_kind[key] = by_kind.get(key, 0) + 1
    print(
        f"\ndemo: {len(stack.monitor.events)} events in {time.monotonic() - started:.0f} s: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(by_kind.items()))
    )
    print(
        f"demo: {stack.monitor.malformed} malformed messages seen by the monitor; "
        "gateway dead letters are in each outbox"
    )
    return 0


async def _show_garages(apps: list[EdgeApp], sim: SimulatorThread | None, stop: asyncio.Event) -> None:
    """Every 10 s, one line per garage: what the gateway tracks, how many lights are full, and whether the
    simulated garage has seen a car or a person in the dark."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=10)
            return
        except TimeoutError:
            pass
        for a in apps:
            for gid, svc in a.garages.items():
                h = svc.health()
                kinds: dict[str, int] = {}
                for tr in h["tracks"]:
                    kinds[tr["class"]] = kinds.get(tr["class"], 0) + 1
                world = sim.sim.garages.get(gid) if sim is not None else None
                dark = f", safety violations so far: {len(world.violations)}" if world is not None else ""
                print(
                    f"{datetime.now().strftime('%H:%M:%S')} GARAGE {gid}: tracking "
                    + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nobody")
                    + f"; {h['lights_full']}/{h['lights']} lights full; decision p99 {h['decision_ms']['p99']} ms{dark}"
                )


def _start_influx(workdir: Path) -> InfluxProcess | None:
    """A fresh private InfluxDB for the demo's telemetry (the readings charts), when influxd is installed."""
    from sc.influxd import InfluxProcess, influxd_installed

    if not influxd_installed():
        print("demo: influxd is not installed (Debian package influxdb): telemetry is not stored, no readings charts")
        return None
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        influx = InfluxProcess(workdir).start()
    except RuntimeError as exc:
        print(f"demo: {exc}: telemetry is not stored, no readings charts")
        return None
    print(f"demo: InfluxDB at {influx.url} stores the telemetry (readings charts)")
    return influx


def _enrol_demo_residents(cfg: LoadedConfig) -> None:
    """Enrol the demo's resident (the face the synthetic gate scenes show) at every gate with a camera."""
    from edge.gate.gallery import Gallery
    from edge.gate.tools import enrolment_embedding
    from firmware_sim.faces import FACES_DIR
    from vision.engines import engine_for

    gates = [g for g in cfg.site.gates if g.camera is not None]
    if not gates:
        return
    photos = [FACES_DIR / "obama2.jpg", FACES_DIR / "obama3.jpg"]
    if not all(p.exists() for p in photos):
        print("demo: face photos not fetched (run ./scripts/setup.sh): the gates will know nobody")
        return
    vecs = {m: enrolment_embedding(engine_for(m), photos)[0] for m in {g.face_model for g in gates}}
    for gate in gates:
        path = gate.gallery or cfg.resolve(Path("var") / gate.gateway / gate.id / "gallery.db")
        gallery = Gallery(path, model=gate.face_model)
        gallery.put("r-1-0101", "Resident 1-0101", vecs[gate.face_model])
        gallery.close()
        print(f"demo: gate {gate.id} watches {gate.camera.source if gate.camera else '-'}; 1 resident enrolled")
