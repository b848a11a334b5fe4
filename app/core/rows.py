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

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, ClassVar, Self

from sqlalchemy import Row, Table


class PlainRow:
    table: ClassVar[Table]
    _columns: ClassVar[tuple[str, ...]]  # the table's column names, in its order
    # The row's present values in that order, as a tuple (one C-level call; an attrgetter,
    # which an instance does not bind, so it is called on the class).
    _present: ClassVar[Callable[[PlainRow], tuple[Any, ...]]]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._columns = tuple(cls.table.columns.keys())
        if len(cls._columns) < 2:  # attrgetter of one name gives a value, not a tuple
            raise TypeError(f"{cls.table.name}: a plain row needs two columns or more")
        cls._present = attrgetter(*cls._columns)

    def __init__(self, values: Sequence[Any]) -> None:
        vars(self).update(zip(self._columns, values, strict=True))
        self._read = tuple(values)

    # Rows are made through these: the type checker takes the fields a subclass declares
    # through its Protocol for abstract, as nothing in the class body assigns them.
    @classmethod
    def of(cls, values: Sequence[Any]) -> Self:
        """The row from its values in the table's column order (a `select(table)` row)."""
        return cls(values)

    @classmethod
    def all_of(cls, rows: Sequence[Row[Any]]) -> list[Self]:
        return [cls(row) for row in rows]

    def changes(self) -> dict[str, Any]:
        """The columns set to another value since the row was read (or last written)."""
        present = type(self)._present(self)
        if present == self._read:
            return {}
        return {
            name: value
            for name, value, read in zip(self._columns, present, self._read, strict=True)
            if value != read
        }

    def reread(self, source: object) -> None:
        """Take every column from `source`, the same row read again (as a mapped instance,
        under a lock), as what the database holds."""
        if self.changes():
            raise RuntimeError(f"{self.table.name}: rereading would lose unwritten changes")
        vars(self).update((name, getattr(source, name)) for name in self._columns)
        self.written()

    def written(self) -> None:
        """What it holds now is what the database holds."""
        self._read = type(self)._present(self)
