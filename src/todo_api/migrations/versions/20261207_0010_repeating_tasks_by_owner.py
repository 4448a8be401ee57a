"""An index of each owner's repeating tasks by id, for complete-all's pages of them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPEATING = "recurrence IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_tasks_user_id_id_repeating",
        "tasks",
        ["user_id", "id"],
        postgresql_where=sa.text(REPEATING),
        sqlite_where=sa.text(REPEATING),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_user_id_id_repeating", table_name="tasks")
