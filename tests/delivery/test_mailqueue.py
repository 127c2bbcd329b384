"""The mail queue (``outgoing_mail`` and ``mailer.delivery.mailqueue``): every queued email goes
out exactly once, also with two runners at once, after a runner crashed, and after the
provider failed; the ones it gives up on say why."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from datetime import timedelta

from sqlalchemy import select, update

from mailer.delivery import mailqueue, mailrequests
from mailer.delivery.oneoff import SystemMail
from mailer.delivery.outgoing import MailStatus as MS
from mailer.delivery.outgoing import OutgoingMail, queue_mail
from mailer.delivery.recovery import HOST
from mailer.render import personalize
from mailer.storage.base import utcnow
from mailer.storage.db import Database, make_engine
from mailer.tracking.erasure import forget
from mailer.transports.base import RecipientResult
from mailer.transports.errors import AmbiguousFailure, BadRequest, FieldError, TemporaryFailure
from mailer.transports.mock import MockTransport, fail_batches, refuse
from subscribers.service import add_subscriber, find_by_email

STOPPED = "otherhost:1:dead"  # a runner on another machine: trusted until its lease ends


def queue(db, *emails: str, topics: tuple[str, ...] = ()) -> list[int]:
    """Pending subscribers, each with a confirmation queued; returns the rows' ids."""
    with db.session() as session:
        for email in emails:
            person, _ = add_subscriber(session, email=email, status="pending",
                                       consent_source="test")
            queue_mail(session, SystemMail("confirm_subscription",
                                           "Please confirm your subscription", person.id,
                                           person.email, "Pat", {"topics": list(topics),
                                                                 "expires_hours": 168}))
    return rows(db)


def confirm_links(batch) -> dict[str, str]:
    """address -> the confirmation link in the text part of the copy that person receives."""
    found = {}
    for recipient in batch.recipients:
        text = personalize(batch.message, recipient).text
        [found[recipient.email]] = re.findall(r"https://\S+/confirm/\S+", text)
    return found


def rows(db) -> list[int]:
    with db.session() as session:
        return list(session.scalars(select(OutgoingMail.id).order_by(OutgoingMail.id)))


def row(db, mail_id: int) -> OutgoingMail:
    with db.session() as session:
        return session.get(OutgoingMail, mail_id)


def test_queued_confirmation_goes_out_once_with_a_fresh_link(db, settings):
    [mail_id] = queue(db, "ann@example.org")
    assert row(db, mail_id).status == MS.QUEUED
    assert "confirm_url" not in row(db, mail_id).context  # no signed link is stored
    transport = MockTransport()
    assert mailqueue.drain(db, settings, transport=transport) == 1
    assert mailqueue.drain(db, settings, transport=transport) == 0
    assert transport.emails() == ["ann@example.org"]
    [batch] = transport.batches
    [link] = confirm_links(batch).values()
    person = find_by_email_in(db, "ann@example.org")
    assert link.startswith(f"{settings.public_url}/confirm/")
    signer = mailqueue.make_signer(db, settings)
    assert signer.read(link.rsplit("/", 1)[1], "confirm") == person
    sent = row(db, mail_id)
    assert (sent.status, sent.attempts, sent.worker is not None) == (MS.SENT, 1, True)
    assert sent.provider_message_id.startswith("mock-") and sent.sent_at is not None


def find_by_email_in(db, email: str) -> int:
    with db.session() as session:
        return find_by_email(session, email).id


def test_a_burst_of_alike_confirmations_goes_in_few_requests_each_with_its_own_link(
        db, settings):
    # 150 alike (one request of 100, one of 50) and 2 choosing another topic (their own).
    alike = [f"p{i}@example.org" for i in range(150)]
    queue(db, *alike)
    queue(db, "farm1@example.org", "farm2@example.org", topics=("Agriculture",))
    transport = MockTransport()
    assert mailqueue.drain(db, settings, transport=transport) == 152
    sizes = sorted(len(b.recipients) for b in transport.batches)
    assert sizes == [2, 50, 100]
    assert sorted(transport.emails()) == sorted(alike + ["farm1@example.org",
                                                         "farm2@example.org"])
    signer = mailqueue.make_signer(db, settings)
    for batch in transport.batches:
        assert "/confirm/" not in batch.message.text  # rendered once: links per person
        chose_farming = "Agriculture" in batch.message.text
        for email, link in confirm_links(batch).items():
            assert chose_farming == email.startswith("farm")
            assert signer.read(link.rsplit("/", 1)[1], "confirm") == find_by_email_in(db, email)
    with db.session() as session:
        assert set(session.scalars(select(OutgoingMail.status))) == {MS.SENT}
        # A request's rows are settled alike: its message id and one hand-off time.
        settled = session.execute(select(OutgoingMail.provider_message_id,
                                         OutgoingMail.sent_at).distinct()).all()
    assert len(settled) == 3


