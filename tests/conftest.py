"""Fixtures: every server a test needs is real, on a free port, started here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text

from cloud.db.engine import make_engine, migrate
from cloud.db.models import Base
from cloud.workorders.routing import Router
from harness import DATA, InfluxProcess, Site, make_site
from sc.config.loader import load_site_config

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


@pytest.fixture(scope="session")
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    """The test database, migrated to the current schema once per run."""
    eng = make_engine(postgres_url)
    migrate(eng)
    yield eng
    eng.dispose()


def _truncate(engine: Engine) -> None:
    tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db(pg_engine: Engine) -> Iterator[Engine]:
    """The PostgreSQL test database, emptied for this test."""
    _truncate(pg_engine)
    yield pg_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The same test on a fresh SQLite file and on the (emptied) PostgreSQL database."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
        migrate(eng)
        yield eng
        eng.dispose()
        return
    pg: Engine = request.getfixturevalue("pg_engine")
    _truncate(pg)
    yield pg


@pytest.fixture(scope="session")
def router() -> Router:
    """Routing for the test site (tests/data/site.yaml)."""
    return Router(load_site_config(DATA / "site.yaml").site)
