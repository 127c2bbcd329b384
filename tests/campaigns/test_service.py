"""The campaign lifecycle through the service functions (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from mailer.campaigns import service
from mailer.campaigns.lifecycle import ALLOWED, transition
from mailer.campaigns.models import CampaignStatus as S
from mailer.errors import InvalidInput, InvalidTransition, PolicyRefusal, TemplateError
from mailer.scheduling.jobs import campaign_job_id
from mailer.scheduling.scheduler import build_scheduler, run_scheduled_campaign
from mailer.storage.base import utcnow
from tests.campaigns.factory import add_campaign

TOMORROW_NOON = (utcnow() + timedelta(days=1)).replace(hour=18, minute=0, second=0,
                                                       microsecond=0)  # 12:00 CST / 13:00 CDT


def test_every_state_is_in_the_transition_table():
    assert set(ALLOWED) == set(S.ALL)
    assert all(targets <= set(S.ALL) for targets in ALLOWED.values())
    assert ALLOWED[S.SENT] == {S.SENDING}  # a retry of its failed recipients
    assert ALLOWED[S.CANCELLED] == frozenset()


def test_illegal_move_is_a_clear_error(db):
    with db.session() as session:
        campaign = add_campaign(session, status=S.SENT)
        with pytest.raises(InvalidTransition, match=r"is sent; it cannot become draft"):
            transition(session, campaign, S.DRAFT)


def test_author_cannot_approve_their_own_campaign(db, settings):
    with db.session() as session:
        campaign = add_campaign(session, created_by="alice")
        with pytest.raises(PolicyRefusal, match="someone else must approve"):
            service.approve_campaign(session, campaign, by="alice", settings=settings)
        assert campaign.status == S.DRAFT
        service.approve_campaign(session, campaign, by="bob", settings=settings)
        assert campaign.status == S.APPROVED
        assert campaign.approved_by == "bob"
        assert abs((utcnow() - campaign.approved_at).total_seconds()) < 5
        log = service.campaign_log(session, campaign.id)
    assert [(e.from_status, e.to_status, e.by) for e in log] == [("draft", "approved", "bob")]


def test_self_approval_allowed_when_approval_is_not_required(db, settings):
    relaxed = settings.model_copy(update={"require_approval": False})
    with db.session() as session:
        campaign = add_campaign(session, created_by="alice")
        service.approve_campaign(session, campaign, by="alice", settings=relaxed)
        assert campaign.status == S.APPROVED


def test_approval_runs_the_template_check(db, settings):
    with db.session() as session:
        campaign = add_campaign(session)
        campaign.template = "no_such_template"
        with pytest.raises(TemplateError):
            service.approve_campaign(session, campaign, by="bob", settings=settings)
        assert campaign.status == S.DRAFT


def test_only_a_draft_can_be_approved(db, settings):
    with db.session() as session:
        campaign = add_campaign(session, status=S.SENDING, approved_by="bob")
        with pytest.raises(InvalidTransition, match="only a draft"):
            service.approve_campaign(session, campaign, by="carol", settings=settings)


def test_editing_an_approved_campaign_returns_it_to_draft(db):
    with db.session() as session:
        campaign = add_campaign(session, status=S.APPROVED, approved_by="bob")
        changed = service.update_campaign(session, campaign, by="alice", subject="New subject")
        assert changed == ["subject"]
        assert campaign.status == S.DRAFT and campaign.approved_by is None
        assert campaign.approved_at is None and campaign.subject == "New subject"
        last = service.campaign_log(session, campaign.id)[-1]
    assert (last.from_status, last.to_status, last.by) == ("approved", "draft", "alice")
    assert "needs approval again" in last.reason


def test_editing_a_draft_is_logged_without_a_state_change(db):
    with db.session() as session:
        campaign = add_campaign(session)
        service.update_campaign(session, campaign, by="alice", query='county = "Ward"')
        assert campaign.status == S.DRAFT and campaign.query == 'county = "Ward"'
        (entry,) = service.campaign_log(session, campaign.id)
    assert (entry.from_status, entry.to_status, entry.reason) == ("draft", "draft",
                                                                  "edited query")


def test_edit_refuses_nonsense(db):
    with db.session() as session:
        campaign = add_campaign(session)
        with pytest.raises(InvalidInput, match="nothing to change"):
            service.update_campaign(session, campaign, subject=campaign.subject)
        with pytest.raises(InvalidInput, match="at most one"):
            service.update_campaign(session, campaign, query="x", segment="y")
        sending = add_campaign(session, status=S.SENDING, approved_by="bob")
        with pytest.raises(InvalidTransition, match="can no longer be edited"):
            service.update_campaign(session, sending, subject="late change")


def test_schedule_needs_approval_first(db, settings):
    with db.session() as session:
        campaign = add_campaign(session)
        with pytest.raises(PolicyRefusal, match="approve it first"):
            service.schedule_campaign(session, campaign, at=TOMORROW_NOON, settings=settings)


def test_schedule_refuses_a_self_approved_campaign_once_approval_is_required(db, settings):
    with db.session() as session:  # approved by its author while approval was switched off
        campaign = add_campaign(session, status=S.APPROVED, created_by="alice",
                                approved_by="alice")
        with pytest.raises(PolicyRefusal, match="own author"):
            service.schedule_campaign(session, campaign, at=TOMORROW_NOON, settings=settings)
        assert campaign.status == S.APPROVED


def test_schedule_without_required_approval_approves_on_the_spot(db, settings):
    relaxed = settings.model_copy(update={"require_approval": False})
    with db.session() as session:
        campaign = add_campaign(session)
        service.schedule_campaign(session, campaign, at=TOMORROW_NOON, settings=relaxed,
                                  by="alice")
        assert campaign.status == S.SCHEDULED and campaign.approved_by == "alice"
        assert campaign.scheduled_at == TOMORROW_NOON


def test_schedule_refuses_the_past(db, settings):
    with db.session() as session:
        campaign = add_campaign(session, status=S.APPROVED, approved_by="bob")
        with pytest.raises(InvalidInput, match="in the past"):
            service.schedule_campaign(session, campaign, settings=settings,
                                      at=utcnow() - timedelta(hours=1))


def test_reschedule_keeps_it_scheduled_and_logs_both(db, settings):
    later = TOMORROW_NOON + timedelta(hours=2)
    with db.session() as session:
        campaign = add_campaign(session, status=S.APPROVED, approved_by="bob")
        service.schedule_campaign(session, campaign, at=TOMORROW_NOON, settings=settings)
        service.schedule_campaign(session, campaign, at=later, settings=settings)
        assert campaign.status == S.SCHEDULED and campaign.scheduled_at == later
        moves = [(e.from_status, e.to_status) for e in service.campaign_log(session, campaign.id)]
    assert moves == [("approved", "scheduled"), ("scheduled", "scheduled")]


def _job_ids(db) -> set[str]:
    with db.engine.connect() as conn:
        return {row[0] for row in conn.execute(text("SELECT id FROM apscheduler_jobs"))}


def _store_job(db, settings, campaign_id: int, at: datetime) -> None:
    """Put a campaign's job in the job store the way the leading scheduler does."""
    scheduler = build_scheduler(db, settings)
    scheduler.start(paused=True)
    scheduler.add_job(run_scheduled_campaign, "date", run_date=at, args=[campaign_id],
                      id=campaign_job_id(campaign_id), jobstore="default")
    scheduler.shutdown(wait=False)


