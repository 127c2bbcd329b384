"""Finding releases by the words in their title or body (the dashboard's releases page and
``mailer releases list --search``).

``matching(session, text, newest)`` is the search ``service.list_releases`` runs through
``page_ids``: every word must appear in the title or the body, any case. Why it stays fast:
the newest ``RECENT`` releases are read first, which fills a page when the words are
common; past them, a word of three
characters or more is answered by a trigram index (migration 0017): on PostgreSQL
``pg_trgm`` GIN indexes on ``title`` and ``body``, which serve ``ILIKE '%…%'``; on SQLite an
FTS5 table with the trigram tokenizer kept in step with ``releases`` by triggers. A shorter
word has no trigram to look up, so it is matched by reading bodies, but only among the
newest ``SEARCH_WINDOW`` releases: a bounded scan however many releases pile up.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, and_, or_, select, text, true
from sqlalchemy.orm import Session

from mailer.ingest.models import Release
from subscribers.search import escape_like

#: The SQLite full-text table that mirrors (title, body) of ``releases`` (see 0017).
SQLITE_SEARCH_TABLE = "release_search"
#: How many of the newest releases a word too short for the index is looked for in.
SEARCH_WINDOW = 5000
MIN_INDEXED = 3
#: How many of the newest releases a search reads before it asks the index (``page_ids``).
RECENT = 200
MAX_WORDS, MAX_WORD = 8, 100


def search_words(text_: str | None) -> list[str]:
    """The words a release search looks for: at most ``MAX_WORDS``, each at most
    ``MAX_WORD`` characters; control characters (a NUL breaks a full-text query, and
    PostgreSQL refuses it in any text) are dropped."""
    cleaned = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text_ or "")
    return [word[:MAX_WORD] for word in cleaned.split()][:MAX_WORDS]


@dataclass(frozen=True)
class Match:
    """A search, two ways: ``condition`` asks the trigram index where it can (``indexed``);
    ``scan`` reads titles and bodies (for a few rows, the cheaper way)."""

    condition: Any
    scan: Any
    indexed: bool


def matching(session: Session, text_: str | None, newest) -> Match | None:
    """The search for releases holding every word of ``text_`` (None: no words).
    ``newest`` is the listing's order, which defines the window for short words."""
    words = search_words(text_)
    if not words:
        return None
    dialect = session.get_bind().dialect.name
    indexed = [w for w in words if len(w) >= MIN_INDEXED and dialect in ("sqlite", "postgresql")]
    short = [w for w in words if w not in indexed]
    bounded = [_in_window(session, newest), *map(_anywhere, short)] if short else []
    if indexed and dialect == "sqlite":
        phrases = " AND ".join('"' + w.replace('"', '""') + '"' for w in indexed)
        found = [Release.id.in_(
            text(f"SELECT rowid FROM {SQLITE_SEARCH_TABLE} "
                 f"WHERE {SQLITE_SEARCH_TABLE} MATCH :phrases")
            .bindparams(phrases=phrases).columns(rowid=Integer))]
    else:  # PostgreSQL's GIN indexes serve ILIKE itself
        found = [_anywhere(w) for w in indexed]
    return Match(and_(*found, *bounded), and_(*map(_anywhere, indexed), *bounded),
                 bool(indexed))


def page_ids(session: Session, ids: Select, match: Match | None, newest, *,
             offset: int = 0, limit: int | None = None) -> list[int]:
    """One page of the listing's ids (``ids`` is ordered, without offset and limit).

    An indexed search goes in two steps. A common word matches most releases, and a
    trigram index hands every one of them over to be sorted by date (SQLite) or rechecked
    against its body (PostgreSQL), where reading the newest releases in date order finds a
    page of them at once. So the newest ``RECENT`` releases are read first (a bounded read,
    which fills the page when the words are common); only when they hold too few matches
    are the older ones found through the index (rarer words: few rows). PostgreSQL's
    planner is told which way to go each time: it prices a scan of ``releases`` by its
    pages, not by the TOASTed bodies an ``ILIKE`` unpacks, so left alone it reads every
    body (0.4 s on 5,000 releases) where the GIN indexes answer in milliseconds."""
    if match is None or not match.indexed or limit is None:
        stmt = ids if match is None else ids.where(match.condition)
        return list(session.scalars(stmt.offset(offset or None).limit(limit)))
    wanted = offset + limit
    newest_rows = session.execute(select(Release.id, Release.date).order_by(*newest)
                                  .limit(RECENT)).all()
    if len(newest_rows) < RECENT:  # so few releases that reading them all is the bound
        return list(session.scalars(ids.where(match.scan).offset(offset or None).limit(limit)))
    # The newest by their primary key (the one way PostgreSQL reads just them)...
    with _without(session, "seqscan", "bitmapscan"):
        recent = list(session.scalars(
            ids.where(Release.id.in_([row.id for row in newest_rows]), match.scan)
            .limit(wanted)))
    if len(recent) == wanted:
        return recent[offset:]
    # ...then the older ones through the trigram index.
    with _without(session, "seqscan"):
        rest = list(session.scalars(ids.where(_older_than(*newest_rows[-1][::-1]),
                                              match.condition).limit(wanted - len(recent))))
    return (recent + rest)[offset:]


@contextmanager
def _without(session: Session, *plans: str):
    """PostgreSQL's planner leaves ``plans`` aside for the statements inside (elsewhere,
    nothing changes)."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    for plan in plans:
        session.execute(text(f"SET LOCAL enable_{plan} = off"))
    try:
        yield
    finally:
        for plan in plans:
            session.execute(text(f"SET LOCAL enable_{plan} = on"))


def _anywhere(word: str):
    pattern = f"%{escape_like(word)}%"
    return or_(Release.title.ilike(pattern, escape="\\"), Release.body.ilike(pattern, escape="\\"))


def _in_window(session: Session, newest):
    """True for the newest ``SEARCH_WINDOW`` releases: at least as new as the last of them.
    A plain comparison on each row, so it filters in the same pass as the words (an
    ``IN (… LIMIT n)`` subquery became a nested loop on PostgreSQL)."""
    last = session.execute(select(Release.date, Release.id).order_by(*newest)
                           .offset(SEARCH_WINDOW - 1).limit(1)).first()
    if last is None:
        return true()  # fewer releases than the window: every one is in it
    day, release_id = last
    if day is None:  # dated releases come first, then undated ones by id
        return or_(Release.date.is_not(None), Release.id >= release_id)
    return or_(Release.date > day, and_(Release.date == day, Release.id >= release_id))


def _older_than(day, release_id: int):
    """True for the releases listed after the one dated ``day`` with ``release_id``."""
    if day is None:
        return and_(Release.date.is_(None), Release.id < release_id)
    return or_(Release.date.is_(None), Release.date < day,
               and_(Release.date == day, Release.id < release_id))
