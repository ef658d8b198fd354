"""cloud.telemetry.history: readings written by the real InfluxWriter, read back downsampled from a
real InfluxDB 1.x (the session's ``influxdb``; every test uses its own database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cloud.telemetry.history import HistoryError, HistoryUnavailable, TelemetryHistory, reading_fields
from cloud.telemetry.influx import InfluxWriter, to_line
from harness import InfluxProcess
from sc.contracts.messages import BinReading, SmokeReading, Telemetry
from sc.mosquitto import free_port

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# smoke-1, one reading every 10 s from T0: [0, 30) s averages 2.0, [30, 60) s 6.0; [5, 35) s 3.0, [35, 65) s 7.0
DENSITY = [1.0, 2.0, 3.0, 4.0, 8.0, 6.0]
BATTERY = [90, 90, 87, 80, 80, 80]
ALARM = [False, False, False, False, True, False]


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def smoke(device: str, i: int, density: float) -> Telemetry:
    reading = SmokeReading(
        smoke_density=density, temperature_c=20.0, battery_pct=BATTERY[i], alarm=ALARM[i], fault=False
    )
    return Telemetry(site="test", gateway="gw-a", device=device, ts=s(10 * i), reading=reading)


def store(influx: InfluxProcess, telemetry: list[Telemetry]) -> str:
    """A fresh database holding ``telemetry``, written by the cloud's own writer."""
    db = f"h_{uuid.uuid4().hex[:12]}"
    with InfluxWriter(url=influx.url, database=db, flush_interval_s=0.05) as writer:
        for t in telemetry:
            writer.submit(to_line(t))
    assert writer.stats()["written"] == len(telemetry), writer.stats()
    return db


@pytest.fixture
def history(influxdb: InfluxProcess) -> TelemetryHistory:
    data = [smoke("smoke-1", i, d) for i, d in enumerate(DENSITY)]
    data += [smoke("smoke-2", i, 50.0) for i in range(6)]  # another device in the same measurement
    data.append(
        Telemetry(
            site="test", gateway="gw-a", device="bin-1", ts=s(15),
            reading=BinReading(distance_cm=30.0, fill_pct=75.5, temperature_c=18.0, battery_pct=60),
        )
    )  # fmt: skip
    return TelemetryHistory(url=influxdb.url, database=store(influxdb, data))


def values(
    h: TelemetryHistory, *, device: str, since: datetime, until: datetime, points: int, fields: list[str] | None = None
) -> dict[str, list[tuple[datetime, float | None]]]:
    result = h.query(device=device, since=since, until=until, points=points, fields=fields)
    return {f.field: f.points for f in result.series}


def test_means_per_bucket_and_the_max_of_flags(history: TelemetryHistory) -> None:
    result = history.query(device="smoke-1", since=T0, until=s(60), points=2)
    assert result.bucket_s == 30
    assert (result.device, result.since, result.until) == ("smoke-1", T0, s(60))
    assert [(f.field, f.aggregate) for f in result.series] == [
        ("smoke_density", "mean"),
        ("temperature_c", "mean"),
        ("battery_pct", "mean"),
        ("alarm", "max"),
        ("fault", "max"),
    ]
    got = {f.field: f.points for f in result.series}
    assert got["smoke_density"] == [(T0, 2.0), (s(30), 6.0)]
    assert got["temperature_c"] == [(T0, 20.0), (s(30), 20.0)]
    assert got["battery_pct"] == [(T0, 89.0), (s(30), 80.0)]
    assert got["alarm"] == [(T0, 0.0), (s(30), 1.0)]  # the one alarm reading is not averaged away
    assert got["fault"] == [(T0, 0.0), (s(30), 0.0)]


