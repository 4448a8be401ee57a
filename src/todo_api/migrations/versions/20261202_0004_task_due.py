"""Add tasks.due_date (an all-day task's day) and tasks.due_at (a timed task's instant).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ONE_DUE = "due_date IS NULL OR due_at IS NULL"


def upgrade() -> None:
    # Nullable, no default: existing tasks have no due. In place on SQLite, as in 0003
    # (batch mode would copy the table and lose AUTOINCREMENT).
    if op.get_context().dialect.name == "sqlite":
        op.execute("ALTER TABLE tasks ADD COLUMN due_date DATE")
        op.execute(
            "ALTER TABLE tasks ADD COLUMN due_at DATETIME "
            f"CONSTRAINT ck_tasks_one_due CHECK ({ONE_DUE})"
        )
    else:
        op.add_column("tasks", sa.Column("due_date", sa.Date(), nullable=True))
        op.add_column("tasks", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        op.create_check_constraint(op.f("ck_tasks_one_due"), "tasks", ONE_DUE)
    op.create_index("ix_tasks_user_id_due_date", "tasks", ["user_id", "due_date"])
    op.create_index("ix_tasks_user_id_due_at", "tasks", ["user_id", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_due_at", table_name="tasks")
    op.drop_index("ix_tasks_user_id_due_date", table_name="tasks")
    if op.get_context().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_tasks_one_due"), "tasks", type_="check")
    # SQLite drops each column in place; the CHECK belongs to due_at, so due_at goes first.
    op.drop_column("tasks", "due_at")
    op.drop_column("tasks", "due_date")
