"""Segments: "who gets this?" — the audience of a query or a saved segment (always limited to
``active`` subscribers whose address is not suppressed, and not pausing), its count, and the
saved segments themselves. The query language's meaning in SQL is ``subscribers.query_sql``.
"""


from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.errors import InvalidInput, NotFound, QueryError
from mailer.storage.base import utcnow
from subscribers.models import (
    ACTIVE,
    Segment,
    Subscriber,
    SubscriberTopic,
    Suppression,
    Topic,
)
from subscribers.query import And, Compare, In, Node, Not, Or, parse_query, to_text
from subscribers.query_sql import (
    compile_node,
    compile_query,
    status_column,
    topic_slug,
    unindexed_integer,
)

# --- audiences -------------------------------------------------------------------------------

def not_suppressed() -> ColumnElement[bool]:
    """True for subscribers whose address is not on the suppression list, compared on the
    64-bit ``email_key`` (see ``subscribers.addresses.email_key``): NOT IN over NOT NULL
    columns, so SQLite probes the list's index with one integer per subscriber and
    PostgreSQL hashes the list once."""
    return Subscriber.email_key.not_in(select(Suppression.email_key))


def not_paused() -> ColumnElement[bool]:
    """True unless the subscriber paused their emails until a time still ahead."""

    return or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= utcnow())


