"""Add tasks.tags (each task's tags as sent) and task_tags (one row per tag, for lookups).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CODE_POINT_TEXT = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    # Existing tasks get no tags. In place on SQLite, as in 0003 (batch mode would copy
    # the table and lose AUTOINCREMENT); a constant default makes that allowed.
    op.add_column(
        "tasks", sa.Column("tags", sa.Text(), nullable=False, server_default=sa.text("'[]'"))
    )
    op.create_table(
        "task_tags",
        sa.Column(
            "task_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("tasks.id", name=op.f("fk_task_tags_task_id_tasks"), ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", CODE_POINT_TEXT, nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("name", CODE_POINT_TEXT, nullable=False),
        sa.PrimaryKeyConstraint("task_id", "key", name=op.f("pk_task_tags")),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 40", name=op.f("ck_task_tags_name_length")),
    )
    op.create_index("ix_task_tags_user_id_key_task_id", "task_tags", ["user_id", "key", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_tags_user_id_key_task_id", table_name="task_tags")
    op.drop_table("task_tags")
    op.drop_column("tasks", "tags")
