"""Issue 13, finding 3, on the real PostgreSQL and the real broker: devices and events are scoped to each role's
part of the community (cloud/api/scope.py), and who entered a gate is for gate staff only.

The test site has community c1 (grid g1, every device and both gates) and community c2 (grid g2, nothing).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from cloud.app import CloudApp
from cloud.db.models import DeviceState, EventRow
from cloud.workorders.states import Role
from harness import Site, add_api_users, api_settings, api_tokens, wait_until
from sc.contracts.messages import (
    AlarmPayload,
    EntryMethod,
    Event,
    EventKind,
    EventState,
    GatePayload,
    Severity,
    SmokeReading,
    Status,
    StatusState,
    encode,
)
from sc.contracts.topics import Kind, Topic

USERS: dict[str, tuple[Any, str | None, str | None]] = {
    "op-1": (Role.OPERATOR, None, None),
    "w-prop": (Role.GRID_WORKER, "property", None),  # grids [g1]
    "w-g2": (Role.GRID_WORKER, "grid-office", None),  # grids [g2]: nothing of c1
    "dept-prop": (Role.DEPARTMENT, "property", None),  # gate staff, the whole site
    "dept-prop-2": (Role.DEPARTMENT, "property-2", None),  # gate staff of c2 only
    "dept-fire": (Role.DEPARTMENT, "fire", None),  # the whole site, not gate staff
    "r-1": (Role.RESIDENT, None, "b1-u1"),
}


def publish(site: Site, gateway: str, device: str, ev: Event) -> None:
    """The event, and the device's online status (the devices table is made of statuses and telemetry)."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=gateway)
    c.username_pw_set(gateway, site.password(gateway))
    c.connect("127.0.0.1", site.port)
    c.loop_start()
    c.publish(str(Topic("test", gateway, Kind.EVENT, device)), encode(ev), qos=1).wait_for_publish(30)
    online = encode(Status(state=StatusState.ONLINE, ts=ev.ts))
    c.publish(str(Topic("test", gateway, Kind.STATUS, device)), online, qos=1).wait_for_publish(30)
    c.disconnect()
    c.loop_stop()


@pytest.fixture
def api(site: Site, db: Engine, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    add_api_users(db, USERS)
    app = CloudApp(site.loaded, api_settings(db, tmp_path, device_flush_s=0.2))
    app.start()
    base = f"http://127.0.0.1:{app.api_port}"
    try:
        reading = SmokeReading(smoke_density=15, temperature_c=30, battery_pct=80, alarm=True, fault=False)
        now = datetime.now(UTC)
        alarm = Event(
            site="test", gateway="gw-a", device="smoke-1", ts=now, seq=1, kind=EventKind.SMOKE_ALARM,
            state=EventState.RAISED, severity=Severity.CRITICAL,
            payload=AlarmPayload(rule="smoke_density >= 8", value=15, threshold=8, reading=reading),
        )  # fmt: skip
        entry = Event(
            site="test", gateway="gw-b", device="north", ts=now, seq=1, kind=EventKind.ENTRY,
            state=EventState.RAISED, severity=Severity.INFO,
            payload=GatePayload(gate="north", method=EntryMethod.FACE, person="r-1", distance=0.3),
        )  # fmt: skip
        publish(site, "gw-a", "smoke-1", alarm)
        publish(site, "gw-b", "north", entry)

        def stored() -> tuple[int, int]:
            with Session(db) as s:
                events = s.execute(select(func.count()).select_from(EventRow)).scalar_one()
                devices = s.execute(select(func.count()).select_from(DeviceState)).scalar_one()
                return int(events), int(devices)

        assert wait_until(lambda: stored() == (2, 2), 60), stored()
        yield base, api_tokens(base, USERS)
    finally:
        app.stop()


def get(base: str, token: str, path: str) -> httpx.Response:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        return c.get(path)


@pytest.mark.parametrize(
    ("user", "events"),
    [
        ("op-1", ["entry", "smoke_alarm"]),
        ("dept-prop", ["entry", "smoke_alarm"]),  # gate staff of the whole site
        ("dept-fire", ["smoke_alarm"]),  # the whole site, but who came in is not its business
        ("w-prop", ["smoke_alarm"]),  # g1's worker: its grid's devices, no entries
        ("w-g2", []),  # g2's worker: nothing of c1
        ("dept-prop-2", []),  # gate staff, but of c2
    ],
)
def test_events_are_scoped_and_entries_are_for_gate_staff(
    api: tuple[str, dict[str, str]], user: str, events: list[str]
) -> None:
    base, tokens = api
    r = get(base, tokens[user], "/api/v1/events")
    assert r.status_code == 200, r.text
    assert sorted(e["kind"] for e in r.json()) == events
    r = get(base, tokens[user], "/api/v1/events?kind=entry")
    assert [e["device"] for e in r.json()] == (["north"] if "entry" in events else [])


@pytest.mark.parametrize(("user", "sees"), [("op-1", True), ("w-prop", True), ("dept-fire", True), ("w-g2", False)])
def test_devices_are_scoped(api: tuple[str, dict[str, str]], user: str, sees: bool) -> None:
    base, tokens = api
    listed = {d["id"] for d in get(base, tokens[user], "/api/v1/devices").json()}
    assert ("smoke-1" in listed) is sees and ("north" in listed) is sees
    one = get(base, tokens[user], "/api/v1/devices/smoke-1")
    assert one.status_code == (200 if sees else 404)
    if not sees:
        assert listed == set()
        r = get(base, tokens[user], "/api/v1/devices/smoke-1/readings")
        assert (r.status_code, r.json()["detail"]) == (404, "no device 'smoke-1' in your part of the community")


def test_a_resident_sees_no_devices_and_no_events(api: tuple[str, dict[str, str]]) -> None:
    base, tokens = api
    assert get(base, tokens["r-1"], "/api/v1/events").status_code == 403
    assert get(base, tokens["r-1"], "/api/v1/devices").status_code == 403
