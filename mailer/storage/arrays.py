"""PostgreSQL: many rows in one INSERT, one array parameter per column.

``INSERT INTO t (a, b) SELECT * FROM unnest(%b::a_type[], %b::b_type[]) ON CONFLICT … DO
NOTHING`` takes a whole chunk (thousands of rows) as a handful of parameters that psycopg
adapts in C, in binary: far cheaper than an executemany of a row at a time, which both the
event log (``mailer.tracking.bulk``) and the subscriber import (``subscribers.bulk``) would
otherwise spend most of their time in. Values are always bound; only the table's own column
names and types become SQL text.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy import Table


def quote(name: str) -> str:
    """An identifier quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


@functools.lru_cache(maxsize=64)
def unnest_insert(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...]) -> str:
    """The statement for ``table``: one ``%b`` array parameter per name in ``columns``, rows
    that conflict on the unique ``conflict`` columns skipped."""
    from sqlalchemy.dialects.postgresql import psycopg

    dialect = psycopg.dialect()
    # %b: binary format, so psycopg need not quote every string of every array in Python.
    arrays = ", ".join(f"%b::{table.c[c].type.compile(dialect=dialect)}[]" for c in columns)
    return (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
            f"SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(quote(c) for c in conflict)}) DO NOTHING")


def as_arrays(rows: Sequence[tuple]) -> tuple[list, ...]:
    """Rows (tuples of one length) turned into one list per column, the parameters of
    ``unnest_insert``."""
    return tuple(list(column) for column in zip(*rows, strict=True))


__all__ = ["as_arrays", "quote", "unnest_insert"]
