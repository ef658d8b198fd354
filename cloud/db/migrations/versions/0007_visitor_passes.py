"""visitor passes: each pass the cloud signed, and its gates (with the revocation on its way to each)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 15:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cloud.db.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = cloud.db.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "visitor_passes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("resident", sa.String(length=64), nullable=False),
        sa.Column("visitor_name", sa.String(length=64), nullable=False),
        sa.Column("gates", cloud.db.models.JsonType, nullable=False),
        sa.Column("valid_from", _TIME, nullable=False),
        sa.Column("valid_until", _TIME, nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("revoked_at", _TIME, nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["resident"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("visitor_passes") as batch:
        batch.create_index(batch.f("ix_visitor_passes_created_at"), ["created_at"], unique=False)
        batch.create_index(batch.f("ix_visitor_passes_resident"), ["resident"], unique=False)
    op.create_table(
        "pass_gates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pass_id", sa.String(length=40), nullable=False),
        sa.Column("gate", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("command_id", sa.String(length=64), nullable=True),
        sa.Column("planned_at", _TIME, nullable=True),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.Column("acked_at", _TIME, nullable=True),
        sa.Column("next_attempt_at", _TIME, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["pass_id"], ["visitor_passes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("command_id"),
        sa.UniqueConstraint("pass_id", "gate", name="uq_pass_gates_pass_gate"),
    )
    with op.batch_alter_table("pass_gates") as batch:
        batch.create_index(batch.f("ix_pass_gates_gate"), ["gate"], unique=False)
        batch.create_index(batch.f("ix_pass_gates_next_attempt_at"), ["next_attempt_at"], unique=False)
        batch.create_index(batch.f("ix_pass_gates_pass_id"), ["pass_id"], unique=False)


def downgrade() -> None:
    op.drop_table("pass_gates")
    op.drop_table("visitor_passes")