def test_one_refused_address_in_a_request_fails_alone(db, settings):
    queue(db, "ok1@example.org", "bad@example.org", "ok2@example.org")
    transport = MockTransport(refuse({"bad@example.org": "mailbox does not exist"}))
    assert mailqueue.drain(db, settings, transport=transport) == 3
    assert len(transport.batches) == 1
    with db.session() as session:
        outcome = dict(session.execute(select(OutgoingMail.email, OutgoingMail.status)).all())
    assert outcome == {"ok1@example.org": MS.SENT, "bad@example.org": MS.FAILED,
                       "ok2@example.org": MS.SENT}
    with db.session() as session:
        [why] = session.scalars(select(OutgoingMail.last_error).where(
            OutgoingMail.status == MS.FAILED))
    assert "mailbox does not exist" in why


def test_a_request_refused_for_one_address_is_halved_until_it_stands_alone(db, settings):
    emails = [f"p{i}@example.org" for i in range(7)]
    queue(db, *emails)
    bad = "p4@example.org"

    def provider(batch):  # as SendGrid: a 400 about a personalization refuses the request
        addresses = [r.email for r in batch.recipients]
        if bad in addresses:
            raise BadRequest("invalid email", errors=[FieldError(
                "does not contain a valid address",
                f"personalizations.{addresses.index(bad)}.to.0.email")])
        return [RecipientResult(r, True, "sg-1") for r in batch.recipients]

    transport = MockTransport(provider)
    assert mailqueue.drain(db, settings, transport=transport) == 7
    assert sorted(transport.accepted()) == sorted(set(emails) - {bad})
    assert [b.recipients[0].email for b in transport.batches if len(b.recipients) == 1
            ].count(bad) == 1  # it stood alone once, and was failed then
    with db.session() as session:
        outcome = dict(session.execute(select(OutgoingMail.email, OutgoingMail.status)).all())
        [why] = session.scalars(select(OutgoingMail.last_error).where(
            OutgoingMail.status == MS.FAILED))
    assert outcome == {e: MS.FAILED if e == bad else MS.SENT for e in emails}
    assert "invalid email" in why


def test_drain_hands_its_requests_off_in_parallel(db, settings):
    # Three requests (three topic choices); each answers only once all three are in flight,
    # so one after another they would time out at the barrier and fail.
    for n, topic in enumerate(("Agriculture", "Veterans", "Health")):
        queue(db, f"a{n}@example.org", f"b{n}@example.org", topics=(topic,))
    all_in_flight = threading.Barrier(3, timeout=10)

    def provider(batch):
        all_in_flight.wait()
        return [RecipientResult(r, True, "sg-1") for r in batch.recipients]

    transport = MockTransport(provider)
    assert mailqueue.drain(db, settings, transport=transport) == 6
    assert len(transport.batches) == 3 and len(transport.accepted()) == 6


def test_a_round_claims_only_what_its_requests_in_flight_carry(db, settings):
    # Five people with five topic choices: five requests. With two in flight a round claims
    # two, so no row waits in `sending` behind another request.
    for n in range(5):
        queue(db, f"p{n}@example.org", topics=(f"Topic {n}",))
    taken: list[int] = []

    def provider(batch):
        with db.session() as session:
            taken.append(len(session.scalars(select(OutgoingMail.id).where(
                OutgoingMail.status.in_((MS.CLAIMED, MS.SENDING)))).all()))
        return [RecipientResult(r, True, "sg-1") for r in batch.recipients]

    transport, signer = MockTransport(provider), mailqueue.make_signer(db, settings)
    rounds = []
    while did := mailqueue.send_due(db, settings, signer, transport, "w1", in_flight=2):
        rounds.append(did)
    assert rounds == [2, 2, 1] and max(taken) <= 2
    assert sorted(transport.accepted()) == [f"p{n}@example.org" for n in range(5)]


