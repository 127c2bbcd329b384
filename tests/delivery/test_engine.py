"""The engine against the SendGrid stand-in, on SQLite and PostgreSQL."""

import collections
import os

import pytest
from sqlalchemy import func, insert, select

from mailer.campaigns.lifecycle import transition
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as CS
from mailer.delivery import claims
from mailer.delivery.engine import send_campaign, start_campaign, status_counts
from mailer.delivery.records import Delivery
from mailer.delivery.records import DeliveryStatus as DS
from mailer.errors import InvalidTransition
from mailer.storage.base import utcnow
from subscribers.addresses import email_hash
from subscribers.models import ACTIVE, UNSUBSCRIBED, Subscriber, Suppression
from tests.support.campaigns import add_subscribers, approved_campaign, set_subscriber_status


def rows(db, campaign_id):
    with db.session() as session:
        return session.execute(
            select(Delivery.id, Delivery.email, Delivery.status, Delivery.provider_message_id,
                   Delivery.last_error, Delivery.attempts)
            .where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)).all()


def campaign_of(db, campaign_id):
    with db.session() as session:
        return session.get(Campaign, campaign_id)


def assert_exactly_once(standin, db, campaign_id, expected):
    counts = standin.delivery_counts()
    assert max(counts.values()) == 1, "someone was sent twice"
    accepted = {str(r.id) for r in rows(db, campaign_id) if r.status == DS.ACCEPTED}
    assert set(counts) == accepted
    assert len(accepted) == expected


def test_sends_every_recipient_once_and_finishes(db, sg_settings, standin):
    add_subscribers(db, 95)
    campaign_id = approved_campaign(db)
    summary = send_campaign(db, sg_settings, campaign_id)
    assert summary.status == CS.SENT and summary.accepted == 95 and summary.pending == 0
    assert_exactly_once(standin, db, campaign_id, 95)
    assert standin.snapshot()["requests"] == 10  # batches of 10
    got = rows(db, campaign_id)
    assert all(r.provider_message_id for r in got) and {r.attempts for r in got} == {1}
    assert {a.custom_args["campaign_id"] for a in standin.accepted} == {str(campaign_id)}
    with db.session() as session:
        counts = status_counts(session, campaign_id)
    assert counts["recipients"] == counts["accepted"] == 95 and counts["pending"] == 0


def test_audience_is_drawn_once_and_only_from_active_unsuppressed(db, sg_settings):
    add_subscribers(db, 12)
    set_subscriber_status(db, "person3@example.org", UNSUBSCRIBED)
    with db.session() as session:
        session.execute(insert(Suppression).values(
            email_hash=email_hash("person4@example.org"), reason="bounced"))
    campaign_id = approved_campaign(db)
    assert start_campaign(db, sg_settings, campaign_id) == 10
    add_subscribers(db, 5, start=100)  # joins after the start: not in this send
    assert start_campaign(db, sg_settings, campaign_id) == 10
    emails = {r.email for r in rows(db, campaign_id)}
    assert "person3@example.org" not in emails and "person4@example.org" not in emails
    assert campaign_of(db, campaign_id).status == CS.SENDING


def test_refuses_a_campaign_that_is_not_approved(db, sg_settings):
    add_subscribers(db, 2)
    campaign_id = approved_campaign(db)
    with db.session() as session:
        transition(session, session.get(Campaign, campaign_id), CS.DRAFT)
    with pytest.raises(InvalidTransition, match="draft"):
        send_campaign(db, sg_settings, campaign_id)
    assert rows(db, campaign_id) == []


def test_bad_addresses_are_isolated_and_fail_alone(db, sg_settings, standin):
    add_subscribers(db, 30)
    now = utcnow()
    with db.session() as session:  # addresses SendGrid refuses, stored before validation
        session.execute(insert(Subscriber), [
            {"email": e, "status": ACTIVE, "created_at": now,
             "updated_at": now} for e in ("bad one@example.org", "worse@@example.org")])
    campaign_id = approved_campaign(db)
    summary = send_campaign(db, sg_settings, campaign_id)
    assert summary.status == CS.SENT and summary.failed == 2 and summary.accepted == 30
    failed = [r for r in rows(db, campaign_id) if r.status == DS.FAILED]
    assert {r.email for r in failed} == {"bad one@example.org", "worse@@example.org"}
    assert all("Does not contain a valid address" in r.last_error for r in failed)
    assert_exactly_once(standin, db, campaign_id, 30)


