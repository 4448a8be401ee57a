"""Add tasks.priority (low, medium, high, stored as their rank 1-3) and its index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


CHECK = "priority BETWEEN 1 AND 3"


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table, and every
    # existing task becomes "medium". Not Alembic's batch mode on SQLite: it copies the
    # table, and the copy loses AUTOINCREMENT, so deleted tasks' ids would be handed out
    # again. SQLite adds a column with its own CHECK in place.
    if op.get_context().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE tasks ADD COLUMN priority SMALLINT DEFAULT 2 NOT NULL "
            f"CONSTRAINT ck_tasks_priority_known CHECK ({CHECK})"
        )
    else:
        op.add_column(
            "tasks",
            sa.Column("priority", sa.SmallInteger(), server_default=sa.text("2"), nullable=False),
        )
        op.create_check_constraint(op.f("ck_tasks_priority_known"), "tasks", CHECK)
    op.create_index("ix_tasks_user_id_priority_id", "tasks", ["user_id", "priority", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_priority_id", table_name="tasks")
    if op.get_context().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_tasks_priority_known"), "tasks", type_="check")
    # SQLite drops the column, and the CHECK that belongs to it, in place.
    op.drop_column("tasks", "priority")
