"""cloud.telemetry.influx: line protocol, and the batching writer against a real InfluxDB 1.x.

The shared ``influxdb`` fixture is one server for the session: every test uses its own database,
and the one test that stops the server starts it again before it ends. The 2.x write path is
checked against a stub for its URL and headers only (Debian ships InfluxDB 1.6).
"""

from __future__ import annotations

import calendar
import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.telemetry.influx import InfluxWriter, to_line
from harness import InfluxProcess, wait_until
from sc.contracts.messages import BinReading, ManholeReading, SmokeReading, Telemetry
from sc.mosquitto import free_port

LOGGER = "cloud.telemetry.influx"
BASE_NS = 1_700_000_000_000_000_000

# --------------------------------------------------------------------------- helpers

Make = Callable[..., InfluxWriter]


@pytest.fixture
def make_writer() -> Iterator[Make]:
    """Writers with test-speed timings, always stopped (thread joined, client closed) at the end."""
    made: list[InfluxWriter] = []

    def make(**kw: Any) -> InfluxWriter:
        kw.setdefault("flush_interval_s", 0.05)
        kw.setdefault("retry_min_s", 0.02)
        kw.setdefault("retry_max_s", 0.2)
        kw.setdefault("timeout_s", 5.0)
        w = InfluxWriter(**kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop(timeout=1.0)


def new_db() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def rows(influx: InfluxProcess, db: str, q: str) -> list[dict[str, Any]]:
    """Query with nanosecond epoch times, one dict per point."""
    r = httpx.get(f"{influx.url}/query", params={"q": q, "db": db, "epoch": "ns"}, timeout=10)
    r.raise_for_status()
    result = r.json()["results"][0]
    assert "error" not in result, result
    return [dict(zip(s["columns"], v, strict=True)) for s in result.get("series", []) for v in s["values"]]


def seqs(influx: InfluxProcess, db: str) -> list[int]:
    return sorted(int(r["seq"]) for r in rows(influx, db, "SELECT seq FROM m"))


def line(i: int) -> str:
    """A distinct point per i (same series: the timestamp must differ or points overwrite)."""
    return f"m,t=x seq={i}i {BASE_NS + i}"


# --------------------------------------------------------------------------- to_line

ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
ids = st.builds(lambda a, b: a + b, st.sampled_from(ID_CHARS), st.text(alphabet=ID_CHARS + "-_", max_size=63))
# Anything a tag value can hold in line protocol (no newlines, and no backslash: 1.x keeps it verbatim).
awkward = st.text(
    alphabet=st.characters(exclude_characters="\\\n\r", exclude_categories=["Cs"]), min_size=1, max_size=20
)
tags = st.one_of(ids, awkward, st.sampled_from(["a b", "c,d", "e=f", " ,= ", "中文 栋"]))


def fin(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


readings = st.one_of(
    st.builds(
        SmokeReading,
        smoke_density=fin(0, 100),
        temperature_c=fin(-40, 125),
        battery_pct=st.integers(0, 100),
        alarm=st.booleans(),
        fault=st.booleans(),
    ),
    st.builds(
        ManholeReading,
        tilt_deg=fin(-90, 90),
        water_level_cm=fin(0, 500),
        lid_open=st.booleans(),
        battery_pct=st.integers(0, 100),
    ),
    st.builds(
        BinReading,
        distance_cm=fin(0, 400),
        fill_pct=fin(0, 100),
        temperature_c=fin(-40, 125),
        battery_pct=st.integers(0, 100),
    ),
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=offsets)


def _split(s: str, sep: str) -> list[str]:
    """Split at ``sep`` where it is not backslash-escaped (escapes are kept for _unescape)."""
    parts, cur, i = [], "", 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            cur, i = cur + s[i : i + 2], i + 2
            continue
        if s[i] == sep:
            parts.append(cur)
            cur = ""
        else:
            cur += s[i]
        i += 1
    return [*parts, cur]


def _unescape(s: str) -> str:
    out, i = "", 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in ", =":
            i += 1
        out += s[i]
        i += 1
    return out


def _value(v: str) -> bool | int | float:
    if v in ("true", "false"):
        return v == "true"
    if v.endswith("i"):
        return int(v[:-1])
    return float(v)


def parse_line(text: str) -> tuple[str, dict[str, str], dict[str, bool | int | float], int]:
    """A tiny line-protocol parser (no string fields): measurement, tags, fields, timestamp."""
    assert "\n" not in text and "\r" not in text
    key, fields, ts = _split(text, " ")
    measurement, *tag_parts = _split(key, ",")
    tag_pairs = [_split(p, "=") for p in tag_parts]
    field_pairs = [_split(p, "=") for p in _split(fields, ",")]
    assert all(len(p) == 2 for p in tag_pairs + field_pairs), text
    return (
        _unescape(measurement),
        {_unescape(k): _unescape(v) for k, v in tag_pairs},
        {_unescape(k): _value(v) for k, v in field_pairs},
        int(ts),
    )


def telemetry(site: str, gateway: str, device: str, ts: datetime, reading: Any) -> Telemetry:
    """Built without validation so tags can hold what line protocol must escape."""
    return Telemetry.model_construct(site=site, gateway=gateway, device=device, ts=ts, reading=reading)


def expected_fields(t: Telemetry) -> dict[str, Any]:
    return {k: v for k, v in t.reading.model_dump().items() if k != "type"}


def test_to_line_writes_the_documented_line() -> None:
    t = Telemetry(
        site="heping",
        gateway="gw-1",
        device="smoke-1",
        ts=datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC),
        reading=SmokeReading(smoke_density=1.5, temperature_c=21, battery_pct=90, alarm=False, fault=True),
    )
    assert to_line(t) == (
        "smoke,device=smoke-1,gateway=gw-1,site=heping "
        "smoke_density=1.5,temperature_c=21.0,battery_pct=90i,alarm=false,fault=true 1700000000123456000"
    )
    odd = telemetry(
        "a b",
        "c,d",
        "e=f",
        datetime(1970, 1, 1, tzinfo=UTC),
        BinReading(distance_cm=1e-05, fill_pct=100, temperature_c=-40, battery_pct=0),
    )
    assert to_line(odd) == (
        r"bin,device=e\=f,gateway=c\,d,site=a\ b distance_cm=1e-05,fill_pct=100.0,temperature_c=-40.0,battery_pct=0i 0"
    )


@settings(max_examples=300, deadline=None)
@given(site=tags, gateway=tags, device=tags, ts=aware, reading=readings)
def test_to_line_parses_back_to_the_message(site: str, gateway: str, device: str, ts: datetime, reading: Any) -> None:
    t = telemetry(site, gateway, device, ts, reading)
    measurement, tag_set, fields, ns = parse_line(to_line(t))
    assert measurement == reading.type
    assert tag_set == {"site": site, "gateway": gateway, "device": device}
    want = expected_fields(t)
    assert fields == want
    assert {k: type(v) for k, v in fields.items()} == {k: type(v) for k, v in want.items()}  # 1 is not 1.0/True
    assert ns == calendar.timegm(ts.utctimetuple()) * 10**9 + ts.microsecond * 1000


# --------------------------------------------------------------------------- the writer, real InfluxDB 1.x


def test_points_are_written_exactly_tags_and_values(influxdb: InfluxProcess, make_writer: Make) -> None:
    db = new_db()
    t0 = datetime(2024, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)
    msgs = [
        Telemetry(
            site="heping",
            gateway="gw-1",
            device="smoke-1",
            ts=t0,
            reading=SmokeReading(
                smoke_density=0.1, temperature_c=99.99999999999999, battery_pct=87, alarm=True, fault=False
            ),
        ),
        Telemetry(
            site="heping",
            gateway="gw-1",
            device="mh-7",
            ts=t0 + timedelta(seconds=1),
            reading=ManholeReading(tilt_deg=-12.25, water_level_cm=1e-05, lid_open=False, battery_pct=100),
        ),
        Telemetry(
            site="heping",
            gateway="gw-2",
            device="bin-3",
            ts=t0 + timedelta(microseconds=1),
            reading=BinReading(distance_cm=33.3, fill_pct=91.7, temperature_c=-3.5, battery_pct=5),
        ),
        telemetry(
            "he ping", "gw,2", "bin=4", t0, BinReading(distance_cm=0, fill_pct=0, temperature_c=0, battery_pct=0)
        ),
    ]
    w = make_writer(url=influxdb.url, database=db).start()
    for m in msgs:
        w.submit(to_line(m))
    assert wait_until(lambda: w.stats()["written"] == len(msgs), 10), w.stats()

    got = {
        (r["site"], r["gateway"], r["device"]): r
        for kind in ("smoke", "manhole", "bin")
        for r in rows(influxdb, db, f'SELECT * FROM "{kind}"')
    }
    assert len(got) == len(msgs)
    for m in msgs:
        r = got[(m.site, m.gateway, m.device)]
        assert r["time"] == calendar.timegm(m.ts.utctimetuple()) * 10**9 + m.ts.microsecond * 1000
        for k, v in expected_fields(m).items():
            assert r[k] == v and isinstance(r[k], bool) == isinstance(v, bool), (k, r[k], v)
    s = w.stats()
    assert (s["rejected"], s["dropped"], s["failed_batches"], s["buffered"]) == (0, 0, 0, 0)
    assert s["last_success_ts"] is not None and s["last_error"] is None


def test_lines_go_in_batches_of_batch_size(influxdb: InfluxProcess, make_writer: Make) -> None:
    db = new_db()
    w = make_writer(url=influxdb.url, database=db, batch_size=5000)
    for i in range(12_000):  # queued before start: the batches are 5000 + 5000 + 2000 whatever the timing
        w.submit(line(i))
    assert w.stats()["buffered"] == 12_000
    w.start()
    assert wait_until(lambda: w.stats()["written"] == 12_000, 20), w.stats()
    assert w.stats()["requests"] == 3
    assert seqs(influxdb, db) == list(range(12_000))


def test_influxdb_down_then_back_loses_nothing(
    influxdb: InfluxProcess, make_writer: Make, caplog: pytest.LogCaptureFixture
) -> None:
    db = new_db()
    caplog.set_level(logging.INFO, logger=LOGGER)
    w = make_writer(url=influxdb.url, database=db, batch_size=500, max_buffer_lines=10_000).start()
    for i in range(100):
        w.submit(line(i))
    assert wait_until(lambda: w.stats()["written"] == 100, 10), w.stats()
    try:
        influxdb.stop()
        for i in range(100, 3100):
            w.submit(line(i))
        assert wait_until(lambda: w.stats()["failed_batches"] >= 5, 10), w.stats()
        s = w.stats()
        assert (s["written"], s["buffered"], s["dropped"], s["rejected"]) == (100, 3000, 0, 0)
        assert s["last_error"] is not None and "Connect" in s["last_error"]
    finally:
        if influxdb.proc is None:
            influxdb.start()  # same ports, config and data dir: the writer just reconnects
    assert wait_until(lambda: w.stats()["written"] == 3100, 15), w.stats()
    assert seqs(influxdb, db) == list(range(3100))
    assert w.stats()["buffered"] == 0

    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert sum("write failed" in m for m in messages) == 1, messages  # not one line per retry
    back = [m for m in messages if "is back" in m]
    assert len(back) == 1 and "backlog of 3000 lines" in back[0], messages
    assert sum("backlog flushed: 3000 lines" in m for m in messages) == 1, messages


def test_a_full_buffer_drops_the_oldest_lines_and_counts_them(influxdb: InfluxProcess, make_writer: Make) -> None:
    db = new_db()
    w = make_writer(url=influxdb.url, database=db, batch_size=300, max_buffer_lines=1000)
    for i in range(5000):
        w.submit(line(i))
    s = w.stats()
    assert (s["submitted"], s["buffered"], s["dropped"]) == (5000, 1000, 4000)
    w.start()
    assert wait_until(lambda: w.stats()["written"] == 1000, 10), w.stats()
    assert seqs(influxdb, db) == list(range(4000, 5000))  # the newest survive


def test_the_bound_holds_while_influxdb_is_unreachable(make_writer: Make) -> None:
    w = make_writer(url=f"http://127.0.0.1:{free_port()}", database="x", batch_size=100, max_buffer_lines=500)
    w.start()
    for i in range(5000):  # races the writer thread taking and putting back batches: the counts stay exact
        w.submit(line(i))
    assert wait_until(lambda: w.stats()["failed_batches"] >= 2, 10)
    s = w.stats()
    assert (s["submitted"], s["buffered"], s["dropped"], s["written"]) == (5000, 500, 4500, 0)
    w.stop(timeout=0.1)


def test_a_bad_line_is_rejected_and_does_not_block_the_batches_behind_it(
    influxdb: InfluxProcess, make_writer: Make, caplog: pytest.LogCaptureFixture
) -> None:
    db = new_db()
    caplog.set_level(logging.INFO, logger=LOGGER)
    good = [line(i) for i in range(150)]
    lines = [*good[:20], "bad line no fields", *good[20:70], "worse", *good[70:120]]
    lines += [f"m,t=x seq=1.5 {BASE_NS - 1}", *good[120:]]  # a float into an integer field: a type conflict
    w = make_writer(url=influxdb.url, database=db, batch_size=50)
    for x in lines:
        w.submit(x)
    w.start()
    assert wait_until(lambda: w.stats()["written"] + w.stats()["rejected"] == len(lines), 10), w.stats()
    s = w.stats()
    assert (s["written"], s["rejected"], s["failed_batches"], s["buffered"]) == (150, 3, 0, 0)
    assert s["requests"] == 4 and s["last_error"] is not None and "HTTP 400" in s["last_error"]
    assert seqs(influxdb, db) == list(range(150))
    refused = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]
    assert len(refused) == 3 and all("refused 1 of 50 lines" in m for m in refused), refused


