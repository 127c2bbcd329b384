"""Digests: defined from the CLI, run once per window, one email per subscriber of exactly the
releases they follow, nothing to anyone with nothing new."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mailer.campaigns import service
from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.delivery.records import Delivery
from mailer.ingest.models import Release
from mailer.scheduling import digests
from mailer.scheduling.models import Digest
from mailer.storage.base import utcnow
from tests.campaigns.factory import add_release, add_subscriber


def created(cli, *args) -> dict:
    result = cli("digests", "create", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_create_weekly_and_daily(cli, settings):
    weekly = created(cli, "--frequency", "weekly", "--at", "Fri 16:00")
    assert (weekly["name"], weekly["at"], weekly["frequency"]) == ("Weekly digest", "Fri 16:00",
                                                                   "weekly")
    assert weekly["next_run"].split()[1] == "16:00"
    next_run = weekly["next_run_at"]
    from datetime import datetime

    local = datetime.fromisoformat(next_run).astimezone(settings.zone)
    assert local.strftime("%a %H:%M") == "Fri 16:00" and local > utcnow()
    daily = created(cli, "--frequency", "daily", "--at", "07:00", "--name", "Morning",
                    "--query", 'county = "Cass"')
    assert (daily["name"], daily["at"], daily["query"]) == ("Morning", "07:00",
                                                            'county = "Cass"')
    listed = cli("digests", "list", "--json").json()
    assert [d["name"] for d in listed] == ["Weekly digest", "Morning"]


@pytest.mark.parametrize(("args", "message"), [
    (("--frequency", "weekly", "--at", "16:00"), "needs a day"),
    (("--frequency", "daily", "--at", "Fri 16:00"), "every day"),
    (("--frequency", "weekly", "--at", "Frog 16:00"), "not a day of the week"),
    (("--frequency", "weekly", "--at", "Fri 25:00"), "not a time"),
    (("--frequency", "monthly", "--at", "16:00"), "daily or weekly"),
    (("--frequency", "daily", "--at", "07:00", "--query", "county = "), "position"),
])
def test_create_refuses_bad_definitions(cli, args, message):
    result = cli("digests", "create", *args)
    assert result.exit_code != 0 and message in result.stderr, result.stderr


def test_duplicate_name_is_refused(cli):
    created(cli, "--frequency", "daily", "--at", "07:00")
    again = cli("digests", "create", "--frequency", "daily", "--at", "08:00")
    assert again.exit_code != 0 and "already exists" in again.stderr


def test_digest_time_inside_quiet_hours_is_refused(cli, monkeypatch):
    monkeypatch.setenv("MAILER_QUIET_HOURS", "21:00-07:00")
    from mailer.cli import context

    context.reset()
    result = cli("digests", "create", "--frequency", "daily", "--at", "06:30")
    assert result.exit_code != 0 and "quiet hours" in result.stderr
    assert "07:00" in result.stderr


@pytest.fixture
def newsroom(db):
    """Weekly subscribers with different topics; releases before and inside the window."""
    week_ago = utcnow() - timedelta(days=7)
    with db.session() as session:
        digest = Digest(name="Weekly digest", frequency="weekly", at="Fri 16:00",
                        last_run_at=week_ago)
        session.add(digest)
        people = {
            "farm": add_subscriber(session, "farm@example.org", topics=["agriculture"],
                                   frequency="weekly"),
            "vets": add_subscriber(session, "vets@example.org", topics=["veterans"],
                                   frequency="weekly"),
            "both": add_subscriber(session, "both@example.org",
                                   topics=["agriculture", "veterans"], frequency="weekly"),
            "tax": add_subscriber(session, "tax@example.org", topics=["taxes"],
                                  frequency="weekly"),
            "daily": add_subscriber(session, "daily@example.org", topics=["agriculture"],
                                    frequency="daily"),
            "now": add_subscriber(session, "now@example.org", topics=["agriculture"]),
            "gone": add_subscriber(session, "gone@example.org", topics=["agriculture"],
                                   frequency="weekly", status="unsubscribed"),
        }
        for person in people.values():  # long-standing subscribers, owed the whole window
            person.created_at = utcnow() - timedelta(days=90)
        add_release(session, title="Old farm news", topics=["agriculture"],
                    created_at=week_ago - timedelta(hours=1))
        farm = add_release(session, title="Farm bill passes", topics=["agriculture"],
                           created_at=utcnow() - timedelta(days=2))
        vets = add_release(session, title="VA clinic opens", topics=["veterans"],
                           created_at=utcnow() - timedelta(days=1))
    return {"digest": digest.id, "people": {k: v.id for k, v in people.items()},
            "farm": farm.id, "vets": vets.id}


def recipients_by_campaign(db, result) -> dict[tuple[int, ...], set[str]]:
    with db.session() as session:
        return {tuple(item["releases"]): set(session.scalars(
            select(Delivery.email).where(Delivery.campaign_id == item["id"])))
            for item in result["campaigns"]}


def test_each_subscriber_gets_one_email_of_exactly_their_new_releases(db, settings, newsroom):
    result = digests.run_digest(db, settings, newsroom["digest"])
    farm, vets = newsroom["farm"], newsroom["vets"]
    assert result["releases"] == 2
    assert recipients_by_campaign(db, result) == {
        (farm,): {"farm@example.org"},
        (vets,): {"vets@example.org"},
        (farm, vets): {"both@example.org"},
    }  # taxes has nothing new; daily, immediate and unsubscribed people are not in it
    assert all(item["outcome"] == "started" for item in result["campaigns"])
    with db.session() as session:
        for item in result["campaigns"]:
            campaign = service.get_campaign(session, item["id"])
            assert (campaign.kind, campaign.status) == ("digest", S.SENDING)
            assert campaign.digest_release_ids == item["releases"]
            assert campaign.digest_id == newsroom["digest"]
        assert "2 new release(s)" in session.get(Digest, newsroom["digest"]).last_result


def test_a_second_run_finds_nothing_new(db, settings, newsroom):
    digests.run_digest(db, settings, newsroom["digest"])
    again = digests.run_digest(db, settings, newsroom["digest"])
    assert (again["releases"], again["campaigns"]) == (0, [])


def test_release_without_topics_goes_to_every_digest_subscriber(db, settings, newsroom):
    with db.session() as session:
        general = add_release(session, title="Office hours in Fargo")
    result = digests.run_digest(db, settings, newsroom["digest"])
    everyone = {email for emails in recipients_by_campaign(db, result).values()
                for email in emails}
    assert everyone == {"farm@example.org", "vets@example.org", "both@example.org",
                        "tax@example.org"}
    assert all(general.id in item["releases"] for item in result["campaigns"])


def test_digest_query_narrows_the_audience(db, settings, newsroom):
    with db.session() as session:
        session.get(Digest, newsroom["digest"]).query = 'email ~ "both@*"'
    result = digests.run_digest(db, settings, newsroom["digest"])
    assert recipients_by_campaign(db, result) == {
        (newsroom["farm"], newsroom["vets"]): {"both@example.org"}}


def test_digest_campaign_renders_its_own_releases(db, settings, newsroom):
    from mailer.campaigns.content import compile_for

    result = digests.run_digest(db, settings, newsroom["digest"])
    only_farm = next(i for i in result["campaigns"] if i["releases"] == [newsroom["farm"]])
    with db.session() as session:
        message = compile_for(session, service.get_campaign(session, only_farm["id"]),
                                   settings)
    assert "Farm bill passes" in message.html and "VA clinic opens" not in message.html
    assert "Farm bill passes" in message.text


def test_a_window_is_claimed_once(db, settings, newsroom, monkeypatch):
    # A second run plans while the first runs: by the time it claims, the window is gone.
    real_plan = digests.plan_groups
    second: dict = {}

    def plan_while_another_runs(*args):
        groups = real_plan(*args)
        if not second:
            monkeypatch.setattr(digests, "plan_groups", real_plan)
            second.update(digests.run_digest(db, settings, newsroom["digest"]))
        return groups

    monkeypatch.setattr(digests, "plan_groups", plan_while_another_runs)
    first = digests.run_digest(db, settings, newsroom["digest"])
    assert len(second["campaigns"]) == 3
    assert (first["campaigns"], first["note"]) == ([], "another run covered this window")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 3


def test_blackout_refuses_a_run_without_losing_the_window(cli, db, settings, newsroom,
                                                         monkeypatch):
    election = (utcnow().astimezone(settings.zone) + timedelta(days=10)).date()
    monkeypatch.setenv("MAILER_ELECTION_DATES", election.isoformat())
    from mailer.cli import context

    context.reset()
    with db.session() as session:
        before = session.get(Digest, newsroom["digest"]).last_run_at
    refused = cli("digests", "run", newsroom["digest"])
    assert refused.exit_code != 0 and "election blackout" in refused.stderr
    with db.session() as session:
        assert session.get(Digest, newsroom["digest"]).last_run_at == before
    ok = cli("digests", "run", newsroom["digest"], "--override-blackout", "--reason",
             "Flood assistance deadline", "--by", "chief", "--json")
    assert ok.exit_code == 0, ok.stderr
    campaigns = ok.json()["campaigns"]
    assert len(campaigns) == 3 and all(c["outcome"] == "started" for c in campaigns)
    with db.session() as session:
        first = service.get_campaign(session, campaigns[0]["id"])
        assert (first.blackout_override_by, first.blackout_override_reason) == (
            "chief", "Flood assistance deadline")


def test_scheduled_digest_job_records_a_refusal(db, settings, newsroom, monkeypatch):
    from mailer.scheduling import scheduler

    local = utcnow().astimezone(settings.zone)
    quiet = f"{(local - timedelta(hours=1)):%H:%M}-{(local + timedelta(hours=1)):%H:%M}"
    monkeypatch.setitem(scheduler._runtime, "db", db)
    monkeypatch.setitem(scheduler._runtime, "settings",
                        settings.model_copy(update={"quiet_hours": quiet}))
    scheduler.run_digest_job(newsroom["digest"])
    with db.session() as session:
        digest = session.get(Digest, newsroom["digest"])
        assert digest.last_result.startswith("not run:") and "quiet hours" in digest.last_result
        assert digest.last_run_at < utcnow() - timedelta(days=6)  # window not claimed


def test_release_campaigns_reach_immediate_subscribers_and_digests_the_rest(
        db, settings, newsroom):
    from mailer.scheduling.starting import start_scheduled_campaign
    from tests.campaigns.factory import add_campaign

    with db.session() as session:
        release = session.get(Release, newsroom["farm"])
        campaign = add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                                query='topic = "agriculture"', scheduled_at=utcnow(),
                                release=release)
    assert start_scheduled_campaign(db, settings, campaign.id) == "started"
    with db.session() as session:
        got_release = set(session.scalars(select(Delivery.email)
                                          .where(Delivery.campaign_id == campaign.id)))
    assert got_release == {"now@example.org"}  # farm, both (weekly) and daily wait
    result = digests.run_digest(db, settings, newsroom["digest"])
    weekly = {e for emails in recipients_by_campaign(db, result).values() for e in emails}
    assert {"farm@example.org", "both@example.org"} <= weekly
    assert "now@example.org" not in weekly


def test_disable_and_enable(cli, db, settings):
    digest = created(cli, "--frequency", "weekly", "--at", "Mon 08:00")
    off = cli("digests", "disable", digest["id"], "--json").json()
    assert (off["active"], off["next_run"]) == (False, None)
    assert [i for i in cli("schedule", "list", "--json").json() if i["kind"] == "digest"] == []
    from mailer.scheduling.digests import digest_jobs

    assert digest_jobs(db, settings) == {}
    on = cli("digests", "enable", digest["id"], "--json").json()
    assert on["active"] and on["next_run"].split()[1] == "08:00"
    assert list(digest_jobs(db, settings)) == [f"digest-{digest['id']}"]
    assert cli("digests", "disable", 999).exit_code != 0


def test_planned_members_are_checked_again_when_the_audience_is_drawn(
        db, settings, newsroom, monkeypatch):
    from mailer.scheduling.scheduler import reconcile
    from subscribers.models import Subscriber

    monkeypatch.setattr(digests, "_start_all", lambda db_, settings_, ids: {
        i: "left for the scheduler" for i in ids})  # plan now, start later
    result = digests.run_digest(db, settings, newsroom["digest"])
    with db.session() as session:
        session.get(Subscriber, newsroom["people"]["farm"]).status = "unsubscribed"
        add_subscriber(session, "latecomer@example.org", topics=["agriculture"],
                       frequency="weekly")  # joined after planning: next week's digest
    assert set(reconcile(db, settings).values()) == {"started"}
    assert recipients_by_campaign(db, result) == {
        (newsroom["farm"],): set(),
        (newsroom["vets"],): {"vets@example.org"},
        (newsroom["farm"], newsroom["vets"]): {"both@example.org"},
    }


# ---------------------------------------------------------------- exactly once per subscriber

def planned_releases(db, email: str) -> list[int]:
    """Every release id planned for ``email`` across all digest campaigns (with repeats)."""
    from mailer.scheduling.models import DigestRecipient
    from subscribers.models import Subscriber

    with db.session() as session:
        lists = session.scalars(
            select(Campaign.digest_release_ids)
            .join(DigestRecipient, DigestRecipient.campaign_id == Campaign.id)
            .join(Subscriber, Subscriber.id == DigestRecipient.subscriber_id)
            .where(Subscriber.email == email))
        return sorted(r for ids in lists for r in ids)


@pytest.fixture
def plan_only(monkeypatch):
    """Runs dated in the past would be 'missed' by the starter: plan and claim only."""
    monkeypatch.setattr(digests, "_start_all", lambda db_, settings_, ids: {
        i: "left for the scheduler" for i in ids})


def add_digest(session, name: str, frequency: str, *, query: str | None = None,
               last_run_at=None) -> int:
    digest = Digest(name=name, frequency=frequency, at="Fri 16:00" if frequency == "weekly"
                    else "07:00", query=query, last_run_at=last_run_at)
    session.add(digest)
    session.flush()
    return digest.id


def test_switching_weekly_to_daily_mid_week_gets_each_release_once(db, settings, plan_only):
    from subscribers.models import Subscriber

    now = utcnow()
    with db.session() as session:
        weekly = add_digest(session, "Weekly", "weekly", last_run_at=now - timedelta(days=14))
        daily = add_digest(session, "Daily", "daily")
        person = add_subscriber(session, "switch@example.org", topics=["agriculture"],
                                frequency="weekly")
        person.created_at = now - timedelta(days=90)
        ids = [add_release(session, topics=["agriculture"], created_at=now - age).id
               for age in (timedelta(days=10), timedelta(days=5), timedelta(days=3),
                           timedelta(hours=12))]
    digests.run_digest(db, settings, weekly, now=now - timedelta(days=7))  # last Friday
    assert planned_releases(db, "switch@example.org") == ids[:1]
    with db.session() as session:  # Wednesday: "send me a daily digest instead"
        session.scalar(select(Subscriber).where(Subscriber.email == "switch@example.org")
                       ).frequency = "daily"
    digests.run_digest(db, settings, daily, now=now - timedelta(days=1))
    digests.run_digest(db, settings, daily, now=now)
    digests.run_digest(db, settings, weekly, now=now)  # Friday: no longer weekly
    assert planned_releases(db, "switch@example.org") == ids  # every one, each exactly once


def test_someone_who_joined_yesterday_gets_only_what_was_published_since(
        db, settings, newsroom):
    with db.session() as session:
        newcomer = add_subscriber(session, "new@example.org", topics=["agriculture"],
                                  frequency="weekly")
        newcomer.created_at = utcnow() - timedelta(days=1, hours=12)  # before the VA release
        general = add_release(session, title="Office hours", created_at=utcnow()
                              - timedelta(hours=3))
    result = digests.run_digest(db, settings, newsroom["digest"])
    got = {email: ids for ids, emails in recipients_by_campaign(db, result).items()
           for email in emails}
    assert got["new@example.org"] == (general.id,)  # not the farm bill of two days ago
    assert got["farm@example.org"] == (newsroom["farm"], general.id)


def test_a_confirmation_counts_as_joining(db, settings, newsroom):
    with db.session() as session:
        person = add_subscriber(session, "confirmed@example.org", topics=["agriculture"],
                                frequency="weekly")
        person.created_at = utcnow() - timedelta(days=30)  # signed up long ago...
        person.confirmed_at = utcnow() - timedelta(days=1)  # ...confirmed only yesterday
    result = digests.run_digest(db, settings, newsroom["digest"])
    assert all("confirmed@example.org" not in emails
               for emails in recipients_by_campaign(db, result).values())


def test_overlapping_digests_never_send_a_release_twice(db, settings, newsroom):
    with db.session() as session:
        cass = add_digest(session, "Cass weekly", "weekly", query='county = "Cass"',
                          last_run_at=utcnow() - timedelta(days=7))
        from subscribers.models import Subscriber

        session.get(Subscriber, newsroom["people"]["both"]).county = "Cass"
    first = digests.run_digest(db, settings, cass)
    assert recipients_by_campaign(db, first) == {
        (newsroom["farm"], newsroom["vets"]): {"both@example.org"}}
    second = digests.run_digest(db, settings, newsroom["digest"])
    everyone = {e for emails in recipients_by_campaign(db, second).values() for e in emails}
    assert everyone == {"farm@example.org", "vets@example.org"}  # "both" had theirs
    assert planned_releases(db, "both@example.org") == sorted(
        [newsroom["farm"], newsroom["vets"]])


def test_a_run_planned_against_stale_state_plans_again(db, settings, newsroom, monkeypatch):
    # The Cass digest runs (and claims "both") while the weekly digest is planning: the
    # weekly digest's claim of "both" fails, so it plans again and leaves them out.
    from subscribers.models import Subscriber

    with db.session() as session:
        cass = add_digest(session, "Cass weekly", "weekly", query='county = "Cass"',
                          last_run_at=utcnow() - timedelta(days=7))
        session.get(Subscriber, newsroom["people"]["both"]).county = "Cass"
    real_plan = digests.plan_groups
    calls = []

    def plan_while_another_digest_runs(session, digest, *args):
        plan = real_plan(session, digest, *args)
        calls.append(digest.id)
        if digest.id == newsroom["digest"] and len(calls) == 1:
            digests.run_digest(db, settings, cass)
        return plan

    monkeypatch.setattr(digests, "plan_groups", plan_while_another_digest_runs)
    weekly = digests.run_digest(db, settings, newsroom["digest"])
    assert calls == [newsroom["digest"], cass, newsroom["digest"]]  # planned twice
    everyone = {e for emails in recipients_by_campaign(db, weekly).values() for e in emails}
    assert everyone == {"farm@example.org", "vets@example.org"}
    assert planned_releases(db, "both@example.org") == sorted(
        [newsroom["farm"], newsroom["vets"]])


def test_rerunning_sends_nothing_and_records_each_persons_digest(db, settings, newsroom):
    from subscribers.models import Subscriber

    first = digests.run_digest(db, settings, newsroom["digest"])
    again = digests.run_digest(db, settings, newsroom["digest"])
    assert (again["releases"], again["campaigns"]) == (0, [])
    with db.session() as session:
        stamped = {s.email: s.last_digest_at for s in session.scalars(select(Subscriber))}
    until = first["until"]
    assert {e for e, at in stamped.items() if at is not None and at.isoformat() == until} == {
        "farm@example.org", "vets@example.org", "both@example.org"}
    assert stamped["tax@example.org"] is None  # nothing new: still owed from the same point


def test_switching_from_immediate_does_not_repeat_a_release_campaign(db, settings, newsroom):
    from mailer.scheduling.starting import start_scheduled_campaign
    from subscribers.models import Subscriber
    from tests.campaigns.factory import add_campaign

    with db.session() as session:
        campaign = add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                                query='topic = "agriculture"', scheduled_at=utcnow(),
                                release=session.get(Release, newsroom["farm"]))
        general = add_release(session, title="Office hours")
    assert start_scheduled_campaign(db, settings, campaign.id) == "started"
    with db.session() as session:  # "now" got the farm bill, then chose the weekly digest
        session.get(Subscriber, newsroom["people"]["now"]).frequency = "weekly"
    result = digests.run_digest(db, settings, newsroom["digest"])
    got = {email: ids for ids, emails in recipients_by_campaign(db, result).items()
           for email in emails}
    assert got["now@example.org"] == (general.id,)
    assert got["farm@example.org"] == (newsroom["farm"], general.id)


def test_a_release_whose_own_delivery_was_skipped_stays_in_the_digest(db, settings, newsroom):
    from sqlalchemy import update

    from mailer.scheduling.starting import start_scheduled_campaign
    from subscribers.models import Subscriber
    from tests.campaigns.factory import add_campaign

    with db.session() as session:
        campaign = add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                                query='topic = "agriculture"', scheduled_at=utcnow(),
                                release=session.get(Release, newsroom["farm"]))
    assert start_scheduled_campaign(db, settings, campaign.id) == "started"
    with db.session() as session:  # never handed off to them, then they chose weekly
        session.execute(update(Delivery).where(Delivery.campaign_id == campaign.id)
                        .values(status="skipped"))
        session.get(Subscriber, newsroom["people"]["now"]).frequency = "weekly"
    result = digests.run_digest(db, settings, newsroom["digest"])
    got = {email: ids for ids, emails in recipients_by_campaign(db, result).items()
           for email in emails}
    assert got["now@example.org"] == (newsroom["farm"],)
