"""Web fixtures: an app on the test database, a TestClient over https (the test settings'
public URL is https, so session cookies are Secure), helpers for forms and the outbox."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mailer.cli import context as cli_context
from mailer.delivery.mailqueue import drain
from mailer.web.app import create_app
from subscribers.models import Topic

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch):
    """Argon2 with its smallest cost: the same code path, milliseconds instead of a second."""
    from argon2 import PasswordHasher

    from mailer.web import auth

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(auth, "_hasher", cheap)
    dummy = cheap.hash("not a real password")
    monkeypatch.setattr(auth, "_dummy_hash", lambda: dummy)


@pytest.fixture
def app(settings, db):
    """The app without a queue runner: ``outbox_messages`` sends the queued mail, so what a
    test reads does not depend on a thread's timing."""
    return create_app(settings.model_copy(update={"web_sends_mail": False}), db)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="https://testserver") as client:
        yield client


@pytest.fixture
def topics(db):
    with db.session() as session:
        session.add_all([
            Topic(slug="human-trafficking", name="Human Trafficking", description=""),
            Topic(slug="agriculture", name="Agriculture", description=""),
        ])
    return ["human-trafficking", "agriculture"]


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def outbox_messages(settings) -> list[email.message.EmailMessage]:
    """The outbox's messages, oldest first, once the mail queue has sent what is due (the
    test apps run no queue runner of their own: their lifespan is off, or
    MAILER_WEB_SENDS_MAIL is false)."""
    drain(cli_context.database(), settings)
    folder = Path(settings.outbox_dir)
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]


def body_text(message) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def link_in(message, path: str) -> str:
    """The first absolute link to ``/path/…`` in the message's text part."""
    match = re.search(r"https?://[^\s<>\"]+/" + path + r"/[A-Za-z0-9_.\-]+", body_text(message))
    assert match, f"no /{path}/ link in:\n{body_text(message)}"
    return match.group(0)


@pytest.fixture
def release_id(db) -> int:
    """A release shaped like the seed (headline, subtitle, dateline, quote, contact)."""
    from datetime import date

    from mailer.ingest.models import Release

    with db.session() as session:
        release = Release(
            title="Heitkamp Bill to Combat Human Trafficking Passes Senate",
            subtitle="Bipartisan bill would help victims of sex trafficking",
            date=date(2014, 5, 9), dateline="FARGO, N.D.",
            body="FARGO, N.D. – The Senate passed the bill today.\n\n"
                 "“No child should be sold,” Heitkamp said.\n\n###",
            contact="Press Office, 202-224-2043", source="seed", content_hash="seed-hash",
        )
        session.add(release)
        session.flush()
        return release.id


def add_user(db, name: str, role: str, password: str = "correct horse battery") -> None:
    from mailer.web.auth import create_user

    with db.session() as session:
        create_user(session, name, role, password)


def login(client, name: str, password: str = "correct horse battery"):
    page = client.get("/admin/login")
    return client.post("/admin/login", data={
        "csrf_token": csrf_from(page.text), "name": name, "password": password,
        "next": "/admin/campaigns"}, follow_redirects=False)


def add_subscriber(db, email: str, *, status: str = "active", topics=(), name=None) -> int:
    from subscribers.service import add_subscriber as add

    with db.session() as session:
        subscriber, _ = add(session, email=email, name=name, topics=list(topics),
                            status=status, consent_source="test")
        return subscriber.id
