"""The ``sc`` command line: one subcommand per daemon and tool.

sc validate-config configs/site.example.yaml
sc broker provision --config configs/site.yaml --out /etc/mosquitto/sc
sc edge run --config configs/site.yaml --gateway gw-heping-sensors
sc sim run --config configs/site.yaml --scenario configs/scenarios/demo.yaml
sc monitor --config configs/site.yaml
sc gate enroll --gallery gallery.db --resident r-101 --name "Wang Li" photo1.jpg photo2.jpg
sc gate replay footage.mp4 --config configs/site.yaml --gate heping-north --gallery gallery.db
sc gate report photos/ --plot distances.png
sc demo
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from firmware_sim.scenario import AfterScenario
from sc.config.loader import ConfigError, LoadedConfig, load_site_config
from sc.contracts.commands import DEFAULT_EMBEDDING_MODEL, EmbeddingModel
from sc.logs import setup_logging

if TYPE_CHECKING:
    from cloud.settings import CloudSettings
    from edge.gate.crosstruth import CrossingTruth
    from sc.config.schema import Gate
    from vision.engines import Engine

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Smart-community edge gateway and cloud tools.")
edge_app = typer.Typer(no_args_is_help=True, help="The edge gateway daemon (one per gate, garage or sensor hub).")
sim_app = typer.Typer(no_args_is_help=True, help="Simulated devices for demos, tests and installers.")
broker_app = typer.Typer(no_args_is_help=True, help="Broker accounts and access rules from the site config.")
app.add_typer(edge_app, name="edge")
app.add_typer(sim_app, name="sim")
cloud_app = typer.Typer(no_args_is_help=True, help="The cloud: ingest, work orders, deadlines.")
app.add_typer(broker_app, name="broker")
app.add_typer(cloud_app, name="cloud")
gate_app = typer.Typer(
    no_args_is_help=True, help="Installer tools for a gate: enrol, replay footage, pick a threshold."
)
app.add_typer(gate_app, name="gate")

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///run/cloud.db (default) or postgresql://user@host/db; env SC_CLOUD_DATABASE_URL",
    ),
]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "site.example.yaml"

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="site config YAML (see configs/site.example.yaml)")]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR")]


def _load(path: Path) -> LoadedConfig:
    try:
        return load_site_config(path)
    except ConfigError as exc:
        typer.echo(f"config error:\n{exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("validate-config")
def validate_config(path: Annotated[Path, typer.Argument(help="site config YAML")] = DEFAULT_CONFIG) -> None:
    """Check a site config and exit: 0 when valid, 2 with file:line: problem otherwise."""
    loaded = _load(path)
    s = loaded.site
    n_dev = sum(len(g.devices) for g in s.gateways)
    typer.echo(
        f"{path}: OK - site {s.site.id!r}: {len(s.street.communities)} communities, "
        f"{len(s.gateways)} gateways, {n_dev} devices, {len(s.gates)} gates, {len(s.garages)} garages"
    )


@broker_app.command("provision")
def broker_provision(
    config: ConfigOpt = DEFAULT_CONFIG,
    out: Annotated[Path, typer.Option(help="folder for passwd, acl and mosquitto.conf")] = Path("run/broker"),
    port: Annotated[int | None, typer.Option(help="listener port (default: the config's broker port)")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="TLS: CA certificate (PEM)")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS: the broker's certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS: the broker's private key (PEM)")] = None,
    bind: Annotated[
        str, typer.Option(help="the address the broker listens on (0.0.0.0: every interface, e.g. in a container)")
    ] = "127.0.0.1",
    owner: Annotated[
        str | None,
        typer.Option(
            help="give passwd, acl and the data folder to this user (default as root: mosquitto, if it exists)"
        ),
    ] = None,
) -> None:
    """Create missing account passwords and write Mosquitto's passwd, acl and conf."""
    setup_logging()
    from sc.broker import ServerTls, provision

    tls_files = (tls_ca, tls_cert, tls_key)
    if any(tls_files) and not all(tls_files):
        typer.echo("TLS needs all three of --tls-ca, --tls-cert and --tls-key", err=True)
        raise typer.Exit(2)
    tls = (
        ServerTls(tls_ca.resolve(), tls_cert.resolve(), tls_key.resolve()) if tls_ca and tls_cert and tls_key else None
    )
    if owner is None and os.geteuid() == 0:
        try:
            pwd.getpwnam("mosquitto")
            owner = "mosquitto"
        except KeyError:
            pass
    files = provision(_load(config), out, port=port, tls=tls, owner=owner, bind=bind)
    typer.echo(f"wrote {files.passwd}, {files.acl}, {files.conf} for {len(files.accounts)} accounts")
    typer.echo(f"start the broker with: mosquitto -c {files.conf}")


