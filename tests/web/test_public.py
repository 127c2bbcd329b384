"""Constituent pages through the ASGI app: double opt-in, preferences, unsubscribe (page and
RFC 8058 one-click), no enumeration, honeypot, rate limit, CSRF, tokens, archive."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select

from mailer.campaigns.models import Campaign
from mailer.storage.base import utcnow
from mailer.storage.limits import RateHit
from subscribers import service
from subscribers.models import Subscriber, Suppression
from tests.web.conftest import add_subscriber, csrf_from, link_in, outbox_messages


def subscribe(client, email: str, **fields):
    page = client.get("/subscribe")
    data = {"csrf_token": csrf_from(page.text), "email": email, "frequency": "immediate",
            **fields}
    return client.post("/subscribe", data=data)


def subscriber(db, email: str) -> Subscriber | None:
    with db.session() as session:
        return service.find_by_email(session, email)


def test_subscribe_page_lists_topics_with_labels(client, topics):
    page = client.get("/subscribe")
    assert page.status_code == 200
    for slug in topics:
        assert f'<input type="checkbox" id="topic-{slug}" name="topics" value="{slug}"' in page.text
        assert f'<label for="topic-{slug}">' in page.text
    assert '<label for="email">' in page.text
    assert 'name="website"' in page.text and 'aria-hidden="true"' in page.text


def test_double_opt_in_then_welcome(client, db, settings, topics):
    response = subscribe(client, "Jane.Doe@Example.ORG", name="Jane Doe", zip="58102",
                         topics=["agriculture"], frequency="weekly")
    assert response.status_code == 200
    assert "Check your email" in response.text
    person = subscriber(db, "jane.doe@example.org")
    assert person.status == "pending" and person.frequency == "weekly"
    assert person.consent_source == "web form" and person.consent_ip

    [confirm_mail] = outbox_messages(settings)
    assert confirm_mail["To"].addresses[0].addr_spec == "jane.doe@example.org"
    confirm_url = link_in(confirm_mail, "confirm")
    assert confirm_url.startswith(settings.public_url + "/confirm/")

    page = client.get(confirm_url.removeprefix(settings.public_url))
    assert page.status_code == 200 and "You're subscribed" in page.text
    person = subscriber(db, "jane.doe@example.org")
    assert person.status == "active" and person.confirmed_at is not None
    messages = outbox_messages(settings)
    assert len(messages) == 2 and "Welcome" in messages[1]["Subject"]

    # Following the link again changes nothing and sends nothing more.
    assert client.get(confirm_url.removeprefix(settings.public_url)).status_code == 200
    assert len(outbox_messages(settings)) == 2


def _normalized(html: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', "", html)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_repeat_signups_are_indistinguishable(client, db, settings, topics):
    add_subscriber(db, "active@example.org", status="active")
    gone = add_subscriber(db, "gone@example.org", status="active")
    with db.session() as session:
        service.unsubscribe(session, session.get(Subscriber, gone), cause="test")

    answers = [subscribe(client, email) for email in (
        "new@example.org", "new@example.org", "active@example.org", "gone@example.org")]
    assert {a.status_code for a in answers} == {200}
    assert len({_normalized(a.text) for a in answers}) == 1
    assert len({a.headers.get("content-length") for a in answers}) == 1

    # Each owner gets exactly one email, its content differs (sent in any order).
    sent = sorted((m["To"], m["Subject"]) for m in outbox_messages(settings))
    assert [to for to, _ in sent] == ["active@example.org", "gone@example.org",
                                      "new@example.org", "new@example.org"]
    assert "already subscribed" in sent[0][1]
    assert all(subject == "Please confirm your subscription" for _, subject in sent[1:])
    # The unsubscribed address stays unsubscribed until its owner confirms.
    assert subscriber(db, "gone@example.org").status == "unsubscribed"


def test_unsubscribed_person_can_come_back_by_confirming(client, db, settings, topics):
    person_id = add_subscriber(db, "back@example.org")
    with db.session() as session:
        service.unsubscribe(session, session.get(Subscriber, person_id), cause="test")
    subscribe(client, "back@example.org")
    url = link_in(outbox_messages(settings)[-1], "confirm")
    client.get(url.removeprefix(settings.public_url))
    assert subscriber(db, "back@example.org").status == "active"
    with db.session() as session:
        assert session.scalar(select(Suppression.id)) is None


def test_honeypot_gets_the_same_page_and_nothing_happens(client, db, settings, topics):
    response = subscribe(client, "bot@example.org", website="http://spam.example")
    assert response.status_code == 200 and "Check your email" in response.text
    assert subscriber(db, "bot@example.org") is None
    assert outbox_messages(settings) == []


def test_one_mailbox_gets_at_most_three_signup_emails_an_hour(client, db, settings, topics):
    answers = [subscribe(client, "victim@example.org") for _ in range(4)]
    assert len({_normalized(a.text) for a in answers}) == 1
    assert len(outbox_messages(settings)) == 3
    assert subscriber(db, "victim@example.org").confirm_sent_at is not None


def test_per_ip_rate_limit_on_subscribe(client, app, db, topics):
    limit = app.state.subscribe_limiter.limit
    codes = [subscribe(client, f"p{i}@example.org").status_code for i in range(limit + 1)]
    assert codes[:limit] == [200] * limit
    assert codes[limit] == 429
    assert subscriber(db, f"p{limit}@example.org") is None


def test_subscribe_without_csrf_token_is_refused(client, db, topics):
    client.get("/subscribe")
    response = client.post("/subscribe", data={"email": "x@example.org",
                                               "csrf_token": "forged"})
    assert response.status_code == 403
    assert subscriber(db, "x@example.org") is None


def test_invalid_email_is_shown_next_to_the_field(client, topics):
    response = subscribe(client, "not an address")
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text and "email-error" in response.text


def test_preferences_change_topics_and_frequency(client, app, db, topics):
    person_id = add_subscriber(db, "pref@example.org", topics=["agriculture"])
    token = app.state.signer.make(person_id, "preferences")
    page = client.get(f"/preferences/{token}")
    assert page.status_code == 200 and "pref@example.org" in page.text
    assert 'value="agriculture" aria-describedby="topics-hint" checked' in page.text
    response = client.post(f"/preferences/{token}", data={
        "csrf_token": csrf_from(page.text), "topics": ["human-trafficking"],
        "frequency": "daily", "name": "Pat", "zip": "58501", "action": "save"})
    assert response.status_code == 200 and "Your choices are saved" in response.text
    with db.session() as session:
        person = session.get(Subscriber, person_id)
        assert service.topic_slugs(session, person) == ["human-trafficking"]
        assert (person.frequency, person.name, person.zip) == ("daily", "Pat", "58501")


def test_preferences_post_needs_csrf(client, app, db, topics):
    person_id = add_subscriber(db, "pref2@example.org")
    token = app.state.signer.make(person_id, "preferences")
    response = client.post(f"/preferences/{token}", data={"frequency": "weekly"})
    assert response.status_code == 403
    assert subscriber(db, "pref2@example.org").frequency == "immediate"


def test_one_click_unsubscribe_without_cookies(app, db, settings):
    from fastapi.testclient import TestClient

    person_id = add_subscriber(db, "leave@example.org")
    token = app.state.signer.make(person_id, "unsubscribe")
    # A mail provider: no cookies, no CSRF token, just the RFC 8058 body.
    with TestClient(app, base_url="https://testserver") as provider:
        response = provider.post(f"/unsubscribe/{token}",
                                 content=b"List-Unsubscribe=One-Click",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200
        again = provider.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert again.status_code == 200
    person = subscriber(db, "leave@example.org")
    assert person.status == "unsubscribed"
    with db.session() as session:
        assert service.is_suppressed(session, "leave@example.org")
        causes = [c.cause for c in service.status_history(session, person)]
    assert causes[-1] == "one-click unsubscribe (RFC 8058)"


def test_unsubscribe_page_has_a_button_and_get_changes_nothing(client, app, db):
    person_id = add_subscriber(db, "page@example.org")
    token = app.state.signer.make(person_id, "unsubscribe")
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "<button" in page.text
    assert "page@example.org" not in page.text  # masked: p•••@example.org
    assert subscriber(db, "page@example.org").status == "active"

    assert client.post(f"/unsubscribe/{token}", data={}).status_code == 403
    assert subscriber(db, "page@example.org").status == "active"
    done = client.post(f"/unsubscribe/{token}", data={"csrf_token": csrf_from(page.text)})
    assert done.status_code == 200 and "unsubscribed" in done.text
    assert subscriber(db, "page@example.org").status == "unsubscribed"

    again = client.get(f"/unsubscribe/{token}")  # the same link, opened once more
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert "<button" not in again.text


@pytest.mark.parametrize("path", ["/confirm/{t}", "/preferences/{t}", "/unsubscribe/{t}"])
def test_forged_altered_and_misused_tokens_are_refused(client, app, db, path):
    person_id = add_subscriber(db, "victim@example.org", status="pending")
    other = add_subscriber(db, "other@example.org")
    purpose = path.split("/")[1]
    good = app.state.signer.make(person_id, purpose)
    payload, stamp, sig = good.split(".")
    altered = f"{other}.{stamp}.{sig}"                       # someone else's id, same MAC
    flipped = f"{payload}.{stamp}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
    wrong_purpose = app.state.signer.make(person_id, "view")
    for token in (altered, flipped, wrong_purpose, "1.abc.def", "garbage"):
        response = client.get(path.format(t=token))
        assert response.status_code == 400, token
        assert "victim@example.org" not in response.text
        assert "Traceback" not in response.text and "Signature" not in response.text
    assert client.post("/unsubscribe/" + altered,
                       data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert subscriber(db, "victim@example.org").status == "pending"
    assert subscriber(db, "other@example.org").status == "active"


def test_confirm_link_expires(client, app, db, monkeypatch):
    import mailer.tokens

    person_id = add_subscriber(db, "late@example.org", status="pending")
    eight_days_ago = time.time() - 8 * 24 * 3600
    monkeypatch.setattr(mailer.tokens.time, "time", lambda: eight_days_ago)
    token = app.state.signer.make(person_id, "confirm")
    monkeypatch.undo()
    response = client.get(f"/confirm/{token}")
    assert response.status_code == 400 and "expired" in response.text
    assert subscriber(db, "late@example.org").status == "pending"


def test_security_headers_and_no_inline_script(client, topics):
    page = client.get("/subscribe")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert page.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" in page.headers  # the public URL is https
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
    assert " style=" not in page.text


def test_session_cookie_is_secure_httponly_lax(client, topics):
    page = client.get("/subscribe")
    cookie = page.headers["set-cookie"].lower()
    assert "mailer_session=" in cookie
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def _sent_campaign(db, release_id: int, subject: str, status: str = "sent") -> int:
    with db.session() as session:
        campaign = Campaign(release_id=release_id, query='status = "active"', subject=subject,
                            status=status, started_at=utcnow() if status != "draft" else None,
                            finished_at=utcnow() if status == "sent" else None)
        session.add(campaign)
        session.flush()
        return campaign.id


def test_archive_lists_only_sent_newsletters_and_serves_them(client, db, release_id):
    sent = _sent_campaign(db, release_id, "Trafficking bill passes <Senate>")
    draft = _sent_campaign(db, release_id, "Unreleased draft", status="draft")
    page = client.get("/archive")
    assert page.status_code == 200
    assert f'href="/archive/{sent}"' in page.text
    assert "Trafficking bill passes &lt;Senate&gt;" in page.text
    assert "Unreleased draft" not in page.text

    web = client.get(f"/archive/{sent}")
    assert web.status_code == 200
    assert "Heitkamp Bill to Combat Human Trafficking" in web.text
    assert "script-src" not in web.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in web.headers["content-security-policy"]
    assert client.get(f"/archive/{draft}").status_code == 404
    assert client.get("/archive/999999").status_code == 404


def test_archive_rss(client, db, settings, release_id):
    sent = _sent_campaign(db, release_id, "Bill passes & more")
    response = client.get("/archive.rss")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/rss+xml")
    channel = ET.fromstring(response.content).find("channel")
    [item] = channel.findall("item")
    assert item.findtext("title") == "Bill passes & more"
    assert item.findtext("link") == f"{settings.public_url}/archive/{sent}"
    assert item.findtext("description").startswith("Bipartisan bill")
    assert item.findtext("pubDate")


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and "Not found" in response.text


def test_office_branding_from_settings(settings, db, topics):
    from fastapi.testclient import TestClient

    from mailer.web.app import create_app

    branded = settings.model_copy(update={"office_name": "Office of Senator Jane Roe",
                                          "logo_url": "https://senator.example.gov/seal.png"})
    with TestClient(create_app(branded, db), base_url="https://testserver") as client:
        page = client.get("/subscribe")
    assert "<title>Subscribe · Office of Senator Jane Roe</title>" in page.text
    assert '<img src="https://senator.example.gov/seal.png" alt=""' in page.text


def test_pause_takes_someone_out_of_every_audience_until_it_ends(client, app, db, topics):
    from datetime import timedelta

    from subscribers import segments

    person_id = add_subscriber(db, "rest@example.org", topics=["agriculture"])
    token = app.state.signer.make(person_id, "preferences")

    def audience() -> int:
        with db.session() as session:
            return segments.count(session, query='topic = "agriculture"')

    assert audience() == 1
    page = client.get(f"/preferences/{token}")
    saved = client.post(f"/preferences/{token}", data={
        "csrf_token": csrf_from(page.text), "topics": ["agriculture"],
        "frequency": "immediate", "pause": "30"})
    assert "Your emails are paused until" in saved.text
    assert audience() == 0
    with db.session() as session:
        person = session.get(Subscriber, person_id)
        assert person.status == "active"
        assert timedelta(days=29) < person.paused_until - utcnow() <= timedelta(days=30)
        person.paused_until = utcnow() - timedelta(seconds=1)  # the pause has run out
    assert audience() == 1

    with db.session() as session:
        session.get(Subscriber, person_id).paused_until = utcnow() + timedelta(days=5)
    page = client.get(f"/preferences/{token}")
    assert '<option value="resume">' in page.text
    client.post(f"/preferences/{token}", data={
        "csrf_token": csrf_from(page.text), "topics": ["agriculture"],
        "frequency": "immediate", "pause": "resume"})
    assert audience() == 1
    with db.session() as session:
        assert session.get(Subscriber, person_id).paused_until is None


def test_bad_zip_on_the_preference_page_is_explained_and_nothing_saved(client, app, db):
    person_id = add_subscriber(db, "zip@example.org")
    token = app.state.signer.make(person_id, "preferences")
    page = client.get(f"/preferences/{token}")
    answer = client.post(f"/preferences/{token}", data={
        "csrf_token": csrf_from(page.text), "zip": "ABCDE", "frequency": "weekly"})
    assert answer.status_code == 200 and "Not saved" in answer.text and "ZIP" in answer.text
    assert subscriber(db, "zip@example.org").frequency == "immediate"


def test_a_signup_racing_another_for_the_same_address_is_retried(client, db, topics,
                                                                 monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from mailer.web import constituents

    real, calls = constituents.subscribe, []

    def racing(session, signup, **kwargs):
        calls.append(signup.email)
        if len(calls) == 1:  # the other request inserted the address first
            raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
        return real(session, signup, **kwargs)

    monkeypatch.setattr(constituents, "subscribe", racing)
    answer = subscribe(client, "race@example.org")
    assert answer.status_code == 200 and "Check your email" in answer.text
    assert calls == ["race@example.org", "race@example.org"]
    assert subscriber(db, "race@example.org").status == "pending"
    # The failed attempt's rate-limit hits went back with its transaction: counted once.
    with db.session() as session:
        hits = dict(session.execute(select(RateHit.bucket, func.sum(RateHit.hits))
                                    .group_by(RateHit.bucket)).all())
    assert hits == {"subscribe": 1, "signup-email": 1}


def test_web_view_follows_the_send_not_the_archive_list(client, db, release_id):
    sending = _sent_campaign(db, release_id, "Going out now", status="sending")
    cancelled = _sent_campaign(db, release_id, "Called off", status="cancelled")
    assert client.get(f"/archive/{sending}").status_code == 200  # "view in browser" works
    assert "Going out now" not in client.get("/archive").text    # listed once sent
    assert client.get(f"/archive/{cancelled}").status_code == 404
