"""Engines and migrations for SQLite (the default) and PostgreSQL (production, tests).

engine = make_engine("postgresql+psycopg://user@host/db")   # or sqlite:///run/cloud.db
migrate(engine)           # alembic upgrade head
require_current(engine)   # refuse to run against an old schema
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "SchemaError",
    "alembic_config",
    "dialect_insert",
    "make_engine",
    "make_sessions",
    "migrate",
    "require_current",
]

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaError(Exception):
    """The database is not at the schema this code needs."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    u = make_url(url)
    if u.drivername == "postgresql":  # default to psycopg 3
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(u, pool_pre_ping=True, **kwargs)


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT that understands ON CONFLICT on the session's backend."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database {name!r}: use PostgreSQL or SQLite")  # pragma: no cover


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (alembic upgrade head)."""
    command.upgrade(alembic_config(engine), "head")


def require_current(engine: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise SchemaError(
            f"database {engine.url.render_as_string(hide_password=True)} is at schema {current or 'none'}, "
            f"this version needs {head}: run `sc cloud migrate`"
        )