@broker_app.command("certs")
def broker_certs(
    host: Annotated[
        list[str], typer.Option("--host", help="a name or address the clients reach the broker by (repeat it)")
    ],
    config: ConfigOpt = DEFAULT_CONFIG,
    out: Annotated[Path, typer.Option(help="folder for ca.pem, ca.key, broker.pem, broker.key")] = Path("run/certs"),
    days: Annotated[int, typer.Option(help="how long the broker's certificate is valid")] = 825,
) -> None:
    """Make the site's CA and a broker certificate for TLS (kept if they exist); see docs/security.md."""
    setup_logging()
    from sc.certs import make_certs

    try:
        files = make_certs(out, host, site=_load(config).site.site.id, days=days)
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot make the certificates: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"CA {files.ca_file} (give it to every gateway and cloud process: broker.tls.ca_file)")
    typer.echo(f"broker {files.cert_file} and {files.key_file} for {', '.join(host)}; then:")
    typer.echo(
        f"  sc broker provision --tls-ca {files.ca_file} --tls-cert {files.cert_file} --tls-key {files.key_file}"
    )


@edge_app.command("run")
def edge_run(
    gateway: Annotated[str, typer.Option("--gateway", "-g", help="which gateway of the config this is")],
    config: ConfigOpt = DEFAULT_CONFIG,
    health_port: Annotated[int | None, typer.Option(help="override the config's health port (0: any)")] = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Run the edge gateway: poll sensors, keep events in the outbox, forward them to the broker."""
    setup_logging(log_level)
    from edge.app import EdgeApp, StartupError

    loaded = _load(config)
    try:
        code = EdgeApp(loaded, gateway, health_port=health_port).run()
    except StartupError as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(3) from exc
    raise typer.Exit(code)


@edge_app.command("burst")
def edge_burst(
    gateway: Annotated[str, typer.Option("--gateway", "-g", help="which gateway of the config to send as")],
    config: ConfigOpt = DEFAULT_CONFIG,
    count: Annotated[int, typer.Option(help="events in all")] = 10_000,
    devices: Annotated[int, typer.Option(help="spread over this many synthetic devices")] = 10,
    every: Annotated[int, typer.Option(help="print progress every N events")] = 1000,
    log_level: LogLevel = "WARNING",
) -> None:
    """Push synthetic alarm events through this gateway's outbox and wait for the broker's acks.

    Resumable: after a crash, run it again and it finishes the same burst.
    """
    setup_logging(log_level)
    from edge.app import StartupError
    from edge.burst import run_burst

    def progress(n: int) -> None:
        if n % every == 0:
            print(f"written {n}", flush=True)

    try:
        r = run_burst(_load(config), gateway, count=count, devices=devices, progress=progress)
    except StartupError as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(3) from exc
    print(
        f"burst: {r.written} events written in {r.seconds_to_write:.2f} s, "
        f"{'all' if r.drained else 'NOT all'} acknowledged after {r.seconds_to_ack:.2f} s",
        flush=True,
    )
    raise typer.Exit(0 if r.drained else 1)


@sim_app.command("run")
def sim_run(
    config: ConfigOpt = DEFAULT_CONFIG,
    gateway: Annotated[
        list[str] | None, typer.Option("--gateway", "-g", help="simulate only these gateways' devices")
    ] = None,
    scenario: Annotated[Path | None, typer.Option(help="scenario YAML (see configs/scenarios/)")] = None,
    speed: Annotated[float, typer.Option(help="scenario time runs this many times faster")] = 1.0,
    garage_traffic: Annotated[
        int, typer.Option(help="seed of the endless random traffic in simulated garages; -1: no traffic")
    ] = 0,
    after: Annotated[
        AfterScenario,
        typer.Option(
            help="once the scenario's duration_s has passed: stop, keep the devices running as it left them "
            "(hold), or reset them and play it again (repeat)",
        ),
    ] = AfterScenario.STOP,
    log_level: LogLevel = "INFO",
) -> None:
    """Run simulated devices: Modbus sensors on pseudo-terminals, MQTT-native sensors, garages with traffic."""
    setup_logging(log_level)
    from firmware_sim.runner import Simulator
    from firmware_sim.scenario import ScenarioError, load_scenario

    loaded = _load(config)
    try:
        sc_ = load_scenario(scenario) if scenario else None
        sim = Simulator(
            loaded,
            gateways=gateway,
            scenario=sc_,
            speed=speed,
            garage_traffic=None if garage_traffic < 0 else garage_traffic,
            after=after,
        )
    except ScenarioError as exc:
        typer.echo(f"scenario error: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await sim.run(stop)

    asyncio.run(go())


def _cloud_settings(**overrides: object) -> CloudSettings:
    from pydantic import ValidationError

    from cloud.settings import CloudSettings

    try:
        return CloudSettings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        typer.echo(f"bad cloud setting: {exc}", err=True)
        raise typer.Exit(2) from exc


@cloud_app.command("migrate")
def cloud_migrate(database_url: DbUrl = None) -> None:
    """Create or upgrade the work-order database to this version's schema (Alembic)."""
    setup_logging()
    from cloud.db.engine import make_engine, migrate

    settings = _cloud_settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    migrate(engine)
    typer.echo(f"database {engine.url.render_as_string(hide_password=True)} is at the current schema")


@cloud_app.command("run")
def cloud_run(
    config: ConfigOpt = DEFAULT_CONFIG,
    database_url: DbUrl = None,
    influx_url: Annotated[str | None, typer.Option(help="InfluxDB base URL for telemetry")] = None,
    instance: Annotated[str | None, typer.Option(help="this ingester's name (one per process)")] = None,
    health_port: Annotated[int | None, typer.Option(help="HTTP /health port (0: any)")] = None,
    api_port: Annotated[int | None, typer.Option(help="serve the HTTP API on this port (0: any)")] = None,
    api_host: Annotated[str | None, typer.Option(help="address the API listens on")] = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Run an ingester: MQTT (shared subscription) -> events, work orders, device state, telemetry; and the API."""
    setup_logging(log_level)
    from cloud.app import CloudApp, CloudStartupError

    settings = _cloud_settings(
        database_url=database_url,
        influx_url=influx_url,
        instance=instance,
        health_port=health_port,
        api_port=api_port,
        api_host=api_host,
    )
    try:
        app_ = CloudApp(_load(config), settings)
        code = app_.run()
    except CloudStartupError as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(3) from exc
    raise typer.Exit(code)


@cloud_app.command("deactivate")
def cloud_deactivate(
    user_id: Annotated[str, typer.Argument(help="the sign-in name")],
    database_url: DbUrl = None,
) -> None:
    """Stop a person from using the API: they cannot sign in, every token of theirs is revoked, and so is every
    visitor pass they made that is still valid (the gates are told by the running cloud)."""
    from datetime import UTC, datetime

    from cloud.db.engine import make_engine, make_sessions, require_current
    from cloud.users import deactivate_user

    settings = _cloud_settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    require_current(engine)
    with make_sessions(engine).begin() as s:
        revoked = deactivate_user(s, user_id=user_id, now=datetime.now(UTC), by="sc cloud deactivate")
    if revoked is None:
        typer.echo(f"no user {user_id!r}", err=True)
        raise typer.Exit(2)
    typer.echo(f"deactivated {user_id!r}: signed out everywhere, {revoked} visitor passes revoked")


@cloud_app.command("user")
def cloud_user(
    user_id: Annotated[str, typer.Argument(help="sign-in name; for grid workers their worker id in the site config")],
    role: Annotated[str, typer.Option(help="operator, grid_worker, department, resident or admin")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    department: Annotated[str | None, typer.Option(help="department id (department role)")] = None,
    location: Annotated[str | None, typer.Option(help="a resident's stairwell or building id")] = None,
    password: Annotated[str | None, typer.Option(help="default: generate one and print it once")] = None,
    database_url: DbUrl = None,
) -> None:
    """Add a person who may use the API."""
    import secrets
    from datetime import UTC, datetime

    from cloud.db.engine import make_engine, make_sessions, require_current
    from cloud.users import create_user
    from cloud.workorders.states import Role

    try:
        role_ = Role(role)
    except ValueError as exc:
        typer.echo(f"unknown role {role!r}", err=True)
        raise typer.Exit(2) from exc
    settings = _cloud_settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    require_current(engine)
    pw = password or secrets.token_urlsafe(12)
    try:
        with make_sessions(engine).begin() as s:
            create_user(
                s, user_id=user_id, name=name or user_id, role=role_, password=pw, now=datetime.now(UTC),
                department=department, location=location,
            )  # fmt: skip
    except (ValueError, Exception) as exc:
        typer.echo(f"cannot add {user_id!r}: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"added {role_.value} {user_id!r}" + ("" if password else f"; password: {pw}"))


@app.command("monitor")
def monitor(
    config: ConfigOpt = DEFAULT_CONFIG,
    telemetry: Annotated[bool, typer.Option(help="show telemetry too")] = False,
) -> None:
    """Print every event, status change and command result the gateways send (the config's monitor account:
    it reads, it cannot send a command)."""
    setup_logging("WARNING")
    from cloud.monitor import Monitor
    from edge.app import StartupError, read_password
    from sc.config.schema import CloudRole

    loaded = _load(config)
    try:
        account = loaded.site.cloud_account(CloudRole.MONITOR)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from exc
    try:
        password = read_password(loaded, account)
    except StartupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(3) from exc
    mon = Monitor(loaded, account, password, telemetry=telemetry)
    mon.start()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    mon.stop()


@app.command("demo")
def demo(
    config: ConfigOpt = DEFAULT_CONFIG,
    scenario: Annotated[Path, typer.Option(help="scenario to play")] = REPO / "configs" / "scenarios" / "demo.yaml",
    speed: Annotated[float, typer.Option(help="scenario time runs this many times faster")] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: run until Ctrl-C)")
    ] = None,
    api_port: Annotated[int, typer.Option(help="the control room and the API on this port (0: any free)")] = 8000,
    password: Annotated[
        str | None, typer.Option(help="the demo users' password (default: a random one, printed)")
    ] = None,
    repeat: Annotated[
        bool,
        typer.Option(
            "--repeat/--hold",
            help="once the scenario has played: reset its devices and play it again, or (default) keep every "
            "device running as it left them",
        ),
    ] = False,
    log_level: LogLevel = "WARNING",
) -> None:
    """Everything on this machine: a private Mosquitto, simulated devices, the edge gateways, the cloud and the
    control-room page, with a live feed on the console."""
    setup_logging(log_level)
    from sc.demo import run_demo

    after = AfterScenario.REPEAT if repeat else AfterScenario.HOLD
    loaded = _load(config)
    raise typer.Exit(
        run_demo(
            loaded, scenario=scenario, speed=speed, duration=duration, api_port=api_port, password=password, after=after
        )
    )


# --------------------------------------------------------------------------- gate installer tools

GalleryOpt = Annotated[Path | None, typer.Option(help="gallery file (default: the gate's, from --config/--gate)")]


def _engine(model: EmbeddingModel) -> Engine:
    """The face engine of ``model``; a missing model file is a message and exit status 2."""
    from vision.engines import engine_for
    from vision.models import ModelError

    try:
        return engine_for(model)
    except ModelError as exc:
        typer.echo(f"face model {model.value}: {exc}", err=True)
        raise typer.Exit(2) from exc


def _gate_and_gallery(config: Path | None, gate: str | None, gallery: Path | None) -> tuple[Gate | None, Path]:
    """The gate's config (if named) and the gallery file to use."""
    gate_cfg = None
    if config is not None or gate is not None:
        if config is None or gate is None:
            typer.echo("--config and --gate go together", err=True)
            raise typer.Exit(2)
        loaded = _load(config)
        match = [g for g in loaded.site.gates if g.id == gate]
        if not match:
            known = ", ".join(g.id for g in loaded.site.gates) or "none"
            typer.echo(f"no gate {gate!r} in {config} (gates: {known})", err=True)
            raise typer.Exit(2)
        gate_cfg = match[0]
        if gallery is None:
            gallery = gate_cfg.gallery or loaded.resolve(Path("var") / gate_cfg.gateway / gate_cfg.id / "gallery.db")
    if gallery is None:
        typer.echo("say which gallery: --gallery FILE, or --config and --gate", err=True)
        raise typer.Exit(2)
    return gate_cfg, gallery


@gate_app.command("enroll")
def gate_enroll(
    photos: Annotated[list[Path], typer.Argument(help="photo files of the resident (1 to 5; one face each)")],
    resident: Annotated[str, typer.Option(help="resident id, e.g. r-3-1201")],
    name: Annotated[str, typer.Option(help="the resident's name, shown in entry records")] = "",
    gallery: GalleryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="site config")] = None,
    gate: Annotated[str | None, typer.Option(help="gate id in the config")] = None,
) -> None:
    """Enrol a resident into a gate's local gallery from photos (no cloud needed). Photos are not kept."""
    from edge.gate.gallery import Gallery
    from edge.gate.tools import enrol_photos
    from vision.faces import EnrolmentError

    gate_cfg, path = _gate_and_gallery(config, gate, gallery)
    for p in photos:
        if not p.is_file():
            typer.echo(f"{p}: no such file", err=True)
            raise typer.Exit(2)
    model = gate_cfg.face_model if gate_cfg is not None else DEFAULT_EMBEDDING_MODEL
    g = Gallery(path, model=model)
    try:
        notes = enrol_photos(g, _engine(model), resident=resident, name=name, photos=photos)
    except EnrolmentError as exc:
        typer.echo(f"not enrolled: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        n = len(g)
        g.close()
    for note in notes:
        typer.echo(f"  {note}")
    typer.echo(f"enrolled {resident} into {path} ({n} residents)")


@gate_app.command("replay")
def gate_replay(
    video: Annotated[Path, typer.Argument(help="a video file (anything OpenCV/FFmpeg reads)")],
    gallery: GalleryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="site config")] = None,
    gate: Annotated[str | None, typer.Option(help="gate id in the config: its threshold and door line")] = None,
    door_line: Annotated[
        str | None, typer.Option(help="x1,y1,x2,y2 as fractions of the frame (overrides the config)")
    ] = None,
    inside: Annotated[str, typer.Option(help="which side of the door line is inside: left or right")] = "right",
    threshold: Annotated[float | None, typer.Option(help="match threshold (overrides the config)")] = None,
    pass_key: Annotated[Path | None, typer.Option(help="visitor pass public key (PEM) to check QR codes")] = None,
    site: Annotated[str, typer.Option(help="site id the passes are for (with --pass-key)")] = "",
    truth: Annotated[
        Path | None,
        typer.Option(help="crossings counted by hand (JSON, edge/gate/crosstruth.py): compare, and its line"),
    ] = None,
) -> None:
    """Run a video through the gate's own pipeline; print every decision and crossing as a JSON line.

    With --truth, the crossings the counter found are compared with those counted by hand (on the truth
    file's door line unless --door-line or the gate's config gives one): a last line says how many were
    matched, missed and invented, and which."""
    import tempfile

    from edge.gate.crosstruth import compare_crossings
    from edge.gate.gallery import Gallery
    from edge.gate.ledger import PassLedger
    from edge.gate.passcheck import PassChecker
    from edge.gate.pipeline import GatePipeline, VisionSettings
    from edge.gate.tools import dumps, replay_video, video_frames

    counted = _truth_arg(truth)
    gate_cfg, path = _gate_and_gallery(config, gate, gallery)
    model = gate_cfg.face_model if gate_cfg is not None else DEFAULT_EMBEDDING_MODEL
    overrides: dict[str, object] = {}
    if threshold is not None:
        overrides["threshold"] = threshold
    if door_line is not None:
        overrides["door_line"] = _door_line_arg(door_line)
        overrides["door_inside"] = inside
    elif counted is not None and (gate_cfg is None or gate_cfg.door_line is None):
        overrides["door_line"] = (counted.line.a, counted.line.b)
        overrides["door_inside"] = counted.line.inside
        overrides["person_height"] = counted.line.person_height
    settings = (
        VisionSettings.from_gate(gate_cfg, **overrides) if gate_cfg is not None else VisionSettings(**overrides)  # type: ignore[arg-type]
    )
    if not video.is_file():
        typer.echo(f"{video}: no such file", err=True)
        raise typer.Exit(2)
    g = Gallery(path, model=model)
    index = g.index()
    checker = None
    if pass_key is not None:
        from sc.passes import load_public_key

        ledger = PassLedger(Path(tempfile.mkdtemp()) / "replay-passes.db")  # replays must not use up real passes
        gate_id = gate_cfg.id if gate_cfg is not None else (gate or "gate")
        checker = PassChecker(public_key=load_public_key(pass_key), site=site, gate=gate_id, ledger=ledger)
    pipeline = GatePipeline(settings=settings, engine=_engine(model), gallery=lambda: index, passes=checker)
    import time as _time

    start = _time.time()
    try:
        outcomes = replay_video(pipeline, video_frames(video), start=start, emit=lambda d: typer.echo(dumps(d)))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    st = pipeline.stats
    typer.echo(
        dumps(
            {"summary": {"frames": st.frames, "still": st.still, "embeddings": st.embeddings, "residents": len(index)}}
        ),
    )
    if counted is not None:
        typer.echo(dumps({"truth": compare_crossings(outcomes, counted, start=start).to_json()}))


