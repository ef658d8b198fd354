#!/usr/bin/env python3
"""Command benchmark: what signing, checking and remembering commands cost, side by side with the unchecked path
of before (issue 12), in one run.

    .venv/bin/python bench/commands.py [--opens 100] [--rounds 3] [--count 5000]

1. **Per command, in process** (``--count`` commands, every name): the cloud builds and encodes a command and the
   gateway decodes it.
   * ``baseline``  unsigned: ``encode`` -> ``decode(Command)`` (what the gateway did before);
   * ``ours``      ``CommandSigner.command`` (Ed25519 sign) -> ``encode`` -> ``CommandVerifier.verify`` (signature,
     target, lifetime) -> ``SeenCommands.claim`` and ``answered`` (SQLite, fsync: the command runs once, across
     restarts).
2. **Round trip, API to door relay** (``--opens`` per mode and round, modes alternating): ``POST
   /api/v1/gates/{gate}/open`` on the real cloud (SQLite, its real gate link), the real broker, the real edge
   gateway and a simulated door controller on a pseudo-terminal; from just before the request to the relay
   switching on in the simulator (the same monotonic clock), and to the API's answer.
   * ``baseline``  the gateway's checks switched off in place (plain decode, no memory of ids): the path before;
   * ``ours``      signed, checked, remembered.

Prints p50/p99 and the ratio ours/baseline; writes docs/command_roundtrip.png. Record results in
docs/benchmarks.md with the machine.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "firmware-sim"))

from cloud.app import CloudApp  # noqa: E402
from cloud.db.engine import make_engine, make_sessions, migrate  # noqa: E402
from cloud.settings import CloudSettings  # noqa: E402
from cloud.users import create_user  # noqa: E402
from cloud.workorders.states import Role  # noqa: E402
from edge.app import EdgeApp  # noqa: E402
from edge.commands import SeenCommands  # noqa: E402
from firmware_sim.door import DoorControllerSim  # noqa: E402
from sc.config.loader import LoadedConfig, load_site_config  # noqa: E402
from sc.contracts.commands import ARGS_MODEL, Command, CommandName, DoorOpenArgs, LightsOverrideArgs  # noqa: E402
from sc.contracts.messages import OverrideLevel, decode, encode  # noqa: E402
from sc.mosquitto import MosquittoProcess, free_port  # noqa: E402
from sc.passes import generate_key, load_private_key, load_public_key  # noqa: E402
from sc.signing import CommandSigner, CommandVerifier  # noqa: E402

GATE = "heping-north"
GATEWAY = "gw-heping-north-gate"
PASSWORD = "bench password 1"


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


# --------------------------------------------------------------------------- 1. per command


def sample_args(name: CommandName) -> Any:
    if name is CommandName.DOOR_OPEN:
        return DoorOpenArgs(by="op-1")
    if name is CommandName.LIGHTS_OVERRIDE:
        return LightsOverrideArgs(level=OverrideLevel.FULL, lights=["l-001", "l-002"], for_s=60)
    if name in (CommandName.GALLERY_PUT, CommandName.GALLERY_DELETE, CommandName.PASS_REVOKE):
        return None  # arguments of their own below
    return ARGS_MODEL[name]()


def per_command(count: int, tmp: Path) -> dict[str, list[float]]:
    key_path = tmp / "keys" / "bench.pem"
    generate_key(key_path, key_path.with_suffix(".pub.pem"))
    signer = CommandSigner(load_private_key(key_path), site="heping")
    verifier = CommandVerifier(load_public_key(key_path.with_suffix(".pub.pem")), site="heping", gateway=GATEWAY)
    seen = SeenCommands(tmp / "seen.db")
    names = [n for n in CommandName if sample_args(n) is not None]
    out: dict[str, list[float]] = {"baseline": [], "ours": []}
    try:
        for i in range(count):
            name = names[i % len(names)]
            args = sample_args(name)
            t0 = time.perf_counter()
            cmd = signer.command(gateway=GATEWAY, device=GATE, name=name, args=args).model_copy(update={"sig": None})
            decode(Command, encode(cmd))
            t1 = time.perf_counter()
            signed = signer.command(gateway=GATEWAY, device=GATE, name=name, args=args)
            got = verifier.verify(GATE, encode(signed))
            seen.claim(got.id, device=GATE, name=got.name.value, expires=got.expires.timestamp())
            seen.answered(got.id, b'{"ok":true}')
            t2 = time.perf_counter()
            # the baseline's time includes building one command (unsigned): the signer's model work, not its key
            out["baseline"].append((t1 - t0) * 1e6)
            out["ours"].append((t2 - t1) * 1e6)
    finally:
        seen.close()
    return out


# --------------------------------------------------------------------------- 2. round trip


def bench_site(tmp: Path, door_port: str) -> LoadedConfig:
    cfg: dict[str, Any] = yaml.safe_load((REPO / "configs" / "site.example.yaml").read_text(encoding="utf-8"))
    cfg["broker"]["port"] = free_port()
    gate = next(g for g in cfg["gates"] if g["id"] == GATE)
    gate.pop("camera", None)  # remote opens only: no vision process in this measurement
    gate["door"] = {**gate["door"], "unlock_s": 0.2, "poll_interval_s": 0.05}
    gw = next(g for g in cfg["gateways"] if g["id"] == GATEWAY)
    gw["buses"] = [{"id": "rs485-1", "port": door_port, "baudrate": 9600, "timeout_s": 0.3}]
    gw["health_port"] = None
    (tmp / "configs").mkdir(parents=True, exist_ok=True)
    path = tmp / "configs" / "site.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    key = tmp / "run" / "keys" / "commands.pem"
    generate_key(key, key.with_suffix(".pub.pem"))
    return load_site_config(path)


class EdgeThread:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.app = EdgeApp(loaded, GATEWAY)
        self.ready = threading.Event()
        self._stop: Any = None
        self._loop: Any = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        import asyncio

        async def go() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._loop.call_later(0.5, self.ready.set)
            await self.app.main(self._stop)

        asyncio.run(go())

    def start(self) -> EdgeThread:
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)


def unchecked(app: EdgeApp) -> Callable[[], None]:
    """Switch the gateway's command checks off in place (the path before issue 12); returns how to switch back."""
    verify, claim = app.verifier.verify, app.seen.claim

    def plain(device: str, payload: bytes) -> Command:
        return decode(Command, payload)

    app.verifier.verify = plain  # type: ignore[method-assign]
    app.seen.claim = lambda *a, **kw: None  # type: ignore[method-assign]

    def restore() -> None:
        app.verifier.verify = verify  # type: ignore[method-assign]
        app.seen.claim = claim  # type: ignore[method-assign]

    return restore


