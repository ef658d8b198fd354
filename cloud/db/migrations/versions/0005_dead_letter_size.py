"""dead letters: the message's size; payloads cut to their first 4 KiB

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: cloud.workorders.store.DEAD_LETTER_PAYLOAD_BYTES when this migration was written (a migration keeps its own)
KEEP_BYTES = 4096


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("size", sa.Integer(), nullable=True))
    # the rows so far kept the whole message: their size is their payload's, then the payload is cut
    # (substr and length take bytes of a bytea in PostgreSQL and of a blob in SQLite)
    op.execute("UPDATE dead_letters SET size = length(payload)")
    op.execute(
        f"UPDATE dead_letters SET payload = substr(payload, 1, {KEEP_BYTES}) WHERE length(payload) > {KEEP_BYTES}"
    )
    with op.batch_alter_table("dead_letters") as batch:
        batch.alter_column("size", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("size")
