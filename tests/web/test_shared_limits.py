"""Limits every web process shares, through two apps built on one database (two workers):
the signup, signup-email and login rate limits count together; the per-account lockout grows,
caps, resets and treats unknown names alike; logging out ends a copied cookie on every app."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from mailer.scheduling.policy import format_local
from mailer.storage.db import open_database
from mailer.storage.limits import SharedLimit
from mailer.web.app import create_app
from mailer.web.lockout import AccountLockout
from mailer.web.models import LoginLockout
from tests.web.conftest import add_user, csrf_from, login, outbox_messages
from tests.web.test_public import subscribe, subscriber

ALERT = re.compile(r'role="alert">([^<]*)<')


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def second_app(settings):
    """Another web process: its own engine and app on the same database."""
    other = open_database(settings)
    yield create_app(settings, other)
    other.dispose()


def client_for(app, ip: str = "testclient") -> TestClient:
    return TestClient(app, base_url="https://testserver", client=(ip, 50000))


@pytest.fixture
def clock(app, second_app) -> Clock:
    clock = Clock()
    app.state.login_lockout.clock = clock
    second_app.state.login_lockout.clock = clock
    return clock


@pytest.fixture
def staff(db):
    add_user(db, "alice", "approver")


def alert(response) -> str:
    match = ALERT.search(response.text)
    assert match, response.text
    return match.group(1)


def test_signups_from_one_network_count_across_two_apps(app, second_app, db, topics):
    clock = Clock(1_800_000_000 + 100)  # 100 s into a 10-minute window
    for each in (app, second_app):
        each.state.subscribe_limiter.clock = clock
    clients = [client_for(app), client_for(second_app)]
    limit = app.state.subscribe_limiter.limit
    codes = [subscribe(clients[i % 2], f"p{i}@example.org").status_code for i in range(limit)]
    assert codes == [200] * limit
    refused = subscribe(clients[limit % 2], "late@example.org")
    assert refused.status_code == 429 and "Too many signups" in refused.text
    # The five hits fade in the next window; one more fits a fifth of the way into it.
    assert refused.headers["retry-after"] == str(500 + 120)
    assert subscriber(db, "late@example.org") is None
    # Another network is not held back.
    assert subscribe(client_for(second_app, "10.1.2.3"), "other@example.org").status_code == 200


def test_signup_emails_to_one_mailbox_count_across_two_apps(app, second_app, settings,
                                                            topics):
    clients = [client_for(app, "10.0.0.1"), client_for(second_app, "10.0.0.2")]
    answers = [subscribe(clients[i % 2], "victim@example.org") for i in range(4)]
    assert {a.status_code for a in answers} == {200}
    assert len(outbox_messages(settings)) == 3


def test_login_tries_from_one_network_count_across_two_apps(app, second_app, staff, clock):
    clients = [client_for(app), client_for(second_app)]
    for i in range(app.state.login_limiter.limit):
        assert login(clients[i % 2], f"guess{i}", "wrong password!").status_code == 401
    refused = login(clients[1], "alice")
    assert refused.status_code == 401 and "too many tries" in alert(refused)
    assert login(client_for(app, "10.9.9.9"), "alice").status_code == 303


def test_lockout_grows_doubling_to_its_cap_and_a_success_resets_it(app, db, staff, clock,
                                                                    settings):
    # Every try below comes from one address: lift its per-address limit out of the way.
    app.state.login_limiter = SharedLimit(db, "login", limit=1000, window=900)
    client = client_for(app)
    for _ in range(4):
        assert login(client, "alice", "wrong password!").status_code == 401
    locked = login(client, "alice", "wrong password!")
    assert locked.status_code == 429 and locked.headers["retry-after"] == "60"
    until = format_local(datetime.fromtimestamp(clock.now + 60, UTC), settings)
    assert alert(locked) == (f"Too many failed logins with this name: it is locked until "
                             f"{until}. Try again then.")
    # While locked the right password is refused too, unchecked.
    assert login(client, "alice").status_code == 429
    waits = []
    for _ in range(8):
        clock.now += int(waits[-1] if waits else 60)
        answer = login(client, "alice", "wrong password!")
        assert answer.status_code == 429
        waits.append(int(answer.headers["retry-after"]))
    assert waits == [120, 240, 480, 960, 1920, 3600, 3600, 3600]
    clock.now += 3600
    assert login(client, "alice").status_code == 303
    # The success forgot every failure: four more are four plain refusals again.
    other = client_for(app)
    assert [login(other, "alice", "nope nope!").status_code for _ in range(5)] == [401] * 4 + [429]


def test_an_unknown_name_gets_exactly_what_a_real_one_gets(app, staff, clock):
    def tries(name: str) -> list[tuple[int, str, str | None]]:
        client = client_for(app, f"10.0.0.{len(name)}")
        answers = [login(client, name, "wrong password!") for _ in range(6)]
        return [(a.status_code, alert(a).replace(name, "NAME"), a.headers.get("retry-after"))
                for a in answers]

    real, unknown = tries("alice"), tries("nobody-at-all")
    assert real == unknown
    assert [code for code, _, _ in real] == [401] * 4 + [429, 429]


def test_lockout_holds_whatever_the_address_and_the_app(app, second_app, staff, clock):
    for i in range(5):
        target = app if i % 2 else second_app
        login(client_for(target, f"10.0.{i}.1"), "alice", "wrong password!")
    assert login(client_for(app, "192.0.2.77"), "alice").status_code == 429
    assert login(client_for(second_app, "192.0.2.78"), "alice").status_code == 429
    # The name as typed: surrounding spaces and case do not make another account.
    assert login(client_for(app, "192.0.2.79"), "  ALICE ").status_code == 429


def test_failures_a_day_old_are_forgotten(app, staff, clock):
    client = client_for(app)
    for _ in range(4):
        login(client, "alice", "wrong password!")
    clock.now += 86400 + 1
    codes = [login(client_for(app, "10.3.3.3"), "alice", "wrong!!!!!").status_code
             for _ in range(5)]
    assert codes == [401] * 4 + [429]


def test_log_out_ends_a_copied_cookie_on_every_app(app, second_app, staff):
    """A session made on one worker opens the dashboard on another; after log out, a copy
    of the cookie opens it on neither."""
    client = client_for(app)
    assert login(client, "alice").status_code == 303
    copied = dict(client.cookies)
    thief = client_for(second_app)
    thief.cookies.update(copied)
    assert thief.get("/admin/campaigns", follow_redirects=False).status_code == 200
    page = client.get("/admin/campaigns")
    client.post("/admin/logout", data={"csrf_token": csrf_from(page.text)})
    for target in (app, second_app):
        replay = client_for(target)
        replay.cookies.update(copied)
        assert replay.get("/admin/campaigns", follow_redirects=False).status_code == 303


def test_forgotten_names_are_pruned_and_nonsense_policies_refused(db):
    clock = Clock()
    lockout = AccountLockout(db, clock=clock)
    for name in ("sprayed-1", "sprayed-2"):
        lockout.failed(name)
    clock.now += 86400 - 10
    lockout.failed("recent")
    clock.now += 20
    assert lockout.prune(datetime.fromtimestamp(clock.now, UTC)) == 2
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(LoginLockout)) == 1
    with pytest.raises(ValueError):
        AccountLockout(db, cap=86400, forget_after=3600)
