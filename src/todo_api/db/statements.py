"""SQLAlchemy statements compiled once into what the driver runs.

The data layer builds its statements from the table models with SQLAlchemy's expression
language, so the schema has one source. Running them through SQLAlchemy's async engine
would redo per execution what can be done once: the cache lookup, parameter processing
set-up, result metadata and the greenlet hop. Here each statement is compiled for the
dialect once, and each execution is only "apply the type processors, call the driver".
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """One statement as its dialect's driver takes it: SQL text with named placeholders."""

    sql: str
    #: Names of the result columns, in order (empty for a statement that returns no rows).
    columns: tuple[str, ...]
    #: Values SQLAlchemy made parameters of itself (the 1 of `version + 1`), processed.
    fixed_parameters: Mapping[str, Any]
    #: Parameter name and the function that turns a Python value into what the driver takes.
    bind_processors: tuple[tuple[str, Processor], ...]
    #: Column position and the function that turns the driver's value into the Python one.
    result_processors: tuple[tuple[int, Processor], ...]
    #: False: never prepared on the server (the statement's execution option `prepare`);
    #: None: prepared where the database's connections prepare statements; True: there,
    #: and from its first run on a connection (the few that most requests run).
    prepare: bool | None = None

    def parameters(self, values: Mapping[str, Any]) -> dict[str, Any]:
        processed = {**self.fixed_parameters, **values}
        for name, process in self.bind_processors:
            value = processed.get(name)
            if value is not None:
                processed[name] = process(value)
        return processed

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        if not self.result_processors:
            return tuple(raw)
        row = list(raw)
        for index, process in self.result_processors:
            row[index] = process(row[index])
        return tuple(row)


def compile_statement(
    statement: ClauseElement, dialect: Dialect, *, loaded_as_is: tuple[type, ...] = ()
) -> CompiledStatement:
    """Compile `statement` for `dialect`.

    Result columns of the types in `loaded_as_is` skip their result processing: the
    driver already gives them as the type would make them.

    Values come as named bind parameters, each given a value when executed; an expanding
    one (`IN` a list bound later) is refused, as its SQL depends on the list's length.
    """
    compiled = statement.compile(dialect=dialect)
    options = statement.get_execution_options() if isinstance(statement, Executable) else {}
    assert isinstance(compiled, SQLCompiler)
    names: Mapping[BindParameter[Any], str] = compiled.bind_names
    bind_processors = []
    fixed = {}
    seen = set()
    for parameter, name in names.items():
        # One name can stand for several parameter objects of one type (the same value
        # used twice); its value must be processed once.
        if name in seen:
            continue
        seen.add(name)
        if parameter.expanding:
            raise ValueError(f"expanding parameter {name!r}: give each value its own name")
        process = parameter.type.dialect_impl(dialect).bind_processor(dialect)
        if not parameter.required:  # SQLAlchemy's own, such as the NULL in `SET x = NULL`
            value = parameter.effective_value
            fixed[name] = value if process is None or value is None else process(value)
        elif process is not None:
            bind_processors.append((name, process))
    columns = getattr(statement, "exported_columns", ())
    result_processors = []
    for index, column in enumerate(columns):
        if isinstance(column.type, loaded_as_is):
            continue
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            result_processors.append((index, process))
    return CompiledStatement(
        sql=compiled.string,
        columns=tuple(column.name for column in columns),
        fixed_parameters=fixed,
        bind_processors=tuple(bind_processors),
        result_processors=tuple(result_processors),
        prepare=options.get("prepare"),
    )
