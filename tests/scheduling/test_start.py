"""Starting scheduled campaigns in-process: on time, late within the grace, missed, and the
send-time rules (approval, quiet hours, blackout) re-checked when the time comes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from mailer.campaigns import service
from mailer.campaigns.models import CampaignStatus as S
from mailer.delivery.records import Delivery
from mailer.scheduling.jobs import campaign_job_id, digest_job_id
from mailer.scheduling.models import Digest
from mailer.scheduling.scheduler import (
    build_scheduler,
    reconcile,
    start_scheduled_campaign,
    sync_jobs,
)
from mailer.storage.base import utcnow
from tests.campaigns.factory import add_audience, add_campaign


def scheduled(db, *, minutes_ago: float = 0, approved_by="bob", created_by="alice") -> int:
    with db.session() as session:
        add_audience(session, 3)
        campaign = add_campaign(session, status=S.SCHEDULED, approved_by=approved_by,
                                created_by=created_by,
                                scheduled_at=utcnow() - timedelta(minutes=minutes_ago))
        return campaign.id


def state(db, campaign_id):
    with db.session() as session:
        campaign = service.get_campaign(session, campaign_id)
        drawn = session.scalar(select(func.count()).select_from(Delivery)
                               .where(Delivery.campaign_id == campaign_id))
        return campaign.status, campaign.status_reason, drawn


def test_due_campaign_is_started_once_with_its_audience_drawn(db, settings):
    campaign_id = scheduled(db)
    assert start_scheduled_campaign(db, settings, campaign_id) == "started"
    assert start_scheduled_campaign(db, settings, campaign_id) == "not-scheduled"
    status, _, drawn = state(db, campaign_id)
    assert (status, drawn) == (S.SENDING, 3)
    with db.session() as session:
        moves = [(e.from_status, e.to_status) for e in service.campaign_log(session, campaign_id)]
    assert moves.count(("scheduled", "sending")) == 1


def test_late_within_the_grace_still_goes_out(db, settings):
    campaign_id = scheduled(db, minutes_ago=60)
    assert start_scheduled_campaign(db, settings, campaign_id) == "started"
    assert state(db, campaign_id)[0] == S.SENDING


def test_later_than_the_grace_becomes_missed_with_the_reason(db, settings):
    campaign_id = scheduled(db, minutes_ago=7 * 60)  # grace is 6 h by default
    assert start_scheduled_campaign(db, settings, campaign_id) == "missed"
    status, reason, drawn = state(db, campaign_id)
    assert (status, drawn) == (S.MISSED, 0)
    assert "MAILER_MISFIRE_GRACE" in reason and "no scheduler ran" in reason


def test_not_yet_due_is_left_alone(db, settings):
    campaign_id = scheduled(db, minutes_ago=-10)
    assert start_scheduled_campaign(db, settings, campaign_id) == "not-due"
    assert state(db, campaign_id)[0] == S.SCHEDULED


def _quiet_now(settings):
    local = utcnow().astimezone(settings.zone)
    window = f"{(local - timedelta(hours=1)):%H:%M}-{(local + timedelta(hours=1)):%H:%M}"
    return settings.model_copy(update={"quiet_hours": window})


def test_quiet_hours_are_checked_again_at_send_time(db, settings):
    campaign_id = scheduled(db)
    assert start_scheduled_campaign(db, _quiet_now(settings), campaign_id) == "missed"
    status, reason, drawn = state(db, campaign_id)
    assert (status, drawn) == (S.MISSED, 0)
    assert "quiet hours" in reason and "next allowed time" in reason


def test_blackout_is_checked_again_at_send_time(db, settings):
    today = utcnow().astimezone(settings.zone).date()
    rules = settings.model_copy(update={"election_dates": [today + timedelta(days=30)]})
    campaign_id = scheduled(db)
    assert start_scheduled_campaign(db, rules, campaign_id) == "missed"
    status, reason, drawn = state(db, campaign_id)
    assert (status, drawn) == (S.MISSED, 0) and "election blackout" in reason


def test_blackout_override_recorded_at_schedule_time_is_honoured(db, settings):
    today = utcnow().astimezone(settings.zone).date()
    rules = settings.model_copy(update={"election_dates": [today + timedelta(days=30)]})
    campaign_id = scheduled(db)
    with db.session() as session:
        campaign = service.get_campaign(session, campaign_id)
        campaign.blackout_override_by = "chief of staff"
        campaign.blackout_override_reason = "flood evacuation notice"
    assert start_scheduled_campaign(db, rules, campaign_id) == "started"


def test_self_approval_is_refused_at_send_time(db, settings):
    # Approved by its author while approval was switched off; it is back on at send time.
    campaign_id = scheduled(db, approved_by="alice", created_by="alice")
    assert start_scheduled_campaign(db, settings, campaign_id) == "missed"
    status, reason, _ = state(db, campaign_id)
    assert status == S.MISSED and "own author" in reason


def test_reconcile_starts_recent_and_marks_old_as_missed(db, settings):
    recent, old, future = (scheduled(db, minutes_ago=5), scheduled(db, minutes_ago=600),
                           scheduled(db, minutes_ago=-60))
    outcomes = reconcile(db, settings)
    assert outcomes == {old: "missed", recent: "started"}
    assert [state(db, c)[0] for c in (recent, old, future)] == [S.SENDING, S.MISSED,
                                                                 S.SCHEDULED]


def test_sync_mirrors_scheduled_campaigns_and_digests_into_the_job_store(db, settings):
    future = scheduled(db, minutes_ago=-60)
    with db.session() as session:
        digest = Digest(name="Weekly", frequency="weekly", at="Fri 16:00")
        session.add(digest)
    scheduler = build_scheduler(db, settings)
    scheduler.start(paused=True)
    try:
        sync_jobs(scheduler, db, settings)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {campaign_job_id(future), digest_job_id(digest.id)}
        with db.session() as session:
            wanted = service.get_campaign(session, future).scheduled_at
        assert jobs[campaign_job_id(future)].next_run_time == wanted
        assert jobs[campaign_job_id(future)].misfire_grace_time == settings.misfire_grace
        local = jobs[digest_job_id(digest.id)].next_run_time.astimezone(settings.zone)
        assert (local.strftime("%a %H:%M")) == "Fri 16:00"
        with db.session() as session:  # cancelled behind the scheduler's back
            campaign = service.get_campaign(session, future)
            campaign.status = S.CANCELLED
        sync_jobs(scheduler, db, settings)
        assert {job.id for job in scheduler.get_jobs()} == {digest_job_id(digest.id)}
    finally:
        scheduler.shutdown(wait=False)
