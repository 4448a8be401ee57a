"""Store tags in Unicode NFC and key them by their NFC case fold.

"\u00e9" and "e\u0301" are one tag from now on. Tasks whose tags change (or that carried both
spellings, of which the first is kept) get a new version, so their ETags change with them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import json
import unicodedata
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

_tasks = sa.table(
    "tasks",
    sa.column("id", sa.BigInteger()),
    sa.column("user_id", sa.String()),
    sa.column("tags", sa.Text()),
    sa.column("version", sa.Integer()),
)
_task_tags = sa.table(
    "task_tags",
    sa.column("task_id", sa.BigInteger()),
    sa.column("key", sa.Text()),
    sa.column("user_id", sa.String()),
    sa.column("name", sa.Text()),
)


# The rules as of this revision, written out: a migration must not change with the app.
def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _nfc_key(name: str) -> str:
    return _nfc(_nfc(name).casefold())


def _plain_key(name: str) -> str:
    return name.casefold()


def upgrade() -> None:
    _rewrite(_nfc, _nfc_key)


def downgrade() -> None:
    # The names stay in NFC, which 0005 accepts as they are; its keys are plain case folds.
    _rewrite(lambda name: name, _plain_key)


def _rewrite(spell: Callable[[str], str], key: Callable[[str], str]) -> None:
    """Respell and rekey the tags of every task that has a tag beyond ASCII (which no rule
    here changes), in batches by id."""
    connection = op.get_bind()
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(_tasks.c.id, _tasks.c.user_id, _tasks.c.tags)
            .where(_tasks.c.id > last_id, _tasks.c.tags != "[]")
            .order_by(_tasks.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last_id = rows[-1].id
        for task_id, owner, stored in rows:
            names: list[str] = json.loads(stored)
            if all(name.isascii() for name in names):
                continue
            kept: dict[str, str] = {}
            for name in names:
                kept.setdefault(key(spell(name)), spell(name))
            if list(kept.values()) != names:
                respelled = json.dumps(
                    list(kept.values()), ensure_ascii=False, separators=(",", ":")
                )
                connection.execute(
                    sa.update(_tasks)
                    .where(_tasks.c.id == task_id)
                    .values(tags=respelled, version=_tasks.c.version + 1)
                )
            connection.execute(sa.delete(_task_tags).where(_task_tags.c.task_id == task_id))
            connection.execute(
                sa.insert(_task_tags),
                [
                    {"task_id": task_id, "key": tag_key, "user_id": owner, "name": name}
                    for tag_key, name in kept.items()
                ],
            )