def test_a_claim_for_some_requests_takes_the_oldest_requests_rows(db, settings):
    queue(db, *[f"a{n}@example.org" for n in range(150)])  # two requests: 100 and 50
    queue(db, "b@example.org", topics=("Veterans",))
    claimed = mailqueue.claim(db, "w1", 1000, 60, requests=2)
    assert sorted(m.email for m in claimed) == sorted(f"a{n}@example.org" for n in range(150))
    assert row(db, rows(db)[-1]).status == MS.QUEUED


def test_two_runners_at_once_send_each_email_once(db, settings):
    emails = [f"p{i}@example.org" for i in range(30)]
    queue(db, *emails)
    transport = MockTransport()
    other = Database(make_engine(settings.database_url))  # as a second process would
    stop = threading.Event()
    runners = [threading.Thread(target=mailqueue.run_mail_queue, args=(d, settings, stop),
                                kwargs={"transport": transport, "poll_interval": 0.01,
                                        "max_idle_polls": 3}) for d in (db, other)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=60)
    other.dispose()
    assert sorted(transport.emails()) == sorted(emails)
    with db.session() as session:
        assert set(session.scalars(select(OutgoingMail.status))) == {MS.SENT}


def test_a_claim_whose_runner_died_before_the_hand_off_is_sent_again(db, settings):
    [mail_id] = queue(db, "bo@example.org")
    [claimed] = mailqueue.claim(db, STOPPED, 10, lease_seconds=60)
    assert claimed.id == mail_id and row(db, mail_id).status == MS.CLAIMED
    transport = MockTransport()
    mailqueue.drain(db, settings, transport=transport)  # nobody else takes it meanwhile
    assert transport.emails() == [] and row(db, mail_id).worker == STOPPED
    with db.session() as session:
        session.execute(update(OutgoingMail).values(lease_until=utcnow() - timedelta(seconds=1)))
    mailqueue.drain(db, settings, transport=transport)  # the lease has ended: recovered
    assert transport.emails() == ["bo@example.org"]
    assert row(db, mail_id).status == MS.SENT


def test_a_dead_local_runner_is_recovered_without_waiting_for_its_lease(db, settings):
    [mail_id] = queue(db, "cy@example.org")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    mailqueue.claim(db, f"{HOST}:{gone}:abc", 10, lease_seconds=3600)
    transport = MockTransport()
    mailqueue.drain(db, settings, transport=transport)
    assert transport.emails() == ["cy@example.org"]


def test_a_crash_during_the_hand_off_follows_the_in_doubt_policy(db, settings):
    [mail_id] = queue(db, "di@example.org")
    with db.session() as session:  # a runner wrote "sending", then died: did it go out?
        session.execute(update(OutgoingMail).values(
            status=MS.SENDING, worker=STOPPED, attempts=1, handed_at=utcnow(),
            lease_until=utcnow() - timedelta(seconds=1)))
    transport = MockTransport()
    held = settings.model_copy(update={"in_doubt_policy": "hold", "in_doubt_grace": 0})
    mailqueue.drain(db, held, transport=transport)
    assert transport.emails() == [] and row(db, mail_id).status == MS.IN_DOUBT
    waiting = settings.model_copy(update={"in_doubt_grace": 600})
    mailqueue.drain(db, waiting, transport=transport)
    assert transport.emails() == []  # still within the grace
    resend = settings.model_copy(update={"in_doubt_policy": "resend", "in_doubt_grace": 0})
    mailqueue.drain(db, resend, transport=transport)
    assert transport.emails() == ["di@example.org"]
    assert (row(db, mail_id).status, row(db, mail_id).attempts) == (MS.SENT, 2)


def test_a_lost_answer_puts_the_email_in_doubt_not_back_in_the_queue(db, settings):
    [mail_id] = queue(db, "ed@example.org")
    transport = MockTransport(fail_batches([AmbiguousFailure("read timeout")]))
    slow = settings.model_copy(update={"in_doubt_grace": 600})
    mailqueue.drain(db, slow, transport=transport)
    mailqueue.drain(db, slow, transport=transport)
    assert transport.emails() == ["ed@example.org"]
    assert row(db, mail_id).status == MS.IN_DOUBT
    assert "no answer" in row(db, mail_id).last_error