def test_a_refused_api_key_pauses_at_once(db, sg_settings, standin):
    add_subscribers(db, 50)
    campaign_id = approved_campaign(db)
    settings = sg_settings.model_copy(update={"sendgrid_host": standin.url})
    standin.api_key = "SG.rotated"
    summary = send_campaign(db, settings, campaign_id)
    campaign = campaign_of(db, campaign_id)
    assert campaign.status == CS.PAUSED and "API key" in campaign.status_reason
    assert standin.snapshot()["requests"] <= settings.concurrency + 1  # no retrying a 401
    assert {r.status for r in rows(db, campaign_id)} == {DS.PENDING}
    assert summary.accepted == 0


def test_429_waits_for_the_reset_and_every_recipient_goes_once(db, sg_settings, standin):
    add_subscribers(db, 30)
    campaign_id = approved_campaign(db)
    standin.inject("429", 2, reset_in=0.5)
    summary = send_campaign(db, sg_settings, campaign_id)
    assert summary.status == CS.SENT
    assert standin.snapshot()["statuses"]["429"] == 2
    assert_exactly_once(standin, db, campaign_id, 30)


def test_server_errors_are_retried(db, sg_settings, standin):
    add_subscribers(db, 30)
    campaign_id = approved_campaign(db)
    standin.inject("500", 2)
    standin.inject("503", 1)
    assert send_campaign(db, sg_settings, campaign_id).status == CS.SENT
    assert_exactly_once(standin, db, campaign_id, 30)
    retried = [r for r in rows(db, campaign_id) if r.attempts > 1]
    assert retried == []  # a retry inside one claim is one attempt of the row


def test_persistent_server_errors_pause_with_the_reason(db, sg_settings, standin):
    add_subscribers(db, 30)
    campaign_id = approved_campaign(db)
    standin.inject("503", 1000)
    summary = send_campaign(db, sg_settings, campaign_id)
    campaign = campaign_of(db, campaign_id)
    assert campaign.status == CS.PAUSED and "503" in campaign.status_reason
    assert summary.accepted == 0
    assert {r.status for r in rows(db, campaign_id)} == {DS.PENDING}  # nothing stuck


def test_a_lost_answer_makes_rows_in_doubt_and_they_are_resent_after_grace(
        db, sg_settings, standin):
    add_subscribers(db, 30)
    campaign_id = approved_campaign(db)
    standin.inject("reset", 1)
    summary = send_campaign(db, sg_settings, campaign_id)
    assert summary.status == CS.SENT
    assert_exactly_once(standin, db, campaign_id, 30)
    resent = [r for r in rows(db, campaign_id) if r.attempts == 2]
    assert len(resent) == 10  # the batch whose answer was lost, once more after the grace


def test_in_doubt_rows_with_provider_evidence_are_not_resent(db, sg_settings, standin):
    """A sender died after SendGrid accepted a batch: the processed events settle it."""
    from mailer.tracking.ingest import ingest_events
    from mailer.transports import get_transport
    from mailer.transports.base import Batch, CompiledMessage, Recipient

    add_subscribers(db, 25)
    campaign_id = approved_campaign(db)
    start_campaign(db, sg_settings, campaign_id)
    with db.session() as session:
        claim = claims.claim_batch(session, campaign_id, size=10,
                                   worker="elsewhere:1:dead", lease_seconds=-1)
    message = CompiledMessage(subject="s", html="<p>h</p>", text="t", from_email="a@b.gov",
                              from_name="A", campaign_id=campaign_id)
    get_transport(sg_settings).send(Batch(message, [
        Recipient(email=e, delivery_id=i) for i, e, _s, _n in claim.rows]))
    # ... and died before recording. SendGrid's processed events arrive:
    with db.session() as session:
        ingest_events(session, standin.processed_events(standin.accepted), sg_settings)
    settings = sg_settings.model_copy(update={"in_doubt_grace": 3600})
    assert send_campaign(db, settings, campaign_id).status == CS.SENT
    assert_exactly_once(standin, db, campaign_id, 25)


