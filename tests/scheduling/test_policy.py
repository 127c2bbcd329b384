"""Quiet hours, election blackout and approval rules (pure: no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mailer.campaigns.models import Campaign
from mailer.scheduling import policy
from mailer.scheduling.policy import (
    ApprovalRefusal,
    BlackoutRefusal,
    QuietHoursRefusal,
    check_send_allowed,
    in_quiet_hours,
    next_allowed_time,
)
from mailer.settings import Settings


def office(**overrides) -> Settings:
    return Settings(_env_file=None, timezone="America/Chicago", **overrides)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def approved(**fields) -> Campaign:
    values = {"id": 7, "created_by": "alice", "approved_by": "bob", "subject": "s"}
    return Campaign(**{**values, **fields})


QUIET = office(quiet_hours="21:00-07:00")


@pytest.mark.parametrize(("moment", "quiet"), [
    (utc(2026, 11, 23, 2, 59), False),   # 20:59 CST: a minute before they begin
    (utc(2026, 11, 23, 3, 0), True),     # 21:00 CST
    (utc(2026, 11, 23, 12, 59), True),   # 06:59 CST
    (utc(2026, 11, 23, 13, 0), False),   # 07:00 CST
    (utc(2026, 11, 23, 20, 0), False),   # 14:00 CST
])
def test_quiet_hours_wrap_past_midnight_in_office_time(moment, quiet):
    assert in_quiet_hours(moment, QUIET) is quiet


def test_quiet_hours_off_by_default():
    assert not in_quiet_hours(utc(2026, 11, 23, 8, 0), office())


def test_window_within_one_day():
    lunch = office(quiet_hours="12:00-13:00")
    assert in_quiet_hours(utc(2026, 11, 23, 18, 30), lunch)   # 12:30 CST
    assert not in_quiet_hours(utc(2026, 11, 23, 19, 0), lunch)  # 13:00 CST


def test_refusal_suggests_next_morning_in_office_zone():
    with pytest.raises(QuietHoursRefusal) as caught:
        policy.check_quiet_hours(utc(2026, 11, 24, 4, 30), QUIET)  # 22:30 CST Monday
    assert caught.value.next_allowed == utc(2026, 11, 24, 13, 0)    # 07:00 CST Tuesday
    assert "2026-11-24 07:00 CST" in str(caught.value)
    assert "quiet hours" in str(caught.value)


def test_next_allowed_time_is_dst_correct():
    # The night clocks spring forward (2026-03-08): 07:00 that morning is CDT, UTC-5.
    assert next_allowed_time(utc(2026, 3, 8, 5, 0), QUIET) == utc(2026, 3, 8, 12, 0)
    # The night they fall back (2026-11-01): 07:00 is CST, UTC-6.
    assert next_allowed_time(utc(2026, 11, 1, 5, 0), QUIET) == utc(2026, 11, 1, 13, 0)


def test_quiet_hours_ending_in_the_skipped_hour_end_at_the_jump():
    # 01:00-02:30 on 2026-03-08: 02:30 never happens; sending may start at 03:00 CDT.
    night = office(quiet_hours="01:00-02:30")
    allowed = next_allowed_time(utc(2026, 3, 8, 7, 15), night)  # 01:15 CST
    assert allowed == utc(2026, 3, 8, 8, 0)
    assert not in_quiet_hours(allowed, night)


def test_next_allowed_time_outside_quiet_hours_is_now():
    moment = utc(2026, 11, 23, 18, 0)
    assert next_allowed_time(moment, QUIET) == moment


ELECTION = office(election_dates="2026-11-03", blackout_days=60)


@pytest.mark.parametrize(("moment", "blocked"), [
    (utc(2026, 9, 4, 5, 0), True),    # 2026-09-04 00:00 CDT, 60 days before: blocked...
    (utc(2026, 9, 4, 4, 59), False),  # ...but 23:59 CDT on 09-03 (already 09-04 in UTC) is not
    (utc(2026, 11, 3, 20, 0), True),  # election day
    (utc(2026, 11, 4, 18, 0), False),  # the day after
])
def test_blackout_counts_office_calendar_days(moment, blocked):
    assert (policy.blackout_election(moment, ELECTION) is not None) is blocked


def test_blackout_refusal_names_the_election_and_the_override():
    with pytest.raises(BlackoutRefusal) as caught:
        policy.check_blackout(approved(), utc(2026, 10, 1, 15, 0), ELECTION)
    assert caught.value.election == date(2026, 11, 3)
    message = str(caught.value)
    assert "election blackout" in message and "2026-11-03" in message
    assert "--override-blackout" in message


def test_recorded_override_lets_the_send_through():
    campaign = approved(blackout_override_by="bob", blackout_override_reason="disaster alert")
    policy.check_blackout(campaign, utc(2026, 10, 1, 15, 0), ELECTION)  # no refusal


def test_several_election_dates():
    two = office(election_dates="2026-06-02, 2026-11-03", blackout_days=30)
    assert policy.blackout_election(utc(2026, 5, 20, 15, 0), two) == date(2026, 6, 2)
    assert policy.blackout_election(utc(2026, 7, 20, 15, 0), two) is None


def test_send_time_approval_rules():
    rules = office()
    with pytest.raises(ApprovalRefusal, match="has not been approved"):
        check_send_allowed(approved(approved_by=None), rules, utc(2026, 11, 23, 15, 0))
    with pytest.raises(ApprovalRefusal, match="own author"):
        check_send_allowed(approved(approved_by="alice"), rules, utc(2026, 11, 23, 15, 0))
    check_send_allowed(approved(), rules, utc(2026, 11, 23, 15, 0))
    # Without MAILER_REQUIRE_APPROVAL anyone's campaign may go.
    check_send_allowed(approved(approved_by=None), office(require_approval=False),
                       utc(2026, 11, 23, 15, 0))


def test_send_time_checks_quiet_hours_only_when_starting():
    night = utc(2026, 11, 24, 4, 30)
    with pytest.raises(QuietHoursRefusal):
        check_send_allowed(approved(), QUIET, night)
    check_send_allowed(approved(), QUIET, night, starting=False)


def test_send_time_checks_blackout_even_when_resuming():
    with pytest.raises(BlackoutRefusal):
        check_send_allowed(approved(), ELECTION, utc(2026, 10, 1, 15, 0), starting=False)


def test_blackout_window_edges_follow_the_setting():
    short = office(election_dates="2026-11-03", blackout_days=1)
    assert policy.blackout_election(utc(2026, 11, 2, 18, 0), short) is not None
    assert policy.blackout_election(utc(2026, 11, 1, 18, 0), short) is None

_MOMENTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(UTC))
_CLOCKS = st.builds(clock, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@hypothesis_settings(max_examples=300, deadline=None)
@given(moment=_MOMENTS, start=_CLOCKS, end=_CLOCKS,
       zone=st.sampled_from(["America/Chicago", "America/New_York", "America/Anchorage",
                             "Pacific/Honolulu"]))
def test_next_allowed_time_is_the_first_moment_outside_quiet_hours(moment, start, end, zone):
    if start == end:
        return
    rules = office(quiet_hours=f"{start:%H:%M}-{end:%H:%M}").model_copy(
        update={"timezone": zone})
    allowed = next_allowed_time(moment, rules)
    assert allowed >= moment and not in_quiet_hours(allowed, rules)
    if allowed > moment:  # the moment just before was still quiet, and so was all between
        assert in_quiet_hours(allowed - timedelta(microseconds=1), rules)
        span = allowed - moment
        assert all(in_quiet_hours(moment + span * k / 8, rules) for k in range(8))
        assert span < timedelta(hours=25)
