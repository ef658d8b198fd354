"""residents: one embedding per face model (resident_embeddings); the ones kept so far are dlib's

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 16:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resident_embeddings",
        sa.Column("resident", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["resident"], ["residents.id"]),
        sa.PrimaryKeyConstraint("resident", "model"),
    )
    op.execute(
        "INSERT INTO resident_embeddings (resident, model, embedding) "
        "SELECT id, 'dlib-resnet-v1', embedding FROM residents WHERE embedding IS NOT NULL"
    )
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("embedding")


def downgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE residents SET embedding = (SELECT e.embedding FROM resident_embeddings e "
        "WHERE e.resident = residents.id AND e.model = 'dlib-resnet-v1')"
    )
    op.drop_table("resident_embeddings")