def test_buckets_start_at_since_and_until_is_excluded(history: TelemetryHistory) -> None:
    got = values(history, device="smoke-1", since=s(5), until=s(65), points=2, fields=["smoke_density"])
    assert got == {"smoke_density": [(s(5), 3.0), (s(35), 7.0)]}

    # one-second buckets: the readings at 10, 20 and 30 s are in [10, 40); 0 and 40 s are not
    result = history.query(device="smoke-1", since=s(10), until=s(40), points=300, fields=["smoke_density"])
    assert result.bucket_s == 1
    points = result.series[0].points
    assert len(points) == 30 and points[0][0] == s(10) and points[-1][0] == s(39)
    assert [(t, v) for t, v in points if v is not None] == [(s(10), 2.0), (s(20), 3.0), (s(30), 4.0)]


def test_at_most_points_buckets(history: TelemetryHistory) -> None:
    result = history.query(device="smoke-1", since=s(-3600), until=s(3600), points=7, fields=["alarm"])
    assert result.bucket_s == 1029  # ceil(7200 / 7)
    assert len(result.series[0].points) <= 7
    assert [v for _, v in result.series[0].points if v is not None] == [1.0]


def test_fields_are_picked_in_the_order_asked_and_a_device_has_only_its_own(history: TelemetryHistory) -> None:
    got = values(history, device="smoke-1", since=T0, until=s(60), points=1, fields=["alarm", "smoke_density"])
    assert got == {"alarm": [(T0, 1.0)], "smoke_density": [(T0, 4.0)]}
    got = values(history, device="bin-1", since=T0, until=s(60), points=1)
    assert got == {
        "temperature_c": [(T0, 18.0)],
        "battery_pct": [(T0, 60.0)],
        "distance_cm": [(T0, 30.0)],
        "fill_pct": [(T0, 75.5)],
    }
    with pytest.raises(ValueError, match="unknown fields"):
        history.query(device="smoke-1", since=T0, until=s(60), fields=["nope"])


def test_an_unknown_device_or_an_empty_range_gives_no_series(history: TelemetryHistory) -> None:
    assert history.query(device="smoke-9", since=T0, until=s(60)).series == []
    assert history.query(device="smoke-1", since=s(60), until=s(120)).series == []
    # quotes in the device id stay inside the string literal: no other device's data, no error
    for device in ["x' OR device='smoke-1", 'x" OR "device"=\'smoke-1\'', "x\\", "smoke-1'"]:
        assert history.query(device=device, since=T0, until=s(60)).series == []


def test_bad_arguments_are_refused(influxdb: InfluxProcess) -> None:
    h = TelemetryHistory(url=influxdb.url, database="sc")
    with pytest.raises(ValueError, match="time zone"):
        h.query(device="smoke-1", since=datetime(2026, 1, 1), until=s(60))
    with pytest.raises(ValueError, match="before"):
        h.query(device="smoke-1", since=s(60), until=s(60))
    with pytest.raises(ValueError, match=r"2\.x"):
        TelemetryHistory(url=influxdb.url, token="t", org="o", bucket="b")
    with pytest.raises(ValueError, match="database"):
        TelemetryHistory(url=influxdb.url)


def test_influxdb_down_or_refusing_is_a_clear_error(influxdb: InfluxProcess) -> None:
    down = TelemetryHistory(url=f"http://127.0.0.1:{free_port()}", database="sc", timeout_s=2)
    with pytest.raises(HistoryUnavailable, match="cannot be reached") as exc_info:
        down.query(device="smoke-1", since=T0, until=s(60))
    assert exc_info.value.__cause__ is not None

    missing = TelemetryHistory(url=influxdb.url, database=f"none_{uuid.uuid4().hex[:8]}")
    with pytest.raises(HistoryError, match="database not found") as refused:
        missing.query(device="smoke-1", since=T0, until=s(60))
    assert not isinstance(refused.value, HistoryUnavailable)


def test_reading_fields_cover_the_contract() -> None:
    fields = reading_fields()
    assert fields["smoke_density"] == "mean" and fields["battery_pct"] == "mean"
    assert {f for f, agg in fields.items() if agg == "max"} == {"alarm", "fault", "lid_open"}
    assert "type" not in fields
