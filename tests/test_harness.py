"""The harness itself: each real server starts, answers and stops."""

from __future__ import annotations

import psycopg

from harness import Collector, InfluxProcess, Site, wait_until


def test_mosquitto_with_generated_accounts_accepts_the_cloud(site: Site) -> None:
    col = Collector(site).start()
    try:
        assert col.connected.is_set()
        assert wait_until(lambda: col.dropped() is not None, 5), "no $SYS dropped counter"
        assert col.dropped() == 0
    finally:
        col.stop()


def test_influxdb_writes_and_queries_line_protocol(influxdb: InfluxProcess) -> None:
    influxdb.query("CREATE DATABASE harness")
    assert influxdb.write("harness", "smoke,device=s1 density=1.5 1700000000000000000") == 204
    res = influxdb.query("SELECT density FROM smoke", db="harness")
    assert res["results"][0]["series"][0]["values"] == [["2023-11-14T22:13:20Z", 1.5]]


def test_postgres_database_is_this_runs_own_and_writable(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        (name,) = conn.execute("SELECT current_database()").fetchone() or ("",)
        assert name.startswith("sc_test_") and postgres_url.endswith(f"/{name}")
        conn.execute("CREATE TEMPORARY TABLE harness_check (x int)")
        conn.execute("INSERT INTO harness_check VALUES (42)")
        assert conn.execute("SELECT x FROM harness_check").fetchone() == (42,)
