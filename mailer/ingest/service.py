"""Importing releases: read every source, parse it, deduplicate, store, tag.

All-or-nothing per call: every source is read and parsed before anything is stored, and the
caller's session (``with db.session()``) rolls back if any step fails.

Re-importing changes nothing. An item whose GUID is known but whose content changed updates
the release; campaigns built on it that have not started sending follow it (a draft's subject
follows the title when it was the old title; an approved or scheduled campaign goes back to
draft, because what was approved is no longer what would be sent). Nothing is ever re-sent:
campaigns that are sending or finished are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailer.campaigns.lifecycle import back_to_draft
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.campaigns.service import update_campaign
from mailer.errors import IngestError, NotFound
from mailer.ingest.dedupe import Seen, content_hash
from mailer.ingest.html import parse_html
from mailer.ingest.markdown import parse_markdown
from mailer.ingest.models import Release, ReleaseTopic
from mailer.ingest.parsed import MAX_DATELINE, MAX_SUBTITLE, ParsedRelease
from mailer.ingest.rss import parse_feed
from mailer.ingest.search import matching, page_ids
from mailer.ingest.sources import Loaded, read_source
from mailer.ingest.text import parse_text
from mailer.ingest.topics import (
    THRESHOLD,
    find_topic,
    release_words,
    score_release,
    set_tag,
    tag_release,
    topic_to_dict,
)
from mailer.scheduling.jobs import campaign_job_id, remove_job_row
from mailer.settings import Settings
from subscribers.models import Topic

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    """What one source of an import gave: the ids it created, updated or already held."""

    source: str
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.existing)} already imported")


@dataclass
class ImportReport:
    created: list[Release] = field(default_factory=list)
    updated: list[Release] = field(default_factory=list)
    unchanged: int = 0
    #: The releases already imported that a source carried again (nothing was changed).
    existing: list[Release] = field(default_factory=list)
    #: Campaigns moved back to draft or retitled because their release changed.
    campaigns_touched: list[int] = field(default_factory=list)
    #: One entry per source, in the order given (``import_report`` fills it).
    sources: list[SourceReport] = field(default_factory=list)

    def summary(self) -> str:
        again = (" (release " + ", ".join(str(r.id) for r in self.existing[:10])
                 + (", …" if len(self.existing) > 10 else "") + ")") if self.existing else ""
        return (f"{len(self.created)} created, {len(self.updated)} updated, "
                f"{self.unchanged} already imported{again}")


def import_sources(session: Session, sources: list[str], settings: Settings, *,
                   client: httpx.Client | None = None) -> list[Release]:
    """Import files and URLs; returns the releases CREATED (re-imports create nothing).

    Raises IngestError naming the first source that cannot be read or parsed.
    """
    return import_report(session, sources, settings, client=client).created


def import_report(session: Session, sources: list[str | Loaded], settings: Settings, *,
                  client: httpx.Client | None = None,
                  progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Like ``import_sources`` but also says what was updated or already there, in all and
    per source. A source is a path, an http(s) URL, ``-`` or an already read ``Loaded``
    (an upload). ``progress(done, total)`` is called after each source is read and parsed."""
    if not sources:
        raise IngestError("nothing to import: give at least one file or URL")
    batches: list[tuple[str, list[ParsedRelease]]] = []
    for done, source in enumerate(sources, 1):
        loaded = source if isinstance(source, Loaded) else read_source(source, settings,
                                                                       client=client)
        batches.append((loaded.source, parse_loaded(loaded, settings)))
        if progress is not None:
            progress(done, len(sources))
    report, seen = ImportReport(), Seen(session)
    for source, items in batches:
        before = (len(report.created), len(report.updated), len(report.existing))
        _store(session, items, report, seen)
        report.sources.append(SourceReport(
            source, [r.id for r in report.created[before[0]:]],
            [r.id for r in report.updated[before[1]:]],
            [r.id for r in report.existing[before[2]:]]))
    return report


