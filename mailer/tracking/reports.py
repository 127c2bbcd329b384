"""Did it arrive? Campaign status counts, the full report, one person's timeline, CSV export.

Definitions used everywhere (the HTML report and ``--json`` agree):

- ``recipients``: delivery rows drawn for the campaign; the per-status counts add up to it.
- ``sent``: rows handed to the provider and acknowledged: accepted, deferred, delivered,
  bounced or dropped.
- ``arrived``: rows whose message reached the mailbox server (status ``delivered``, or a
  bounce reported after delivery). Opens, clicks, complaints and unsubscribes are rates of
  ``arrived``; delivery and bounce rates are rates of ``sent``.
- Opens are indicative only: privacy proxies (e.g. Apple Mail) open every message.

Times leave this module as ISO 8601 in the office's zone (``settings.zone``).
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import IO, Any

from sqlalchemy import case, false, func, or_, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign
from mailer.campaigns.service import get_campaign
from mailer.delivery.records import ENGAGEMENT, Delivery, grouped, status_counts
from mailer.delivery.records import DeliveryStatus as DS
from mailer.errors import NotFound
from mailer.settings import Settings
from mailer.storage.base import utcnow
from mailer.tracking.events import LIFECYCLE_ORDER
from mailer.tracking.models import DeliveryEventRow
from subscribers.addresses import normalize_email
from subscribers.models import StatusChange, Subscriber, SubscriberTopic, Topic

SLOWEST_DOMAINS = 10
#: Candidate widths of one "events over time" bucket; the smallest giving <= 48 bars wins.
BUCKET_SECONDS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 48
CSV_COLUMNS = ("delivery_id", "campaign_id", "email", "status", "attempts",
               "provider_message_id", "sent_at", "delivered_at", "opened_at", "clicked_at",
               "bounced_at", "complained_at", "unsubscribed_at", "last_error")


def campaign_status(session: Session, campaign_id: int) -> dict[str, Any]:
    """``{"id", "status", "status_reason", "counts"}``. Raises NotFound."""
    campaign = get_campaign(session, campaign_id)
    return {"id": campaign.id, "status": campaign.status,
            "status_reason": campaign.status_reason,
            "counts": status_counts(session, campaign.id)}


def tracking(settings: Settings, session: Session | None = None,
             campaign_id: int | None = None) -> dict[str, Any]:
    """What can be known after a hand-off: ``handed_off_as`` names it as the office should
    read it ("written" to the outbox folder, "sent" to a mail system), and
    ``provider_events`` whether delivery, opens and clicks come back at all: with SendGrid's
    Event Webhook, or when events for the campaign were stored anyway (``events import``)."""
    events = settings.transport == "sendgrid"
    if not events and session is not None and campaign_id is not None:
        events = session.scalar(select(DeliveryEventRow.id).where(
            DeliveryEventRow.campaign_id == campaign_id).limit(1)) is not None
    return {"handed_off_as": "written" if settings.transport == "outbox" else "sent",
            "provider_events": events}


def campaign_report(session: Session, campaign_id: int, settings: Settings) -> dict[str, Any]:
    """Everything the office asks after a send, as one JSON-ready dict. Raises NotFound.

    Without provider events (outbox, SMTP) the rates that need them are None, not 0: nobody
    reported a delivery, which is not the same as nothing being delivered."""
    campaign = get_campaign(session, campaign_id)
    counts = status_counts(session, campaign.id)
    sent = grouped(counts)["handed_off"]
    arrived = _arrived(session, campaign.id)
    zone = settings.zone
    known = tracking(settings, session, campaign.id)
    measured = rates(counts, sent, arrived)
    if not known["provider_events"]:
        measured = dict.fromkeys(measured)
    return {
        **known,
        "id": campaign.id,
        "subject": campaign.subject,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
        "started_at": local_iso(campaign.started_at, zone),
        "finished_at": local_iso(campaign.finished_at, zone),
        "generated_at": local_iso(utcnow(), zone),
        "timezone": settings.timezone,
        "counts": counts,
        "funnel": {"recipients": counts["recipients"], "sent": sent, "arrived": arrived,
                   "opened": counts["opened"], "clicked": counts["clicked"]},
        "rates": measured,
        "by_topic": breakdown_by_topic(session, campaign.id),
        "by_county": breakdown_by_county(session, campaign.id),
        "slowest_domains": slowest_domains(session, campaign.id),
        "timeline": events_over_time(session, campaign.id, zone),
    }


def rates(counts: dict[str, int], sent: int, arrived: int) -> dict[str, float | None]:
    """Fractions (0..1, 4 decimals); None when the denominator is zero."""
    def ratio(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        "delivery": ratio(counts[DS.DELIVERED], sent),
        "bounce": ratio(counts[DS.BOUNCED], sent),
        "drop": ratio(counts[DS.DROPPED], sent),
        "open": ratio(counts["opened"], arrived),
        "click": ratio(counts["clicked"], arrived),
        "complaint": ratio(counts["complained"], arrived),
        "unsubscribe": ratio(counts["unsubscribed"], arrived),
    }


def _arrived_condition():
    return or_(Delivery.status == DS.DELIVERED, Delivery.delivered_at.is_not(None))


def _arrived(session: Session, campaign_id: int) -> int:
    return session.scalar(select(func.count()).where(
        Delivery.campaign_id == campaign_id, _arrived_condition())) or 0


def _metrics():
    """Aggregate columns shared by the topic and county breakdowns."""
    def status_sum(status: str):
        return func.sum(case((Delivery.status == status, 1), else_=0))

    return (func.count(Delivery.id).label("recipients"),
            status_sum(DS.DELIVERED).label("delivered"),
            status_sum(DS.BOUNCED).label("bounced"),
            *(func.count(column).label(name) for name, column in ENGAGEMENT.items()))


def _metric_dict(row) -> dict[str, int]:
    names = ("recipients", "delivered", "bounced", *ENGAGEMENT)
    return {name: int(getattr(row, name) or 0) for name in names}


def breakdown_by_topic(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """One row per topic the recipients follow (a person following two topics counts in
    both), largest audience first."""
    stmt = (select(Topic.slug, Topic.name, *_metrics())
            .select_from(Delivery)
            .join(SubscriberTopic, SubscriberTopic.subscriber_id == Delivery.subscriber_id)
            .join(Topic, Topic.id == SubscriberTopic.topic_id)
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Topic.slug, Topic.name))
    rows = [{"topic": row.slug, "name": row.name, **_metric_dict(row)}
            for row in session.execute(stmt)]
    return sorted(rows, key=lambda r: (-r["recipients"], r["topic"]))


def breakdown_by_county(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """One row per county (``null`` for people with no county on file), largest first."""
    stmt = (select(Subscriber.county, *_metrics())
            .select_from(Delivery)
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Subscriber.county))
    rows = [{"county": row.county, **_metric_dict(row)} for row in session.execute(stmt)]
    return sorted(rows, key=lambda r: (-r["recipients"], r["county"] or "\uffff"))


def slowest_domains(session: Session, campaign_id: int,
                    limit: int = SLOWEST_DOMAINS) -> list[dict[str, Any]]:
    """Recipient domains by median time from hand-off (``sent_at``) to ``delivered_at``,
    slowest first."""
    stmt = (select(Delivery.email, Delivery.sent_at, Delivery.delivered_at)
            .where(Delivery.campaign_id == campaign_id, Delivery.sent_at.is_not(None),
                   Delivery.delivered_at.is_not(None)))
    delays: dict[str, list[float]] = defaultdict(list)
    for email, sent_at, delivered_at in session.execute(stmt):
        domain = email.rsplit("@", 1)[-1].lower()
        delays[domain].append(max(0.0, (delivered_at - sent_at).total_seconds()))
    rows = [{"domain": domain, "delivered": len(values),
             "median_seconds": round(statistics.median(values), 1),
             "p90_seconds": round(_percentile(values, 0.9), 1),
             "max_seconds": round(max(values), 1)}
            for domain, values in delays.items()]
    rows.sort(key=lambda r: (-r["median_seconds"], -r["max_seconds"], r["domain"]))
    return rows[:limit]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def events_over_time(session: Session, campaign_id: int, zone) -> dict[str, Any]:
    """Event counts per time bucket: ``{"bucket_seconds", "types", "buckets": [{"start",
    "counts": {type: n}}]}``; the bucket width adapts so there are at most 48 buckets."""
    stmt = (select(DeliveryEventRow.type, DeliveryEventRow.occurred_at)
            .where(DeliveryEventRow.campaign_id == campaign_id))
    events = list(session.execute(stmt))
    if not events:
        return {"bucket_seconds": None, "types": [], "buckets": []}
    first = min(at for _, at in events)
    last = max(at for _, at in events)
    width = next((w for w in BUCKET_SECONDS if _bucket_count(first, last, w) <= MAX_BUCKETS),
                 BUCKET_SECONDS[-1])
    origin = first - timedelta(seconds=first.timestamp() % width)
    counts: dict[int, Counter] = defaultdict(Counter)
    for kind, at in events:
        counts[int((at - origin).total_seconds() // width)][kind] += 1
    total = Counter(kind for kind, _ in events)
    buckets = [{"start": local_iso(origin + timedelta(seconds=i * width), zone),
                "counts": dict(counts.get(i, {}))}
               for i in range(max(counts) + 1)]
    return {"bucket_seconds": width, "types": [k for k, _ in total.most_common()],
            "buckets": buckets}


def _bucket_count(first: datetime, last: datetime, width: int) -> int:
    """Buckets needed when they start at multiples of ``width`` (so times read round)."""
    start = first.timestamp() - first.timestamp() % width
    return int((last.timestamp() - start) // width) + 1


def write_delivery_log(session: Session, campaign_id: int, out: IO[str],
                       settings: Settings) -> int:
    """Write the campaign's delivery rows as CSV (times in the office zone); returns the
    number of rows. Cells that a spreadsheet would run as a formula are prefixed with ``'``.
    Raises NotFound."""
    get_campaign(session, campaign_id)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    stmt = (select(Delivery).where(Delivery.campaign_id == campaign_id)
            .order_by(Delivery.id).execution_options(yield_per=1000))
    written = 0
    for delivery in session.scalars(stmt):
        writer.writerow([_csv_cell(_csv_value(delivery, column, settings.zone))
                         for column in CSV_COLUMNS])
        written += 1
    return written


def _csv_value(delivery: Delivery, column: str, zone) -> Any:
    name = "id" if column == "delivery_id" else column
    value = getattr(delivery, name)
    return local_iso(value, zone) if isinstance(value, datetime) else value


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def person_timeline(session: Session, email: str, settings: Settings) -> dict[str, Any]:
    """One person's deliveries across campaigns, each with its provider events, oldest
    first; events no delivery claimed are listed apart. Raises InvalidEmail, NotFound."""

    address = normalize_email(email)
    zone = settings.zone
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    # Every delivery row is written with its subscriber's id (erasure scrubs the address by
    # that id), so a subscriber's rows are found through the unique (subscriber_id,
    # campaign_id) index; only an address with no subscriber row is looked up by the
    # (unindexed) address itself.
    whose = (Delivery.subscriber_id == subscriber.id if subscriber is not None
             else Delivery.email == address)
    deliveries = session.execute(
        select(Delivery, Campaign.subject).join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(whose).order_by(Delivery.created_at, Delivery.id)).all()
    ids = [d.id for d, _ in deliveries]
    events = session.scalars(
        select(DeliveryEventRow)
        .where(or_(DeliveryEventRow.delivery_id.in_(ids) if ids else false(),
                   DeliveryEventRow.email == address))
        .order_by(DeliveryEventRow.occurred_at, DeliveryEventRow.id)).all()
    if subscriber is None and not deliveries and not events:
        raise NotFound(f"no subscriber, delivery or event for {address}")
    events = sorted(events, key=lambda e: (e.occurred_at, LIFECYCLE_ORDER.get(e.type, 99)))
    by_delivery: dict[int | None, list] = defaultdict(list)
    for event in events:
        by_delivery[event.delivery_id if event.delivery_id in ids else None].append(
            _event_dict(event, zone))
    return {
        "email": address,
        "timezone": settings.timezone,
        "handed_off_as": tracking(settings)["handed_off_as"],
        "subscriber": _subscriber_dict(session, subscriber, zone),
        "deliveries": [_delivery_dict(d, subject, by_delivery.get(d.id, []), zone)
                       for d, subject in deliveries],
        "unmatched_events": by_delivery.get(None, []),
    }


def _subscriber_dict(session: Session, subscriber: Subscriber | None, zone):
    if subscriber is None:
        return None

    history = session.scalars(select(StatusChange)
                              .where(StatusChange.subscriber_id == subscriber.id)
                              .order_by(StatusChange.at, StatusChange.id)).all()
    return {"id": subscriber.id, "status": subscriber.status,
            "history": [{"at": local_iso(h.at, zone), "from": h.old_status,
                         "to": h.new_status, "cause": h.cause} for h in history]}


def _delivery_dict(delivery: Delivery, subject: str, events: list, zone) -> dict[str, Any]:
    times = {column: local_iso(getattr(delivery, column), zone)
             for column in ("sent_at", "delivered_at", "opened_at", "clicked_at",
                            "bounced_at", "complained_at", "unsubscribed_at")}
    return {"delivery_id": delivery.id, "campaign_id": delivery.campaign_id,
            "subject": subject, "status": delivery.status, "attempts": delivery.attempts,
            "last_error": delivery.last_error, **times, "events": events}


def _event_dict(event: DeliveryEventRow, zone) -> dict[str, Any]:
    return {"type": event.type, "at": local_iso(event.occurred_at, zone),
            "reason": event.reason, "event_id": event.provider_event_id,
            "campaign_id": event.campaign_id}


def local_iso(value: datetime | None, zone) -> str | None:
    """ISO 8601 in the office zone (with its offset), or None."""
    return value.astimezone(zone).isoformat() if value is not None else None

