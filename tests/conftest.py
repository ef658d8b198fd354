"""Fixtures: every server a test needs is real, on a free port, started here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from harness import InfluxProcess, Site, make_site

PG_ADMIN_URL = os.environ.get("SC_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A test site config in a temp dir, with its own Mosquitto (started)."""
    s = make_site(tmp_path)
    s.broker.start()
    try:
        yield s
    finally:
        s.broker.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxProcess]:
    influx = InfluxProcess(tmp_path_factory.mktemp("influxdb")).start()
    try:
        yield influx
    finally:
        influx.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL at 127.0.0.1:5432, dropped after the run."""
    name = f"sc_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL}: start it "
            "(pg_ctlcluster 15 main start) or set SC_TEST_PG_ADMIN"
        ) from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
