"""The Alembic migrations build exactly the schema of cloud/db/models.py, on SQLite and PostgreSQL; data migrations
keep what was there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, LargeBinary, bindparam, text

from cloud.db.engine import alembic_config, make_engine, migrate
from cloud.db.models import Base, UTCDateTime


def test_the_migrations_build_the_models_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ (a migration is missing or wrong): {diff}"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database with no schema at all: a fresh SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
        yield eng
        eng.dispose()
        return
    url: str = request.getfixturevalue("postgres_url")
    name = f"sc_mig_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    eng = make_engine(url.rsplit("/", 1)[0] + f"/{name}")
    try:
        yield eng
    finally:
        eng.dispose()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0005_keeps_the_size_of_old_dead_letters_and_cuts_their_payloads(empty_engine: Engine) -> None:
    cfg = alembic_config(empty_engine)
    command.upgrade(cfg, "0004")
    big = bytes(range(256)) * 40  # 10,240 bytes, every byte value
    insert = text("INSERT INTO dead_letters (received_at, topic, reason, payload) VALUES (:at, 't', :r, :p)")
    insert = insert.bindparams(bindparam("at", type_=UTCDateTime()), bindparam("p", type_=LargeBinary()))
    with empty_engine.begin() as conn:
        for reason, payload in (("small", b"{not json"), ("big", big), ("empty", b"")):
            conn.execute(insert, {"at": datetime(2026, 12, 1, tzinfo=UTC), "r": reason, "p": payload})
    migrate(empty_engine)
    with empty_engine.connect() as conn:
        rows = {r: (bytes(p), s) for r, p, s in conn.execute(text("SELECT reason, payload, size FROM dead_letters"))}
    assert rows == {"small": (b"{not json", 9), "big": (big[:4096], 10_240), "empty": (b"", 0)}
    command.downgrade(cfg, "0004")  # and back
    migrate(empty_engine)


def test_0009_keeps_every_enrolled_embedding_as_dlibs_and_goes_back(empty_engine: Engine) -> None:
    cfg = alembic_config(empty_engine)
    command.upgrade(cfg, "0008")
    emb = bytes(range(256)) * 2  # 512 bytes: 128 float32
    insert = text(
        "INSERT INTO residents (id, name, unit, location, embedding, version, photos, created_by, created_at, "
        "updated_at, deleted_at) VALUES (:id, 'n', NULL, NULL, :e, 1, 1, 'op', :at, :at, NULL)"
    ).bindparams(bindparam("at", type_=UTCDateTime()), bindparam("e", type_=LargeBinary()))
    with empty_engine.begin() as conn:
        for rid, e in (("r-1", emb), ("r-gone", None)):
            conn.execute(insert, {"id": rid, "e": e, "at": datetime(2026, 12, 1, tzinfo=UTC)})
    migrate(empty_engine)
    with empty_engine.connect() as conn:
        rows = [
            (r, m, bytes(e))
            for r, m, e in conn.execute(text("SELECT resident, model, embedding FROM resident_embeddings"))
        ]
    assert rows == [("r-1", "dlib-resnet-v1", emb)]
    command.downgrade(cfg, "0008")
    with empty_engine.connect() as conn:
        back = {
            r: (bytes(e) if e is not None else None)
            for r, e in conn.execute(text("SELECT id, embedding FROM residents"))
        }
    assert back == {"r-1": emb, "r-gone": None}
    migrate(empty_engine)
