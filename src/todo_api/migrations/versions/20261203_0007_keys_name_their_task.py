"""An idempotency key names its task; the stored response is no longer written.

A keyed create now writes its key, task and tag rows in one transaction, and a repeat is
answered with the task as it was created, rebuilt from the key (todo_api.db.idempotency).
So a key row has a task and no response, which the check added in 0002 refused. The
`response` column stays, unused, so that a service of the previous version still running
during the upgrade keeps working. A key that version stored is replayed from its task id and
its own time, which that version took a moment before the task's: within the key's last day,
such a replay can show `created_at` a few milliseconds off the first answer.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "ck_idempotency_keys_response_names_its_task"


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_constraint(op.f(_CHECK), type_="check")


def downgrade() -> None:
    # The previous version replays only keys that stored their response: the others are
    # forgotten (their tasks stay), so a repeat of one of them creates anew.
    op.execute("DELETE FROM idempotency_keys WHERE (task_id IS NULL) <> (response IS NULL)")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.create_check_constraint(op.f(_CHECK), "(task_id IS NULL) = (response IS NULL)")