def parse_loaded(loaded: Loaded, settings: Settings) -> list[ParsedRelease]:
    """Parse one read source into releases (a feed gives many). Raises IngestError."""
    if loaded.kind == "feed":
        return parse_feed(loaded.data, loaded.source, url=loaded.url, zone=settings.zone).items
    text = loaded.text
    if loaded.kind == "html":
        return [parse_html(text, loaded.source, base_url=loaded.url, zone=settings.zone)]
    if loaded.kind == "markdown":
        return [parse_markdown(text, loaded.source)]

    item = parse_text(text, loaded.source)
    item.link = item.link or loaded.url
    item.guid = item.guid or loaded.url
    return [item]


def store_items(session: Session, items: list[ParsedRelease], *,
                feed_id: int | None = None) -> ImportReport:
    """Deduplicate and store parsed items; tag what is created or changed."""
    report = ImportReport()
    _store(session, items, report, Seen(session), feed_id)
    return report


def _store(session: Session, items: list[ParsedRelease], report: ImportReport, seen: Seen,
           feed_id: int | None = None) -> None:
    """Add ``items`` to ``report``; ``seen`` is shared by every source of one import, so a
    release two sources both carry is stored once."""
    topics = list(session.scalars(select(Topic)))
    for item in items:
        _check_fits(item)
        digest = content_hash(item)
        match = seen.find(item, digest)
        if match is None:
            release = _create(session, item, digest, feed_id, topics)
            seen.remember(release)
            report.created.append(release)
        elif match.how == "guid" and match.release.content_hash != digest \
                and not seen.hash_taken(digest, match.release):
            report.campaigns_touched += _update(session, match.release, item, digest, topics)
            seen.remember(match.release)
            report.updated.append(match.release)
        else:
            report.unchanged += 1
            report.existing.append(match.release)


def _check_fits(item: ParsedRelease) -> None:
    if len(item.title) > 1000:
        raise IngestError(f"{item.source}: the headline is over 1000 characters")
    for attr, limit in (("subtitle", MAX_SUBTITLE), ("dateline", MAX_DATELINE)):
        value = getattr(item, attr)
        if value and len(value) > limit:
            setattr(item, attr, value[:limit])
    for attr in ("link", "guid"):
        value = getattr(item, attr)
        if value and len(value) > 2000:
            raise IngestError(f"{item.source}: {attr} is over 2000 characters")


def _fields(item: ParsedRelease, digest: str) -> dict[str, Any]:
    return dict(title=item.title, subtitle=item.subtitle, date=item.date,
                dateline=item.dateline, body=item.body, body_html=item.body_html,
                contact=item.contact, link=item.link, content_hash=digest)


def _create(session: Session, item: ParsedRelease, digest: str, feed_id: int | None,
            topics: list) -> Release:
    release = Release(source=item.source[:2000], guid=item.guid, feed_id=feed_id,
                      **_fields(item, digest))
    session.add(release)
    session.flush()
    tag_release(session, release, topics)
    for ref in item.topics:
        try:
            set_tag(session, release, ref, on=True)
        except NotFound:
            raise IngestError(f"{item.source}: unknown topic {ref!r} in the front matter "
                              "(import its issue page first)") from None
    return release


def _update(session: Session, release: Release, item: ParsedRelease, digest: str,
            topics: list) -> list[int]:
    old_title = release.title
    for name, value in _fields(item, digest).items():
        setattr(release, name, value)
    session.flush()
    tag_release(session, release, topics)
    log.info("release %s changed at its source %s; updated", release.id, item.source)
    return _follow_release_change(session, release, old_title)


def _follow_release_change(session: Session, release: Release, old_title: str) -> list[int]:
    """Campaigns not yet sending follow the changed release; returns their ids.

    Uses ``mailer.campaigns.service.update_campaign`` for the subject (it returns approved
    and scheduled campaigns to draft and drops their scheduler job); a campaign whose subject
    was set by hand keeps it but still goes back to draft for a fresh approval.
    """

    touched = []
    campaigns = session.scalars(select(Campaign).where(
        Campaign.release_id == release.id,
        Campaign.status.in_((S.DRAFT, S.APPROVED, S.SCHEDULED, S.MISSED))))
    for campaign in campaigns:
        if campaign.subject == old_title and release.title != old_title:
            update_campaign(session, campaign, by="importer", subject=release.title[:500])
        elif campaign.status != S.DRAFT:
            remove_job_row(session, campaign_job_id(campaign.id))
            back_to_draft(session, campaign, by="importer",
                          reason=f"release {release.id} changed at its source; approve it again")
        touched.append(campaign.id)
    return touched


