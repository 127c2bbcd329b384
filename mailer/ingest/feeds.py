"""Watched feeds: add, poll (conditional GET, timeout, backoff), turn new items into drafts.

``mailer feeds add URL`` fetches the feed once: a URL that fails or is not a feed is refused
and nothing is stored (a newsroom web page is accepted when its ``<link rel="alternate">``
names its feed, which is then what is watched). The items already in the feed become
releases (the baseline) without campaigns, so adding a feed never floods the office with
drafts for old news.

The scheduler calls ``poll_due_feeds`` every few minutes. Each due feed is polled in its own
transaction with ``If-None-Match`` / ``If-Modified-Since``; new items become releases and, for
each release with topics, a *draft* campaign to the subscribers of those topics. Changed items
update their release (see ``mailer.ingest.service``); nothing is ever re-sent. A feed that
fails is retried with exponential backoff (interval × 2^failures, at most a day) and its
error is recorded; it never stops the others. ``--auto`` feeds hand each new campaign to
``auto_schedule``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.campaigns.lifecycle import note
from mailer.campaigns.service import create_campaign, schedule_campaign
from mailer.errors import IngestError, MailerError, NotFound
from mailer.ingest.html import parse_document
from mailer.ingest.models import Feed, Release
from mailer.ingest.rss import parse_feed
from mailer.ingest.service import ImportReport, store_items
from mailer.ingest.sources import check_content, fetch, is_url, sniff_kind
from mailer.scheduling.policy import next_allowed_time
from mailer.settings import Settings, get_settings
from mailer.storage.base import utcnow
from mailer.storage.db import Database

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(days=1)
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml",
              "application/xml", "text/xml")


def add_feed(session: Session, url: str, settings: Settings | None = None, *,
             auto: bool = False, client: httpx.Client | None = None,
             now: datetime | None = None) -> tuple[Feed, ImportReport]:
    """Store a feed after fetching it once; its current items become releases (no campaigns).

    ``settings`` defaults to ``get_settings()``. Raises IngestError for a bad URL, a fetch
    failure, a document that is not a feed, or a feed already watched.
    """
    settings = settings or get_settings()
    url = url.strip()
    if not is_url(url):
        raise IngestError(f"{url}: a feed must be an http:// or https:// URL")
    _refuse_watched(session, url)
    loaded = fetch(url, settings, client=client)
    check_content(loaded.data, url)
    if sniff_kind(url, loaded.data, loaded.content_type) == "html":
        # Staff often paste the newsroom page; its <link rel="alternate"> names the feed.
        url = discover_feed(loaded)
        _refuse_watched(session, url)
        loaded = fetch(url, settings, client=client)
        check_content(loaded.data, url)
    feed = Feed(url=url, auto=auto, failures=0)
    session.add(feed)
    session.flush()
    report = _store_loaded(session, feed, loaded, settings)
    _succeeded(feed, settings, now or utcnow())
    return feed, report


def _refuse_watched(session: Session, url: str) -> None:
    if session.scalar(select(Feed).where(Feed.url == url)) is not None:
        raise IngestError(f"{url}: this feed is already watched (see `mailer feeds list`)")


def discover_feed(loaded) -> str:
    """The RSS/Atom feed a web page names in ``<link rel="alternate">``. Raises IngestError
    when it names none."""
    doc = parse_document(loaded.text, loaded.source)
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower()
        if "alternate" in rel and kind in FEED_TYPES and link.get("href"):
            found = urljoin(loaded.url or loaded.source, link.get("href").strip())
            if is_url(found):
                return found
    raise IngestError(f"{loaded.source}: this is a web page, not a feed, and it names no "
                      "feed (<link rel=\"alternate\" type=\"application/rss+xml\">)")


def poll_due_feeds(db: Database, settings: Settings, *, now: datetime | None = None,
                   client: httpx.Client | None = None) -> list[dict[str, Any]]:
    """Poll every feed whose ``next_poll_at`` has come; one result dict per feed polled.

    Never raises for a feed's failure: it is recorded on the feed and in its result.
    """
    now = now or utcnow()
    with db.session() as session:
        due = list(session.scalars(select(Feed.id).where(
            (Feed.next_poll_at.is_(None)) | (Feed.next_poll_at <= now)).order_by(Feed.id)))
    return [poll_feed(db, feed_id, settings, now=now, client=client) for feed_id in due]


def poll_all_feeds(db: Database, settings: Settings, *, now: datetime | None = None,
                   client: httpx.Client | None = None) -> list[dict[str, Any]]:
    """Poll every feed now, due or not (``mailer feeds poll``)."""
    with db.session() as session:
        ids = list(session.scalars(select(Feed.id).order_by(Feed.id)))
    return [poll_feed(db, feed_id, settings, now=now, client=client) for feed_id in ids]


def poll_feed(db: Database, feed_id: int, settings: Settings, *, now: datetime | None = None,
              client: httpx.Client | None = None) -> dict[str, Any]:
    """Poll one feed in its own transaction; on failure roll back its items and record the
    error and the next attempt in a second transaction."""
    now = now or utcnow()
    try:
        with db.session() as session:
            feed = _lock(session, feed_id)
            if feed is None:
                return {"feed_id": feed_id, "status": "skipped",
                        "reason": "being polled by another process, or removed"}
            report = _fetch_and_store(session, feed, settings, client=client)
            campaigns = _draft_campaigns(session, feed, report, settings) if report else []
            _succeeded(feed, settings, now)
            return _result(feed, report, campaigns)
    except MailerError as exc:
        return _record_failure(db, feed_id, settings, now, str(exc))
    except IntegrityError:  # another process stored the same release a moment earlier
        return _record_failure(db, feed_id, settings, now, "another import stored one of "
                               "these releases at the same time; the next poll skips it")
    except Exception as exc:  # a bug must not stop the other feeds; it is logged in full
        log.exception("polling feed %s failed", feed_id)
        return _record_failure(db, feed_id, settings, now,
                               f"internal error: {type(exc).__name__}: {exc}")


def _lock(session: Session, feed_id: int) -> Feed | None:
    """The feed row, locked so two schedulers never poll one feed at once (PostgreSQL)."""
    stmt = select(Feed).where(Feed.id == feed_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalar(stmt)


def _fetch_and_store(session: Session, feed: Feed, settings: Settings, *,
                     client: httpx.Client | None) -> ImportReport | None:
    """Fetch (conditionally), parse and store the feed's items. None when the server says
    304 Not Modified."""
    loaded = fetch(feed.url, settings, client=client, etag=feed.etag,
                   last_modified=feed.last_modified)
    if loaded.status == 304:
        return None
    check_content(loaded.data, feed.url)
    return _store_loaded(session, feed, loaded, settings)


def _store_loaded(session: Session, feed: Feed, loaded, settings: Settings) -> ImportReport:
    document = parse_feed(loaded.data, feed.url, url=loaded.url, zone=settings.zone)
    headers = {k.lower(): v for k, v in loaded.headers.items()}
    feed.etag = (headers.get("etag") or "")[:500] or None
    feed.last_modified = (headers.get("last-modified") or "")[:100] or None
    feed.title = (document.title or feed.title or "")[:500] or None
    return store_items(session, document.items, feed_id=feed.id)


def _draft_campaigns(session: Session, feed: Feed, report: ImportReport,
                     settings: Settings) -> list[dict[str, Any]]:
    """A draft campaign per new release that has topics, to those topics' subscribers."""

    out = []
    for release in report.created:
        slugs = sorted(link.topic.slug for link in release.topic_links
                       if link.origin != "removed")
        if not slugs:
            out.append({"release_id": release.id, "campaign_id": None,
                        "reason": "no topic matched; no audience"})
            continue
        query = "topic in (" + ", ".join(f'"{slug}"' for slug in slugs) + ")"
        campaign = create_campaign(session, release_id=release.id, query=query,
                                   by=f"feed:{feed.id}")
        if feed.auto:
            auto_schedule(session, campaign, settings)
        out.append({"release_id": release.id, "campaign_id": campaign.id,
                    "status": campaign.status, "status_reason": campaign.status_reason})
    return out


