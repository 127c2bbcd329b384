"""Drawing a campaign's audience into ``deliveries``: one INSERT … SELECT, no rows in Python.

The audience is ``campaign_audience`` (active, unsuppressed subscribers
matching the campaign's segment or query) evaluated at the moment sending starts. The unique
(subscriber_id, campaign_id) constraint and the NOT EXISTS guard make drawing idempotent; the
guard is left out when the campaign has no deliveries yet (checked once), which is every
first draw: there it cost a fifth of a million-row draw on SQLite, serial before any send.
"""

from __future__ import annotations

from sqlalchemy import Select, and_, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.errors import QueryError
from mailer.scheduling.models import DigestRecipient
from mailer.storage.base import UTCDateTime, utcnow
from subscribers.models import Subscriber
from subscribers.segments import audience_select, count_by_delivery, resolve_query_text


def draw_audience(session: Session, campaign: Campaign) -> int:
    """Insert a ``pending`` delivery for everyone in the audience not yet drawn; returns the
    total number of deliveries the campaign has afterwards.

    Raises QueryError / NotFound when the campaign's segment or query cannot be evaluated.
    """

    audience = campaign_audience(session, campaign).order_by(None).subquery()
    table = Delivery.__table__
    already = exists().where(table.c.campaign_id == campaign.id,
                             table.c.subscriber_id == audience.c.id)
    rows = select(
        literal(campaign.id), audience.c.id, audience.c.email, literal(DS.PENDING),
        literal(0), literal(utcnow(), UTCDateTime()),
    ).order_by(audience.c.id)
    drawn_before = session.scalar(
        select(table.c.id).where(table.c.campaign_id == campaign.id).limit(1)) is not None
    if drawn_before:
        rows = rows.where(~already)
    session.execute(insert(table).from_select(
        ["campaign_id", "subscriber_id", "email", "status", "attempts", "created_at"], rows))
    return session.scalar(
        select(func.count()).select_from(table).where(table.c.campaign_id == campaign.id)) or 0


def campaign_audience(session: Session, campaign) -> Select:
    """The audience of ``campaign``: its saved segment (evaluated now, so people who joined
    since it was saved are included) or its own query. Raises QueryError when it has neither.

    A release campaign reaches only subscribers who chose ``immediate`` delivery; those who
    chose a daily or weekly digest get the release in their digest instead. A digest campaign
    (``kind == "digest"``) reaches the members it was planned for (``digest_recipients``) who
    still match its query; see ``mailer.scheduling.digests``.
    """
    audience = _base_audience(session, campaign)
    if getattr(campaign, "kind", "release") == "digest":
        # A join, not IN (...): the planner then walks this campaign's members by index
        # instead of scanning every active subscriber once per digest group.
        audience = audience.join(DigestRecipient, and_(
            DigestRecipient.subscriber_id == Subscriber.id,
            DigestRecipient.campaign_id == campaign.id))
    else:
        audience = audience.where(Subscriber.frequency == "immediate")
    return audience


def count_audience(session: Session, campaign) -> dict[str, int]:
    """Who the campaign reaches if it starts now: ``{"now": n, "in_digests": m}``.

    ``now`` is exactly the recipients its send would draw (``campaign_audience``). For a
    release campaign, ``in_digests`` counts the people of the same audience who chose a
    daily or weekly digest: they get this release there, not in this send. A digest
    campaign's own members are all ``now``. Raises QueryError / NotFound like
    ``campaign_audience``.
    """
    if getattr(campaign, "kind", "release") == "digest":
        now = session.scalar(select(func.count()).select_from(
            campaign_audience(session, campaign).order_by(None).subquery())) or 0
        return {"now": now, "in_digests": 0}
    reach = audience_count(session, query=query_text_of(session, campaign))
    return {"now": reach["now"], "in_digests": reach["in_digests"]}


def audience_count(session: Session, *, query: str | None = None,
                   segment: str | int | None = None) -> dict[str, int]:
    """How many a release sent to this query or saved segment reaches:
    ``{"count": all of them, "now": those who get the release as it goes out,
    "in_digests": those who get it in their daily or weekly digest}``.

    The one count behind every audience figure (campaign pages, segment pages, the live
    builder count, ``mailer segments count``). ``now`` is exactly what a release campaign's
    ``campaign_audience`` draws. Raises QueryError / NotFound for a bad query or segment.
    """
    # The segment builder's own count (index-friendly), in one pass for both figures.
    total, now = count_by_delivery(session, query=query, segment=segment)
    return {"count": total, "now": now, "in_digests": total - now}


def query_text_of(session: Session, campaign) -> str:
    """The query a release campaign's audience is drawn from: its saved segment's (as saved
    now) or its own. Raises NotFound / QueryError."""
    if getattr(campaign, "segment_id", None) is not None:
        return resolve_query_text(session, segment=int(campaign.segment_id))
    if getattr(campaign, "query", None):
        return campaign.query
    raise QueryError(f"campaign {campaign.id} has neither a segment nor a query", 0)


def _base_audience(session: Session, campaign) -> Select:
    """The campaign's segment or query as an audience (active, unsuppressed, not pausing),
    whatever delivery frequency people chose."""
    if getattr(campaign, "segment_id", None) is not None:
        return audience_select(session, segment=int(campaign.segment_id))
    if getattr(campaign, "query", None):
        return audience_select(session, query=campaign.query)
    raise QueryError(f"campaign {campaign.id} has neither a segment nor a query", 0)
