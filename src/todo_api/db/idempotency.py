"""Retry-safe creation: a create made with an idempotency key happens at most once.

A key is a row of `idempotency_keys` naming the task it created. The key, the task and its
tag rows are written in one transaction, sent to the database in one round trip: a task
never exists without its key, nor a key without its task. A repeat that arrives meanwhile
waits for that transaction on the key's unique index (the time of one round trip), then
finds the key and answers as the first request did: the task as it was created, rebuilt
from the key's task id and time and the request, which the fingerprint shows is the same.
"""

import asyncio
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    Insert,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    exists,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import ReturningInsert

from todo_api.db import tags as tag_rows
from todo_api.db.database import Database, DatabaseError, Step
from todo_api.db.inserted_id import inserted_task_id
from todo_api.db.models import TAGS_MAX_COUNT, UTCDateTime, idempotency_keys_table, tasks_table
from todo_api.db.tasks import (
    NewTask,
    TaskRecord,
    created_record,
    insert_where,
    new_task_values,
    seen_row,
)

logger = logging.getLogger(__name__)

#: How long a key is remembered after its request.
KEY_LIFETIME = timedelta(hours=24)
#: A claim still without a response after this long belongs to a request that died (a
#: crash or a lost connection): far longer than the pool, connect and statement timeouts
#: let a live request take.
ABANDONED_AFTER = timedelta(seconds=60)
#: Expired keys deleted by one statement: few enough that the delete stays quick.
CLEAN_UP_BATCH = 200
#: Each process deletes expired keys in the background, never on a request's path, and at
#: most this many batches a run: every IDEMPOTENCY_CLEANUP_SECONDS (5 s by default), 400 keys
#: a second, more than one process can create, so a backlog shrinks, while a run stays
#: bounded however large the backlog.
CLEAN_UP_BATCHES_PER_RUN = 10

_k = idempotency_keys_table.c
_OWNER = bindparam("owner", type_=String())
_KEY = bindparam("idempotency_key", type_=String())
_CLAIM = bindparam("claim_token", type_=String())
_EXPIRED_BEFORE = bindparam("expired_before", type_=UTCDateTime())
_THIS_KEY = (_k.user_id == _OWNER, _k.key == _KEY)
# The key is this request's: it claimed it in the same transaction.
_CLAIMED = exists().where(*_THIS_KEY, _k.claim == _CLAIM)


class KeyInFlightError(Exception):
    """The key belongs to a request that has not finished (only a claim left by an earlier
    version of this service, which committed it apart from the task, can be seen so)."""


class KeyReusedError(Exception):
    """The key was already used for a request with a different body."""


@dataclass(frozen=True, slots=True)
class KeyedTask:
    #: The task as the first request with the key created it.
    task: TaskRecord
    #: True when this is a repeat: nothing was created.
    replayed: bool


@cache
def _claim(dialect_name: str) -> ReturningInsert[Any]:
    # Both dialects spell the upsert the same way; each needs its own construct.
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = insert(idempotency_keys_table).values(
        user_id=_OWNER,
        key=_KEY,
        fingerprint=bindparam("request_fingerprint", type_=String()),
        claim=_CLAIM,
        created_at=bindparam("new_created_at", type_=UTCDateTime()),
    )
    # An existing key is taken over only once it has expired, or if it is a claim that an
    # earlier version of this service left without a task and that was abandoned;
    # otherwise nothing is written and nothing returned.
    reusable = or_(
        _k.created_at < _EXPIRED_BEFORE,
        and_(
            _k.task_id.is_(None),
            _k.created_at < bindparam("abandoned_before", type_=UTCDateTime()),
        ),
    )
    return statement.on_conflict_do_update(
        index_elements=[_k.user_id, _k.key],
        set_={
            "fingerprint": statement.excluded.fingerprint,
            "claim": statement.excluded.claim,
            "created_at": statement.excluded.created_at,
            "task_id": None,
            "response": None,
        },
        where=reusable,
    ).returning(_k.claim)


_INSERT_TASK = insert_where(_CLAIMED).returning(tasks_table)
_LINK_TASK = (
    update(idempotency_keys_table)
    .where(*_THIS_KEY, _k.claim == _CLAIM)
    .values(task_id=inserted_task_id())
)
_CLAIMED_TASK_ID = select(_k.task_id).where(*_THIS_KEY, _k.claim == _CLAIM).scalar_subquery()


@lru_cache(maxsize=TAGS_MAX_COUNT)  # one per count of tags a task may have
def _insert_tags(count: int) -> Insert:
    return tag_rows.insert_rows(count, _CLAIMED_TASK_ID)