def auto_schedule(session: Session, campaign, settings: Settings, *,
                  now: datetime | None = None) -> None:
    """What ``--auto`` adds: the campaign goes through the approval rules and, when they
    allow it, is scheduled for the first moment outside quiet hours.

    With MAILER_REQUIRE_APPROVAL on (the default) a feed cannot approve its own campaign:
    it stays a draft and ``status_reason`` says it waits for a person. A refusal (election
    blackout, a template that fails its check) leaves it where it got to, with the reason;
    it never stops the feed's import.
    """

    if settings.require_approval:
        reason = ("auto feed: waiting for approval by a person "
                  "(MAILER_REQUIRE_APPROVAL is on)")
        note(session, campaign, by=campaign.created_by, reason=reason)
        campaign.status_reason = reason
        return
    at = next_allowed_time(now or utcnow(), settings)
    try:
        schedule_campaign(session, campaign, at=at, settings=settings, by=campaign.created_by)
    except MailerError as exc:  # blackout, a broken template…: a person takes it from here
        reason = f"auto feed: not scheduled: {' '.join(str(exc).split())}"
        note(session, campaign, by=campaign.created_by, reason=reason)
        campaign.status_reason = reason


def _succeeded(feed: Feed, settings: Settings, now: datetime) -> None:
    feed.last_polled_at = feed.last_success_at = now
    feed.failures = 0
    feed.last_error = None
    feed.next_poll_at = now + timedelta(seconds=settings.feed_poll_interval)


