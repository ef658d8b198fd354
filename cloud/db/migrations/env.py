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
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