def round_trips(opens: int, rounds: int, tmp: Path) -> dict[str, dict[str, list[float]]]:
    door = DoorControllerSim(unit=20, auto_close_s=0.1).start(baudrate=9600)
    loaded = bench_site(tmp, door.client_port)
    broker = MosquittoProcess(loaded, tmp / "broker", port=loaded.site.broker.port).start()
    db_url = f"sqlite:///{tmp / 'cloud.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    with make_sessions(engine).begin() as s:
        create_user(s, user_id="operator", name="Operator", role=Role.OPERATOR, password=PASSWORD,
                    now=datetime.now(UTC))  # fmt: skip
    engine.dispose()
    settings = CloudSettings(
        database_url=db_url, api_port=0, media_dir=str(tmp / "media"), door_open_timeout_s=5.0,
        command_key_file=str(tmp / "run" / "keys" / "commands.pem"),
        pass_key_file=str(tmp / "run" / "keys" / "visitor-pass.pem"),
    )  # fmt: skip
    cloud = CloudApp(loaded, settings)
    cloud.start()
    edge = EdgeThread(loaded).start()
    out: dict[str, dict[str, list[float]]] = {m: {"relay_ms": [], "api_ms": []} for m in ("baseline", "ours")}
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{cloud.api_port}", timeout=10)
        token = api.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD}).json()
        api.headers["Authorization"] = f"Bearer {token['access_token']}"
        deadline = time.monotonic() + 30
        while api.post(f"/api/v1/gates/{GATE}/open").status_code != 200:  # the gate link has seen it online
            if time.monotonic() > deadline:
                raise SystemExit("the gate never answered a remote open")
            time.sleep(0.5)
        for r in range(rounds):
            for mode in ("baseline", "ours") if r % 2 == 0 else ("ours", "baseline"):
                restore = unchecked(edge.app) if mode == "baseline" else (lambda: None)
                try:
                    for _ in range(opens):
                        while door.relay_on:
                            time.sleep(0.005)
                        before = len(door.pulses())
                        t0 = time.monotonic()
                        resp = api.post(f"/api/v1/gates/{GATE}/open")
                        t_api = time.monotonic()
                        if resp.status_code != 200:
                            raise SystemExit(f"open failed: {resp.status_code} {resp.text}")
                        while len(door.pulses()) == before:
                            time.sleep(0.001)
                        on = door.pulses()[before][0]
                        out[mode]["relay_ms"].append((on - t0) * 1000)
                        out[mode]["api_ms"].append((t_api - t0) * 1000)
                finally:
                    restore()
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    finally:
        edge.stop()
        cloud.stop()
        broker.stop()
        door.stop()
    return out


def plot(rt: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    data = [rt["baseline"]["relay_ms"], rt["ours"]["relay_ms"]]
    ax.boxplot(data, tick_labels=["baseline (unchecked)", "ours (signed, checked, once)"], showfliers=True)
    ax.set_ylabel("API request to door relay on, ms")
    ax.set_title("Remote open round trip: API -> cloud -> broker -> gateway -> RS-485 door controller")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=5000, help="commands for the per-command part")
    ap.add_argument("--opens", type=int, default=100, help="remote opens per mode and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--plot", type=Path, default=REPO / "docs" / "command_roundtrip.png")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(f"machine: {platform.node()} {platform.machine()} python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="sc-bench-cmd-") as tmp_s:
        tmp = Path(tmp_s)
        pc = per_command(args.count, tmp / "per-command")
        b, o = statistics.median(pc["baseline"]), statistics.median(pc["ours"])
        print(f"\nper command ({args.count}, in process)        p50 µs    p99 µs")
        for mode in ("baseline", "ours"):
            print(f"  {mode:<40} {pct(pc[mode], 50):8.1f}  {pct(pc[mode], 99):8.1f}")
        print(f"  ratio ours/baseline (p50)                {o / b:8.2f}x")
        rt = round_trips(args.opens, args.rounds, tmp / "round-trip")
        print(f"\nround trip ({args.opens} x {args.rounds} per mode)   relay p50  relay p99   api p50   api p99  (ms)")
        for mode in ("baseline", "ours"):
            r = rt[mode]
            print(
                f"  {mode:<36} {pct(r['relay_ms'], 50):8.1f}  {pct(r['relay_ms'], 99):8.1f}  "
                f"{pct(r['api_ms'], 50):8.1f}  {pct(r['api_ms'], 99):8.1f}"
            )
        for what in ("relay_ms", "api_ms"):
            ratio = pct(rt["ours"][what], 50) / pct(rt["baseline"][what], 50)
            print(f"  ratio ours/baseline p50 {what:<12} {ratio:8.2f}x")
        plot(rt, args.plot)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
