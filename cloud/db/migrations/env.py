"""Alembic environment: the engine comes from cloud.db.engine (see alembic_config)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from cloud.db.engine import make_engine
from cloud.db.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):  # run from the alembic command line: sqlalchemy.url in alembic.ini
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///run/cloud.db")

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by making a new one and dropping the old: the rows that refer to it must not stop
        # that (checked at the end instead). Outside any transaction, where the pragma takes effect.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows that refer to nothing: {broken[:5]}")
    connection.commit()
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
