"""Create the tasks table.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.CheckConstraint(
            "length(user_id) BETWEEN 1 AND 128", name=op.f("ck_tasks_user_id_length")
        ),
        sa.CheckConstraint("length(title) BETWEEN 1 AND 200", name=op.f("ck_tasks_title_length")),
        sa.CheckConstraint(
            "description IS NULL OR length(description) <= 1000",
            name=op.f("ck_tasks_description_length"),
        ),
        sa.CheckConstraint(
            "(completed_at IS NULL) = (NOT completed)",
            name=op.f("ck_tasks_completed_at_matches_completed"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tasks_user_id_created_at_id", "tasks", ["user_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_created_at_id", table_name="tasks")
    op.drop_table("tasks")