def test_hold_policy_pauses_and_resend_in_doubt_finishes(db, sg_settings, standin, cli):
    add_subscribers(db, 20)  # two full batches: the reset hits 10
    campaign_id = approved_campaign(db)
    settings = sg_settings.model_copy(update={"in_doubt_policy": "hold"})
    standin.inject("reset", 1)
    summary = send_campaign(db, settings, campaign_id)
    assert summary.status == CS.PAUSED and summary.in_doubt == 10
    assert "MAILER_IN_DOUBT_POLICY=hold" in campaign_of(db, campaign_id).status_reason
    with db.session() as session:
        transition(session, session.get(Campaign, campaign_id), CS.SENDING)
        from mailer.delivery.recovery import requeue_held
        assert requeue_held(session, campaign_id) == 10
    assert send_campaign(db, settings, campaign_id).status == CS.SENT
    assert_exactly_once(standin, db, campaign_id, 20)


def test_status_counts_follow_the_rows(db, sg_settings, standin):
    add_subscribers(db, 12)
    campaign_id = approved_campaign(db)
    start_campaign(db, sg_settings, campaign_id)
    with db.session() as session:
        counts = status_counts(session, campaign_id)
        total = session.scalar(select(func.count()).select_from(Delivery))
    assert counts["pending"] == counts["recipients"] == total == 12
    assert collections.Counter(r.status for r in rows(db, campaign_id)) == {DS.PENDING: 12}


def test_too_many_consecutive_errors_pause_before_retries_run_out(db, sg_settings, standin):
    add_subscribers(db, 40)
    campaign_id = approved_campaign(db)
    settings = sg_settings.model_copy(update={"retry_attempts": 50,
                                              "max_consecutive_errors": 4})
    standin.inject("500", 1000)
    summary = send_campaign(db, settings, campaign_id)
    campaign = campaign_of(db, campaign_id)
    assert summary.status == CS.PAUSED
    assert "consecutive failed requests" in campaign.status_reason
    assert standin.snapshot()["requests"] < 4 + settings.concurrency * 2  # not 50 per batch
    assert {r.status for r in rows(db, campaign_id)} == {DS.PENDING}


def test_a_message_too_large_for_the_provider_pauses_the_campaign(db, sg_settings, standin,
                                                                   monkeypatch):
    from mailer.delivery import pipeline

    add_subscribers(db, 2)
    campaign_id = approved_campaign(db)
    real = pipeline.compiled_message

    def huge(session, campaign, settings):
        from dataclasses import replace
        return replace(real(session, campaign, settings), html="x" * (21 * 1024 * 1024))

    monkeypatch.setattr(pipeline, "compiled_message", huge)
    summary = send_campaign(db, sg_settings.model_copy(update={"batch_size": 2}), campaign_id)
    assert summary.status == CS.PAUSED
    assert "413" in campaign_of(db, campaign_id).status_reason
    assert {r.status for r in rows(db, campaign_id)} == {DS.PENDING}
    assert standin.accepted == []


def test_a_large_send_is_spread_over_processes_each_recipient_once(db, sg_settings, standin):
    add_subscribers(db, 400)
    campaign_id = approved_campaign(db)
    standin.latency_ms = 150  # keep the parent busy (~1.5 s) while the helper starts (~1 s)
    seen = []
    # A fixed window: one grown to hide the latency would finish before the helper starts.
    fixed = {"send_processes": 2, "max_in_flight": sg_settings.concurrency}
    summary = send_campaign(db, sg_settings.model_copy(update=fixed),
                            campaign_id, progress=lambda stats: seen.append(stats.handled))
    assert summary.status == CS.SENT and summary.accepted == 400
    assert summary.sent_this_run == 400  # the helper's recipients are counted too
    assert_exactly_once(standin, db, campaign_id, 400)
    with db.session() as session:
        workers = session.scalars(select(Delivery.worker)
                                  .where(Delivery.campaign_id == campaign_id)).all()
    pids = {w.split(":")[1] for w in workers}
    assert len(pids) == 2, "the helper process sent nothing"
    assert max(seen) == 400