def test_a_provider_failure_is_retried_after_a_backoff(db, settings):
    [mail_id] = queue(db, "fay@example.org")
    transport = MockTransport(fail_batches([TemporaryFailure("503 from the provider")]))
    before = utcnow()
    mailqueue.drain(db, settings, transport=transport)
    failed = row(db, mail_id)
    assert (failed.status, failed.attempts) == (MS.QUEUED, 1)
    assert failed.next_attempt_at >= before + timedelta(seconds=settings.mail_queue_backoff)
    assert "503 from the provider" in failed.last_error
    mailqueue.drain(db, settings, transport=transport)
    assert len(transport.emails()) == 1  # not due yet
    with db.session() as session:  # the backoff has passed
        session.execute(update(OutgoingMail).values(next_attempt_at=before))
    mailqueue.drain(db, settings, transport=transport)
    assert transport.emails() == ["fay@example.org"] * 2
    assert (row(db, mail_id).status, row(db, mail_id).attempts) == (MS.SENT, 2)


def test_backoff_doubles_up_to_an_hour(settings):
    waits = [mailrequests.backoff(settings, n) for n in (1, 2, 3, 30)]
    base = settings.mail_queue_backoff
    assert waits == [base, 2 * base, 4 * base, mailrequests.BACKOFF_MAX]


def test_it_gives_up_after_the_attempts_and_says_why(db, settings):
    [mail_id] = queue(db, "gus@example.org")
    always = MockTransport(fail_batches([TemporaryFailure("503")] * 10))
    two = settings.model_copy(update={"mail_queue_attempts": 2})
    for _ in range(3):
        mailqueue.drain(db, two, transport=always)
        with db.session() as session:
            session.execute(update(OutgoingMail).values(next_attempt_at=utcnow()))
    assert len(always.emails()) == 2
    given_up = row(db, mail_id)
    assert given_up.status == MS.FAILED
    assert given_up.last_error.startswith("gave up after 2 attempts: 503")


def test_a_permanent_refusal_is_not_retried(db, settings):
    [mail_id] = queue(db, "hal@example.org")
    transport = MockTransport(fail_batches([BadRequest("invalid from address")]))
    mailqueue.drain(db, settings, transport=transport)
    mailqueue.drain(db, settings, transport=transport)
    assert len(transport.emails()) == 1
    assert row(db, mail_id).status == MS.FAILED
    assert "invalid from address" in row(db, mail_id).last_error


def test_erasing_the_person_removes_their_queued_mail(db, settings):
    queue(db, "ivy@example.org")
    with db.session() as session:
        forget(session, find_by_email(session, "ivy@example.org"))
    assert rows(db) == []


def test_old_sent_and_given_up_emails_are_purged(db, settings):
    old, recent, gave_up = queue(db, "old@example.org", "new@example.org", "no@example.org")
    long_ago = utcnow() - timedelta(days=mailqueue.KEEP_DAYS + 1)
    with db.session() as session:
        session.execute(update(OutgoingMail).where(OutgoingMail.id == old)
                        .values(status=MS.SENT, sent_at=long_ago))
        session.execute(update(OutgoingMail).where(OutgoingMail.id == recent)
                        .values(status=MS.SENT, sent_at=utcnow()))
        session.execute(update(OutgoingMail).where(OutgoingMail.id == gave_up)
                        .values(status=MS.FAILED, created_at=long_ago))
    assert mailqueue.recover(db, settings).purged == 2
    assert rows(db) == [recent]


def test_a_misconfigured_transport_is_one_logged_line_and_the_runner_keeps_trying(
        db, settings, caplog):
    keyless = settings.model_copy(update={"transport": "sendgrid", "sendgrid_api_key": None})
    stop = threading.Event()
    runner = mailqueue.start_runner(db, keyless, stop, restart_after=0.01)
    deadline = time.monotonic() + 30
    while len([r for r in caplog.records if "cannot send" in r.getMessage()]) < 2:
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.01)
    stop.set()
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert "MAILER_SENDGRID_API_KEY" in caplog.text and "Traceback" not in caplog.text
