"""Daemons stop when told: a SIGTERMed ``sc edge run`` exits 0, even after its serial devices vanished.

Before the fix, pymodbus's own reconnect tasks for a serial port that had gone away swallowed the cancellation at
shutdown (Python 3.11's ``wait_for``), so ``asyncio.run`` waited for them for ever; the demo, after its scenario
ended, took 30 s and more to stop. The limits here are generous waits, not speed checks.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from firmware_sim.runner import Simulator, SimulatorThread
from firmware_sim.scenario import Scenario
from harness import REPO, Collector, Site, sc_command, wait_until
from sc.contracts.messages import EventKind, EventState, Status, StatusState, decode
from sc.contracts.topics import Kind, Topic

MODBUS_DEVICES = {"smoke-1", "smoke-2", "smoke-3", "bin-1"}
#: a generous wait for the process to exit after SIGTERM (it takes a second or two)
EXIT_WAIT_S = 30


def _gateway_online(col: Collector, gateway: str) -> bool:
    states = [
        decode(Status, m.payload).state
        for m in col.of_kind(Kind.STATUS)
        if Topic.parse(m.topic).device == gateway and m.payload
    ]
    return states[-1:] == [StatusState.ONLINE]


def _offline(col: Collector) -> set[str]:
    return {e.device for e in col.events() if e.kind is EventKind.DEVICE_OFFLINE and e.state is EventState.RAISED}


def _stop(p: subprocess.Popen[bytes], log: Path) -> int:
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise AssertionError(
            f"sc edge run did not exit within {EXIT_WAIT_S} s of SIGTERM; its log ends:\n{tail}"
        ) from None


def test_a_sigtermed_edge_gateway_exits_0_after_its_serial_devices_vanished(site: Site, tmp_path: Path) -> None:
    sim = SimulatorThread(Simulator(site.loaded, gateways=["gw-a"], scenario=Scenario(name="idle"))).start()
    col = Collector(site).start()
    log = tmp_path / "edge.log"
    with log.open("wb") as out:
        p = subprocess.Popen(
            sc_command("edge", "run", "-g", "gw-a", "--config", str(site.config_path)),
            stdout=out.fileno(),
            stderr=out.fileno(),
            cwd=REPO,
        )
    try:
        assert wait_until(lambda: _gateway_online(col, "gw-a"), 20), "the gateway did not come online"
        assert wait_until(
            lambda: {Topic.parse(m.topic).device for m in col.of_kind(Kind.TELEMETRY)} >= MODBUS_DEVICES, 20
        ), "the gateway did not read every simulated device"
        sim.stop()  # the pseudo-terminals go away: the gateway keeps trying to reopen them
        assert wait_until(lambda: _offline(col) >= MODBUS_DEVICES, 20), "the vanished devices were not offline"
        assert _stop(p, log) == 0
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        sim.stop()
        col.stop()


def test_a_sigtermed_edge_gateway_exits_0_while_its_devices_answer(site: Site, tmp_path: Path) -> None:
    sim = SimulatorThread(Simulator(site.loaded, gateways=["gw-a"], scenario=Scenario(name="idle"))).start()
    col = Collector(site).start()
    log = tmp_path / "edge.log"
    with log.open("wb") as out:
        p = subprocess.Popen(
            sc_command("edge", "run", "-g", "gw-a", "--config", str(site.config_path)),
            stdout=out.fileno(),
            stderr=out.fileno(),
            cwd=REPO,
        )
    try:
        assert wait_until(lambda: _gateway_online(col, "gw-a"), 20), "the gateway did not come online"
        assert wait_until(
            lambda: {Topic.parse(m.topic).device for m in col.of_kind(Kind.TELEMETRY)} >= MODBUS_DEVICES, 20
        ), "the gateway did not read every simulated device"
        assert _stop(p, log) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        sim.stop()
        col.stop()
