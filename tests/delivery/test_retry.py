"""Retrying a sent campaign's failed recipients (``actions.retry``): exactly the rows that
failed for a reason worth another try, through the usual claims, once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from mailer.campaigns import actions
from mailer.campaigns.models import CampaignLog
from mailer.campaigns.models import CampaignStatus as CS
from mailer.campaigns.service import get_campaign
from mailer.delivery.engine import send_campaign
from mailer.delivery.records import DeliveryStatus as DS
from mailer.delivery.retry import is_retryable
from mailer.delivery.worker import run_worker
from mailer.errors import InvalidInput, InvalidTransition, MailerError
from mailer.transports.mock import MockTransport, refuse
from subscribers.models import BOUNCED, UNSUBSCRIBED
from subscribers.service import suppress
from tests.delivery.test_engine_mock import one_at_a_time, rows
from tests.support.campaigns import add_subscribers, approved_campaign, set_subscriber_status

#: person0..person11: 0-2 refused for a temporary reason, 3 and 4 permanently, 5 for a reason
#: not known to be permanent; 6 and 7 refused temporarily but unsubscribed / bounced since, 8
#: suppressed since. Everyone else accepted.
REFUSALS = {
    "person0@example.org": "refused (450): mailbox busy, try later",
    "person1@example.org": "refused (451): local error",
    "person2@example.org": "refused (452): insufficient storage",
    "person3@example.org": "refused (550): no such user",
    "person4@example.org": "refused by the provider: Invalid email (personalizations.0.to.0)",
    "person5@example.org": "mailbox unavailable",
    "person6@example.org": "refused (450): busy",
    "person7@example.org": "refused (450): busy",
    "person8@example.org": "refused (450): busy",
}
RETRIED = [f"person{n}@example.org" for n in (0, 1, 2, 5)]


@pytest.fixture
def sent(db, settings):
    """A campaign sent to 12 people, 9 refused; then some can no longer be mailed."""
    add_subscribers(db, 12)
    campaign_id = approved_campaign(db)
    summary = send_campaign(db, one_at_a_time(settings), campaign_id,
                            transport=MockTransport(refuse(REFUSALS)))
    assert summary.status == CS.SENT and summary.failed == 9
    set_subscriber_status(db, "person6@example.org", UNSUBSCRIBED)
    set_subscriber_status(db, "person7@example.org", BOUNCED)
    with db.session() as session:
        suppress(session, "person8@example.org", "bounce")
    return campaign_id


def retry(db, settings, campaign_id: int, by: str = "bob") -> int:
    with db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        return actions.retry(session, campaign, by=by, settings=settings)


def test_only_failed_rows_worth_a_try_are_sent_again_once(db, settings, sent):
    before = {r.email: r for r in rows(db, sent)}
    with db.session() as session:
        assert actions.retryable(session, get_campaign(session, sent)) == 4
    assert retry(db, settings, sent) == 4
    with db.session() as session:
        campaign = get_campaign(session, sent)
        assert campaign.status == CS.SENDING
        assert actions.retryable(session, campaign) == 0  # not while it is sending
    transport = MockTransport()
    summary = send_campaign(db, one_at_a_time(settings), sent, transport=transport)
    assert summary.status == CS.SENT
    assert sorted(transport.emails()) == sorted(RETRIED)  # each exactly once
    after = {r.email: r for r in rows(db, sent)}
    for email in RETRIED:
        assert after[email].status == DS.ACCEPTED and after[email].attempts == 2
    for email, row in before.items():
        if email in RETRIED:
            continue
        # Accepted rows were not touched; the others kept their failure, or were skipped.
        assert after[email].attempts == row.attempts == 1
        assert after[email].provider_message_id == row.provider_message_id
        assert after[email].status == row.status
    with db.session() as session:
        log = list(session.scalars(select(CampaignLog.reason)
                                   .where(CampaignLog.campaign_id == sent)))
    assert "retrying 4 recipients whose delivery failed" in log


def test_a_retried_row_that_fails_again_can_be_retried_again(db, settings, sent):
    retry(db, settings, sent)
    send_campaign(db, one_at_a_time(settings), sent,
                  transport=MockTransport(refuse({"person0@example.org": "refused (421): busy"})))
    assert retry(db, settings, sent) == 1
    transport = MockTransport()
    send_campaign(db, one_at_a_time(settings), sent, transport=transport)
    assert transport.emails() == ["person0@example.org"]
    assert {r.email: r.attempts for r in rows(db, sent)}["person0@example.org"] == 3


def test_two_retries_at_once_queue_the_rows_once(db, settings, sent):
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def attempt():
        barrier.wait()
        try:
            outcomes.append(retry(db, settings, sent))
        except MailerError as exc:
            outcomes.append(type(exc))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 2 and outcomes.count(4) == 1
    assert set(outcomes) - {4} <= {InvalidInput, InvalidTransition}
    transport = MockTransport()
    send_campaign(db, one_at_a_time(settings), sent, transport=transport)
    assert sorted(transport.emails()) == sorted(RETRIED)


def test_refusals_change_nothing(db, settings, sent):
    retry(db, settings, sent)
    with pytest.raises(InvalidTransition, match="is sending; only a sent campaign"):
        retry(db, settings, sent)
    send_campaign(db, one_at_a_time(settings), sent, transport=MockTransport())
    with pytest.raises(InvalidInput, match="no failed recipients to retry"):
        retry(db, settings, sent)
    with db.session() as session:
        assert get_campaign(session, sent).status == CS.SENT


def test_a_campaign_not_yet_sent_is_refused(db, settings):
    campaign_id = approved_campaign(db)
    with pytest.raises(InvalidTransition, match="is approved"):
        retry(db, settings, campaign_id)


@pytest.mark.parametrize("error, worth_it", [
    ("refused (450): busy", True), ("mailbox unavailable", True), (None, True),
    ("refused (550): no such user", False), ("cannot build: bad header", False),
    ("refused by the provider: Invalid email", False),
])
def test_which_errors_are_worth_another_try(error, worth_it):
    assert is_retryable(error) is worth_it


def test_a_worker_sends_the_retried_rows_and_finishes_the_campaign(db, settings, sent):
    retry(db, settings, sent)
    transport = MockTransport()
    accepted = run_worker(db, one_at_a_time(settings), threading.Event(),
                          transport=transport, poll_interval=0.01, max_idle_polls=3)
    assert accepted == 4 and sorted(transport.emails()) == sorted(RETRIED)
    with db.session() as session:
        assert get_campaign(session, sent).status == CS.SENT