def test_a_dropped_database_is_created_again(influxdb: InfluxProcess, make_writer: Make) -> None:
    db = new_db()
    w = make_writer(url=influxdb.url, database=db).start()
    w.submit(line(0))
    assert wait_until(lambda: w.stats()["written"] == 1, 10)
    influxdb.query(f'DROP DATABASE "{db}"')
    w.submit(line(1))
    assert wait_until(lambda: w.stats()["written"] == 2, 10), w.stats()
    assert w.stats()["failed_batches"] == 1 and "database not found" in str(w.stats()["last_error"])
    assert seqs(influxdb, db) == [1]


# --------------------------------------------------------------------------- never blocking, never raising


@pytest.fixture
def blackhole() -> Iterator[socket.socket]:
    """A port that accepts TCP connections (the kernel does) and never answers: a hung server."""
    srv = socket.create_server(("127.0.0.1", 0), backlog=8)
    try:
        yield srv
    finally:
        srv.close()


def test_submit_does_not_block_or_raise_while_a_request_hangs(blackhole: socket.socket, make_writer: Make) -> None:
    port = blackhole.getsockname()[1]
    w = make_writer(url=f"http://127.0.0.1:{port}", database="x", batch_size=100, timeout_s=30.0).start()
    blackhole.settimeout(5)
    conn, _ = blackhole.accept()  # the writer thread (CREATE DATABASE first) now waits for an answer
    with conn:
        for i in range(10_000):
            w.submit(line(i))
        s = w.stats()
        assert s["buffered"] == 10_000 and s["submitted"] == 10_000
        assert (s["failed_batches"], s["dropped"], s["written"]) == (0, 0, 0)  # all while the request hung
    blackhole.close()  # the server goes away: requests fail at once, the lines are kept
    assert wait_until(lambda: w.stats()["failed_batches"] >= 1, 5), w.stats()
    assert w.stats()["buffered"] == 10_000
    w.stop(timeout=0.1)
    w.submit("after stop")  # still never raises: counted as dropped
    assert w.stats()["dropped"] == 1 and w.stats()["buffered"] == 10_000


