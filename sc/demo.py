"""``sc demo``: the whole sensor path on one machine.

A private Mosquitto on a free port (accounts and ACL generated from the
config), the simulated devices of every gateway playing a scenario, one edge
gateway per simulated gateway, and a live feed of what reaches the broker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sc.config.loader import LoadedConfig

if TYPE_CHECKING:
    from edge.app import EdgeApp
    from firmware_sim.runner import SimulatorThread

__all__ = ["run_demo"]

log = logging.getLogger(__name__)


def run_demo(loaded: LoadedConfig, *, scenario: Path, speed: float, duration: float | None) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from cloud.app import CloudApp
    from cloud.db.engine import make_engine, migrate
    from cloud.db.models import WorkOrder
    from cloud.monitor import Monitor
    from cloud.settings import CloudSettings
    from cloud.workorders.store import EventOutcome
    from edge.app import EdgeApp, read_password
    from firmware_sim.runner import Simulator, SimulatorThread
    from firmware_sim.scenario import load_scenario
    from sc.mosquitto import MosquittoProcess

    workdir = loaded.resolve("../run/demo")
    broker = MosquittoProcess(loaded, workdir / "broker").start()
    site = loaded.site.model_copy(update={"broker": loaded.site.broker.model_copy(update={"port": broker.port})})
    camera_gateways = {g.gateway for g in site.gates if g.camera is not None}
    demo_gateways = [g for g in site.gateways if g.devices or g.id in camera_gateways]
    site = site.model_copy(update={"gateways": [g.model_copy(update={"health_port": 0}) for g in site.gateways]})
    cfg = LoadedConfig(site=site, path=loaded.path)
    sc_ = load_scenario(scenario)
    total = duration if duration is not None else (sc_.duration_s or 60) / speed
    print(
        f"demo: Mosquitto on 127.0.0.1:{broker.port}; {len(demo_gateways)} gateways; "
        f"scenario {sc_.name!r} for {total:.0f} s (Ctrl-C stops)\n"
    )
    assert site.cloud_account is not None
    monitor = Monitor(cfg, read_password(cfg, site.cloud_account))
    monitor.start()
    db_path = workdir / "cloud.db"
    db_path.unlink(missing_ok=True)
    db_url = f"sqlite:///{db_path}"
    migrate(make_engine(db_url))
    cloud: CloudApp | None = None

    def show_orders(outcomes: list[EventOutcome]) -> None:
        assert cloud is not None
        with Session(cloud.engine) as s:
            for o in outcomes:
                if o.opened and o.order_id is not None:
                    wo = s.get(WorkOrder, o.order_id)
                    if wo is not None:
                        print(
                            f"         WORK ORDER #{wo.id} {wo.status.upper()}: {wo.category}/{wo.subcategory} "
                            f"at {wo.location} -> {wo.department} / {wo.assignee or 'nobody yet'}; "
                            f"respond by {wo.respond_by:%m-%d %H:%M}, resolve by {wo.resolve_by:%m-%d %H:%M} UTC"
                        )

    import secrets
    from datetime import UTC

    from cloud.db.engine import make_sessions
    from cloud.users import create_user
    from cloud.workorders.states import Role

    password = secrets.token_urlsafe(9)
    with make_sessions(make_engine(db_url)).begin() as s:
        create_user(
            s, user_id="operator", name="Demo operator", role=Role.OPERATOR, password=password, now=datetime.now(UTC)
        )
    cloud = CloudApp(cfg, CloudSettings(database_url=db_url, api_port=0), on_outcomes=show_orders)
    cloud.start()
    print(f"demo: API at http://127.0.0.1:{cloud.api_port}/docs - sign in as operator / {password}")
    _enrol_demo_residents(cfg)
    sim = SimulatorThread(Simulator(cfg, scenario=sc_, speed=speed, garage_traffic=0)).start()
    apps = [EdgeApp(cfg, g.id) for g in demo_gateways]

    async def edges() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.call_later(total, stop.set)
        runs = [asyncio.create_task(a.main(stop)) for a in apps]
        await asyncio.sleep(1.0)
        for a in apps:
            if a.health_port:
                print(f"demo: {a.gw.id} health at http://127.0.0.1:{a.health_port}/health")
        garages = asyncio.create_task(_show_garages(apps, sim, stop))
        await asyncio.gather(*runs)
        garages.cancel()

    started = time.monotonic()
    try:
        asyncio.run(edges())
    finally:
        sim.stop()
        time.sleep(0.5)
        monitor.stop()
        with Session(cloud.engine) as s:
            orders = list(s.execute(select(WorkOrder).order_by(WorkOrder.id)).scalars())
        cloud.stop()
        broker.stop()
    print(f"\ndemo: {len(orders)} work orders in {db_path}:")
    for wo in orders:
        cleared = ", device says cleared" if wo.cleared_at else ""
        print(
            f"  #{wo.id} {wo.status:10} {wo.severity:8} {wo.kind:16} {wo.location:14} -> {wo.department} / "
            f"{wo.assignee or '-'} (alarms: {wo.alarm_count}{cleared})"
        )
    by_kind: dict[str, int] = {}
    for ev in monitor.events:
        key = f"{ev.kind.value}/{ev.state.value}"
        by_kind[key] = by_kind.get(key, 0) + 1
    print(
        f"\ndemo: {len(monitor.events)} events in {time.monotonic() - started:.0f} s: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(by_kind.items()))
    )
    print(f"demo: {monitor.malformed} malformed messages seen by the monitor; gateway dead letters are in each outbox")
    return 0


async def _show_garages(apps: list[EdgeApp], sim: SimulatorThread, stop: asyncio.Event) -> None:
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
                world = sim.sim.garages.get(gid)
                dark = f", safety violations so far: {len(world.violations)}" if world is not None else ""
                print(
                    f"{datetime.now().strftime('%H:%M:%S')} GARAGE {gid}: tracking "
                    + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nobody")
                    + f"; {h['lights_full']}/{h['lights']} lights full; decision p99 {h['decision_ms']['p99']} ms{dark}"
                )


def _enrol_demo_residents(cfg: LoadedConfig) -> None:
    """Enrol the demo's resident (the face the synthetic gate scenes show) at every gate with a camera."""
    from edge.gate.faces import FaceEngine
    from edge.gate.gallery import Gallery
    from edge.gate.tools import enrolment_embedding
    from firmware_sim.faces import FACES_DIR

    gates = [g for g in cfg.site.gates if g.camera is not None]
    if not gates:
        return
    photos = [FACES_DIR / "obama2.jpg", FACES_DIR / "obama3.jpg"]
    if not all(p.exists() for p in photos):
        print("demo: face photos not fetched (run ./scripts/setup.sh): the gates will know nobody")
        return
    vec, _ = enrolment_embedding(FaceEngine(), photos)
    for gate in gates:
        path = gate.gallery or cfg.resolve(Path("var") / gate.gateway / gate.id / "gallery.db")
        gallery = Gallery(path)
        gallery.put("r-1-0101", "Resident 1-0101", vec)
        gallery.close()
        print(f"demo: gate {gate.id} watches {gate.camera.source if gate.camera else '-'}; 1 resident enrolled")