_LOOKUP = select(_k.fingerprint, _k.task_id, _k.created_at).where(*_THIS_KEY)
# Across all users (expiry is by age alone, and the rows hold no task data), oldest first,
# a bounded batch at a time; rows another clean-up is deleting are skipped, not waited for.
_EXPIRED_BATCH = (
    select(_k.user_id, _k.key)
    .where(_k.created_at < _EXPIRED_BEFORE)
    .order_by(_k.created_at)
    .limit(bindparam("batch_size", type_=Integer()))
    .with_for_update(skip_locked=True)
)
_DELETE_EXPIRED = delete(idempotency_keys_table).where(
    tuple_(_k.user_id, _k.key).in_(_EXPIRED_BATCH)
)


def statement_shapes(dialect_name: str) -> Iterator[ClauseElement]:
    """Every statement this module runs on a database of `dialect_name`."""
    yield from (_claim(dialect_name), _INSERT_TASK, _LINK_TASK, _LOOKUP, _DELETE_EXPIRED)
    for count in range(1, TAGS_MAX_COUNT + 1):
        yield _insert_tags(count)


async def create_task_once(
    database: Database, *, owner: str, key: str, fingerprint: str, task: NewTask
) -> KeyedTask:
    """Create `task` unless this owner's `key` already did: one transaction, one round trip.

    Raises KeyReusedError when the key came with another `fingerprint`, KeyInFlightError
    while an earlier version's claim of it is in flight.
    """
    now = datetime.now(UTC)
    params: dict[str, Any] = {
        "owner": owner,
        "idempotency_key": key,
        "request_fingerprint": fingerprint,
        "claim_token": secrets.token_hex(16),
        "expired_before": now - KEY_LIFETIME,
        "abandoned_before": now - ABANDONED_AFTER,
        **new_task_values(owner, task, now),
    }
    # Claim the key; if that worked, insert the task and its tags and link the key to it;
    # read the key as it then is. Each step after the claim acts only if it did.
    steps: list[Step] = [
        (_claim(database.dialect.name), params),
        (_INSERT_TASK, params),
        (_LINK_TASK, params),
    ]
    if task.tags:
        steps.append((_insert_tags(len(task.tags)), params | tag_rows.row_parameters(task.tags)))
    steps.append((_LOOKUP, params))
    # A second round only if the key was not there to read after the claim failed: it
    # expired and a clean-up deleted it between the two.
    for _ in range(2):
        async with database.session() as session:
            _, inserted, *_, stored = await session.run_together(steps)
        if inserted:
            # The row as stored: kept, so that a write needing the task can plan from it.
            return KeyedTask(seen_row(database, inserted[0]), replayed=False)
        if not stored:
            continue
        stored_fingerprint, task_id, created_at = stored[0]
        if stored_fingerprint != fingerprint:
            raise KeyReusedError(key)
        if task_id is None:
            raise KeyInFlightError(key)
        created = new_task_values(owner, task, created_at)
        return KeyedTask(created_record(task_id, created), replayed=True)
    raise KeyInFlightError(key)


async def delete_expired_keys(database: Database, *, batch_size: int = CLEAN_UP_BATCH) -> int:
    """Delete up to `batch_size` expired keys in a statement of its own; returns how many.

    Bounded so that its cost per call stays small whatever backlog has built up. A failure
    is only logged: the next call tries again, and an expired key that is still stored is
    treated as free anyway.
    """
    params = {"expired_before": datetime.now(UTC) - KEY_LIFETIME, "batch_size": batch_size}
    try:
        return await database.execute(_DELETE_EXPIRED, params)
    except DatabaseError as exc:
        # An outage is logged where it is met; this only says what was skipped.
        logger.debug("Expired idempotency keys not deleted: %s", exc)
        return 0


async def delete_expired_batches(database: Database) -> int:
    """One run of the clean-up: batches until one finds fewer keys than it may delete, or
    CLEAN_UP_BATCHES_PER_RUN have run; returns how many keys were deleted."""
    deleted = 0
    for _ in range(CLEAN_UP_BATCHES_PER_RUN):
        batch = await delete_expired_keys(database)
        deleted += batch
        if batch < CLEAN_UP_BATCH:
            break
    return deleted


async def clean_up_expired_keys(database: Database, interval: float) -> None:
    """Until cancelled: a run of `delete_expired_batches` every `interval` seconds, when
    something else has used the database since the last run.

    A database nobody uses is left alone, so that Neon can suspend an idle compute (a
    statement every few seconds would keep it running, and billed). Expired keys left
    meanwhile are only stored rows: a claim takes an expired key over anyway.
    """
    used = database.sessions_begun
    while True:
        await asyncio.sleep(interval)
        if database.sessions_begun == used:
            continue
        try:
            await delete_expired_batches(database)
        except Exception:  # a bug: say so, and keep the clean-up going
            logger.exception("Deleting expired idempotency keys failed")
        used = database.sessions_begun  # its own sessions are no use of the database
