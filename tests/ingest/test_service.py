"""Importing into the database: dedupe, updates that follow into campaigns, all-or-nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.campaigns.lifecycle import transition
from mailer.campaigns.models import Campaign, CampaignLog
from mailer.campaigns.models import CampaignStatus as S
from mailer.campaigns.service import create_campaign
from mailer.errors import IngestError
from mailer.ingest.models import Release
from mailer.ingest.service import import_report, import_sources, release_to_dict
from mailer.ingest.topics import import_topic_pages
from tests.conftest import FEEDS_DIR, SEED_ISSUE, SEED_RELEASE

FEEDS = [str(FEEDS_DIR / n) for n in ("culberson_rss.xml", "richard_burr.xml", "ruiz_rss.xml")]


def _count(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Release))


def test_seed_release_imports_in_the_contract_shape_and_is_tagged(db, settings):
    with db.session() as session:
        import_topic_pages(session, [SEED_ISSUE], settings)
        created = import_sources(session, [str(SEED_RELEASE)], settings)
        data = release_to_dict(created[0])
    assert list(data)[:9] == ["id", "title", "subtitle", "date", "dateline", "body", "topics",
                              "source", "link"]
    assert data["date"] == "2014-05-09" and data["dateline"] == "FARGO, N.D."
    assert data["topics"] == ["human-trafficking"]
    assert data["source"] == str(SEED_RELEASE) and data["link"] is None


def test_three_fixture_feeds_import_and_reimport_creates_nothing(db, settings):
    with db.session() as session:
        created = import_sources(session, FEEDS, settings)
    assert len(created) == 45 == _count(db)
    with db.session() as session:
        report = import_report(session, FEEDS + FEEDS, settings)
    assert report.created == [] and report.updated == [] and report.unchanged == 90
    assert _count(db) == 45


def test_same_release_as_text_and_as_copy_elsewhere_is_one_release(db, settings, tmp_path):
    copy = tmp_path / "copy of release.txt"
    copy.write_bytes(SEED_RELEASE.read_text(encoding="utf-8").replace("’", "'")
                     .encode("cp1252"))
    with db.session() as session:
        assert len(import_sources(session, [str(SEED_RELEASE)], settings)) == 1
        assert import_sources(session, [str(copy)], settings) == []  # same content hash
    assert _count(db) == 1


def test_one_bad_source_stores_nothing(db, settings, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(IngestError, match="empty"):
        with db.session() as session:
            import_sources(session, [str(SEED_RELEASE), *FEEDS, str(empty)], settings)
    assert _count(db) == 0


FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>Office</title>
<link>https://smith.senate.gov/</link>
<item><title>{title}</title><guid>urn:item:1</guid><link>/news/1</link>
<pubDate>Mon, 03 Nov 2025 15:00:00 GMT</pubDate>
<description>WASHINGTON – {body}</description></item></channel></rss>"""


def _write_feed(path, title: str, body: str) -> str:
    path.write_text(FEED.format(title=title, body=body), encoding="utf-8")
    return str(path)


def test_known_guid_with_changed_content_updates_release_and_unsent_campaigns(db, settings,
                                                                              tmp_path):
    feed = tmp_path / "feed.xml"
    body = "Senator Smith today introduced the broadband bill in the Senate chamber."
    with db.session() as session:
        [release] = import_sources(session, [_write_feed(feed, "Old Title", body)], settings)
        draft = create_campaign(session, release_id=release.id, query='topic = "x"', by="a")
        custom = create_campaign(session, release_id=release.id, query='topic = "x"', by="a",
                                 subject="Hand-written subject")
        approved = create_campaign(session, release_id=release.id, query='topic = "x"', by="a")
        transition(session, approved, S.APPROVED, by="b")
        sent = create_campaign(session, release_id=release.id, query='topic = "x"', by="a")
        for state in (S.APPROVED, S.SENDING, S.SENT):
            transition(session, sent, state, by="b")
        ids = (release.id, draft.id, custom.id, approved.id, sent.id)

    with db.session() as session:
        report = import_report(session, [_write_feed(feed, "New Title", body + " Updated.")],
                               settings)
        assert report.created == [] and [r.id for r in report.updated] == [ids[0]]
        assert sorted(report.campaigns_touched) == sorted(ids[1:4])

    with db.session() as session:
        release = session.get(Release, ids[0])
        assert release.title == "New Title" and release.body.endswith("Updated.")
        draft, custom, approved, sent = (session.get(Campaign, i) for i in ids[1:])
        assert (draft.status, draft.subject) == (S.DRAFT, "New Title")
        assert (custom.status, custom.subject) == (S.DRAFT, "Hand-written subject")
        assert (approved.status, approved.subject) == (S.DRAFT, "New Title")
        assert approved.approved_by is None
        assert (sent.status, sent.subject) == (S.SENT, "Old Title")  # never touched again
        logged = session.scalars(select(CampaignLog.by).where(
            CampaignLog.campaign_id == approved.id, CampaignLog.from_status == S.APPROVED,
            CampaignLog.to_status == S.DRAFT)).all()
        assert logged == ["importer"]
        assert session.scalar(select(func.count()).select_from(Campaign)) == 4  # none new


def test_importing_the_changed_item_again_changes_nothing_more(db, settings, tmp_path):
    feed = tmp_path / "feed.xml"
    with db.session() as session:
        import_sources(session, [_write_feed(feed, "T", "A body that is long enough.")],
                       settings)
    with db.session() as session:
        first = import_report(session, [_write_feed(feed, "T", "A changed body, long enough.")],
                              settings)
        second = import_report(session, [str(feed)], settings)
    assert len(first.updated) == 1 and second.updated == [] and second.unchanged == 1


def test_markdown_front_matter_topics_tag_the_release_by_hand(db, settings, tmp_path):
    page = tmp_path / "r.md"
    page.write_text("---\ntitle: A Farm Bill Update\ntopics: [Human Trafficking]\n---\n"
                    "Body text about the farm bill.\n")
    with db.session() as session:
        import_topic_pages(session, [SEED_ISSUE], settings)
        [release] = import_sources(session, [str(page)], settings)
        assert release_to_dict(release)["topics"] == ["human-trafficking"]
        assert release.topic_links[0].origin == "manual"
    unknown = tmp_path / "u.md"
    unknown.write_text("---\ntitle: Other\ntopics: [no-such-topic]\n---\nBody.\n")
    with pytest.raises(IngestError, match="unknown topic 'no-such-topic'"):
        with db.session() as session:
            import_sources(session, [str(unknown)], settings)


def test_url_import_uses_the_url_as_link_and_identity(db, settings, web):
    url = web.put("/heitkamp.txt", SEED_RELEASE.read_bytes())
    with db.session() as session:
        [release] = import_sources(session, [url], settings)
        assert (release.link, release.guid) == (url, url)
    changed = SEED_RELEASE.read_text(encoding="utf-8").replace("Continuing her efforts",
                                                               "Continuing her work")
    web.put("/heitkamp.txt", changed)
    with db.session() as session:
        report = import_report(session, [url], settings)
        assert [r.body[:24] for r in report.updated] == ["Continuing her work sinc"]