def _record_failure(db: Database, feed_id: int, settings: Settings, now: datetime,
                    error: str) -> dict[str, Any]:
    error = " ".join(error.split())
    with db.session() as session:
        feed = session.get(Feed, feed_id)
        if feed is None:
            return {"feed_id": feed_id, "status": "error", "error": error}
        feed.failures = (feed.failures or 0) + 1
        feed.last_polled_at = now
        feed.last_error = error[:2000]
        feed.next_poll_at = now + backoff(feed.failures, settings)
        log.warning("feed %s (%s) failed %d time(s): %s", feed.id, feed.url, feed.failures,
                    error)
        return {"feed_id": feed.id, "url": feed.url, "status": "error", "error": error,
                "failures": feed.failures, "next_poll_at": feed.next_poll_at.isoformat()}


def backoff(failures: int, settings: Settings) -> timedelta:
    """The wait after ``failures`` consecutive failures: interval × 2^failures, at most a
    day (and never shorter than the interval)."""
    interval = timedelta(seconds=max(settings.feed_poll_interval, 1))
    return min(interval * (2 ** min(failures, 20)), max(MAX_BACKOFF, interval))


def _result(feed: Feed, report: ImportReport | None,
            campaigns: list[dict[str, Any]]) -> dict[str, Any]:
    base = {"feed_id": feed.id, "url": feed.url,
            "next_poll_at": feed.next_poll_at.isoformat() if feed.next_poll_at else None}
    if report is None:
        return {**base, "status": "not_modified", "created": [], "updated": [],
                "campaigns": []}
    return {**base, "status": "ok", "created": [r.id for r in report.created],
            "updated": [r.id for r in report.updated], "unchanged": report.unchanged,
            "campaigns": campaigns}


def get_feed(session: Session, ref: str) -> Feed:
    """A feed by id or URL. Raises NotFound."""
    feed = session.get(Feed, int(ref)) if ref.isdigit() else session.scalar(
        select(Feed).where(Feed.url == ref))
    if feed is None:
        raise NotFound(f"no feed {ref!r} (see `mailer feeds list`)")
    return feed


def feed_to_dict(feed: Feed, session: Session | None = None) -> dict[str, Any]:
    def iso(value):
        return value.isoformat() if value else None

    out = {
        "id": feed.id, "url": feed.url, "title": feed.title, "auto": feed.auto,
        "last_polled_at": iso(feed.last_polled_at), "last_success_at": iso(feed.last_success_at),
        "next_poll_at": iso(feed.next_poll_at), "failures": feed.failures,
        "last_error": feed.last_error, "etag": feed.etag, "last_modified": feed.last_modified,
    }
    if session is not None:
        out["releases"] = len(session.scalars(
            select(Release.id).where(Release.feed_id == feed.id)).all())
    return out