@pytest.mark.parametrize("action", ["cancel", "edit"])
def test_cancelling_or_editing_a_scheduled_campaign_removes_its_job(db, settings, action):
    with db.session() as session:
        campaign = add_campaign(session, status=S.APPROVED, approved_by="bob")
        service.schedule_campaign(session, campaign, at=TOMORROW_NOON, settings=settings)
        other = add_campaign(session, status=S.APPROVED, approved_by="bob")
        service.schedule_campaign(session, other, at=TOMORROW_NOON, settings=settings)
    _store_job(db, settings, campaign.id, TOMORROW_NOON)
    _store_job(db, settings, other.id, TOMORROW_NOON)
    with db.session() as session:
        campaign = service.get_campaign(session, campaign.id)
        if action == "cancel":
            service.cancel_campaign(session, campaign, by="carol", reason="facts changed")
            assert campaign.status == S.CANCELLED and campaign.status_reason == "facts changed"
        else:
            service.update_campaign(session, campaign, by="alice", subject="Corrected")
            assert campaign.status == S.DRAFT and campaign.scheduled_at is None
    assert _job_ids(db) == {campaign_job_id(other.id)}


def test_pause_resume_cancel_record_reasons(db, settings):
    with db.session() as session:
        campaign = add_campaign(session, status=S.SENDING, approved_by="bob")
        service.pause_campaign(session, campaign, by="carol", reason="typo in headline")
        assert campaign.status == S.PAUSED
        service.resume_campaign(session, campaign, settings=settings, by="carol")
        assert campaign.status == S.SENDING
        service.cancel_campaign(session, campaign, by="dan", reason="pulled by the senator")
        log = [(e.to_status, e.by, e.reason) for e in service.campaign_log(session, campaign.id)]
    assert log == [("paused", "carol", "typo in headline"), ("sending", "carol", "resumed"),
                   ("cancelled", "dan", "pulled by the senator")]


