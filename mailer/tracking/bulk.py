"""A lean ``INSERT … ON CONFLICT DO NOTHING RETURNING`` of many rows, for the event log.

Why not plain SQLAlchemy: the webhook stores up to 1,000 events per post and must keep up
with SendGrid's bursts (>= 20,000 events/s is the target, see ``bench/events.py``). Going
through ``Session.execute(insert(...), rows)`` spends most of its time building and checking
a parameter dict per row. Here the statement text is built once from the table's own
metadata, and values go through the very bind processors SQLAlchemy would use
(``UTCDateTime``, JSON), so what lands in the database is identical. Values are always bound
parameters; nothing from a row ever becomes SQL text.

- SQLite (>= 3.35, for RETURNING): one multi-row ``VALUES`` statement per 500 rows.
- PostgreSQL (psycopg 3): one statement for all the rows with one array parameter per column,
  ``INSERT … SELECT * FROM unnest(%s::type[], …)``: eleven parameters instead of thousands,
  which psycopg adapts in C.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from mailer.storage.arrays import quote, unnest_insert

#: Rows per statement: on SQLite, 500 x 11 columns stays far below the bound-parameter limit.
ROWS_PER_STATEMENT = 500


def insert_new(session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple],
               *, unique: str, serialized: Sequence[str] = ()) -> set[Any]:
    """Insert ``rows`` (tuples in ``columns`` order) skipping any whose ``unique`` column
    value is already stored. Returns the ``unique`` values of the rows inserted.

    ``serialized`` names JSON columns whose values are given as JSON text already (stored
    as is instead of being serialized again)."""
    connection = session.connection()
    dialect = connection.dialect
    columns = tuple(columns)
    processors = [None if name in serialized else (memoized(p) if p else None)
                  for name, p in zip(columns, _processors(table, columns, dialect), strict=True)]
    inserted: set[Any] = set()
    # PostgreSQL takes every row in one statement (one array per column, however long).
    step = max(len(rows), 1) if dialect.name == "postgresql" else ROWS_PER_STATEMENT
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        # Column-wise: only the few columns with a processor (times, JSON) are touched.
        by_column = [list(values) if p is None else [p(v) for v in values]
                     for p, values in zip(processors, zip(*chunk, strict=True), strict=True)]
        if dialect.name == "postgresql":
            sql = _unnest_statement(table, columns, unique)
            params = tuple(by_column)
        else:
            sql = _values_statement(table, columns, unique, len(chunk))
            params = tuple(value for row in zip(*by_column, strict=True) for value in row)
        inserted.update(connection.exec_driver_sql(sql, params).scalars().all())
    return inserted


def _processors(table: Table, columns: tuple[str, ...], dialect: Dialect) -> list:
    return [table.c[name].type._cached_bind_processor(dialect) for name in columns]


def memoized(processor):
    """``processor`` (a bind processor) converting each distinct datetime once: times repeat
    a lot within a batch (SendGrid's are whole seconds, ``received_at`` is one value). Other
    values pass straight through."""
    seen: dict = {}

    def process(value):
        if type(value) is not datetime:
            return processor(value)
        done = seen.get(value)
        if done is None:
            done = seen[value] = processor(value)
        return done
    return process


def _tail(unique: str) -> str:
    return f" RETURNING {quote(unique)}"


@functools.lru_cache(maxsize=64)
def _values_statement(table: Table, columns: tuple[str, ...], unique: str, rows: int) -> str:
    """SQLite: ``INSERT … VALUES (?, …), (?, …)`` for ``rows`` rows."""
    row = "(" + ", ".join(["?"] * len(columns)) + ")"
    return (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES {', '.join([row] * rows)} ON CONFLICT ({quote(unique)}) DO NOTHING"
            + _tail(unique))


def _unnest_statement(table: Table, columns: tuple[str, ...], unique: str) -> str:
    """PostgreSQL: ``INSERT … SELECT * FROM unnest(%s::t1[], %s::t2[], …)``."""
    return unnest_insert(table, columns, (unique,)) + _tail(unique)
