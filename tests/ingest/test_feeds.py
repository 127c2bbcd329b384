"""Feed watching: add, conditional polling, drafts for new items, backoff, isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.errors import IngestError
from mailer.ingest.feeds import add_feed, backoff, poll_due_feeds
from mailer.ingest.models import Feed, Release
from mailer.ingest.topics import import_topic_pages
from mailer.storage.base import utcnow
from tests.conftest import FEEDS_DIR, SEED_ISSUE

ITEM = """<item><title>{title}</title><guid>urn:{n}</guid><link>/news/{n}</link>
<pubDate>Mon, 03 Nov 2025 15:00:00 GMT</pubDate><description>FARGO, N.D. – {body}</description>
</item>"""
TRAFFICKING = ("Senator Heitkamp today announced new grants to fight human trafficking in "
               "North Dakota, and met with victims of human trafficking in Fargo.")


def _rss(*items: tuple[str, str]) -> str:
    body = "".join(ITEM.format(n=n, title=t, body=b) for n, (t, b) in enumerate(items, 1))
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>Heitkamp</title>"
            f"<link>https://heitkamp.senate.gov/</link>{body}</channel></rss>")


def _counts(db) -> tuple[int, int]:
    with db.session() as session:
        return (session.scalar(select(func.count()).select_from(Release)),
                session.scalar(select(func.count()).select_from(Campaign)))


def _add(db, settings, url, **kwargs) -> int:
    with db.session() as session:
        feed, _ = add_feed(session, url, settings, **kwargs)
        return feed.id


def test_add_imports_the_baseline_without_campaigns(db, settings, web):
    url = web.put("/ruiz.xml", (FEEDS_DIR / "ruiz_rss.xml").read_bytes(),
                  content_type="application/rss+xml", etag='"v1"')
    with db.session() as session:
        feed, report = add_feed(session, url, settings)
        assert len(report.created) == 10 and feed.title.startswith("Congressman")
        assert feed.etag == '"v1"' and feed.failures == 0
        assert feed.next_poll_at > utcnow() + timedelta(seconds=settings.feed_poll_interval - 60)
    assert _counts(db) == (10, 0)


@pytest.mark.parametrize("path, body, reason", [
    ("/missing.xml", None, "HTTP 404"),
    ("/page.html", "<html><body><h1>Not a feed</h1></body></html>", "names no feed"),
    ("/data.xml", "<?xml version='1.0'?><root/>", "not an RSS or Atom feed"),
    ("/empty.xml", "", "empty"),
])
def test_add_refuses_bad_feeds_and_stores_nothing(db, settings, web, path, body, reason):
    url = web.put(path, body) if body is not None else web.url(path)
    with pytest.raises(IngestError, match=reason):
        _add(db, settings, url)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Feed)) == 0
    assert _counts(db) == (0, 0)


def test_add_refuses_duplicates_and_non_urls(db, settings, web):
    url = web.put("/f.xml", _rss(("One", TRAFFICKING)))
    _add(db, settings, url)
    with pytest.raises(IngestError, match="already watched"):
        _add(db, settings, url)
    with pytest.raises(IngestError, match="http"):
        _add(db, settings, "/etc/passwd")


def test_poll_uses_conditional_get_and_new_items_become_draft_campaigns(db, settings, web):
    with db.session() as session:
        import_topic_pages(session, [SEED_ISSUE], settings)
    url = web.put("/f.xml", _rss(("Old news", "An older release about the farm economy.")),
                  etag='"v1"', last_modified="Mon, 03 Nov 2025 15:00:00 GMT")
    feed_id = _add(db, settings, url)
    later = utcnow() + timedelta(seconds=settings.feed_poll_interval + 1)

    [unchanged] = poll_due_feeds(db, settings, now=later)
    assert unchanged["status"] == "not_modified"
    assert web.hits("/f.xml")[-1]["if_none_match"] == '"v1"'
    assert web.hits("/f.xml")[-1]["if_modified_since"] == "Mon, 03 Nov 2025 15:00:00 GMT"

    web.put("/f.xml", _rss(("Old news", "An older release about the farm economy."),
                           ("Heitkamp Fights Human Trafficking", TRAFFICKING),
                           ("Heitkamp Visits Farm", "The senator toured a farm in Cass County.")),
            etag='"v2"')
    later += timedelta(seconds=settings.feed_poll_interval + 1)
    [result] = poll_due_feeds(db, settings, now=later)
    assert result["status"] == "ok" and len(result["created"]) == 2
    drafts = [c for c in result["campaigns"] if c["campaign_id"]]
    assert len(drafts) == 1 and drafts[0]["status"] == S.DRAFT
    untagged = [c for c in result["campaigns"] if not c["campaign_id"]]
    assert untagged[0]["reason"] == "no topic matched; no audience"
    with db.session() as session:
        campaign = session.get(Campaign, drafts[0]["campaign_id"])
        assert campaign.query == 'topic in ("human-trafficking")'
        assert campaign.created_by == f"feed:{feed_id}"
        assert campaign.subject == "Heitkamp Fights Human Trafficking"
        assert session.get(Feed, feed_id).etag == '"v2"'
    assert _counts(db) == (3, 1)


def test_poll_due_skips_feeds_not_yet_due(db, settings, web):
    url = web.put("/f.xml", _rss(("One", TRAFFICKING)))
    _add(db, settings, url)
    before = len(web.requests)
    assert poll_due_feeds(db, settings) == []
    assert len(web.requests) == before


def test_a_failing_feed_backs_off_and_never_stops_the_others(db, settings, web, monkeypatch):
    good = web.put("/good.xml", _rss(("One", TRAFFICKING)))
    slow = web.put("/slow.xml", _rss(("Two", TRAFFICKING)))
    broken = web.put("/broken.xml", _rss(("Three", TRAFFICKING)))
    ids = [_add(db, settings, u) for u in (slow, broken, good)]
    web.put("/slow.xml", _rss(("Two", TRAFFICKING)), delay=0.5)
    web.put("/broken.xml", "<rss><channel><item>", status=500)
    web.put("/good.xml", _rss(("One", TRAFFICKING), ("Four", "Another release body here.")))
    monkeypatch.setattr(settings, "fetch_timeout", 0.1)
    now = utcnow() + timedelta(seconds=settings.feed_poll_interval + 1)

    results = {r["feed_id"]: r for r in poll_due_feeds(db, settings, now=now)}
    assert results[ids[0]]["status"] == "error" and "no answer within" in results[ids[0]]["error"]
    assert results[ids[1]]["status"] == "error" and "HTTP 500" in results[ids[1]]["error"]
    assert results[ids[2]]["status"] == "ok" and len(results[ids[2]]["created"]) == 1
    with db.session() as session:
        slow_feed = session.get(Feed, ids[0])
        assert slow_feed.failures == 1 and "no answer" in slow_feed.last_error
        assert slow_feed.next_poll_at == now + backoff(1, settings)
    # a second failure doubles the wait; a success resets it
    again = now + backoff(1, settings)
    poll_due_feeds(db, settings, now=again)
    with db.session() as session:
        assert session.get(Feed, ids[1]).failures == 2
        assert session.get(Feed, ids[1]).next_poll_at == again + backoff(2, settings)
    web.put("/broken.xml", _rss(("Three", TRAFFICKING)))
    poll_due_feeds(db, settings, now=again + backoff(2, settings))
    with db.session() as session:
        fixed = session.get(Feed, ids[1])
        assert (fixed.failures, fixed.last_error) == (0, None)


def test_backoff_doubles_and_is_capped_at_a_day(settings):
    interval = timedelta(seconds=settings.feed_poll_interval)
    assert [backoff(n, settings) for n in (1, 2, 3)] == [interval * 2, interval * 4, interval * 8]
    assert backoff(50, settings) == timedelta(days=1)


def test_an_unexpected_error_in_one_feed_is_recorded_not_raised(db, settings, web, monkeypatch):
    first = web.put("/a.xml", _rss(("One", TRAFFICKING)))
    second = web.put("/b.xml", _rss(("Two", TRAFFICKING)))
    ids = [_add(db, settings, u) for u in (first, second)]
    import mailer.ingest.feeds as feeds

    real = feeds.parse_feed

    def explode_on_a(data, source, **kwargs):
        if source.endswith("/a.xml"):
            raise RuntimeError("parser bug")
        return real(data, source, **kwargs)

    monkeypatch.setattr(feeds, "parse_feed", explode_on_a)
    now = utcnow() + timedelta(seconds=settings.feed_poll_interval + 1)
    results = {r["feed_id"]: r for r in poll_due_feeds(db, settings, now=now)}
    assert results[ids[0]]["error"] == "internal error: RuntimeError: parser bug"
    assert results[ids[1]]["status"] == "ok"


def test_auto_feed_campaigns_wait_for_a_person_when_approval_is_required(db, settings, web):
    with db.session() as session:
        import_topic_pages(session, [SEED_ISSUE], settings)
    url = web.put("/f.xml", _rss(("Old", "An older release about the farm economy.")))
    _add(db, settings, url, auto=True)
    web.put("/f.xml", _rss(("Old", "An older release about the farm economy."),
                           ("Heitkamp Fights Human Trafficking", TRAFFICKING)))
    [result] = poll_due_feeds(db, settings, now=utcnow() + timedelta(days=1))
    [campaign] = result["campaigns"]
    assert campaign["status"] == S.DRAFT
    assert "waiting for approval by a person" in campaign["status_reason"]


def test_auto_feed_campaigns_are_scheduled_when_approval_is_off(db, settings, web, monkeypatch):
    monkeypatch.setattr(settings, "require_approval", False)
    with db.session() as session:
        import_topic_pages(session, [SEED_ISSUE], settings)
    url = web.put("/f.xml", _rss(("Old", "An older release about the farm economy.")))
    _add(db, settings, url, auto=True)
    web.put("/f.xml", _rss(("Old", "An older release about the farm economy."),
                           ("Heitkamp Fights Human Trafficking", TRAFFICKING)))
    [result] = poll_due_feeds(db, settings, now=utcnow() + timedelta(days=1))
    [campaign] = result["campaigns"]
    assert campaign["status"] == S.SCHEDULED
    with db.session() as session:
        row = session.get(Campaign, campaign["campaign_id"])
        assert row.scheduled_at is not None and row.approved_by


def test_adding_a_newsroom_page_watches_the_feed_it_names(db, settings, web):
    feed_url = web.put("/rss/press.xml", _rss(("One", TRAFFICKING)))
    page = web.put("/newsroom", "<html><head><link rel='alternate' type='application/rss+xml' "
                   "href='/rss/press.xml'></head><body><h1>News</h1></body></html>",
                   content_type="text/html")
    with db.session() as session:
        feed, report = add_feed(session, page, settings)
        assert feed.url == feed_url and len(report.created) == 1
    bare = web.put("/about", "<html><body><h1>About</h1><p>No feed here.</p></body></html>",
                   content_type="text/html")
    with pytest.raises(IngestError, match="names no feed"):
        _add(db, settings, bare)
    with pytest.raises(IngestError, match="already watched"):
        _add(db, settings, page)


def test_auto_feed_in_an_election_blackout_stays_unscheduled_with_the_reason(
        db, settings, web, monkeypatch):
    monkeypatch.setattr(settings, "require_approval", False)
    monkeypatch.setattr(settings, "election_dates", [(utcnow() + timedelta(days=10)).date()])
    with db.session() as session:
        import_topic_pages(session, [SEED_ISSUE], settings)
    url = web.put("/f.xml", _rss(("Old", "An older release about the farm economy.")))
    _add(db, settings, url, auto=True)
    web.put("/f.xml", _rss(("Old", "An older release about the farm economy."),
                           ("Heitkamp Fights Human Trafficking", TRAFFICKING)))
    [result] = poll_due_feeds(db, settings, now=utcnow() + timedelta(days=1))
    assert result["status"] == "ok" and len(result["created"]) == 1
    [campaign] = result["campaigns"]
    assert campaign["status"] != S.SCHEDULED
    assert campaign["status_reason"].startswith("auto feed: not scheduled:")
    assert "election" in campaign["status_reason"].lower()
