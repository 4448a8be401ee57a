"""Retry-safe creation: a create made with an idempotency key happens at most once.

A key goes through three states, each a row (or its absence) in `idempotency_keys`:
free, claimed (its request is in flight) and done (the response is stored). The claim
is committed on its own before the task is created, so a repeat that arrives meanwhile
sees it and is told to wait, rather than queueing behind a lock. The task and the stored
response are then written in one transaction, so a task never exists without its key.
"""

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    delete,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import ReturningInsert

from todo_api.db.database import Database, DatabaseError, Session
from todo_api.db.models import UTCDateTime, idempotency_keys_table
from todo_api.db.tasks import NewTask, TaskRecord, insert_task

logger = logging.getLogger(__name__)

#: How long a key is remembered after its request.
KEY_LIFETIME = timedelta(hours=24)
#: A claim still without a response after this long belongs to a request that died (a
#: crash or a lost connection): far longer than the pool, connect and statement timeouts
#: let a live request take.
ABANDONED_AFTER = timedelta(seconds=60)
#: Expired keys deleted by one statement: few enough that the delete stays quick.
CLEAN_UP_BATCH = 200
#: Each process deletes expired keys every this many seconds, in the background, never on a
#: request's path...
CLEAN_UP_INTERVAL_SECONDS = 5.0
#: ...and at most this many batches a time: 400 keys a second, more than one process can
#: create, so a backlog shrinks, while a run stays bounded however large the backlog.
CLEAN_UP_BATCHES_PER_RUN = 10

_k = idempotency_keys_table.c
_OWNER = bindparam("owner", type_=String())
_KEY = bindparam("idempotency_key", type_=String())
_CLAIM = bindparam("claim_token", type_=String())
_EXPIRED_BEFORE = bindparam("expired_before", type_=UTCDateTime())
_THIS_KEY = (_k.user_id == _OWNER, _k.key == _KEY)


class KeyInFlightError(Exception):
    """Another request with this key has not finished yet."""


class KeyReusedError(Exception):
    """The key was already used for a request with a different body."""


@dataclass(frozen=True, slots=True)
class KeyedResponse:
    #: The response body exactly as first sent.
    body: str
    #: True when this is a repeat answered from the stored response.
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
        created_at=bindparam("now", type_=UTCDateTime()),
    )
    # An existing key is taken over only once it has expired or been abandoned; otherwise
    # nothing is written and nothing returned.
    reusable = or_(
        _k.created_at < _EXPIRED_BEFORE,
        and_(
            _k.response.is_(None),
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


_LOOKUP = select(_k.fingerprint, _k.response).where(*_THIS_KEY)
_COMPLETE = (
    update(idempotency_keys_table)
    .where(*_THIS_KEY, _k.claim == _CLAIM)
    .values(
        task_id=bindparam("new_task_id", type_=BigInteger()),
        response=bindparam("new_response", type_=Text()),
    )
)
_RELEASE = delete(idempotency_keys_table).where(
    *_THIS_KEY, _k.claim == _CLAIM, _k.response.is_(None)
)
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
    yield from (_claim(dialect_name), _LOOKUP, _COMPLETE, _RELEASE, _DELETE_EXPIRED)


async def create_task_once(
    database: Database,
    *,
    owner: str,
    key: str,
    fingerprint: str,
    task: NewTask,
    encode: Callable[[TaskRecord], str],
) -> KeyedResponse:
    """Create `task` unless this owner's `key` already did; `encode` makes the stored body.

    Raises KeyReusedError when the key came with another `fingerprint`, KeyInFlightError
    while its first request is still running.
    """
    now = datetime.now(UTC)
    params: dict[str, Any] = {
        "owner": owner,
        "idempotency_key": key,
        "request_fingerprint": fingerprint,
        "claim_token": secrets.token_hex(16),
        "now": now,
        "expired_before": now - KEY_LIFETIME,
        "abandoned_before": now - ABANDONED_AFTER,
    }
    claim = _claim(database.dialect.name)
    # One connection for claim, create and release: freeing a failed request's key must
    # not wait for the pool, which may be exactly what is exhausted. Claim and lookup are
    # single statements, each committed on its own.
    async with database.session() as session:
        # A second round only if the stored key vanished between the two statements (it
        # expired and a clean-up deleted it).
        for _ in range(2):
            if await session.fetch_one(claim, params) is not None:
                return await _create_claimed(database, session, params, task, encode)
            stored = await session.fetch_one(_LOOKUP, params)
            if stored is None:
                continue
            stored_fingerprint, stored_response = stored
            if stored_fingerprint != fingerprint:
                raise KeyReusedError(key)
            if stored_response is None:
                raise KeyInFlightError(key)
            return KeyedResponse(body=stored_response, replayed=True)
    raise KeyInFlightError(key)


async def _create_claimed(
    database: Database,
    session: Session,
    params: dict[str, Any],
    task: NewTask,
    encode: Callable[[TaskRecord], str],
) -> KeyedResponse:
    async def create_and_complete(transaction: Session) -> str:
        record = await insert_task(transaction, owner=params["owner"], task=task)
        body = encode(record)
        completion = params | {"new_task_id": record["id"], "new_response": body}
        if await transaction.execute(_COMPLETE, completion) != 1:
            # Our claim was judged abandoned and taken over: the rollback undoes our
            # task, so only the other request's one exists.
            raise KeyInFlightError(params["idempotency_key"])
        return body

    try:
        body = await session.transaction(create_and_complete)
    except BaseException:
        # Free the key at once so that the client's retry can proceed, also when this
        # request was cancelled. If the database is gone, the claim is taken over once it
        # counts as abandoned.
        with suppress(DatabaseError):
            await _despite_cancellation(_release(database, session, params))
        raise
    return KeyedResponse(body=body, replayed=False)


async def _despite_cancellation(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end even if this task is cancelled (again) meanwhile.

    Shielding alone would let a second cancellation return the connection to the pool
    while the release is still using it.
    """
    running = asyncio.ensure_future(work)
    while not running.done():
        with suppress(asyncio.CancelledError):
            await asyncio.shield(running)
    running.result()


async def _release(database: Database, session: Session, params: dict[str, Any]) -> None:
    if not session.lost:
        await session.execute(_RELEASE, params)
        return
    # The session's connection was left to a query that did not answer in time.
    async with database.session() as fresh:
        await fresh.execute(_RELEASE, params)


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


async def clean_up_expired_keys(database: Database) -> None:
    """Until cancelled: a run of `delete_expired_batches` every CLEAN_UP_INTERVAL_SECONDS."""
    while True:
        await asyncio.sleep(CLEAN_UP_INTERVAL_SECONDS)
        try:
            await delete_expired_batches(database)
        except Exception:  # a bug: say so, and keep the clean-up going
            logger.exception("Deleting expired idempotency keys failed")
