"""Retry-safe creation: a create made with an idempotency key happens at most once.

A key goes through three states, each a row (or its absence) in `idempotency_keys`:
free, claimed (its request is in flight) and done (the response is stored). The claim
is committed on its own before the task is created, so a repeat that arrives meanwhile
sees it and is told to wait, rather than queueing behind a lock. The task and the stored
response are then written in one transaction, so a task never exists without its key.
"""

import asyncio
import secrets
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, String, Text, and_, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import ReturningInsert

from todo_api.db.engine import transaction
from todo_api.db.models import UTCDateTime, idempotency_keys_table
from todo_api.db.tasks import NewTask, TaskRecord, insert_task

#: How long a key is remembered after its request.
KEY_LIFETIME = timedelta(hours=24)
#: A claim still without a response after this long belongs to a request that died (a
#: crash or a lost connection): far longer than the pool, connect and statement timeouts
#: let a live request take.
ABANDONED_AFTER = timedelta(seconds=60)

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
    task_id: int
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


_LOOKUP = select(_k.fingerprint, _k.task_id, _k.response).where(*_THIS_KEY)
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
# Across all users: expiry is by age alone, and the rows hold no task data.
_DELETE_EXPIRED = delete(idempotency_keys_table).where(_k.created_at < _EXPIRED_BEFORE)


async def create_task_once(
    engine: AsyncEngine,
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
    # A second round only if the stored key vanished between the two statements (it
    # expired and another request's clean-up deleted it).
    for _ in range(2):
        async with engine.begin() as connection:
            claimed = (await connection.execute(_claim(engine.dialect.name), params)).first()
        if claimed is not None:
            return await _create_claimed(engine, params, task, encode)
        async with engine.connect() as connection:
            stored = (await connection.execute(_LOOKUP, params)).first()
        if stored is None:
            continue
        if stored.fingerprint != fingerprint:
            raise KeyReusedError(key)
        if stored.response is None:
            raise KeyInFlightError(key)
        return KeyedResponse(task_id=stored.task_id, body=stored.response, replayed=True)
    raise KeyInFlightError(key)


async def _create_claimed(
    engine: AsyncEngine,
    params: dict[str, Any],
    task: NewTask,
    encode: Callable[[TaskRecord], str],
) -> KeyedResponse:
    try:
        async with transaction(engine) as connection:
            await connection.execute(_DELETE_EXPIRED, params)
            record = await insert_task(connection, owner=params["owner"], task=task)
            body = encode(record)
            completion = params | {"new_task_id": record["id"], "new_response": body}
            if (await connection.execute(_COMPLETE, completion)).rowcount != 1:
                # Our claim was judged abandoned and taken over: the rollback undoes our
                # task, so only the other request's one exists.
                raise KeyInFlightError(params["idempotency_key"])
    except BaseException:
        # Free the key at once so that the client's retry can proceed, also when this
        # request was cancelled (shielded, so the release itself is not); if the database
        # is gone, the claim is taken over once it counts as abandoned.
        with suppress(SQLAlchemyError):
            await asyncio.shield(_release(engine, params))
        raise
    return KeyedResponse(task_id=record["id"], body=body, replayed=False)


async def _release(engine: AsyncEngine, params: dict[str, Any]) -> None:
    async with engine.begin() as connection:
        await connection.execute(_RELEASE, params)