def test_names_reach_the_payload_exactly(db, sg_settings, standin):
    # SQLite reads a claimed batch back as one JSON document: quotes, backslashes, non-ASCII
    # and missing names must come through unchanged.
    names = ['Zoë "Z" O\'Neil \\ 日本', None, "", "  Pat  "]
    with db.session() as session:
        session.execute(insert(Subscriber), [
            {"email": f"named{i}@example.org", "name": name, "status": ACTIVE,
             "frequency": "immediate", "created_at": utcnow(), "updated_at": utcnow()}
            for i, name in enumerate(names)])
    campaign_id = approved_campaign(db)
    assert send_campaign(db, sg_settings, campaign_id).status == CS.SENT
    shown = {a.email: a.substitutions["-name_t-"] for a in standin.accepted}
    assert shown == {"named0@example.org": names[0], "named1@example.org": "friend",
                     "named2@example.org": "friend", "named3@example.org": "Pat"}


def test_small_or_rate_limited_sends_stay_in_one_process(sg_settings):
    from mailer.delivery.fanout import process_count

    spread = sg_settings.model_copy(update={"send_processes": 2})
    assert process_count(spread, 10_000) == 2
    assert process_count(spread, 50) == 1  # not worth a second process
    assert process_count(spread.model_copy(update={"rate_limit": 100.0}), 10_000) == 1
    assert process_count(spread.model_copy(update={"send_processes": 1}), 10_000) == 1
    auto = sg_settings.model_copy(update={"send_processes": 0, "batch_size": 1000})
    assert process_count(auto, 100_000) == 1  # a helper's start-up would not pay off
    assert process_count(auto, 1_000_000) == min(os.cpu_count() or 1, 4, auto.concurrency)


def test_two_senders_on_one_campaign_share_it_without_duplicates(db, sg_settings, standin):
    import threading

    add_subscribers(db, 200)
    campaign_id = approved_campaign(db)
    start_campaign(db, sg_settings, campaign_id)
    standin.latency_ms = 20  # keep both busy at the same time
    summaries = []

    def run():
        summaries.append(send_campaign(db, sg_settings, campaign_id))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [s.status for s in summaries] == [CS.SENT, CS.SENT]
    assert sum(s.sent_this_run for s in summaries) == 200
    assert all(s.sent_this_run > 0 for s in summaries)  # both really sent
    assert_exactly_once(standin, db, campaign_id, 200)


def test_erased_and_paused_subscribers_are_skipped_and_the_send_still_finishes(
        db, sg_settings, standin):
    from datetime import timedelta

    from sqlalchemy import delete, update

    add_subscribers(db, 30)
    campaign_id = approved_campaign(db)
    start_campaign(db, sg_settings, campaign_id)
    with db.session() as session:  # after the draw: one erased, one paused for a week
        session.execute(delete(Subscriber).where(Subscriber.email == "person7@example.org"))
        session.execute(update(Subscriber).where(Subscriber.email == "person29@example.org")
                        .values(paused_until=utcnow() + timedelta(days=7)))
    summary = send_campaign(db, sg_settings, campaign_id)
    assert summary.status == CS.SENT and summary.skipped == 2 and summary.accepted == 28
    reasons = {r.email: r.last_error for r in rows(db, campaign_id) if r.status == DS.SKIPPED}
    assert "erased" in reasons["person7@example.org"]
    assert "paused" in reasons["person29@example.org"]
    assert_exactly_once(standin, db, campaign_id, 28)