def audience_filter(condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
    """``condition`` limited to active, unsuppressed, unpaused subscribers (what every send
    uses)."""
    parts = [status_column() == ACTIVE, not_suppressed(), not_paused()]
    if condition is not None:
        parts.append(condition)
    return and_(*parts)


def get_segment(session: Session, name: str) -> Segment:
    """The saved segment called ``name``. Raises NotFound."""
    segment = session.scalar(select(Segment).where(Segment.name == name.strip()))
    if segment is None:
        raise NotFound(f"no segment named {name.strip()!r}")
    return segment


def resolve_condition(session: Session, *, query: str | None = None,
                      segment: str | int | None = None) -> ColumnElement[bool]:
    """The condition for a query text or a saved segment (by name or id), evaluated now.

    Raises InvalidInput when both or neither are given, NotFound for an unknown segment,
    QueryError for a bad query.
    """
    return compile_query(resolve_query_text(session, query=query, segment=segment))


def resolve_query_text(session: Session, *, query: str | None = None,
                       segment: str | int | None = None) -> str:
    """The query text given, or the saved segment's. Raises as ``resolve_condition``."""
    if (query is None) == (segment is None):
        raise QueryError("give either a query or a segment, not both or neither", 0)
    if segment is None:
        return query
    if isinstance(segment, int):
        found = session.get(Segment, segment)
        if found is None:
            raise NotFound(f"no segment with id {segment}")
    else:
        found = get_segment(session, segment)
    return found.query


def audience_select(session: Session, *, query: str | None = None,
                    segment: str | int | None = None) -> Select:
    """SELECT (id, email, name) of active, unsuppressed subscribers matching, ordered by id."""
    condition = resolve_condition(session, query=query, segment=segment)
    return (
        select(Subscriber.id, Subscriber.email, Subscriber.name)
        .where(audience_filter(condition))
        .order_by(Subscriber.id)
    )




def count(session: Session, *, query: str | None = None, segment: str | int | None = None,
          audience: bool = True) -> int:
    """How many subscribers match. With ``audience`` (the default) only those a send would
    reach (active, not suppressed, not paused); otherwise every matching subscriber whatever
    their status.
    """
    node = parse_query(resolve_query_text(session, query=query, segment=segment))
    if not audience:
        return session.scalar(select(func.count()).select_from(Subscriber)
                              .where(compile_node(node))) or 0
    return session.scalar(audience_count_select(session, node)) or 0


def count_by_delivery(session: Session, *, query: str | None = None,
                      segment: str | int | None = None) -> tuple[int, int]:
    """``(audience, immediate)``: how many a send to this query or segment could reach
    (as ``count``), and how many of them take each release as it comes (the others chose a
    daily or weekly digest). One pass over the audience for both."""
    node = parse_query(resolve_query_text(session, query=query, segment=segment))
    immediate = func.coalesce(func.sum(case((Subscriber.frequency == "immediate", 1),
                                            else_=0)), 0)
    total, now = session.execute(
        audience_count_select(session, node, func.count(), immediate)).one()
    return int(total or 0), int(now or 0)


def audience_count_select(session: Session, node: Node, *columns: ColumnElement) -> Select:
    """SELECT count(*) of the audience of ``node`` (or the aggregate ``columns`` given, such
    as a count and a conditional sum, over the same rows).

    When the query requires one topic (``topic = "x"`` alone or as one of the top-level
    ``and`` operands) the count starts from that topic's followers: it walks the
    (topic_id, subscriber_id) index in subscriber order and fetches only those people, instead
    of scanning everyone and probing the topic links once per person (on a million
    subscribers, 0.17 s against 0.41 s on SQLite). The topic id is looked up first, so the
    planner sees a value, not a subquery.
    """
    columns = columns or (func.count(),)
    slug, rest = _required_topic(node)
    if slug is None:
        return select(*columns).select_from(Subscriber).where(
            audience_filter(compile_node(node)))
    topic_id = session.scalar(select(Topic.id).where(Topic.slug == slug))
    if topic_id is None:
        # Nobody follows a topic that does not exist.
        return select(*(literal(0) for _ in columns))
    condition = None if rest is None else compile_node(rest)
    # The join is written so SQLite cannot drive it from the subscribers table: the link's
    # subscriber_id is hidden from the index (see ``unindexed``), only Subscriber.id is not.
    return (select(*columns).select_from(SubscriberTopic)
            .join(Subscriber, Subscriber.id == unindexed_integer(SubscriberTopic.subscriber_id))
            .where(SubscriberTopic.topic_id == topic_id, audience_filter(condition)))


def _required_topic(node: Node) -> tuple[str | None, Node | None]:
    """(slug, the rest of the query) when ``node`` requires following one topic, else
    (None, node). The rest is None when nothing else is asked."""
    if _is_one_topic(node):
        return topic_slug(node.value), None
    if isinstance(node, And):
        for i, operand in enumerate(node.operands):
            if _is_one_topic(operand):
                others = node.operands[:i] + node.operands[i + 1:]
                return topic_slug(operand.value), others[0] if len(others) == 1 else And(others)
    return None, node


def _is_one_topic(node: Node) -> bool:
    return isinstance(node, Compare) and node.field == "topic" and node.op == "="


def matching_select(session: Session, *, query: str | None = None,
                    segment: str | int | None = None) -> Select:
    """SELECT Subscriber entities matching, whatever their status (for listing), oldest
    first: by when they joined, then by id."""
    if query is None and segment is None:
        condition: ColumnElement[bool] = true()
    else:
        condition = resolve_condition(session, query=query, segment=segment)
    return select(Subscriber).where(condition).order_by(Subscriber.created_at, Subscriber.id)


# --- saved segments --------------------------------------------------------------------------

def create_segment(session: Session, name: str, query: str) -> Segment:
    """Save ``query`` under ``name`` (stored in canonical form). Raises QueryError for a bad
    query, InvalidInput for an empty or taken name."""
    segment = Segment(name=_free_name(session, name), query=_canonical(query))
    session.add(segment)
    session.flush()
    return segment


def update_segment(session: Session, segment: Segment, *, name: str, query: str) -> list[str]:
    """Rename ``segment`` and/or change its query; returns what changed ("name", "query").
    Campaigns that use it and have not started reach the new audience. Raises QueryError,
    InvalidInput for an empty or taken name or when nothing changes."""
    changed = []
    if " ".join(name.split()) != segment.name:
        segment.name = _free_name(session, name)
        changed.append("name")
    canonical = _canonical(query)
    if canonical != segment.query:
        segment.query = canonical
        changed.append("query")
    if not changed:
        raise InvalidInput("nothing to change: give a new name or query")
    session.flush()
    return changed


def delete_segment(session: Session, segment: Segment) -> None:
    """Delete a saved segment. Raises InvalidInput while a campaign uses it (nothing is
    deleted then)."""
    name = segment.name
    try:
        with session.begin_nested():
            session.delete(segment)
            session.flush()
    except IntegrityError:
        raise InvalidInput(f"segment {name!r} is used by a campaign; it cannot be "
                           "deleted") from None


def _free_name(session: Session, name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("a segment needs a name")
    if len(name) > 200:
        raise InvalidInput("a segment name has at most 200 characters")
    if session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        raise InvalidInput(f"a segment named {name!r} already exists")
    return name


def _canonical(query: str) -> str:
    node = parse_query(query)
    compile_node(node)  # semantic errors now, not at send time
    return to_text(node)


def unknown_topics(session: Session, query: str) -> list[str]:
    """Topic slugs the query names that do not exist (they match nobody: likely a typo)."""
    slugs = sorted(_topic_values(parse_query(query)))
    if not slugs:
        return []
    known = set(session.scalars(select(Topic.slug).where(Topic.slug.in_(slugs))))
    return [s for s in slugs if s not in known and "*" not in s]


def _topic_values(node: Node) -> set[str]:
    if isinstance(node, (And, Or)):
        return set().union(*(_topic_values(o) for o in node.operands))
    if isinstance(node, Not):
        return _topic_values(node.operand)
    if node.field != "topic":
        return set()
    values = node.values if isinstance(node, In) else (node.value,)
    return {topic_slug(v) for v in values}


def segment_to_dict(segment: Segment, size: int | None = None) -> dict:
    data = {"id": segment.id, "name": segment.name, "query": segment.query,
            "created_at": segment.created_at.isoformat() if segment.created_at else None}
    if size is not None:
        data["count"] = size
    return data


__all__ = [
    "audience_count_select", "audience_filter", "audience_select",
    "compile_node", "compile_query", "count", "create_segment", "delete_segment", "get_segment",
    "matching_select", "not_suppressed", "parse_query", "resolve_condition", "segment_to_dict",
    "unknown_topics", "update_segment",
]