# --------------------------------------------------------------------------- InfluxDB 2.x path (stub only)


class _Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, statuses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.statuses = statuses
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()


class _StubHandler(BaseHTTPRequestHandler):
    server: _Stub

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.seen.append(("POST", self.path, dict(self.headers), body))
            status = self.server.statuses.pop(0) if self.server.statuses else 204
        payload = b"" if status == 204 else json.dumps({"code": "unavailable", "message": "busy"}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_v2_writes_to_the_bucket_with_the_token_and_retries_5xx(make_writer: Make) -> None:
    stub = _Stub([503, 503])
    t = threading.Thread(target=stub.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        w = make_writer(
            url=f"http://127.0.0.1:{stub.server_address[1]}/", token="s3cret", org="acme", bucket="sc", database="x"
        )
        for i in range(3):
            w.submit(line(i))
        w.start()
        assert wait_until(lambda: w.stats()["written"] == 3, 10), w.stats()
        w.stop()
    finally:
        stub.shutdown()
        stub.server_close()
        t.join(5)
    s = w.stats()
    assert (s["failed_batches"], s["requests"]) == (2, 3) and "HTTP 503: busy" in str(s["last_error"])
    assert len(stub.seen) == 3  # no CREATE DATABASE on 2.x: buckets are made by an admin
    for _method, path, headers, body in stub.seen:
        assert path == "/api/v2/write?org=acme&bucket=sc&precision=ns"
        assert headers["Authorization"] == "Token s3cret"
        assert body == "\n".join(line(i) for i in range(3)).encode()


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        InfluxWriter(url="http://127.0.0.1:1")
    with pytest.raises(ValueError):
        InfluxWriter(url="http://127.0.0.1:1", database="x", retry_min_s=5, retry_max_s=1)
