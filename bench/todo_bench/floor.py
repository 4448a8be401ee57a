"""The floor (issue 12): the API's hot paths with nothing around the work itself.

The same paths, methods, status codes and body shapes as todo_api's task endpoints, and the
same SQL text, compiled from the API's own statements (`api_statements`); a pure ASGI callable
on a psycopg_pool.AsyncConnectionPool of the API's size, rows as tuples, JSON by orjson, served
by uvicorn with httptools and uvloop and the API's worker count. What the API spends beyond
this (routing, validation, SQLAlchemy, middleware) is the gap the benchmark reports.

It serves exactly what bench/wrk/*.lua send: the default list page, read, create, replace
(title and description), toggle without a body, delete. Query parameters, conditional
requests and idempotency keys are not served; anything else is a plain 404, 405 or 422.

`python -m todo_bench.floor --port P --workers N --pool-size S`, with DATABASE_URL (libpq
form) set and bench/ on PYTHONPATH; the benchmark starts it so (todo_bench.servers.Floor).
"""

import argparse
import hashlib
import os
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import uvicorn
from psycopg_pool import AsyncConnectionPool, PoolTimeout

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Response = tuple[int, Headers, bytes]
# SQL text with %(name)s placeholders, and the values SQLAlchemy binds by itself (the
# literal 1 of `version + 1` is a bind parameter of the compiled statement).
Statement = tuple[str, dict[str, Any]]

STATEMENTS_ENV = "TODO_BENCH_FLOOR_STATEMENTS"
POOL_SIZE_ENV = "TODO_BENCH_FLOOR_POOL_SIZE"
# The API's engine defaults: DB_POOL_TIMEOUT, DB_CONNECT_TIMEOUT, DB_STATEMENT_TIMEOUT_MS.
POOL_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 4
STATEMENT_TIMEOUT_MS = 5000
PAGE_SIZE = 100
MAX_TASK_ID = 2**63 - 1
TITLE_MAX = 200
DESCRIPTION_MAX = 1000
# The priority names by stored rank (todo_api.db.models.PRIORITIES).
PRIORITIES = ("low", "medium", "high")
# Columns the API reads but does not send as they are (todo_api.api.conditional.public_task).
INTERNAL_COLUMNS = (
    "total",
    "recurrence_tz",
    "recurrence_from_completion",
    "occurrence",
    "remind_at",
    "reminder_minutes_before",
    "reminder_tz",
    "reminder_acknowledged_at",
)


def api_statements() -> dict[str, Statement]:
    """The API's statements for the benchmarked paths, compiled as its engine sends them.

    The only place that knows todo_api's data layer, which is being rewritten: when its
    builders are renamed or reshaped, this function is all that has to follow.
    """
    from todo_api.db import tasks as api
    from todo_api.db.postgres import PostgresDatabase
    from todo_api.db.statements import compile_statement

    statements = {
        "list": api._build_page(api.ListFilter(), api.TaskSort.NEWEST),
        "read": api._READ,
        "create": api._INSERT,
        "toggle": api._toggle_query(False),
        "replace": api._update_query(frozenset({"title", "description"}), False),
        "delete": api._delete_query(False),
    }
    # What a create that neither repeats nor reminds binds beyond what the benchmark sends.
    plain = {**api._NEITHER, "new_series_id": None, "new_occurrence": 1}
    result = {}
    for name, statement in statements.items():
        # What the API's database runs, compiled the same way: SQL and the constants
        # SQLAlchemy bound itself (the 1 of `version + 1`).
        compiled = compile_statement(statement, PostgresDatabase.dialect)
        constants = dict(compiled.fixed_parameters) | (plain if name == "create" else {})
        result[name] = (compiled.sql, constants)
    return result


def _json_response(status: int, content: Any, extra: Sequence[tuple[bytes, bytes]]) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_UTC_Z)
    return status, [(b"content-type", b"application/json"), *extra], body


def _problem(status: int, title: str) -> Response:
    body = orjson.dumps({"title": title, "status": status})
    return status, [(b"content-type", b"application/problem+json")], body


