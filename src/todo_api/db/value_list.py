"""A list of values bound as one parameter, and "column is one of them" on both databases.

One parameter whatever the list's length keeps one statement (one compiled text, one
plan to make) for any number of tags or ETags: a parameter per value made the planner's
work grow with the list (a 32-tag filter took 200 ms to plan).
"""

import json
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Dialect, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine


class ValueList(TypeDecorator[list[Any]]):
    """A list: an array of `item_type` on PostgreSQL, a JSON array in text on SQLite."""

    impl = String()
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(self.item_type))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps(value)


class one_of(FunctionElement[bool]):  # noqa: N801 - an SQL condition, named like a function
    """one_of(column, values): whether `column` equals one of `values` (a ValueList)."""

    type = Boolean()
    inherit_cache = True
    # A condition already: on SQLite (no boolean type) it is not compared with 1.
    _is_implicitly_boolean = True

    def __init__(self, column: ColumnElement[Any], values: ColumnElement[Any]) -> None:
        super().__init__(column, values)


@compiles(one_of)
def _one_of_postgresql(element: one_of, compiler: SQLCompiler, **kw: Any) -> str:
    # PostgreSQL's spelling, also what a statement printed without a dialect shows.
    column, values = list(element.clauses)
    return f"{compiler.process(column, **kw)} = ANY ({compiler.process(values, **kw)})"


@compiles(one_of, "sqlite")
def _one_of_sqlite(element: one_of, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = list(element.clauses)
    return (
        f"{compiler.process(column, **kw)} IN "
        f"(SELECT value FROM json_each({compiler.process(values, **kw)}))"
    )