def test_pause_of_a_scheduled_campaign_explains_what_to_do(db, settings):
    with db.session() as session:
        campaign = add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                                scheduled_at=TOMORROW_NOON)
        with pytest.raises(InvalidTransition, match="edit or cancel"):
            service.pause_campaign(session, campaign)


def test_resume_in_election_blackout_is_refused(db, settings):
    today = utcnow().astimezone(settings.zone).date()
    blackout = settings.model_copy(update={"election_dates": [today + timedelta(days=10)]})
    with db.session() as session:
        campaign = add_campaign(session, status=S.PAUSED, approved_by="bob")
        with pytest.raises(PolicyRefusal, match="election blackout"):
            service.resume_campaign(session, campaign, settings=blackout)
        assert campaign.status == S.PAUSED


def test_cannot_cancel_a_sent_campaign(db):
    with db.session() as session:
        campaign = add_campaign(session, status=S.SENT, approved_by="bob")
        with pytest.raises(InvalidTransition):
            service.cancel_campaign(session, campaign)


def test_list_campaigns_filters_by_status(db):
    with db.session() as session:
        draft = add_campaign(session)
        sent = add_campaign(session, status=S.SENT, approved_by="bob")
        assert [c.id for c in service.list_campaigns(session)] == [sent.id, draft.id]
        assert [c.id for c in service.list_campaigns(session, status="sent")] == [sent.id]
        with pytest.raises(InvalidInput, match="unknown status"):
            service.list_campaigns(session, status="done")


def test_campaign_dict_has_the_contract_fields(db):
    with db.session() as session:
        data = service.campaign_to_dict(add_campaign(session))
    assert {"id", "status", "status_reason", "subject", "scheduled_at"} <= set(data)
    assert data["status"] == "draft"
    assert datetime.fromisoformat(data["created_at"]).utcoffset() == timedelta(0)


def test_a_missed_campaign_can_be_scheduled_again(db, settings):
    with db.session() as session:
        campaign = add_campaign(session, status=S.MISSED, approved_by="bob",
                                scheduled_at=utcnow() - timedelta(days=1))
        service.schedule_campaign(session, campaign, at=TOMORROW_NOON, settings=settings,
                                  by="carol")
        assert (campaign.status, campaign.scheduled_at) == (S.SCHEDULED, TOMORROW_NOON)
