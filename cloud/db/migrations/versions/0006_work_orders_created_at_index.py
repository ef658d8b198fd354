"""work orders: an index on created_at (the supervision figures select their period by it)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.create_index(batch.f("ix_work_orders_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.drop_index(batch.f("ix_work_orders_created_at"))
