"""Segments: compile a query (``subscribers.query``) into a bound SQLAlchemy expression over
``Subscriber``, and answer "who gets this?".

Every value becomes a bound parameter; no part of a query is ever placed in SQL text.

Semantics a press office can rely on:

- ``=``, ``!=`` and ``in`` compare exactly, except that ``email`` values are normalized like
  stored addresses, ``state`` is upper-cased and ``status``/``frequency`` must name one of their
  closed set of values (a typo is an error, not an empty audience).
- ``~`` is a glob: ``*`` matches any run of characters, everything else is literal (``%`` and
  ``_`` included); it ignores ASCII case on both SQLite and PostgreSQL.
- A missing value (no county, no ZIP) never equals anything, and ``not``/``!=`` match it:
  ``not zip ~ "581*"`` includes people with no ZIP. Two-valued logic, no SQL NULL surprises.
- ``topic = "x"`` is true when the person follows topic ``x``; ``topic in (...)`` any of them.
- ``joined`` compares the sign-up date in the office's time zone with an ISO date.
- The audience of a send (``audience_select``) is always further limited to ``active``
  subscribers whose address is not on the suppression list, whatever the query says.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from mailer.errors import InvalidInput, NotFound, QueryError
from mailer.settings import get_settings
from mailer.storage.base import UTCDateTime, utcnow
from subscribers.addresses import InvalidEmail, normalize_email
from subscribers.models import (
    ACTIVE,
    FREQUENCIES,
    STATUSES,
    Segment,
    Subscriber,
    SubscriberTopic,
    Suppression,
    Topic,
)
from subscribers.query import And, Compare, In, Node, Not, Or, Value, parse_query, to_text

_TEXT_COLUMNS = {
    "email": Subscriber.email, "name": Subscriber.name, "zip": Subscriber.zip,
    "county": Subscriber.county, "state": Subscriber.state, "district": Subscriber.district,
    "status": Subscriber.status, "frequency": Subscriber.frequency,
}
class unindexed(FunctionElement):  # noqa: N801 - reads like the SQL construct it is
    """``column`` as a filter the planner should check on a scan rather than look up through
    an index: SQLite renders ``+column`` (its documented way to say so), other databases the
    plain column. "status = active" matches nearly every subscriber, and without statistics
    SQLite would otherwise walk the status index and fetch each row by id (several times
    slower on a million rows than scanning)."""

    name = "unindexed"
    type = String()
    inherit_cache = True


class unindexed_integer(unindexed):  # noqa: N801
    """An integer column the SQLite planner must not look rows up by."""

    name = "unindexed_integer"
    type = Integer()
    inherit_cache = True


class unindexed_time(unindexed):  # noqa: N801
    """A ``UTCDateTime`` column the SQLite planner must not drive the query from."""

    name = "unindexed_time"
    type = UTCDateTime()
    inherit_cache = True


@compiles(unindexed)
def _unindexed_plain(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element, compiler, **kw):
    return "+(" + compiler.process(element.clauses, **kw) + ")"


def status_column():
    """``Subscriber.status`` for filtering (see ``unindexed``)."""
    return unindexed(Subscriber.status)


_CLOSED_SETS = {"status": STATUSES, "frequency": FREQUENCIES}
_NOT_NULL = {"email", "status", "frequency"}


def compile_query(text: str, *, zone: ZoneInfo | None = None) -> ColumnElement[bool]:
    """Parse ``text`` and compile it to a boolean expression over ``Subscriber``.

    ``zone`` is where ``joined`` dates are read (default: the office's ``MAILER_TIMEZONE``).
    Raises QueryError (with a position) for a query that does not parse or does not make sense,
    e.g. ``joined ~ "x"`` or ``status = "actve"``.
    """
    return compile_node(parse_query(text), zone=zone)


def compile_node(node: Node, *, zone: ZoneInfo | None = None) -> ColumnElement[bool]:
    """Compile an already parsed tree. Raises QueryError as ``compile_query`` does."""
    return _Compiler(zone or _office_zone()).compile(node)


def _office_zone() -> ZoneInfo:

    try:
        return get_settings().zone
    except Exception:  # settings invalid: fall back rather than refuse to count
        return ZoneInfo("UTC")


class _Compiler:
    def __init__(self, zone: ZoneInfo):
        self.zone = zone

    def compile(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(*(self.compile(o) for o in node.operands))
        if isinstance(node, Or):
            return or_(*(self.compile(o) for o in node.operands))
        if isinstance(node, Not):
            return not_(self.compile(node.operand))
        if isinstance(node, In):
            return self.membership(node)
        return self.comparison(node)

    def membership(self, node: In) -> ColumnElement[bool]:
        if node.field == "topic":
            slugs = [_topic_slug(v) for v in node.values]
            return _follows(Topic.slug.in_(slugs))
        if node.field == "joined":
            return or_(*(self.joined(Compare("joined", "=", v)) for v in node.values))
        column = _column(node.field)
        values = [_text_value(node.field, v) for v in node.values]
        return _present(node.field, column.in_(values))

    def comparison(self, node: Compare) -> ColumnElement[bool]:
        if node.op == "!=":
            return not_(self.comparison(Compare(node.field, "=", node.value)))
        if node.field == "topic":
            return self.topic(node)
        if node.field == "joined":
            return self.joined(node)
        column = _column(node.field)
        if node.op == "~":
            return _present(node.field, column.ilike(_glob_to_like(node.value.text), escape="\\"))
        value = _text_value(node.field, node.value, ordered=node.op != "=")
        return _present(node.field, column.operate(_OPS[node.op], value))

    def topic(self, node: Compare) -> ColumnElement[bool]:
        if node.op == "=":
            return _follows(Topic.slug == _topic_slug(node.value))
        if node.op == "~":
            return _follows(Topic.slug.like(_glob_to_like(node.value.text.lower()), escape="\\"))
        raise QueryError(f"'topic' takes =, !=, ~ or in, not {node.op!r}", node.value.position)

    def joined(self, node: Compare) -> ColumnElement[bool]:
        day = node.value.as_date
        if day is None:
            raise QueryError("'joined' needs an ISO date such as 2024-01-31",
                             node.value.position)
        start, end = self._day_bounds(day)
        # One day goes through the created_at index. An open range usually covers much of the
        # list, and SQLite (no range statistics) would still walk the index and fetch row by
        # row: 0.9 s on a million against 0.3 s for the scan it then does.
        column = Subscriber.created_at if node.op == "=" else unindexed_time(Subscriber.created_at)
        match node.op:
            case "=":
                return and_(column >= start, column < end)
            case "<":
                return column < start
            case "<=":
                return column < end
            case ">":
                return column >= end
            case ">=":
                return column >= start
        raise QueryError(f"'joined' cannot be compared with {node.op!r}", node.value.position)

    def _day_bounds(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, time(0), tzinfo=self.zone)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)


_OPS = {
    "=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _column(field: str):
    return status_column() if field == "status" else _TEXT_COLUMNS[field]


def _present(field: str, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """Make a comparison on a nullable column false (not NULL) when the value is missing, so
    that ``not`` around it is true for people without that detail."""
    if field in _NOT_NULL:
        return condition
    return and_(_TEXT_COLUMNS[field].is_not(None), condition)


def _follows(slug_condition: ColumnElement[bool]) -> ColumnElement[bool]:
    # The topic ids are looked up once (an uncorrelated IN over the few topics), then each
    # subscriber is one probe of the (subscriber_id, topic_id) primary key. Faster on a
    # million rows than reading the followers into a list first (SQLite builds a temporary
    # B-tree of them: 4 s against 0.7 s) or joining topics for every subscriber; PostgreSQL
    # plans either as a semi-join.
    topic_ids = select(Topic.id).where(slug_condition)
    return exists(select(literal(1)).where(
        SubscriberTopic.subscriber_id == Subscriber.id,
        SubscriberTopic.topic_id.in_(topic_ids)))


def _topic_slug(value: Value) -> str:
    return value.text.strip().lower()


def _text_value(field: str, value: Value, *, ordered: bool = False) -> str:
    text = value.text
    if field == "email" and not ordered:
        try:
            return normalize_email(text)
        except InvalidEmail:
            return text.strip().lower()  # cannot be stored, so matches nobody; not an error
    if field == "state":
        return text.strip().upper()
    if field in _CLOSED_SETS:
        text = text.strip().lower()
        if not ordered and text not in _CLOSED_SETS[field]:
            choices = ", ".join(_CLOSED_SETS[field])
            raise QueryError(f"{field} is one of {choices}; not {value.text!r}", value.position)
    return text


def _glob_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


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


def audience_count_select(session: Session, node: Node) -> Select:
    """SELECT count(*) of the audience of ``node``.

    When the query requires one topic (``topic = "x"`` alone or as one of the top-level
    ``and`` operands) the count starts from that topic's followers: it walks the
    (topic_id, subscriber_id) index in subscriber order and fetches only those people, instead
    of scanning everyone and probing the topic links once per person (on a million
    subscribers, 0.17 s against 0.41 s on SQLite). The topic id is looked up first, so the
    planner sees a value, not a subquery.
    """
    slug, rest = _required_topic(node)
    if slug is None:
        return select(func.count()).select_from(Subscriber).where(
            audience_filter(compile_node(node)))
    topic_id = session.scalar(select(Topic.id).where(Topic.slug == slug))
    if topic_id is None:
        return select(literal(0))  # nobody follows a topic that does not exist
    condition = None if rest is None else compile_node(rest)
    # The join is written so SQLite cannot drive it from the subscribers table: the link's
    # subscriber_id is hidden from the index (see ``unindexed``), only Subscriber.id is not.
    return (select(func.count()).select_from(SubscriberTopic)
            .join(Subscriber, Subscriber.id == unindexed_integer(SubscriberTopic.subscriber_id))
            .where(SubscriberTopic.topic_id == topic_id, audience_filter(condition)))


def _required_topic(node: Node) -> tuple[str | None, Node | None]:
    """(slug, the rest of the query) when ``node`` requires following one topic, else
    (None, node). The rest is None when nothing else is asked."""
    if _is_one_topic(node):
        return _topic_slug(node.value), None
    if isinstance(node, And):
        for i, operand in enumerate(node.operands):
            if _is_one_topic(operand):
                others = node.operands[:i] + node.operands[i + 1:]
                return _topic_slug(operand.value), others[0] if len(others) == 1 else And(others)
    return None, node


def _is_one_topic(node: Node) -> bool:
    return isinstance(node, Compare) and node.field == "topic" and node.op == "="


def matching_select(session: Session, *, query: str | None = None,
                    segment: str | int | None = None) -> Select:
    """SELECT Subscriber entities matching, whatever their status (for listing), by id."""
    if query is None and segment is None:
        condition: ColumnElement[bool] = true()
    else:
        condition = resolve_condition(session, query=query, segment=segment)
    return select(Subscriber).where(condition).order_by(Subscriber.id)


# --- saved segments --------------------------------------------------------------------------

def create_segment(session: Session, name: str, query: str) -> Segment:
    """Save ``query`` under ``name`` (stored in canonical form). Raises QueryError for a bad
    query, InvalidInput for an empty or taken name."""

    name = " ".join(name.split())
    if not name:
        raise InvalidInput("a segment needs a name")
    if len(name) > 200:
        raise InvalidInput("a segment name has at most 200 characters")
    node = parse_query(query)
    compile_node(node)  # semantic errors now, not at send time
    if session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        raise InvalidInput(f"a segment named {name!r} already exists")
    segment = Segment(name=name, query=to_text(node))
    session.add(segment)
    session.flush()
    return segment


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
    return {_topic_slug(v) for v in values}


def segment_to_dict(segment: Segment, size: int | None = None) -> dict:
    data = {"id": segment.id, "name": segment.name, "query": segment.query,
            "created_at": segment.created_at.isoformat() if segment.created_at else None}
    if size is not None:
        data["count"] = size
    return data


__all__ = [
    "audience_count_select", "audience_filter", "audience_select",
    "compile_node", "compile_query", "count", "create_segment", "get_segment",
    "matching_select", "not_suppressed", "parse_query", "resolve_condition", "segment_to_dict",
    "unknown_topics",
]
