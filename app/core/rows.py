"""Table rows as plain Python objects, for code that reads and changes rows by the hundred
in one transaction (the renewal sweep).

A mapped instance costs an identity-map entry, instrumented attributes and change events
on every set, and a unit-of-work pass at flush: for a sweep, more than the rules it runs.
A plain row is the row's columns as attributes and the values it was read with; the
caller's rules change the attributes, and `app.core.bulk.write_rows` writes what differs
in a few statements. Nothing is loaded lazily or cascaded: such a row belongs to the one
transaction that read it (locked, as the sweep reads them).

A subclass names its table and, for the type checker, its fields (a Protocol the mapped
class satisfies too, so the same rules take either).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from sqlalchemy import Row, Table


class PlainRow:
    table: ClassVar[Table]
    _columns: ClassVar[tuple[str, ...]]  # the table's column names, in its order

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._columns = tuple(cls.table.columns.keys())

    def __init__(self, values: Mapping[str, Any]) -> None:
        vars(self).update(values)
        self._read = dict(values)

    @classmethod
    def of(cls, values: Sequence[Any]) -> Self:
        """The row from its values in the table's column order (a `select(table)` row)."""
        return cls(dict(zip(cls._columns, values, strict=True)))

    @classmethod
    def all_of(cls, rows: Sequence[Row[Any]]) -> list[Self]:
        return [cls.of(row) for row in rows]

    def changes(self) -> dict[str, Any]:
        """The columns set to another value since the row was read (or last written)."""
        current = vars(self)
        return {key: current[key] for key, read in self._read.items() if current[key] != read}

    def written(self) -> None:
        """What it holds now is what the database holds."""
        current = vars(self)
        self._read = {key: current[key] for key in self._read}