def _truth_arg(path: Path | None) -> CrossingTruth | None:
    """The ``--truth`` file, read and checked (exit 2 with the file and field at fault), or None."""
    from edge.gate.crosstruth import TruthError, load_truth

    if path is None:
        return None
    try:
        return load_truth(path)
    except TruthError as exc:
        typer.echo(f"--truth: {exc}", err=True)
        raise typer.Exit(2) from exc


def _door_line_arg(text: str) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError as exc:
        typer.echo(f"--door-line wants x1,y1,x2,y2 (got {text!r})", err=True)
        raise typer.Exit(2) from exc
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
        typer.echo(f"--door-line: points are fractions of the frame, 0..1 (got {text!r})", err=True)
        raise typer.Exit(2)
    return (x1, y1), (x2, y2)


@gate_app.command("calibrate")
def gate_calibrate(
    footage: Annotated[Path, typer.Argument(help="a few minutes of the camera's footage, people walking through")],
    door_line: Annotated[str, typer.Option(help="x1,y1,x2,y2 as fractions of the frame")],
    inside: Annotated[str, typer.Option(help="which side of the door line is inside: left or right")] = "right",
    preview: Annotated[Path | None, typer.Option(help="write the line and the people measured to this PNG")] = None,
    truth: Annotated[Path | None, typer.Option(help="crossings counted by hand (JSON): compare")] = None,
) -> None:
    """Fit the people counter to a camera: learn how tall people look at the door line from its footage, count
    the crossings at that scale (a JSON line each), and print the door_line to put in the gate's config."""
    from edge.gate.calibrate import estimate_person_height
    from edge.gate.calibrate import preview as draw_preview
    from edge.gate.counting import LineCounter
    from edge.gate.crosstruth import compare_crossings
    from edge.gate.pipeline import GateOutcome
    from edge.gate.tools import dumps, video_frames

    line = _door_line_arg(door_line)
    if inside not in ("left", "right"):
        typer.echo(f"--inside is left or right (got {inside!r})", err=True)
        raise typer.Exit(2)
    side: Literal["left", "right"] = "left" if inside == "left" else "right"
    if not footage.is_file():
        typer.echo(f"{footage}: no such file", err=True)
        raise typer.Exit(2)
    counted = _truth_arg(truth)
    try:
        est = estimate_person_height((f for f, _ in video_frames(footage)), line)
        typer.echo(dumps({"person_height": est.person_height, "samples": est.samples, "quartiles": est.quartiles}))
        counter = LineCounter(line, side, person_height=est.person_height)
        found: list[GateOutcome] = []
        best_n, best_i, best_frame = -1, -1, None  # the frame with the most people measured, for the preview
        per_frame: dict[int, int] = {}
        for i, _ in est.boxes:
            per_frame[i] = per_frame.get(i, 0) + 1
        for i, (frame, t) in enumerate(video_frames(footage)):
            for c in counter.update(frame, t):
                found.append(GateOutcome(c.t, "crossing", c.track, direction=c.direction, people=c.people))
                typer.echo(dumps({"t": round(c.t, 2), "what": "crossing", "track": c.track,
                                  "direction": c.direction, "people": c.people}))  # fmt: skip
            if preview is not None and per_frame.get(i, 0) > best_n:
                best_n, best_i, best_frame = per_frame.get(i, 0), i, frame.copy()
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    door = {"a": list(line[0]), "b": list(line[1]), "inside": side, "person_height": est.person_height}
    summary = {
        "in": sum(o.people or 1 for o in found if o.direction == "in"),
        "out": sum(o.people or 1 for o in found if o.direction == "out"),
    }
    typer.echo(dumps({"summary": {"people": summary, "crossings": len(found), "door_line": door}}))
    if counted is not None:
        typer.echo(dumps({"truth": compare_crossings(found, counted).to_json()}))
    if preview is not None and best_frame is not None:
        _write_png(preview, draw_preview(best_frame, line, side, est, frame_index=best_i))
        typer.echo(f"wrote {preview}")


