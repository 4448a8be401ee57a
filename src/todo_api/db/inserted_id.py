"""`inserted_task_id()`: in SQL, the id of the task this connection inserted last."""

from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class inserted_task_id(FunctionElement[int]):  # noqa: N801 - an SQL function, named like one
    """The id the last task insert on this connection was given.

    What lets a statement that writes a new task's tag rows go out together with the
    insert, before its id has come back (`Session.run_together`). Only meaningful right
    after that insert, in the same transaction: both databases keep the value per
    connection (a transaction pooler keeps one server connection for a transaction).
    """

    type = BigInteger()
    inherit_cache = True


@compiles(inserted_task_id)
def _inserted_task_id_postgresql(
    element: inserted_task_id, compiler: SQLCompiler, **kw: Any
) -> str:
    # The sequence behind tasks.id, as this session last advanced it. currval() is volatile:
    # compared with a column, it would be called for each row, and `tasks.id = currval(...)`
    # would read every task of the owner. As a subquery it is one value, found by index.
    return "(SELECT currval(pg_get_serial_sequence('tasks', 'id')))"


@compiles(inserted_task_id, "sqlite")
def _inserted_task_id_sqlite(element: inserted_task_id, compiler: SQLCompiler, **kw: Any) -> str:
    # tasks.id is the table's INTEGER PRIMARY KEY, so its rowid. Each row the statement
    # using it inserts moves last_insert_rowid() on (task_tags has rowids too): as a
    # subquery that reads nothing of the outer query, SQLite evaluates it once, first.
    return "(SELECT last_insert_rowid())"