# ---------------------------------------------------------------- reading releases


def release_to_dict(release: Release) -> dict[str, Any]:
    """The contract shape: id, title, subtitle, date (ISO or None), dateline, body, topics
    (slugs, staff removals excluded), source, link; plus contact, guid, feed_id, times."""
    return {
        "id": release.id,
        "title": release.title,
        "subtitle": release.subtitle,
        "date": release.date.isoformat() if release.date else None,
        "dateline": release.dateline,
        "body": release.body,
        "topics": sorted(link.topic.slug for link in release.topic_links
                         if link.origin != "removed"),
        "source": release.source,
        "link": release.link,
        "contact": release.contact,
        "guid": release.guid,
        "feed_id": release.feed_id,
        "created_at": release.created_at.isoformat() if release.created_at else None,
        "updated_at": release.updated_at.isoformat() if release.updated_at else None,
    }


def release_detail(session: Session, release: Release) -> dict[str, Any]:
    """``release_to_dict`` plus the HTML body, every topic's score and matched terms (also
    topics below the threshold, so staff can see why a tag is missing) and the campaigns
    made from it (``release_campaigns``)."""

    links = {link.topic_id: link for link in release.topic_links}
    scores, words = [], release_words(release)
    for topic in session.scalars(select(Topic).order_by(Topic.slug)):
        result = score_release(release, topic, words)
        link = links.get(topic.id)
        scores.append({
            **topic_to_dict(topic, terms=False), "score": result.score,
            "matched": result.matched, "threshold": THRESHOLD,
            "qualifies": result.qualifies, "tagged": link is not None and link.origin != "removed",
            "origin": link.origin if link is not None else None,
        })
    scores.sort(key=lambda s: -s["score"])
    return {**release_to_dict(release), "body_html": release.body_html, "scores": scores,
            "campaigns": release_campaigns(session, release.id)}


def release_campaigns(session: Session, release_id: int) -> list[dict[str, Any]]:
    """The campaigns made from a release, newest first: id, subject, status."""
    rows = session.execute(select(Campaign.id, Campaign.subject, Campaign.status)
                           .where(Campaign.release_id == release_id)
                           .order_by(Campaign.id.desc()))
    return [{"id": i, "subject": subject, "status": status} for i, subject, status in rows]


def get_release(session: Session, release_id: int) -> Release:
    """Raises NotFound."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release with id {release_id}")
    return release


def list_releases(session: Session, *, topic: str | None = None, limit: int | None = None,
                  offset: int = 0, text: str | None = None) -> list[Release]:
    """Newest first (by date, then id); ``topic`` a slug or name (NotFound otherwise);
    ``text`` keeps releases whose title or body holds every word of it, any case
    (``mailer.ingest.search``: indexed, or a bounded scan). The page's ids are found first
    and the releases loaded after, so sorting never carries bodies along."""
    newest = (Release.date.desc().nulls_last(), Release.id.desc())
    ids = select(Release.id).order_by(*newest)
    if topic:
        found = find_topic(session, topic)
        ids = ids.join(ReleaseTopic).where(ReleaseTopic.topic_id == found.id,
                                           ReleaseTopic.origin != "removed")
    match = matching(session, text, newest)
    page = page_ids(session, ids, match, newest, offset=offset, limit=limit)
    loaded: dict[int, Release] = {}
    for start in range(0, len(page), 1000):  # bound the number of bound parameters
        loaded.update((r.id, r) for r in session.scalars(
            select(Release).where(Release.id.in_(page[start:start + 1000])).options(
                selectinload(Release.topic_links).joinedload(ReleaseTopic.topic))))
    return [loaded[i] for i in page]
