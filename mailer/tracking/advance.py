"""Advance delivery rows from newly stored provider events, monotonically.

A delivery only ever moves upwards: to a status of higher ``STATUS_RANK`` and, per kind of
event, to an earlier time (``EVENT_TIME_COLUMN``). So a late ``processed`` never overwrites
``delivered`` and a bounce after ``delivered`` wins, whatever order posts arrive in.

Two steps per post:

- ``plan(pairs, stored_form)`` folds the post's events into one ``Advance`` per delivery
  (the highest status they prove, the earliest time of each kind) and keeps only those that
  move the row *as it was read* when the events were matched. That read may be stale, but
  skipping on it is safe: a row already at or past an advance can only have moved further
  since. Rows nothing moves (a late ``processed``, a second open) are never written.
- ``apply(session, advances)`` merges the advances into the rows *as they are now*, in SQL:
  the database compares with the current values itself, so two posts about the same delivery
  cannot undo each other. PostgreSQL gets one ``UPDATE … FROM unnest(arrays)`` per post;
  SQLite an executemany of the same per-row merge.

Row locks: the PostgreSQL statement reaches each row through ``id = ANY(sorted ids)`` and
joins it with arrays in the same sorted order, so the plans it gets (a nested loop over the
arrays, or a hash join probed by either side) lock rows in ascending id order, and
concurrent posts about overlapping deliveries queue behind each other instead of
deadlocking. Only a scan of the whole table would lock in table order; next to an index
lookup of at most 1,000 ids the planner does not choose one, and were a deadlock ever
reported, ``ingest_with_retry`` tries the post again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.storage.base import utcnow
from mailer.tracking import events as ev
from mailer.tracking.bulk import memoized

#: Delivery states ordered by how much we know. ``skipped`` rows were never handed off, so
#: no provider event may move their status.
STATUS_RANK: dict[str, int] = {
    DS.PENDING: 0, DS.SENDING: 1, DS.IN_DOUBT: 1, DS.FAILED: 1, DS.ACCEPTED: 2,
    DS.DEFERRED: 3, DS.DELIVERED: 4, DS.DROPPED: 5, DS.BOUNCED: 6, DS.SKIPPED: 9,
}
#: Event type -> the delivery status it proves. Opens, clicks, complaints and unsubscribes
#: can only come from a message that arrived, so they imply ``delivered``.
EVENT_STATUS: dict[str, str] = {
    ev.QUEUED: DS.ACCEPTED, ev.DEFERRED: DS.DEFERRED, ev.DELIVERED: DS.DELIVERED,
    ev.OPENED: DS.DELIVERED, ev.CLICKED: DS.DELIVERED, ev.COMPLAINED: DS.DELIVERED,
    ev.UNSUBSCRIBED: DS.DELIVERED, ev.DROPPED: DS.DROPPED, ev.BOUNCED: DS.BOUNCED,
    ev.BLOCKED: DS.BOUNCED,
}
#: Event type -> the delivery timestamp column it sets (the earliest such event wins).
EVENT_TIME_COLUMN: dict[str, str] = {
    ev.QUEUED: "sent_at", ev.DELIVERED: "delivered_at", ev.OPENED: "opened_at",
    ev.CLICKED: "clicked_at", ev.BOUNCED: "bounced_at", ev.BLOCKED: "bounced_at",
    ev.COMPLAINED: "complained_at", ev.UNSUBSCRIBED: "unsubscribed_at",
}
TIME_COLUMNS = ("sent_at", "delivered_at", "opened_at", "clicked_at", "bounced_at",
                "complained_at", "unsubscribed_at")
_RANK_STATUS = {STATUS_RANK[status]: status for status in EVENT_STATUS.values()}
_EVENT_RANK = {kind: STATUS_RANK[status] for kind, status in EVENT_STATUS.items()}
#: Event type -> its time's position in a folded entry ([rank, *times, ref]).
_TIME_SLOT = {kind: 1 + TIME_COLUMNS.index(name) for kind, name in EVENT_TIME_COLUMN.items()}
_NO_TIMES = (None,) * len(TIME_COLUMNS)
NO_STATUS = -1  # the rank of an advance whose events prove no status
_ROWS_PER_UPDATE = 1000  # PostgreSQL: deliveries per statement (arrays of this length)


class Advance(NamedTuple):
    """What one post's events prove about one delivery."""

    delivery_id: int
    rank: int  # NO_STATUS when none of the events proves a status
    times: tuple[datetime | None, ...]  # earliest of each kind, in TIME_COLUMNS order

    @property
    def status(self) -> str | None:
        return _RANK_STATUS.get(self.rank)


