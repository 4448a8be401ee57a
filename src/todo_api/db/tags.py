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
    CTE,
    BigInteger,
    ClauseElement,
    ColumnElement,
    Insert,
    Integer,
    String,
    Subquery,
    bindparam,
    delete,
    exists,
    func,
    select,
    union_all,
)

from todo_api.db.database import Database, Step
from todo_api.db.inserted_id import inserted_task_id
from todo_api.db.models import TAGS_MAX_COUNT, TagList, task_tags_table, tasks_table
from todo_api.db.value_list import ValueList, one_of

_tt = task_tags_table.c
_t = tasks_table.c
_OWNER = bindparam("owner", type_=String())
_TASK_ID = bindparam("task_id", type_=BigInteger())
_ROW_COLUMNS = ["task_id", "user_id", "key", "name"]


def tag_key(tag: str) -> str:
    """What a tag is compared by: tags that differ only by case, or by how their characters
    are composed, have the same key (the case fold of their NFC form, itself in NFC)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", tag).casefold())


def insert_rows(
    count: int, task_id: ColumnElement[int], *conditions: ColumnElement[bool]
) -> Insert:
    """The rows for `count` tags (`tag_key_<i>`, `tag_name_<i>`: `row_parameters`) of the
    owner's task whose id is `task_id`, written only if that task meets `conditions`.

    Selected from the task's own row, filtered by owner like every read: the rows are the
    owner's, and none is written for a task that is not there. So the statement can go out
    in the same round trip as the write it follows, its id given in SQL.
    """
    tag = _tag_values(count)
    source = select(_t.id, _t.user_id, tag.c.key, tag.c.name).where(
        _t.user_id == _OWNER, _t.id == task_id, *conditions
    )
    return task_tags_table.insert().from_select(_ROW_COLUMNS, source)


def insert_rows_of(count: int, task: CTE) -> Insert:
    """The rows for `count` tags (`row_parameters`) of the task that `task`, the insert of
    a new task with its RETURNING, wrote: owner and id are what that insert gave them."""
    tag = _tag_values(count)
    source = select(task.c.id, task.c.user_id, tag.c.key, tag.c.name)
    return task_tags_table.insert().from_select(_ROW_COLUMNS, source)


def _tag_values(count: int) -> Subquery:
    """`count` rows of (key, name), from `tag_key_<i>` and `tag_name_<i>`."""
    tags = [
        select(
            bindparam(f"tag_key_{index}", type_=String()).label("key"),
            bindparam(f"tag_name_{index}", type_=String()).label("name"),
        )
        for index in range(count)
    ]
    return (union_all(*tags) if count > 1 else tags[0]).subquery("tag")


def row_parameters(tags: Sequence[str]) -> dict[str, str]:
    """The values of `insert_rows` for `tags`."""
    params = {}
    for index, tag in enumerate(tags):
        params[f"tag_key_{index}"] = tag_key(tag)
        params[f"tag_name_{index}"] = tag
    return params


# Never prepared (`prepare=False`) here and in todo_api.db.tasks: statements that find one
# task, or one task's tag rows, by its id and by its owner, where an index starts with the
# owner and has the id only after another column. A generic plan, made for an owner of
# average size, may walk such an index through all of a large owner's rows (50,000 entries,
# 1-3 ms), where a plan for the values takes the primary key (0.04 ms).


@lru_cache(maxsize=TAGS_MAX_COUNT)  # one per count of tags a task may have
def _insert_for_new_task(count: int) -> Insert:
    return insert_rows(count, inserted_task_id()).execution_options(prepare=False)


# A write that sets a task's tags matches no row if the task is not there (or not at an
# expected version): its tag rows then stay as they are. They are rewritten only when the
# task carries exactly the new tags, which it does after the write matched; and when it
# did already, rewriting them changes nothing.
_NEW_TAGS = bindparam("new_tags", type_=TagList())
_CARRIES_NEW_TAGS = (_t.user_id == _OWNER, _t.id == _TASK_ID, _t.tags == _NEW_TAGS)
_CLEAR_REPLACED = (
    delete(task_tags_table)
    .where(_tt.user_id == _OWNER, _tt.task_id == _TASK_ID, exists().where(*_CARRIES_NEW_TAGS))
    .execution_options(prepare=False)
)


@lru_cache(maxsize=TAGS_MAX_COUNT)
def _insert_replacing(count: int) -> Insert:
    return insert_rows(count, _TASK_ID, _t.tags == _NEW_TAGS)


def new_task_rows(owner: str, tags: Sequence[str]) -> Step:
    """The step that writes the rows of `tags` for the task inserted just before, in the
    same transaction; `tags` not empty. (On SQLite: PostgreSQL writes them in the task's
    own insert, `tasks._insert_with_tags`.)"""
    return _insert_for_new_task(len(tags)), {"owner": owner, **row_parameters(tags)}


def replacing_rows(owner: str, task_id: int, tags: Sequence[str]) -> list[Step]:
    """The steps that make the task's tag rows those of `tags`, after the write (in the
    same transaction) that set its `tags` to them."""
    params: dict[str, Any] = {"owner": owner, "task_id": task_id, "new_tags": tags}
    steps: list[Step] = [(_CLEAR_REPLACED, params)]
    if tags:
        steps.append((_insert_replacing(len(tags)), params | row_parameters(tags)))
    return steps


# Spellings that differ by case count as one tag, named by the first in code-point order.
_COUNTS = (
    select(func.min(_tt.name), func.count())
    .where(_tt.user_id == _OWNER)
    .group_by(_tt.key)
    .order_by(_tt.key)
    .execution_options(prepare=True)  # as todo_api.db.tasks._READ
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
    yield from (_CLEAR_REPLACED, _COUNTS)
    for count in range(1, TAGS_MAX_COUNT + 1):
        yield _insert_for_new_task(count)
        yield _insert_replacing(count)


@dataclass(frozen=True, slots=True)
class TagCount:
    name: str
    count: int


async def count_tags(database: Database, *, owner: str) -> list[TagCount]:
    """The owner's tags, ignoring case, with how many tasks carry each; by key."""
    rows = await database.fetch_all(_COUNTS, {"owner": owner})
    return [TagCount(name=name, count=int(count)) for name, count in rows]
