"""``sc demo``'s devices run for as long as the demo does (issue 12, finding 7).

Before the fix the simulator ended with its scenario: every simulated device vanished a minute into the demo, the
gate could not release its door and each device opened a ``device_offline`` order. Here a short scenario plays in
the whole demo stack (Mosquitto, the cloud, the simulated devices, the edge gateways), and twice its length later
every device still answers: the edge reads it after the scenario ended, the control room shows it online, and no
``device_offline`` event was raised. The limits are generous waits, not speed checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.models import EventRow
from firmware_sim.scenario import AfterScenario
from sc.config.loader import load_site_config
from sc.demo import DemoStack
from sc.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "demo-password-1"
DURATION_S = 6.0
#: smoke rises and clears, the refuse-room bin fills up (and stays full: the state the scenario leaves)
SCENARIO = f"""name: short
duration_s: {DURATION_S}
steps:
  - {{at: 0.5, device: smoke-hp-b1-u1, ramp: {{smoke_density: 14.0}}, over: 1}}
  - {{at: 3.0, device: smoke-hp-b1-u1, ramp: {{smoke_density: 0.4}}, over: 1}}
  - {{at: 1.0, device: bin-hp-refuse-1, set: {{fill_pct: 96.0}}}}
"""
#: what a wait may take at most (each takes a few seconds on an idle machine)
WAIT_S = 90


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoStack]:
    scenario = tmp_path / "short.yaml"
    scenario.write_text(SCENARIO)
    stack = DemoStack(
        load_site_config(REPO / "configs" / "site.example.yaml"),
        scenario=scenario,
        password=PASSWORD,
        workdir=tmp_path / "demo",
    )
    assert stack.after is AfterScenario.HOLD, "the demo keeps its devices running by default"
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _devices_online_in_the_control_room(stack: DemoStack) -> dict[str, bool | None]:
    with httpx.Client(base_url=stack.api_url, timeout=10) as c:
        tok = c.post("/api/v1/auth/token", data={"username": "operator", "password": PASSWORD}).json()["access_token"]
        rows = c.get("/api/v1/devices", headers={"Authorization": f"Bearer {tok}"}).json()
    return {r["id"]: r["online"] for r in rows}


def test_the_demos_devices_are_still_online_after_twice_the_scenarios_length(demo: DemoStack) -> None:
    assert demo.sim is not None
    sim = demo.sim.sim
    assert sim.finished.wait(WAIT_S), "the scenario did not finish"
    finished_at = datetime.now(UTC)
    devices = {d.id: app for app in demo.apps for d in app.gw.devices}
    assert devices, "the demo has no simulated sensors"

    def seen_since_the_end() -> set[str]:
        """The devices the edge read (a poll, an uplink) after the scenario ended."""
        seen: set[str] = set()
        for dev, app in devices.items():
            last = app.sensors.monitors[dev].last_seen
            if last is not None and last > finished_at:
                seen.add(dev)
        return seen

    assert wait_until(lambda: sim.now() >= 2 * DURATION_S, WAIT_S), "the scenario clock did not reach twice its length"
    assert wait_until(lambda: seen_since_the_end() == set(devices), WAIT_S), (
        f"no answer since the scenario ended from {sorted(set(devices) - seen_since_the_end())}"
    )
    assert demo.sim.error is None
    # the edge: every sensor and the gate's door controller online
    offline = {dev for dev, app in devices.items() if app.sensors.monitors[dev].online is not True}
    assert offline == set()
    doors = {gid: g.health()["door"] for app in demo.apps for gid, g in app.gates.items()}
    assert doors and all(d is not None and d["online"] for d in doors.values()), doors
    # the control room: every device online, and no device_offline event ever reached the cloud
    assert wait_until(
        lambda: all(_devices_online_in_the_control_room(demo).get(d) for d in devices), WAIT_S, interval=0.5
    ), _devices_online_in_the_control_room(demo)
    assert demo.cloud is not None
    with Session(demo.cloud.engine) as s:
        offline_events = s.execute(select(EventRow.device).where(EventRow.kind == "device_offline")).scalars()
        assert list(offline_events) == []
    # the state the scenario left: the bin is still full
    assert sim.sensors["bin-hp-refuse-1"].values["fill_pct"] == 96.0