def plan(pairs: Iterable[tuple[Any, ev.DeliveryEvent]],
         stored_form: Callable[[datetime], Any]) -> list[Advance]:
    """One advance per delivery these (delivery ref, event) pairs are about, in delivery id
    order, leaving out the deliveries they would not move.

    ``ref.status`` and the refs' time attributes are the row as read (driver values);
    ``stored_form`` turns one of our datetimes into the driver's form of the same column,
    so the two compare as the database would compare them.
    """
    folded: dict[int, list] = {}  # delivery id -> [rank, time per TIME_COLUMNS..., ref]
    event_rank, time_slot = _EVENT_RANK, _TIME_SLOT
    for ref, event in pairs:
        entry = folded.get(ref.id)
        if entry is None:
            entry = folded[ref.id] = [NO_STATUS, *_NO_TIMES, ref]
        kind = event.type
        rank = event_rank.get(kind, NO_STATUS)
        if rank > entry[0]:
            entry[0] = rank
        slot = time_slot.get(kind)
        if slot is not None:
            at, earliest = event.occurred_at, entry[slot]
            if earliest is None or at < earliest:
                entry[slot] = at
    advances = []
    for delivery_id in sorted(folded):
        entry = folded[delivery_id]
        advance = Advance(delivery_id, entry[0], tuple(entry[1:-1]))
        if moves(entry[-1], advance, stored_form):
            advances.append(advance)
    return advances


def moves(ref: Any, advance: Advance, stored_form: Callable[[datetime], Any]) -> bool:
    """Whether ``advance`` changes the row ``ref`` as read: a higher status, or a time where
    the row has none or a later one."""
    if advance.rank > STATUS_RANK.get(ref.status, 0):
        return True
    for name, new in zip(TIME_COLUMNS, advance.times, strict=True):
        if new is not None:
            current = getattr(ref, name)
            if current is None or stored_form(new) < current:
                return True
    return False


def apply(session: Session, advances: Sequence[Advance]) -> None:
    """Merge ``advances`` (from ``plan``: one per delivery, in id order) into the rows as they
    are now. Must run in the transaction that stored the events."""
    if not advances:
        return
    connection = session.connection()
    now = utcnow()
    if connection.dialect.name == "postgresql":
        for start in range(0, len(advances), _ROWS_PER_UPDATE):
            chunk = advances[start:start + _ROWS_PER_UPDATE]
            ids = [a.delivery_id for a in chunk]
            times = [list(column) for column in zip(*(a.times for a in chunk), strict=True)]
            connection.exec_driver_sql(_POSTGRES_MERGE, (
                now, ids, [a.rank for a in chunk], [a.status for a in chunk], *times, ids))
        return
    convert = stored_form(session)
    rows = []
    for advance in advances:
        row = {"id": advance.delivery_id, "rank": advance.rank, "status": advance.status,
               "now": convert(now)}
        for name, value in zip(TIME_COLUMNS, advance.times, strict=True):
            row[name] = None if value is None else convert(value)
        rows.append(row)
    connection.exec_driver_sql(_SQLITE_MERGE, rows)


def _rank_of(column: str) -> str:
    """SQL for the rank of the status in ``column``. The table of ranks is rendered into the
    statement: a closed set of our own constants (checked below), never a value from input."""
    whens = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANK.items())
    return f"CASE {column} {whens} ELSE 0 END"


if not all(status.isidentifier() and status.islower() for status in STATUS_RANK):
    raise RuntimeError("delivery statuses must be plain lower-case words to be put in SQL")

#: PostgreSQL: every delivery of a post in one statement, one array parameter per column
#: (``%b``: binary, adapted by psycopg in C). ``LEAST`` ignores NULLs: the earliest time wins.
_POSTGRES_MERGE = f"""
UPDATE deliveries AS d
SET status = CASE WHEN v.rank > {_rank_of("d.status")} THEN v.status ELSE d.status END,
    {", ".join(f"{c} = LEAST(d.{c}, v.{c})" for c in TIME_COLUMNS)},
    updated_at = %b
FROM unnest(%b::bigint[], %b::integer[], %b::varchar[],
            {", ".join(["%b::timestamptz[]"] * len(TIME_COLUMNS))})
     AS v(id, rank, status, {", ".join(TIME_COLUMNS)})
WHERE d.id = v.id AND d.id = ANY(%b::bigint[])
  AND (v.rank > {_rank_of("d.status")}
       {" ".join(f"OR v.{c} < d.{c} OR (d.{c} IS NULL AND v.{c} IS NOT NULL)"
                 for c in TIME_COLUMNS)})
"""

#: SQLite: the same merge, a row per delivery (executemany). Its two-argument ``min`` is NULL
#: when either side is, hence the coalesce.
_SQLITE_MERGE = f"""
UPDATE deliveries
SET status = CASE WHEN :rank > {_rank_of("status")} THEN :status ELSE status END,
    {", ".join(f"{c} = coalesce(min({c}, :{c}), {c}, :{c})" for c in TIME_COLUMNS)},
    updated_at = :now
WHERE id = :id
  AND (:rank > {_rank_of("status")}
       {" ".join(f"OR :{c} < {c} OR ({c} IS NULL AND :{c} IS NOT NULL)" for c in TIME_COLUMNS)})
"""


def stored_form(session: Session) -> Callable[[datetime], Any]:
    """Our datetime as the driver returns a time column of ``deliveries`` (SQLite: text in
    SQLAlchemy's storage format; PostgreSQL: an aware datetime), memoized per value since a
    post repeats SendGrid's whole-second timestamps."""
    return memoized(Delivery.__table__.c.sent_at.type._cached_bind_processor(
        session.get_bind().dialect))  # UTCDateTime's, then the dialect's own