def _write_png(path: Path, img: Any) -> None:
    import cv2

    if not cv2.imwrite(str(path), img):
        typer.echo(f"{path}: could not be written", err=True)
        raise typer.Exit(1)


@gate_app.command("report")
def gate_report(
    photos: Annotated[Path, typer.Argument(help="folder with one sub-folder of photos per person")],
    plot: Annotated[Path | None, typer.Option(help="write the distance histograms to this PNG")] = None,
    threshold: Annotated[float | None, typer.Option(help="the gate's current threshold, to compare")] = None,
    model: Annotated[str, typer.Option(help="face model: dlib-resnet-v1 or faceplugin-fr-feature")] = "dlib-resnet-v1",
    residents: Annotated[
        int | None, typer.Option(min=1, help="residents the gate will hold (default: the people in PHOTOS)")
    ] = None,
    target: Annotated[
        float, typer.Option(min=1e-9, max=0.5, help="the chance of letting a stranger in to aim at, per visit")
    ] = 0.001,
) -> None:
    """Distance distributions (same person vs different people), the threshold and margin they suggest, and
    what that threshold means for a stranger at a gate of 100, 1,000 and 10,000 residents (open set)."""
    from edge.gate.tools import distance_report, dumps, photo_embeddings, plot_report

    if not photos.is_dir():
        typer.echo(f"{photos}: not a folder", err=True)
        raise typer.Exit(2)
    try:
        face_model = EmbeddingModel(model)
    except ValueError as exc:
        typer.echo(f"--model: {model!r} is not one of {', '.join(m.value for m in EmbeddingModel)}", err=True)
        raise typer.Exit(2) from exc
    people = photo_embeddings(_engine(face_model), photos)
    if len(people) < 2:
        typer.echo("need photos of at least two people (one sub-folder each)", err=True)
        raise typer.Exit(2)
    report = distance_report(people, model=face_model, residents=residents, target=target)
    typer.echo(dumps(report.to_json()))
    if plot is not None:
        plot_report(report, plot, threshold)
        typer.echo(f"wrote {plot}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
