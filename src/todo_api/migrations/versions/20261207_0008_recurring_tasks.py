"""Recurring tasks: a task's rule and zone, and its place in its series.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_DUE = "recurrence IS NULL OR due_date IS NOT NULL OR due_at IS NOT NULL"
HAS_ZONE = "(recurrence IS NULL) = (recurrence_tz IS NULL)"
OCCURRENCE_POSITIVE = "occurrence >= 1"
IN_A_SERIES = "series_id IS NOT NULL"
_CHECKS = {
    "recurrence_has_due": HAS_DUE,
    "recurrence_has_zone": HAS_ZONE,
    "occurrence_positive": OCCURRENCE_POSITIVE,
}


def upgrade() -> None:
    # Existing tasks do not repeat and are each the first of their own series. In place on
    # SQLite, as in 0003 and 0004 (batch mode would copy the table and lose AUTOINCREMENT);
    # there a CHECK rides on the column it is added with.
    if op.get_context().dialect.name == "sqlite":
        op.execute("ALTER TABLE tasks ADD COLUMN recurrence TEXT")
        op.execute(
            "ALTER TABLE tasks ADD COLUMN recurrence_tz TEXT "
            f"CONSTRAINT ck_tasks_recurrence_has_due CHECK ({HAS_DUE}) "
            f"CONSTRAINT ck_tasks_recurrence_has_zone CHECK ({HAS_ZONE})"
        )
        op.execute(
            "ALTER TABLE tasks ADD COLUMN recurrence_from_completion BOOLEAN NOT NULL DEFAULT 0"
        )
        op.execute("ALTER TABLE tasks ADD COLUMN series_id BIGINT")
        op.execute(
            "ALTER TABLE tasks ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 1 "
            f"CONSTRAINT ck_tasks_occurrence_positive CHECK ({OCCURRENCE_POSITIVE})"
        )
        op.execute("ALTER TABLE tasks ADD COLUMN next_occurrence_id BIGINT")
    else:
        op.add_column("tasks", sa.Column("recurrence", sa.Text(), nullable=True))
        op.add_column("tasks", sa.Column("recurrence_tz", sa.Text(), nullable=True))
        op.add_column(
            "tasks",
            sa.Column(
                "recurrence_from_completion",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            ),
        )
        op.add_column("tasks", sa.Column("series_id", sa.BigInteger(), nullable=True))
        op.add_column(
            "tasks",
            sa.Column("occurrence", sa.Integer(), nullable=False, server_default=sa.text("1")),
        )
        op.add_column("tasks", sa.Column("next_occurrence_id", sa.BigInteger(), nullable=True))
        for name, condition in _CHECKS.items():
            op.create_check_constraint(op.f(f"ck_tasks_{name}"), "tasks", condition)
    # Partial: the tasks of no series (nearly all) are not written to it.
    op.create_index(
        "ix_tasks_series_id_occurrence",
        "tasks",
        ["series_id", "occurrence"],
        unique=True,
        postgresql_where=sa.text(IN_A_SERIES),
        sqlite_where=sa.text(IN_A_SERIES),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_series_id_occurrence", table_name="tasks")
    if op.get_context().dialect.name != "sqlite":
        for name in _CHECKS:
            op.drop_constraint(op.f(f"ck_tasks_{name}"), "tasks", type_="check")
    # SQLite drops each column in place, with the CHECKs that ride on it.
    for column in (
        "next_occurrence_id",
        "occurrence",
        "series_id",
        "recurrence_from_completion",
        "recurrence_tz",
        "recurrence",
    ):
        op.drop_column("tasks", column)
