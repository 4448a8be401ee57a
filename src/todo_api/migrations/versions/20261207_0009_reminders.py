"""Reminders: when a task's reminder fires, how it was set, and when it was acknowledged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_AN_INSTANT = "reminder_minutes_before IS NULL OR remind_at IS NOT NULL"
ARMED = "remind_at IS NOT NULL AND reminder_acknowledged_at IS NULL"


def upgrade() -> None:
    # Existing tasks have no reminder. In place on SQLite, as in 0008.
    if op.get_context().dialect.name == "sqlite":
        op.execute("ALTER TABLE tasks ADD COLUMN remind_at DATETIME")
        op.execute(
            "ALTER TABLE tasks ADD COLUMN reminder_minutes_before INTEGER "
            f"CONSTRAINT ck_tasks_reminder_minutes_have_an_instant CHECK ({HAS_AN_INSTANT})"
        )
        op.execute("ALTER TABLE tasks ADD COLUMN reminder_tz TEXT")
        op.execute("ALTER TABLE tasks ADD COLUMN reminder_acknowledged_at DATETIME")
    else:
        op.add_column("tasks", sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True))
        op.add_column("tasks", sa.Column("reminder_minutes_before", sa.Integer(), nullable=True))
        op.add_column("tasks", sa.Column("reminder_tz", sa.Text(), nullable=True))
        op.add_column(
            "tasks",
            sa.Column("reminder_acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        )
        op.create_check_constraint(
            op.f("ck_tasks_reminder_minutes_have_an_instant"), "tasks", HAS_AN_INSTANT
        )
    op.create_index(
        "ix_tasks_user_id_remind_at_id",
        "tasks",
        ["user_id", "remind_at", "id"],
        postgresql_where=sa.text(ARMED),
        sqlite_where=sa.text(ARMED),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_remind_at_id", table_name="tasks")
    if op.get_context().dialect.name != "sqlite":
        op.drop_constraint(
            op.f("ck_tasks_reminder_minutes_have_an_instant"), "tasks", type_="check"
        )
    for column in (
        "reminder_acknowledged_at",
        "reminder_tz",
        "reminder_minutes_before",
        "remind_at",
    ):
        op.drop_column("tasks", column)