NOT_FOUND = _problem(404, "Not Found")
METHOD_NOT_ALLOWED = _problem(405, "Method Not Allowed")
UNPROCESSABLE = _problem(422, "Unprocessable Content")
UNAVAILABLE = _problem(503, "Service Unavailable")
NO_CONTENT: Response = (204, [], b"")
READY: Response = (200, [(b"content-type", b"text/plain")], b"ready")


def _task_id(segment: str) -> int | None:
    if not segment.isascii() or not segment.isdigit():
        return None
    value = int(segment)
    return value if 1 <= value <= MAX_TASK_ID else None


def _fields(body: bytes, allowed: frozenset[str]) -> dict[str, Any] | None:
    """Title and description as the API accepts them (title trimmed), or None for a 422."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data.keys() <= allowed:
        return None
    title, description = data.get("title"), data.get("description")
    if not isinstance(title, str) or not title.strip() or len(title) > TITLE_MAX:
        return None
    if description is not None and (
        not isinstance(description, str) or len(description) > DESCRIPTION_MAX
    ):
        return None
    completed = data.get("completed", False)
    if not isinstance(completed, bool):
        return None
    return {"title": title.strip(), "description": description, "completed": completed}


async def _body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def _origin(scope: MutableMapping[str, Any]) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return f"{scope['scheme']}://{value.decode('latin-1')}"
    host, port = scope["server"]
    return f"{scope['scheme']}://{host}:{port}"


class FloorApp:
    """The ASGI callable: one statement per request, its rows encoded as they come."""

    def __init__(self, statements: dict[str, Statement], conninfo: str, pool_size: int) -> None:
        self.statements = statements
        # Connected as the API's engine connects: autocommit, the same timeouts. TimeZone=UTC
        # makes the driver return UTC timestamps, which the API converts to in Python.
        options = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c TimeZone=UTC"
        self.pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = (
            AsyncConnectionPool(
                conninfo,
                min_size=pool_size,
                max_size=pool_size,
                timeout=POOL_TIMEOUT_S,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": CONNECT_TIMEOUT_S,
                    "options": options,
                },
                open=False,
            )
        )
        self.columns: dict[str, tuple[str, ...]] = {}

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        try:
            status, headers, body = await self._route(scope, receive)
        except (PoolTimeout, psycopg.OperationalError):
            status, headers, body = UNAVAILABLE
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.pool.open(wait=True, timeout=30)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: MutableMapping[str, Any], receive: Receive) -> Response:
        parts = scope["path"].split("/")
        method = scope["method"]
        if len(parts) < 4 or parts[1] != "api" or parts[3] != "tasks" or not parts[2]:
            return READY if scope["path"] == "/health/ready" else NOT_FOUND
        owner = parts[2]
        if len(parts) == 4:
            if method == "GET":
                return await self._list(scope, owner)
            if method == "POST":
                return await self._create(scope, owner, await _body(receive))
            return METHOD_NOT_ALLOWED
        task_id = _task_id(parts[4])
        if task_id is None:
            return UNPROCESSABLE
        if len(parts) == 5:
            if method == "GET":
                return await self._one("read", {"owner": owner, "task_id": task_id})
            if method == "PUT":
                return await self._replace(owner, task_id, await _body(receive))
            if method == "DELETE":
                return await self._delete(owner, task_id)
            return METHOD_NOT_ALLOWED
        if len(parts) == 6 and parts[5] == "complete":
            if method != "PATCH":
                return METHOD_NOT_ALLOWED
            if await _body(receive):
                return UNPROCESSABLE  # setting a state, not toggling it: not benchmarked
            params = {"owner": owner, "task_id": task_id, "now": datetime.now(UTC)}
            return await self._one("toggle", params)
        return NOT_FOUND

    async def _execute(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        sql, constants = self.statements[name]
        async with self.pool.connection() as connection:
            cursor = await connection.execute(sql, constants | params)
            rows = await cursor.fetchall()
            if name not in self.columns and cursor.description is not None:
                self.columns[name] = tuple(column.name for column in cursor.description)
        return rows

    def _record(self, name: str, row: tuple[Any, ...]) -> dict[str, Any]:
        """The task as TaskPublic has it: the version travels only inside the ETag, the
        priority by name, the tags as a list (stored as the JSON text of one)."""
        record = dict(zip(self.columns[name], row, strict=False))
        for internal in INTERNAL_COLUMNS:
            record.pop(internal, None)
        # The benchmark's tasks have none (remind_at is NULL).
        record["reminder"] = None
        record["priority"] = PRIORITIES[record["priority"] - 1]
        tags = record["tags"]
        record["tags"] = [] if tags == "[]" else orjson.loads(tags)
        record["etag"] = f'"{record["id"]}.{record.pop("version")}"'
        return record

    async def _one(self, name: str, params: dict[str, Any], status: int = 200) -> Response:
        rows = await self._execute(name, params)
        if not rows:
            return NOT_FOUND
        task = self._record(name, rows[0])
        return _json_response(status, task, [(b"etag", task["etag"].encode())])

    async def _list(self, scope: MutableMapping[str, Any], owner: str) -> Response:
        rows = await self._execute("list", {"owner": owner, "limit": PAGE_SIZE, "offset": 0})
        total = str(rows[0][-1] if rows else 0).encode()
        body = orjson.dumps([self._record("list", row) for row in rows], option=orjson.OPT_UTC_Z)
        # The API's page tag: a hash of the body and the total (todo_api.api.conditional).
        digest = hashlib.blake2b(body, digest_size=16)
        digest.update(total)
        headers = [
            (b"content-type", b"application/json"),
            (b"etag", f'"{digest.hexdigest()}"'.encode()),
            (b"x-total-count", total),
        ]
        if int(total) > PAGE_SIZE:
            link = f"<{_origin(scope)}{scope['path']}?offset={PAGE_SIZE}&limit={PAGE_SIZE}>"
            headers.append((b"link", f'{link}; rel="next"'.encode()))
        return 200, headers, body

    async def _create(self, scope: MutableMapping[str, Any], owner: str, body: bytes) -> Response:
        fields = _fields(body, frozenset({"title", "description", "completed"}))
        if fields is None:
            return UNPROCESSABLE
        now = datetime.now(UTC)
        params = {
            "new_title": fields["title"],
            "new_description": fields["description"],
            "new_completed": fields["completed"],
            "new_user_id": owner,
            "new_completed_at": now if fields["completed"] else None,
            "new_created_at": now,
            # The API's defaults, as stored: medium, no due, no tags.
            "new_priority": PRIORITIES.index("medium") + 1,
            "new_due_date": None,
            "new_due_at": None,
            "new_tags": "[]",
        }
        rows = await self._execute("create", params)
        task = self._record("create", rows[0])
        location = f"{_origin(scope)}/api/{owner}/tasks/{task['id']}"
        headers = [(b"location", location.encode()), (b"etag", task["etag"].encode())]
        return _json_response(201, task, headers)

    async def _replace(self, owner: str, task_id: int, body: bytes) -> Response:
        fields = _fields(body, frozenset({"title", "description"}))
        if fields is None:
            return UNPROCESSABLE
        params = {
            "new_title": fields["title"],
            "new_description": fields["description"],
            "owner": owner,
            "task_id": task_id,
            "now": datetime.now(UTC),
        }
        return await self._one("replace", params)

    async def _delete(self, owner: str, task_id: int) -> Response:
        rows = await self._execute("delete", {"owner": owner, "task_id": task_id})
        return NO_CONTENT if rows else NOT_FOUND


def create_app() -> FloorApp:
    """uvicorn's factory, in every worker: what the launcher compiled, from the environment."""
    raw = os.environ.get(STATEMENTS_ENV)
    statements = orjson.loads(raw) if raw else api_statements()
    return FloorApp(
        {name: (sql, constants) for name, (sql, constants) in statements.items()},
        os.environ["DATABASE_URL"],
        int(os.environ.get(POOL_SIZE_ENV, "20")),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=20, help="connections per worker")
    args = parser.parse_args()
    # Compiled once here rather than in each worker, which then never import SQLAlchemy.
    os.environ[STATEMENTS_ENV] = orjson.dumps(api_statements()).decode()
    os.environ[POOL_SIZE_ENV] = str(args.pool_size)
    uvicorn.run(
        "todo_bench.floor:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
