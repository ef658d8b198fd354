"""Database fixtures: every data-layer test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from cloud.db.engine import make_engine, migrate
from cloud.db.models import Base
from cloud.workorders.routing import Router
from harness import DATA
from sc.config.loader import load_site_config


@pytest.fixture(scope="session")
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    eng = make_engine(postgres_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
        migrate(eng)
        yield eng
        eng.dispose()
        return
    pg: Engine = request.getfixturevalue("pg_engine")
    tables = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    with pg.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield pg


@pytest.fixture(scope="session")
def router() -> Router:
    return Router(load_site_config(DATA / "site.yaml").site)
