"""The dashboard through the ASGI app: login, the campaign workflow as two users, refusals."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from mailer.campaigns.models import Campaign
from tests.web.conftest import add_subscriber, add_user, csrf_from, login, outbox_messages


@pytest.fixture
def staff(db):
    add_user(db, "alice", "author")
    add_user(db, "bob", "approver")


def campaign_status(db, campaign_id: int) -> str:
    with db.session() as session:
        return session.get(Campaign, campaign_id).status


def create_draft(client, release_id: int, query='topic = "agriculture"') -> int:
    page = client.get(f"/admin/campaigns/new?release_id={release_id}")
    assert page.status_code == 200
    response = client.post("/admin/campaigns/new", data={
        "csrf_token": csrf_from(page.text), "release_id": str(release_id), "query": query,
        "subject": "", "template": "press_release", "segment": ""}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def act(client, campaign_id: int, action: str, **data):
    page = client.get(f"/admin/campaigns/{campaign_id}")
    return client.post(f"/admin/campaigns/{campaign_id}/{action}",
                       data={"csrf_token": csrf_from(page.text), **data})


@pytest.mark.parametrize("path", [
    "/admin", "/admin/campaigns", "/admin/campaigns/new", "/admin/campaigns/1",
    "/admin/campaigns/1/preview.html", "/admin/subscribers", "/admin/releases", "/admin/feeds",
])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (303, 307)
    location = response.headers["location"]
    assert location.startswith("/admin/login") or location == "/admin/campaigns"


def test_anonymous_json_and_posts_are_refused(client):
    assert client.get("/admin/campaigns/progress.json?ids=1").status_code == 401
    response = client.post("/admin/campaigns/1/approve", data={}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=/admin/campaigns"


def test_login_wrong_password_then_right(client, staff):
    assert login(client, "alice", "wrong password!").status_code == 401
    assert login(client, "nobody", "wrong password!").status_code == 401
    response = login(client, "alice")
    assert response.status_code == 303 and response.headers["location"] == "/admin/campaigns"
    page = client.get("/admin/campaigns")
    assert page.status_code == 200 and "alice (author)" in page.text


def test_login_refuses_foreign_redirect(client, staff):
    page = client.get("/admin/login?next=https://evil.example/")
    assert 'value="/admin/campaigns"' in page.text
    response = client.post("/admin/login", data={
        "csrf_token": csrf_from(page.text), "name": "alice",
        "password": "correct horse battery", "next": "//evil.example/x"}, follow_redirects=False)
    assert response.headers["location"] == "/admin/campaigns"


def test_login_needs_csrf(client, staff):
    client.get("/admin/login")
    response = client.post("/admin/login", data={"name": "alice",
                                                 "password": "correct horse battery"})
    assert response.status_code == 403


def test_login_attempts_are_rate_limited(client, app, staff):
    # Different names each time: the per-account lockout never starts, the per-IP limit does.
    for i in range(app.state.login_limiter.limit):
        assert login(client, f"guess{i}", "wrong password!").status_code == 401
    # Now even the right password is refused from this address for a while.
    response = login(client, "alice")
    assert response.status_code == 401 and "too many tries" in response.text


def test_logout_ends_the_session(client, staff):
    login(client, "alice")
    page = client.get("/admin/campaigns")
    client.post("/admin/logout", data={"csrf_token": csrf_from(page.text)})
    assert client.get("/admin/campaigns", follow_redirects=False).status_code == 303


def test_a_copied_session_cookie_stops_working_after_log_out(client, app, staff):
    """Log out ends the session on the server: a copy of the cookie taken before is refused."""
    login(client, "alice")
    page = client.get("/admin/campaigns")
    assert page.status_code == 200
    copied = dict(client.cookies)
    client.post("/admin/logout", data={"csrf_token": csrf_from(page.text)})
    thief = TestClient(app)
    thief.cookies.update(copied)
    assert thief.get("/admin/campaigns", follow_redirects=False).status_code == 303
    login(client, "alice")  # logging in again works, with a new session
    assert client.get("/admin/campaigns").status_code == 200


def test_workflow_author_cannot_approve_second_user_can(client, app, db, staff, topics,
                                                        release_id):
    add_subscriber(db, "farmer@example.org", topics=["agriculture"])
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    assert campaign_status(db, campaign_id) == "draft"

    page = client.get(f"/admin/campaigns/{campaign_id}")
    assert "An approver must approve this campaign" in page.text
    assert "Cancel campaign" not in page.text and "Send now" not in page.text
    assert '<span data-field="audience">1</span> get this release now' in page.text
    assert 'href="/admin/campaigns" aria-current="page"' in page.text
    response = act(client, campaign_id, "approve")
    assert response.status_code == 403 and "only an approver" in response.text
    assert campaign_status(db, campaign_id) == "draft"

    client.cookies.clear()
    login(client, "bob")
    response = act(client, campaign_id, "approve")
    assert "Approved." in response.text
    assert campaign_status(db, campaign_id) == "approved"
    with db.session() as session:
        assert session.get(Campaign, campaign_id).approved_by == "bob"


def test_author_role_cannot_schedule(client, db, staff, release_id):
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    response = act(client, campaign_id, "schedule", when="now", confirmed="yes")
    assert response.status_code == 403 and "only an approver" in response.text
    assert campaign_status(db, campaign_id) == "draft"


def test_bad_query_is_shown_on_the_form(client, db, staff, release_id):
    login(client, "alice")
    page = client.get("/admin/campaigns/new")
    response = client.post("/admin/campaigns/new", data={
        "csrf_token": csrf_from(page.text), "release_id": str(release_id),
        "query": 'county = "Cass" and', "segment": ""})
    assert response.status_code == 422 and "position" in response.text
    with db.session() as session:
        assert session.scalar(select(Campaign.id)) is None


def test_segment_builder_live_count(client, db, staff, topics):
    add_subscriber(db, "a@example.org", topics=["agriculture"])
    add_subscriber(db, "b@example.org", topics=["agriculture"])
    add_subscriber(db, "c@example.org", topics=["human-trafficking"])
    add_subscriber(db, "d@example.org", status="pending", topics=["agriculture"])
    login(client, "alice")
    answer = client.get("/admin/segments/count", params={"query": 'topic = "agriculture"'})
    assert answer.json() == {"count": 2, "now": 2, "in_digests": 0}
    assert "error" in client.get("/admin/segments/count", params={"query": "zip ="}).json()


def test_preview_is_personalized_for_a_sample_and_frameable_by_us(client, db, staff,
                                                                   release_id):
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    preview = client.get(f"/admin/campaigns/{campaign_id}/preview.html")
    assert preview.status_code == 200
    assert "Heitkamp Bill to Combat Human Trafficking" in preview.text
    assert "Pat Sample" in preview.text or "sample@example.org" in preview.text
    assert "frame-ancestors 'self'" in preview.headers["content-security-policy"]
    assert "script-src" not in preview.headers["content-security-policy"]
    page = client.get(f"/admin/campaigns/{campaign_id}")
    assert f'src="/admin/campaigns/{campaign_id}/preview.html"' in page.text


def test_send_test_writes_a_test_copy_and_leaves_the_campaign(client, db, settings, staff,
                                                              release_id):
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    response = act(client, campaign_id, "test", to="desk@example.org")
    assert "Test sent to 1 address" in response.text
    [message] = outbox_messages(settings)
    assert message["Subject"].startswith("[TEST]")
    assert campaign_status(db, campaign_id) == "draft"


def test_progress_json(client, db, staff, release_id):
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    data = client.get(f"/admin/campaigns/progress.json?ids={campaign_id},x").json()
    assert data == {"campaigns": [{"id": campaign_id, "status": "draft", "recipients": 0,
                                   "done": 0, "percent": 0.0, "counts": {}}]}


def test_subscriber_search_and_detail(client, db, staff):
    person = add_subscriber(db, "searchme@example.org", name="Searchable Person")
    add_subscriber(db, "other@example.org")
    login(client, "alice")
    page = client.get("/admin/subscribers", params={"q": "SEARCH"})
    assert "searchme@example.org" in page.text and "other@example.org" not in page.text
    assert "other@example.org" not in client.get("/admin/subscribers",
                                                 params={"q": "%"}).text
    with db.session() as session:
        from subscribers.models import Subscriber
        from subscribers.service import unsubscribe

        unsubscribe(session, session.get(Subscriber, person), cause="asked by phone")
    detail = client.get(f"/admin/subscribers/{person}")
    assert detail.status_code == 200
    assert "joined (test)" in detail.text
    assert "<strong>unsubscribed</strong> · asked by phone" in detail.text


def test_admin_pages_render(client, db, staff, release_id):
    login(client, "bob")
    for path in ("/admin/campaigns", "/admin/releases", "/admin/feeds", "/admin/subscribers"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert '<script src="/static/admin.js" defer></script>' in page.text
    assert "Heitkamp Bill" in client.get("/admin/releases").text


@pytest.fixture
def feed_server():
    """The fixture feeds served over HTTP on loopback."""
    import functools
    import http.server
    import threading

    from tests.conftest import FEEDS_DIR

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(FEEDS_DIR))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_feeds_added_by_an_approver_not_an_author(client, db, staff, feed_server):
    from mailer.ingest.models import Feed, Release

    url = f"{feed_server}/ruiz_rss.xml"
    login(client, "alice")
    page = client.get("/admin/feeds")
    assert "Add a feed" not in page.text
    refused = client.post("/admin/feeds", data={"csrf_token": csrf_from(page.text), "url": url})
    assert refused.status_code == 403 and "only an approver" in refused.text
    client.cookies.clear()
    login(client, "bob")
    page = client.get("/admin/feeds")
    added = client.post("/admin/feeds", data={"csrf_token": csrf_from(page.text), "url": url})
    assert "Feed added;" in added.text and url in added.text
    with db.session() as session:
        assert session.scalar(select(Feed.url)) == url
        assert session.scalar(select(Release.id)) is not None
    again = client.post("/admin/feeds", data={"csrf_token": csrf_from(added.text), "url": url})
    assert "already watched" in again.text


def test_staff_unsubscribe_is_asked_first_and_recorded_with_their_name(client, db, staff):
    from subscribers import service
    from subscribers.models import Subscriber

    person = add_subscriber(db, "caller@example.org")
    login(client, "alice")
    page = client.get(f"/admin/subscribers/{person}")
    assert "Unsubscribe this person" not in page.text  # authors do not change the list
    refused = client.post(f"/admin/subscribers/{person}/unsubscribe",
                          data={"csrf_token": csrf_from(page.text)})
    assert refused.status_code == 403 and "only an approver" in refused.text
    client.cookies.clear()
    login(client, "bob")
    page = client.get(f"/admin/subscribers/{person}")
    asked = client.post(f"/admin/subscribers/{person}/unsubscribe",
                        data={"csrf_token": csrf_from(page.text)})
    assert asked.status_code == 200 and "Unsubscribe caller@example.org?" in asked.text
    with db.session() as session:
        assert session.get(Subscriber, person).status == "active"  # nothing done yet
    done = client.post(f"/admin/subscribers/{person}/unsubscribe",
                       data={"csrf_token": csrf_from(asked.text), "confirmed": "yes"})
    assert "suppression list" in done.text
    with db.session() as session:
        subscriber = session.get(Subscriber, person)
        assert subscriber.status == "unsubscribed"
        assert service.status_history(session, subscriber)[-1].cause == \
            "staff: bob (dashboard)"
        assert service.is_suppressed(session, "caller@example.org")


def test_broken_template_is_explained_inside_the_preview(client, db, staff, release_id):
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    with db.session() as session:
        session.get(Campaign, campaign_id).template = "no_such_template"
    preview = client.get(f"/admin/campaigns/{campaign_id}/preview.html")
    assert preview.status_code == 200
    assert "cannot be previewed" in preview.text and "no_such_template" in preview.text


def test_schedule_pause_resume_cancel_from_the_dashboard(client, db, staff, release_id):
    from datetime import UTC, datetime

    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    client.cookies.clear()
    login(client, "bob")
    act(client, campaign_id, "approve")
    asked = act(client, campaign_id, "schedule", when="at", at="2099-03-02T07:30")
    assert "Send to 0 people at 2099-03-02 07:30 CST?" in asked.text  # nobody follows it
    assert campaign_status(db, campaign_id) == "approved"  # asked, not done
    scheduled = act(client, campaign_id, "schedule", when="at", at="2099-03-02T07:30",
                    confirmed="yes")
    assert "Scheduled." in scheduled.text
    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign.status == "scheduled"
        assert campaign.scheduled_at == datetime(2099, 3, 2, 13, 30, tzinfo=UTC)  # CST
        campaign.status = "sending"  # as the engine would have it
    assert "Paused." in act(client, campaign_id, "pause").text
    assert campaign_status(db, campaign_id) == "paused"
    assert "Resume sending to" in act(client, campaign_id, "resume").text
    assert campaign_status(db, campaign_id) == "paused"
    assert "Resumed." in act(client, campaign_id, "resume", confirmed="yes").text
    assert campaign_status(db, campaign_id) == "sending"
    asked = act(client, campaign_id, "cancel")
    assert "Cancel “" in asked.text and "cannot be restarted" in asked.text
    assert campaign_status(db, campaign_id) == "sending"
    assert "Cancelled." in act(client, campaign_id, "cancel", confirmed="yes").text
    assert campaign_status(db, campaign_id) == "cancelled"
    refused = act(client, campaign_id, "resume", confirmed="yes")
    assert "notice-error" in refused.text and campaign_status(db, campaign_id) == "cancelled"


def test_schedule_in_quiet_hours_is_refused_with_the_reason(client, app, db, staff, release_id):
    app.state.settings = app.state.settings.model_copy(update={"quiet_hours": "21:00-07:00"})
    login(client, "alice")
    campaign_id = create_draft(client, release_id)
    client.cookies.clear()
    login(client, "bob")
    act(client, campaign_id, "approve")
    refused = act(client, campaign_id, "schedule", when="at", at="2099-03-02T23:30",
                  confirmed="yes")
    assert "notice-error" in refused.text and "quiet hours" in refused.text.lower()
    assert campaign_status(db, campaign_id) == "approved"


def test_subscriber_data_is_escaped_in_the_dashboard(client, db, staff):
    person = add_subscriber(db, "xss@example.org", name='<script>alert("x")</script>')
    login(client, "alice")
    for path in ("/admin/subscribers", f"/admin/subscribers/{person}"):
        page = client.get(path)
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


def test_campaign_list_counts_only_unfinished_sends(client, db, staff, release_id):
    from mailer.storage.base import utcnow

    with db.session() as session:
        sent = Campaign(release_id=release_id, query='status = "active"', subject="Old news",
                        status="sent", started_at=utcnow(), finished_at=utcnow(),
                        recipients=1000)
        session.add(sent)
    login(client, "alice")
    page = client.get("/admin/campaigns")
    assert "1000 / 1000" in page.text  # from the campaign row, no delivery rows read


def test_an_approver_cannot_approve_their_own_campaign(client, db, staff, release_id):
    add_user(db, "carol", "admin")
    login(client, "bob")
    campaign_id = create_draft(client, release_id)
    page = client.get(f"/admin/campaigns/{campaign_id}")
    assert "Someone other than bob must approve" in page.text
    assert f'action="/admin/campaigns/{campaign_id}/approve"' not in page.text
    refused = act(client, campaign_id, "approve")  # posting anyway is refused by the rule
    assert "someone else must approve" in refused.text
    assert campaign_status(db, campaign_id) == "draft"
    client.cookies.clear()
    login(client, "carol")
    assert "Approved." in act(client, campaign_id, "approve").text
