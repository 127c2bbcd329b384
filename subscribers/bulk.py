"""Executemany for imports of a million rows.

SQLAlchemy's executemany runs every value of every row through its parameter machinery
(more than half of a big import's CPU time). Here the statement is still built and compiled
by SQLAlchemy, values are still bound parameters, and each parameter's own type still converts
them; but the statement is compiled once per call, each distinct value is converted once (a
chunk shares one timestamp) and the rows go straight to the driver's ``executemany``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from operator import itemgetter

from sqlalchemy import ColumnElement, Table, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from mailer.storage.arrays import as_arrays, unnest_insert


def execute_many(session: Session, statement: Executable, rows: Sequence[dict]) -> None:
    """Execute ``statement`` once per row of ``rows``; every row has a value for each of the
    statement's bound parameters (by name). Nothing is spliced into SQL text.

    The dicts in ``rows`` get their values converted in place (a copy of a chunk's rows is
    tens of megabytes): the caller must not use them afterwards."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
    converters = {name: converter(compiled.binds[name].type, dialect) for name in names}
    converting = {n: c for n, c in converters.items() if c is not _unchanged}
    fixed = {n: compiled.binds[n].effective_value for n in names if n not in rows[0]}
    if fixed:  # values the statement itself holds (literals) fill every row
        rows = [{**fixed, **row} for row in rows]
    for name, convert in converting.items():
        for row in rows:
            row[name] = convert(row[name])
    if compiled.positional:
        getter = itemgetter(*names)
        parameters = [getter(row) if len(names) > 1 else (getter(row),) for row in rows]
    else:
        parameters = rows
    connection.exec_driver_sql(compiled.string, parameters)


def _unchanged(value):
    return value


def insert_prepared(session: Session, table: Table, columns: Sequence[str],
                    rows: Sequence[tuple], conflict: Sequence[str]) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order, every value already what the driver
    takes: see ``converter``) into ``table``, skipping any row that conflicts on the unique
    ``conflict`` columns. PostgreSQL gets one statement with an array per column
    (``mailer.storage.arrays``); SQLite an executemany of the tuples as they are."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(unnest_insert(table, tuple(columns), tuple(conflict)),
                                   as_arrays(rows))
        return
    # sqlite3 takes "?" placeholders, which the statement has in ``columns`` order.
    statement = (sqlite.insert(table)
                 .values({c: bindparam(c, type_=table.c[c].type) for c in columns})
                 .on_conflict_do_nothing(index_elements=list(conflict)))
    connection.exec_driver_sql(statement.compile(dialect=connection.dialect).string, rows)


def insert_ignoring(session: Session, table: Table, rows: Sequence[dict],
                    conflict: Sequence[str]) -> None:
    """INSERT ``rows`` (dicts with the same keys) into ``table``, skipping any row that
    conflicts on the unique ``conflict`` columns (another process added it meanwhile)."""
    if not rows:
        return
    maker = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (maker(table).values({c: bindparam(c, type_=table.c[c].type) for c in rows[0]})
                 .on_conflict_do_nothing(index_elements=list(conflict)))
    execute_many(session, statement, rows)


def one_of(session: Session, column, values: Sequence) -> ColumnElement[bool]:
    """``column IN values`` with the whole list as ONE bound parameter (a JSON array read by
    ``json_each`` on SQLite, an array compared with ``= ANY`` on PostgreSQL). A chunk of 20,000
    values would otherwise be 20,000 parameters that SQLAlchemy renders into the statement
    each time (a tenth of an import's CPU). ``values`` must be str or int, like ``column``
    (and not None)."""
    # In key order: the probes then walk the index from page to page instead of jumping
    # around it (what SQLite does itself with a literal IN list), which matters once the
    # index is bigger than the page cache.
    values = sorted(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    listed = func.json_each(bindparam(None, json.dumps(values))).table_valued("value")
    return column.in_(select(listed.c.value))


def converter(column_type, dialect):
    """What SQLAlchemy would do to a value of ``column_type`` before handing it to
    ``dialect``'s driver (None stays None), remembering recent results: the values of an
    import repeat (one timestamp per chunk)."""
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return _unchanged
    cache: dict = {}

    def convert(value):
        if value is None:
            return None
        try:
            return cache[value]
        except KeyError:
            if len(cache) > 10_000:  # many distinct values: stop remembering old ones
                cache.clear()
            converted = cache[value] = process(value)
            return converted
        except TypeError:  # unhashable
            return process(value)

    return convert


__all__ = ["converter", "execute_many", "insert_ignoring", "insert_prepared", "one_of"]
