"""GET /api/v1/devices/{id}/readings: a device's readings from a real InfluxDB 1.x, through the API
(built with create_api, served by uvicorn on a free port), and through a running cloud that has
--influx-url."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from cloud.api.app import create_api
from cloud.api.deps import ApiContext
from cloud.app import CloudApp
from cloud.db.engine import make_engine, make_sessions, migrate
from cloud.settings import CloudSettings
from cloud.telemetry.history import TelemetryHistory
from cloud.telemetry.influx import InfluxWriter, to_line
from cloud.users import create_user
from cloud.workorders.routing import Router
from cloud.workorders.states import Role
from harness import InfluxProcess, Site
from sc.contracts.messages import SmokeReading, Telemetry
from sc.mosquitto import free_port, wait_port

PASSWORD = "correct horse battery"
NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
URL = "/api/v1/devices/smoke-1/readings"


def write_smoke(influx: InfluxProcess, db: str, readings: list[tuple[datetime, float]]) -> None:
    with InfluxWriter(url=influx.url, database=db, flush_interval_s=0.05) as writer:
        for ts, density in readings:
            r = SmokeReading(smoke_density=density, temperature_c=21.0, battery_pct=77, alarm=False, fault=False)
            writer.submit(to_line(Telemetry(site="test", gateway="gw-a", device="smoke-1", ts=ts, reading=r)))
    assert writer.stats()["written"] == len(readings)


class Api:
    def __init__(self, client: httpx.Client, tokens: dict[str, str]) -> None:
        self.client, self.tokens = client, tokens

    def get(self, user: str | None, url: str = URL, **params: str | int | list[str]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.get(url, params=params, headers=headers)


@contextmanager
def make_api(tmp_path: Path, router: Router, telemetry: TelemetryHistory | None) -> Iterator[Api]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    migrate(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        create_user(s, user_id="op-1", name="op", role=Role.OPERATOR, password=PASSWORD, now=NOW)
        create_user(s, user_id="r-1", name="r", role=Role.RESIDENT, password=PASSWORD, now=NOW, location="b1-u1")
    ctx = ApiContext(site=router.site, router=router, sessions=sessions, clock=lambda: NOW, telemetry=telemetry)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_api(ctx), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_port(port, 10)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            tokens = {}
            for uid in ("op-1", "r-1"):
                r = client.post("/api/v1/auth/token", data={"username": uid, "password": PASSWORD})
                assert r.status_code == 200, r.text
                tokens[uid] = r.json()["access_token"]
            yield Api(client, tokens)
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()


@pytest.fixture
def influx_db(influxdb: InfluxProcess) -> str:
    """A fresh database with smoke-1's readings: every 10 min over the last 24 h, density 1.0 in the
    first half of each hour and 3.0 in the second; one more 25 h ago (out of the default range)."""
    db = f"api_{uuid.uuid4().hex[:12]}"
    start = NOW - timedelta(hours=24)
    readings = [(start + timedelta(minutes=10 * i), 1.0 if i % 6 < 3 else 3.0) for i in range(144)]
    write_smoke(influxdb, db, [*readings, (NOW - timedelta(hours=25), 99.0)])
    return db


@pytest.fixture
def api(tmp_path: Path, router: Router, influxdb: InfluxProcess, influx_db: str) -> Iterator[Api]:
    with make_api(tmp_path, router, TelemetryHistory(url=influxdb.url, database=influx_db)) as api:
        yield api


def test_readings_of_the_last_day_by_default(api: Api) -> None:
    r = api.get("op-1", points=48)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["device"] == "smoke-1" and body["bucket_s"] == 1800
    assert body["since"] == "2026-01-01T12:00:00Z" and body["until"] == "2026-01-02T12:00:00Z"
    series = {s["field"]: s for s in body["series"]}
    assert list(series) == ["smoke_density", "temperature_c", "battery_pct", "alarm", "fault"]
    density = series["smoke_density"]
    assert density["aggregate"] == "mean" and len(density["points"]) == 48
    assert density["points"][:3] == [
        ["2026-01-01T12:00:00Z", 1.0],
        ["2026-01-01T12:30:00Z", 3.0],
        ["2026-01-01T13:00:00Z", 1.0],
    ]
    assert [v for _, v in density["points"]] == [1.0, 3.0] * 24
    assert series["alarm"]["aggregate"] == "max"


def test_a_chosen_range_and_field(api: Api) -> None:
    r = api.get(
        "op-1", since="2026-01-01T12:00:00+00:00", until="2026-01-01T14:00:00Z", field="smoke_density", points=10
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket_s"] == 720 and [s["field"] for s in body["series"]] == ["smoke_density"]
    # 12 min buckets from 12:00: readings at 12:00 12:10 | 12:20 | 12:30 | 12:40 | 12:50 | 13:00 13:10 | ...
    assert [v for _, v in body["series"][0]["points"]] == [1.0, 1.0, 3.0, 3.0, 3.0, 1.0, 1.0, 3.0, 3.0, 3.0]
    many = api.get("op-1", field=["alarm", "battery_pct"], points=10).json()
    assert [s["field"] for s in many["series"]] == ["alarm", "battery_pct"]
    assert api.get("op-1", URL.replace("smoke-1", "smoke-9")).json()["series"] == []


def test_bad_requests_get_422(api: Api) -> None:
    assert api.get("op-1", since="2026-01-01T12:00:00").status_code == 422  # no time zone
    assert api.get("op-1", until="2026-01-01T12:00:00").status_code == 422
    r = api.get("op-1", since="2026-01-02T12:00:00Z", until="2026-01-02T12:00:00Z")
    assert r.status_code == 422 and "before" in r.json()["detail"]
    assert api.get("op-1", since="2026-01-03T00:00:00Z").status_code == 422  # after the default until (now)
    assert api.get("op-1", points=5).status_code == 422
    assert api.get("op-1", points=2001).status_code == 422
    r = api.get("op-1", field="nope")
    assert r.status_code == 422 and "unknown fields" in r.json()["detail"]


def test_sign_in_and_role(api: Api) -> None:
    assert api.get(None).status_code == 401
    assert api.get("r-1").status_code == 403


def test_no_influxdb_configured_is_503(tmp_path: Path, router: Router) -> None:
    with make_api(tmp_path, router, None) as api:
        r = api.get("op-1")
        assert r.status_code == 503 and "no InfluxDB" in r.json()["detail"]


def test_influxdb_down_is_503(tmp_path: Path, router: Router) -> None:
    down = TelemetryHistory(url=f"http://127.0.0.1:{free_port()}", database="sc", timeout_s=2)
    with make_api(tmp_path, router, down) as api:
        r = api.get("op-1")
        assert r.status_code == 503 and "cannot be reached" in r.json()["detail"]


def test_influxdb_refusing_the_query_is_502(tmp_path: Path, router: Router, influxdb: InfluxProcess) -> None:
    missing = TelemetryHistory(url=influxdb.url, database=f"none_{uuid.uuid4().hex[:8]}")
    with make_api(tmp_path, router, missing) as api:
        r = api.get("op-1")
        assert r.status_code == 502 and "database not found" in r.json()["detail"]


def test_the_cloud_serves_readings_from_its_influxdb(
    site: Site, db: Engine, influxdb: InfluxProcess, tmp_path: Path
) -> None:
    """The running cloud builds the reader from the writer's settings (--influx-url, database)."""
    dbname = f"app_{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC).replace(microsecond=0)
    write_smoke(influxdb, dbname, [(now - timedelta(minutes=5), 2.5)])
    with make_sessions(db).begin() as s:
        create_user(s, user_id="op-1", name="op", role=Role.OPERATOR, password=PASSWORD, now=now)
    settings = CloudSettings.model_validate(
        {
            "database_url": db.url.render_as_string(hide_password=False),
            "api_port": 0,
            "influx_url": influxdb.url,
            "influx_database": dbname,
            "media_dir": str(tmp_path / "media"),
            "pass_key_file": str(tmp_path / "keys" / "pass.pem"),
        }
    )
    app = CloudApp(site.loaded, settings)
    app.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{app.api_port}", timeout=10) as c:
            token = c.post("/api/v1/auth/token", data={"username": "op-1", "password": PASSWORD}).json()
            r = c.get(
                URL, params={"field": "smoke_density"}, headers={"Authorization": f"Bearer {token['access_token']}"}
            )
            assert r.status_code == 200, r.text
            assert [v for _, v in r.json()["series"][0]["points"] if v is not None] == [2.5]
    finally:
        app.stop()
