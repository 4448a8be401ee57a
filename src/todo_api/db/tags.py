"""Tags: the rows of `task_tags` behind tag filters and counts. Each query takes the owner.

A task's tags are stored twice, in one transaction: as sent on the task row (what a read
returns) and one row per tag under its case-folded key (what a filter or count looks up).
"""

import unicodedata
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ClauseElement,
    ColumnElement,
    Insert,
    Integer,
    String,
    bindparam,
    delete,
    func,
    select,
)

from todo_api.db.database import Database, Session
from todo_api.db.models import TAGS_MAX_COUNT, task_tags_table
from todo_api.db.value_list import ValueList, one_of

_tt = task_tags_table.c
_OWNER = bindparam("owner", type_=String())
_TASK_ID = bindparam("task_id", type_=BigInteger())


def tag_key(tag: str) -> str:
    """What a tag is compared by: tags that differ only by case, or by how their characters
    are composed, have the same key (the case fold of their NFC form, itself in NFC)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", tag).casefold())


@lru_cache(maxsize=TAGS_MAX_COUNT)  # one per count of tags a task may have
def _insert(count: int) -> Insert:
    rows = [
        {
            "task_id": _TASK_ID,
            "user_id": _OWNER,
            "key": bindparam(f"tag_key_{index}", type_=String()),
            "name": bindparam(f"tag_name_{index}", type_=String()),
        }
        for index in range(count)
    ]
    return task_tags_table.insert().values(rows)


_CLEAR = delete(task_tags_table).where(_tt.user_id == _OWNER, _tt.task_id == _TASK_ID)
# Spellings that differ by case count as one tag, named by the first in code-point order.
_COUNTS = (
    select(func.min(_tt.name), func.count())
    .where(_tt.user_id == _OWNER)
    .group_by(_tt.key)
    .order_by(_tt.key)
)


#: A tag filter's shape: how many keys it has, as far as the statement differs.
NO_TAGS, ONE_TAG, SEVERAL_TAGS = 0, 1, 2
#: The parameters that hold a filter's key (one tag), or its keys and their number.
FILTER_KEY = "tag_key"
FILTER_KEYS = "tag_keys"
FILTER_KEY_COUNT = "tag_key_count"


def filter_shape(keys: Collection[str]) -> int:
    """NO_TAGS, ONE_TAG or SEVERAL_TAGS for a filter of these distinct `keys`."""
    return min(len(keys), SEVERAL_TAGS)


def carrying_all(task_id: ColumnElement[Any], shape: int) -> ColumnElement[bool]:
    """A task (`task_id`) carries every tag of a filter of `shape` (not NO_TAGS).

    One tag: the owner's rows of that key, a plain semi-join that an index range drives.
    Several: the owner's rows of any of the keys (one list parameter, so one statement
    whatever their number), grouped by task, kept where all of them are there (a task has
    each key at most once).
    """
    of_owner = select(_tt.task_id).where(_tt.user_id == _OWNER)
    if shape == ONE_TAG:
        return task_id.in_(of_owner.where(_tt.key == bindparam(FILTER_KEY, type_=String())))
    keys = bindparam(FILTER_KEYS, type_=ValueList(String()))
    return task_id.in_(
        of_owner.where(one_of(_tt.key, keys))
        .group_by(_tt.task_id)
        .having(func.count() == bindparam(FILTER_KEY_COUNT, type_=Integer()))
    )


def filter_parameters(keys: Sequence[str]) -> dict[str, Any]:
    """The values of `carrying_all` for these distinct `keys` (none for no keys)."""
    shape = filter_shape(keys)
    if shape == NO_TAGS:
        return {}
    if shape == ONE_TAG:
        return {FILTER_KEY: keys[0]}
    return {FILTER_KEYS: list(keys), FILTER_KEY_COUNT: len(keys)}


def statement_shapes() -> Iterator[ClauseElement]:
    yield from (_CLEAR, _COUNTS)
    for count in range(1, TAGS_MAX_COUNT + 1):
        yield _insert(count)


async def store(
    session: Session, *, owner: str, task_id: int, tags: Sequence[str], replacing: bool
) -> None:
    """Write the rows for a task's `tags`, within the caller's transaction."""
    params: dict[str, Any] = {"owner": owner, "task_id": task_id}
    if replacing:
        await session.execute(_CLEAR, params)
    if not tags:
        return
    for index, tag in enumerate(tags):
        params[f"tag_key_{index}"] = tag_key(tag)
        params[f"tag_name_{index}"] = tag
    await session.execute(_insert(len(tags)), params)


@dataclass(frozen=True, slots=True)
class TagCount:
    name: str
    count: int


async def count_tags(database: Database, *, owner: str) -> list[TagCount]:
    """The owner's tags, ignoring case, with how many tasks carry each; by key."""
    rows = await database.fetch_all(_COUNTS, {"owner": owner})
    return [TagCount(name=name, count=int(count)) for name, count in rows]
