"""Write many rows at once: changed plain rows (app/core/rows.py) with one UPDATE per table
and column set, new rows with one INSERT.

The unit of work sends one UPDATE per changed row, and a Core executemany one message per
new row, each parameter processed in Python. A renewal sweep changes hundreds of rows per
transaction, always the same few columns, so on PostgreSQL they go over arrays:

    UPDATE t SET a = v.a, b = :b FROM unnest(:ids, :a) AS v(id, a) WHERE t.id = v.id
    INSERT INTO t (id, a, b) SELECT v.id, v.a, :b FROM unnest(:ids, :a) AS v(id, a)

one statement per set of rows that changed the same columns. A column holding the same
value in every row (a status, a timestamp, a flag) is sent once instead of as an array:
asyncpg encodes arrays element by element, and such columns were half of a sweep's. Texts
are built once per shape and kept. Elsewhere (SQLite) Core writes them with executemany.

Rows are updated by a single-column primary key. Values go through each column type's own
bind processing (a naive datetime is refused as it would be by a flush).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import JSON, Column, Table, TextClause, Update, bindparam, insert, text, update
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.rows import PlainRow

Processor = Callable[[Any], Any] | None


class EncodedJSON(str):
    """JSON text already encoded, for a JSON column: written as it is, not encoded again
    (an event's payload is encoded once, to be checked for secrets and written)."""


async def write_rows(session: AsyncSession, rows: Iterable[PlainRow]) -> None:
    """Write what changed in plain rows (app/core/rows.py): one UPDATE per table and set of
    changed columns, over arrays on PostgreSQL, an executemany elsewhere. A row given twice
    (rows that share one, as the renewals of a service share its row) is written once."""
    groups: dict[tuple[Table, tuple[str, ...]], list[PlainRow]] = defaultdict(list)
    for row in {id(row): row for row in rows}.values():
        changes = row.changes()
        if changes:  # names in the table's column order: the same set, the same tuple
            groups[(row.table, tuple(changes))].append(row)
    dialect = session.get_bind().dialect
    for (table, keys), group in groups.items():
        names = (_primary_key(table), *keys)
        values = [[vars(row)[name] for name in names] for row in group]
        if dialect.name == "postgresql":
            written = await _execute(session, dialect, "update", table, names, values)
        else:
            bound = [f"b_{name}" for name in names]
            parameters = [dict(zip(bound, row_values, strict=True)) for row_values in values]
            result = await session.execute(_update_by_key(table, names), parameters)
            written = int(cast(CursorResult[Any], result).rowcount)
        # The rows were read under a lock in this transaction: each must still be there
        # (the unit of work raised StaleDataError for the same).
        if written != len(group):
            raise RuntimeError(f"{table.name}: {written} of {len(group)} rows updated")
        for row in group:
            row.written()


async def insert_rows(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows`, each naming every column of `table` (no defaults are applied here)."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    names = tuple(rows[0])
    if set(names) != set(table.columns.keys()):
        missing = sorted(set(table.columns.keys()) - set(names))
        raise ValueError(f"rows for {table.name} must name every column; missing {missing}")
    if dialect.name != "postgresql":
        # Core encodes JSON itself here: encoded values go back to what they stand for.
        decoded = [
            {name: json.loads(v) if isinstance(v, EncodedJSON) else v for name, v in row.items()}
            for row in rows
        ]
        await session.execute(insert(table), decoded)
        return
    values = [[row[name] for name in names] for row in rows]
    await _execute(session, dialect, "insert", table, names, values)


@lru_cache(maxsize=64)
def _primary_key(table: Table) -> str:
    (column,) = table.primary_key.columns
    return column.name


@lru_cache(maxsize=64)
def _update_by_key(table: Table, names: tuple[str, ...]) -> Update:
    """UPDATE of the columns `names[1:]` of the row whose key is `names[0]`, by parameters
    named after the columns (with a prefix: Core reserves the bare names for SET)."""
    key, *columns = names
    return (
        update(table)
        .where(table.columns[key] == bindparam(f"b_{key}"))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )


async def _execute(
    session: AsyncSession,
    dialect: Dialect,
    kind: str,
    table: Table,
    names: tuple[str, ...],
    rows: Sequence[list[Any]],
) -> int:
    """One UPDATE (the first column is the primary key) or INSERT of `rows`, values in
    `names` order, with a column sent once when it holds one value in every row; the number
    of rows it wrote."""
    single: list[bool] = []
    parameters: dict[str, Any] = {}
    for index, process in enumerate(_processors(table, names, dialect)):
        values = [row[index] for row in rows]
        # The first column (an UPDATE's primary key, which the rows are joined on) is
        # always an array: it gives the statement its rows. A column of one value is
        # processed once (equal values process to equal values; a naive timestamp equals
        # no aware one, so it is still met and refused).
        once = index > 0 and len(rows) > 1 and values.count(values[0]) == len(rows)
        if once:
            values = values[:1]
        if process is not None:
            values = [process(value) for value in values]
        parameters[f"c{index}"] = values[0] if once else values
        single.append(once)
    statement = _text(kind, table, names, tuple(single), dialect)
    result = await session.execute(statement, parameters)
    return int(cast(CursorResult[Any], result).rowcount)


@lru_cache(maxsize=256)
def _processors(table: Table, names: tuple[str, ...], dialect: Dialect) -> tuple[Processor, ...]:
    return tuple(_processor(table.columns[name], dialect) for name in names)


def _processor(column: Column[Any], dialect: Dialect) -> Processor:
    process = column.type.bind_processor(dialect)
    if not isinstance(column.type, JSON) or process is None:
        return process
    encode = process

    def encode_unless_encoded(value: Any) -> Any:
        return str(value) if isinstance(value, EncodedJSON) else encode(value)

    return encode_unless_encoded


@lru_cache(maxsize=256)
def _text(
    kind: str, table: Table, names: tuple[str, ...], single: tuple[bool, ...], dialect: Dialect
) -> TextClause:
    """The statement of one shape: which columns, which of them sent once."""
    columns: list[Column[Any]] = [table.columns[name] for name in names]
    values, arrays, unnested = [], [], []
    for index, (column, once) in enumerate(zip(columns, single, strict=True)):
        sql_type = column.type.compile(dialect=dialect)
        if once:
            values.append(f"CAST(:c{index} AS {sql_type})")
        else:
            values.append(f'v."{column.name}"')
            arrays.append(f"CAST(:c{index} AS {sql_type}[])")
            unnested.append(f'"{column.name}"')
    source = f"unnest({', '.join(arrays)}) AS v({', '.join(unnested)})"
    target = f'"{table.name}"'
    # Only names from the table are formatted in; every value is a bound parameter.
    if kind == "update":
        pairs = zip(columns[1:], values[1:], strict=True)
        sets = ", ".join(f'"{column.name}" = {value}' for column, value in pairs)
        key = f'"{columns[0].name}"'
        return text(f"UPDATE {target} SET {sets} FROM {source} WHERE {target}.{key} = v.{key}")  # noqa: S608
    quoted = ", ".join(f'"{column.name}"' for column in columns)
    return text(f"INSERT INTO {target} ({quoted}) SELECT {', '.join(values)} FROM {source}")  # noqa: S608
