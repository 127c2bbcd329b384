"""Signups never wait on the provider: the page answers while the provider is stuck, the
confirmation is queued in the signup's transaction and sent by the app's own queue runner
(``mailer serve`` runs one) exactly once; with MAILER_WEB_SENDS_MAIL=false nothing is sent
from the web process."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from mailer.delivery.outgoing import MailStatus as MS
from mailer.delivery.outgoing import OutgoingMail
from mailer.transports.mock import MockTransport, accept_all
from mailer.web.app import create_app
from tests.web.conftest import csrf_from, outbox_messages

WAIT = 30  # seconds: only ever reached when the code under test is broken


class Stuck:
    """A provider whose every send blocks until ``release`` is set."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, batch):
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the provider"
        return accept_all(batch)


def wait_until(condition) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the queue runner did not send in time"
        time.sleep(0.02)


def signup(client, email: str):
    page = client.get("/subscribe")
    return client.post("/subscribe", data={"csrf_token": csrf_from(page.text), "email": email,
                                           "frequency": "immediate"})


def statuses(db) -> dict[str, str]:
    with db.session() as session:
        return dict(session.execute(select(OutgoingMail.email, OutgoingMail.status)).all())


def test_signup_answers_while_the_provider_is_stuck_and_the_email_goes_once(settings, db,
                                                                             topics):
    stuck = Stuck()
    transport = MockTransport(stuck)
    app = create_app(settings, db, mail_transport=transport)  # MAILER_WEB_SENDS_MAIL default
    with TestClient(app, base_url="https://testserver") as client:
        first = signup(client, "ann@example.org")
        assert first.status_code == 200
        assert stuck.entered.wait(WAIT)  # the runner is inside the provider, blocked
        second = signup(client, "bo@example.org")  # answered while the provider is stuck
        assert second.status_code == 200 and "Check your email" in second.text
        assert statuses(db) == {"ann@example.org": MS.SENDING, "bo@example.org": MS.QUEUED}
        stuck.release.set()
        wait_until(lambda: set(statuses(db).values()) == {MS.SENT})
    assert sorted(transport.emails()) == ["ann@example.org", "bo@example.org"]
    assert outbox_messages(settings) == []  # the injected transport sent it, not the outbox


def test_a_signup_queues_its_confirmation_in_its_own_transaction(client, db, topics,
                                                                 settings):
    assert signup(client, "cy@example.org").status_code == 200
    with db.session() as session:
        [mail] = session.scalars(select(OutgoingMail)).all()
    assert (mail.email, mail.template, mail.status) == ("cy@example.org",
                                                        "confirm_subscription", MS.QUEUED)
    [message] = outbox_messages(settings)  # the queue runs: sent once
    assert message["To"].addresses[0].addr_spec == "cy@example.org"
    assert len(outbox_messages(settings)) == 1


def test_with_web_sends_mail_false_the_web_process_sends_nothing(settings, db, topics):
    transport = MockTransport()
    quiet = settings.model_copy(update={"web_sends_mail": False})
    with TestClient(create_app(quiet, db, mail_transport=transport),
                    base_url="https://testserver") as client:
        assert signup(client, "dee@example.org").status_code == 200
    assert transport.emails() == []
    assert statuses(db) == {"dee@example.org": MS.QUEUED}  # left for `mailer worker`
