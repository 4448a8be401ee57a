"""The reference (issue 23): FastAPI on the bare driver, the work a plain FastAPI app would do.

Beside the floor (todo_bench.floor), which has nothing around the SQL, this is what an
experienced FastAPI user writes without an ORM: FastAPI's routing, its path parameters and a
pydantic model validating the same bodies as the API (title trimmed, 1-200 characters, a
description up to 1,000, unknown fields refused), then the API's own SQL through the floor's
pool and row handling. What the API spends beyond it is its own machinery: the data layer,
middleware, conditional requests, problem details.

It serves what bench/writes.py sends: the default list page, read, create, replace (title and
description), toggle without a body, delete.

`python -m todo_bench.reference --port P --pool-size S`, with DATABASE_URL (libpq form) set and
bench/ on PYTHONPATH.
"""

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import uvicorn
from fastapi import FastAPI, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from todo_bench.floor import (
    DESCRIPTION_MAX,
    MAX_TASK_ID,
    POOL_SIZE_ENV,
    PRIORITIES,
    STATEMENTS_ENV,
    TITLE_MAX,
    FloorApp,
    api_statements,
)

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX)]
Description = Annotated[str | None, Field(max_length=DESCRIPTION_MAX)]
TaskId = Annotated[int, Path(ge=1, le=MAX_TASK_ID)]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = None
    completed: bool = False


class TaskReplace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = None


def _json(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_UTC_Z)
    return Response(body, status, headers, media_type="application/json")


def create_app() -> FastAPI:
    """uvicorn's factory: the floor's statements and pool, behind FastAPI's routes."""
    raw = os.environ.get(STATEMENTS_ENV)
    statements = orjson.loads(raw) if raw else api_statements()
    database = FloorApp(
        {name: (sql, constants) for name, (sql, constants) in statements.items()},
        os.environ["DATABASE_URL"],
        int(os.environ.get(POOL_SIZE_ENV, "20")),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await database.pool.open(wait=True, timeout=30)
        yield
        await database.pool.close()

    app = FastAPI(lifespan=lifespan)

    async def one(name: str, params: dict[str, Any]) -> Response:
        rows = await database._execute(name, params)
        if not rows:
            return Response(status_code=404)
        task = database._record(name, rows[0])
        return _json(200, task, {"ETag": task["etag"]})

    @app.get("/health/ready")
    async def ready() -> Response:
        return Response("ready", media_type="text/plain")

    @app.get("/api/{user_id}/tasks")
    async def list_tasks(user_id: str) -> Response:
        rows = await database._execute("list", {"owner": user_id, "limit": 100, "offset": 0})
        total = str(rows[0][-1] if rows else 0)
        tasks = [database._record("list", row) for row in rows]
        return _json(200, tasks, {"X-Total-Count": total})

    @app.post("/api/{user_id}/tasks", status_code=201)
    async def create_task(user_id: str, task: TaskCreate, request: Request) -> Response:
        now = datetime.now(UTC)
        params = {
            "new_user_id": user_id,
            "new_title": task.title,
            "new_description": task.description,
            "new_completed": task.completed,
            "new_completed_at": now if task.completed else None,
            "new_created_at": now,
            "new_priority": PRIORITIES.index("medium") + 1,
            "new_due_date": None,
            "new_due_at": None,
            "new_tags": "[]",
        }
        rows = await database._execute("create", params)
        created = database._record("create", rows[0])
        location = f"{request.base_url}api/{user_id}/tasks/{created['id']}"
        return _json(201, created, {"Location": location, "ETag": created["etag"]})

    @app.get("/api/{user_id}/tasks/{task_id}")
    async def read_task(user_id: str, task_id: TaskId) -> Response:
        return await one("read", {"owner": user_id, "task_id": task_id})

    @app.put("/api/{user_id}/tasks/{task_id}")
    async def replace_task(user_id: str, task_id: TaskId, task: TaskReplace) -> Response:
        params = {
            "new_title": task.title,
            "new_description": task.description,
            "owner": user_id,
            "task_id": task_id,
            "now": datetime.now(UTC),
        }
        return await one("replace", params)

    @app.patch("/api/{user_id}/tasks/{task_id}/complete")
    async def toggle_task(user_id: str, task_id: TaskId) -> Response:
        params = {"owner": user_id, "task_id": task_id, "now": datetime.now(UTC)}
        return await one("toggle", params)

    @app.delete("/api/{user_id}/tasks/{task_id}", status_code=204)
    async def delete_task(user_id: str, task_id: TaskId) -> Response:
        rows = await database._execute("delete", {"owner": user_id, "task_id": task_id})
        return Response(status_code=204 if rows else 404)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=20, help="connections per worker")
    args = parser.parse_args()
    os.environ[STATEMENTS_ENV] = orjson.dumps(api_statements()).decode()
    os.environ[POOL_SIZE_ENV] = str(args.pool_size)
    uvicorn.run(
        "todo_bench.reference:create_app",
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
