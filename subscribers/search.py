"""Finding people on the list: the staff search box and its filters (dashboard and API).

``search(session, Search(text="hans", status="active"))`` returns one page of subscribers,
newest first. The text matches anywhere in the address or the name, case-insensitively;
digits also match the start of the ZIP code. Every face calls this one function, so the
dashboard and the API find the same people.

Why it is fast on a million rows: a substring of three characters or more is answered by a
trigram index (migration 0011): on PostgreSQL ``pg_trgm`` GIN indexes on ``email`` and
``lower(name)``, which serve ``LIKE '%…%'`` directly; on SQLite an FTS5 table with the
trigram tokenizer kept in step with ``subscribers`` by triggers. Shorter text has no
trigram to look up: one or two digits search ZIP codes (by a range on their index), one or
two letters search nothing and the page asks for more (``needs_more``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, false, func, or_, select, text
from sqlalchemy.orm import Session

from subscribers.models import Subscriber, SubscriberTopic, Topic

#: The SQLite full-text table that mirrors (email, name) of ``subscribers`` (see 0011).
SQLITE_SEARCH_TABLE = "subscriber_search"
MIN_INDEXED = 3
#: How many of the newest rows PostgreSQL searches by walking before it asks the index.
RECENT_WINDOW = 20_000
MAX_TEXT = 200


@dataclass(frozen=True)
class Search:
    """What staff asked for; every field optional. ``topic`` is a slug."""

    text: str = ""
    status: str | None = None
    county: str | None = None
    topic: str | None = None
    limit: int = 50
    offset: int = 0


def search(session: Session, query: Search) -> list[Subscriber]:
    """One page of matching subscribers, newest first."""
    stmt = _filtered(session, select(Subscriber), query)
    wanted = _wanted(query.text)
    if session.get_bind().dialect.name == "postgresql" and _uses_trigrams(wanted):
        return _in_two_steps(session, stmt, query)
    return _page(session, stmt, query.offset, query.limit)


def _page(session: Session, stmt: Select, offset: int, limit: int) -> list[Subscriber]:
    return list(session.scalars(stmt.order_by(Subscriber.id.desc()).limit(limit)
                                .offset(offset)))


def _in_two_steps(session: Session, stmt: Select, query: Search) -> list[Subscriber]:
    """PostgreSQL cannot tell how many rows a ``LIKE '%…%'`` matches, so for "newest first"
    it walks the primary key and filters: instant for a common name, a scan of the table for
    a rare one. So look among the newest ``RECENT_WINDOW`` rows first (a bounded walk, which
    fills the page when the text is common); only when they hold too few matches, find the
    older ones through the trigram index, with the walk ruled out (a rare text has few
    matches, which the index finds directly)."""
    wanted = query.offset + query.limit
    newest = select(Subscriber.id).order_by(Subscriber.id.desc()).limit(RECENT_WINDOW).subquery()
    floor = session.scalar(select(func.min(newest.c.id)))
    if floor is None:
        return []
    recent = _page(session, stmt.where(Subscriber.id >= floor), 0, wanted)
    if len(recent) == wanted:
        return recent[query.offset:]
    session.execute(text("SET LOCAL enable_indexscan = off"))
    try:
        older = _page(session, stmt.where(Subscriber.id < floor), 0, wanted - len(recent))
    finally:
        session.execute(text("SET LOCAL enable_indexscan = on"))
    return (recent + older)[query.offset:]


def _uses_trigrams(wanted: str) -> bool:
    return len(wanted) >= MIN_INDEXED and not (wanted.isdigit() and len(wanted) <= 2)


def _filtered(session: Session, stmt: Select, query: Search) -> Select:
    if query.status:
        stmt = stmt.where(Subscriber.status == query.status)
    if query.county:
        stmt = stmt.where(func.lower(Subscriber.county) == query.county.strip().lower())
    if query.topic:
        follows = (select(SubscriberTopic.subscriber_id).join(Topic)
                   .where(Topic.slug == query.topic.strip().lower()))
        stmt = stmt.where(Subscriber.id.in_(follows))
    wanted = _wanted(query.text)
    if wanted:
        stmt = stmt.where(_matches(session, wanted))
    return stmt


def _wanted(text_: str) -> str:
    """The search text as matched: control characters (NUL breaks a full-text query and
    PostgreSQL refuses it in any text) dropped, trimmed, lower-cased, bounded."""
    return "".join(ch for ch in text_ if ch >= " ").strip().lower()[:MAX_TEXT]


def needs_more(text_: str) -> bool:
    """True when ``text_`` is too short to search names and addresses by: one or two
    letters match a large part of any list and no index can find them (digits still search
    ZIP codes)."""
    wanted = _wanted(text_)
    return 0 < len(wanted) < MIN_INDEXED and not wanted.isdigit()


def _matches(session: Session, wanted: str):
    if wanted.isdigit() and len(wanted) <= 5:
        zip_start = _zip_starts(wanted)
        return zip_start if len(wanted) < MIN_INDEXED else or_(zip_start, _text(session, wanted))
    if len(wanted) < MIN_INDEXED:
        return false()
    return _text(session, wanted)


def _text(session: Session, wanted: str):
    """Anywhere in the address or the name, through the trigram index."""
    if session.get_bind().dialect.name == "sqlite":
        phrase = '"' + wanted.replace('"', '""') + '"'
        found = text(f"SELECT rowid FROM {SQLITE_SEARCH_TABLE} "
                     f"WHERE {SQLITE_SEARCH_TABLE} MATCH :phrase").bindparams(phrase=phrase)
        return Subscriber.id.in_(found)
    like = f"%{escape_like(wanted)}%"
    return or_(Subscriber.email.like(like, escape="\\"),
               func.lower(Subscriber.name).like(like, escape="\\"))


def _zip_starts(digits: str):
    """ZIP codes starting with ``digits``, as a range the ZIP index serves in any collation:
    581 → [581, 582); 589 → [589, 59); 99 → [99, …)."""
    low = Subscriber.zip >= digits
    stem = digits.rstrip("9")
    if not stem:
        return low
    return and_(low, Subscriber.zip < stem[:-1] + str(int(stem[-1]) + 1))


def escape_like(text_: str) -> str:
    """``text_`` with LIKE's wildcards taken literally (used with ``escape="\\\\"``)."""
    return text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
