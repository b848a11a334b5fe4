"""Write the session's changed rows with one UPDATE per table and column set.

The unit of work sends one UPDATE per changed row (an executemany). A renewal sweep changes
hundreds of rows per transaction, always the same few columns, so on PostgreSQL the changes
go as `UPDATE t SET … FROM unnest(:ids, :col1, …) AS v WHERE t.pk = v.pk`: one statement,
one round trip per set of rows that changed the same columns, and one text per column set
(built once, so nothing is compiled per call). Elsewhere (SQLite) the unit of work writes
them, as before.

Only plain column changes of persistent rows with a single-column primary key are taken;
new and deleted rows, and anything else, are left to the unit of work. Values go through
each column type's own bind processing (a naive datetime is refused as it would be by a
flush). The rows written are expunged from the session: the caller is about to commit, and
the session would otherwise write them again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, inspect, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstanceState, Mapper


@dataclass(frozen=True)
class _Statement:
    text: TextClause
    attributes: tuple[str, ...]  # the primary key's, then the changed columns'
    processors: tuple[Callable[[Any], Any] | None, ...]


_statements: dict[tuple[Mapper[Any], tuple[str, ...]], _Statement] = {}


async def write_updates(session: AsyncSession) -> None:
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        return  # the commit's flush writes them
    groups: dict[tuple[Mapper[Any], tuple[str, ...]], list[InstanceState[Any]]] = defaultdict(list)
    unchanged: list[InstanceState[Any]] = []
    for instance in list(session.dirty):
        state: InstanceState[Any] = inspect(instance)
        mapper = state.mapper
        if len(mapper.primary_key) != 1 or mapper.inherits is not None:
            continue
        # `committed_state` holds the value each attribute set since the row was loaded
        # had then. One set back to that value is not written, as the unit of work would
        # not write it: the rules often set a field to what it already is.
        committed, values = state.committed_state, state.dict
        if not committed or any(key not in mapper.columns for key in committed):
            continue
        keys = tuple(sorted(key for key, before in committed.items() if values[key] != before))
        if keys:
            groups[(mapper, keys)].append(state)
        else:
            unchanged.append(state)
    session.sync_session._expunge_states(unchanged)
    for (mapper, keys), states in groups.items():
        statement = _statements.get((mapper, keys))
        if statement is None:
            statement = _statements[(mapper, keys)] = _statement(mapper, keys, dialect)
        columns: list[list[Any]] = [[] for _ in statement.attributes]
        for state in states:
            values = state.dict
            for index, (attribute, process) in enumerate(
                zip(statement.attributes, statement.processors, strict=True)
            ):
                value = values[attribute]
                columns[index].append(value if process is None else process(value))
        await session.execute(statement.text, {f"c{i}": c for i, c in enumerate(columns)})
        # Session.expunge walks every mapper's cascades per object, a quarter of this
        # function's time in a sweep; it ends in this bulk form, which SQLAlchemy keeps
        # private (2.0). Related objects stay in the session and are flushed as usual.
        session.sync_session._expunge_states(states)


def _statement(mapper: Mapper[Any], keys: tuple[str, ...], dialect: Dialect) -> _Statement:
    identity = mapper.primary_key[0]
    columns: list[Any] = [identity, *(mapper.columns[key] for key in keys)]
    names = [f'"{column.name}"' for column in columns]
    arrays = ", ".join(
        f"CAST(:c{i} AS {column.type.compile(dialect=dialect)}[])"
        for i, column in enumerate(columns)
    )
    table = f'"{mapper.local_table.name}"'  # type: ignore[attr-defined]
    # Only names from the mapping are formatted in; every value is a bound parameter.
    sets = ", ".join(f"{name} = v.{name}" for name in names[1:])
    sql = (
        f"UPDATE {table} SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) "  # noqa: S608
        f"WHERE {table}.{names[0]} = v.{names[0]}"
    )
    return _Statement(
        text(sql),
        (mapper.get_property_by_column(identity).key, *keys),
        tuple(column.type.bind_processor(dialect) for column in columns),
    )
