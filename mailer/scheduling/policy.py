"""The rules a send must pass, checked when a campaign is scheduled AND again when it starts.

- Approval: with MAILER_REQUIRE_APPROVAL, a campaign goes out only when approved by someone
  other than its author.
- Quiet hours (MAILER_QUIET_HOURS, e.g. ``21:00-07:00`` in MAILER_TIMEZONE): no send *starts*
  inside them; the refusal suggests the next allowed time. A send already under way that runs
  into quiet hours is not stopped (half a list now and half in the morning helps nobody).
- Election blackout (MAILER_ELECTION_DATES, MAILER_BLACKOUT_DAYS): every campaign is a mass
  mailing, refused on any office-calendar day from ``election - BLACKOUT_DAYS`` through
  election day itself, unless a person recorded an override with a reason on the campaign.

Everything is evaluated in the office's zone (DST-correct, via zoneinfo) and returned in UTC.
Each check raises a ``PolicyRefusal`` subclass whose one-line message names the rule.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from mailer.campaigns.models import Campaign
from mailer.errors import PolicyRefusal
from mailer.settings import TIME_FORMAT, Settings
from mailer.storage.base import utcnow


class ApprovalRefusal(PolicyRefusal):
    pass


class QuietHoursRefusal(PolicyRefusal):
    """``next_allowed`` is the first moment (aware UTC) after the quiet hours end."""

    def __init__(self, message: str, next_allowed: datetime):
        super().__init__(message)
        self.next_allowed = next_allowed


class BlackoutRefusal(PolicyRefusal):
    """``election`` is the election date whose blackout covers the send."""

    def __init__(self, message: str, election: date):
        super().__init__(message)
        self.election = election


def format_local(moment: datetime, settings: Settings) -> str:
    """``2026-11-23 07:00 CST``: how every time is shown to the office."""
    return moment.astimezone(settings.zone).strftime(TIME_FORMAT)


def _local_wall_time(day: date, wall: time, settings: Settings) -> datetime:
    """``day`` at ``wall`` o'clock in the office zone, as aware UTC.

    A wall time skipped by a spring-forward change (02:30 on the night clocks jump to 03:00)
    comes out as the equivalent moment just after the jump; an ambiguous fall-back time means
    its first occurrence.
    """
    return datetime.combine(day, wall, tzinfo=settings.zone).astimezone(UTC)


def in_quiet_hours(moment: datetime, settings: Settings) -> bool:
    window = settings.quiet_window
    if window is None:
        return False
    start, end = window
    wall = moment.astimezone(settings.zone).time().replace(tzinfo=None)
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end  # the window wraps past midnight


def next_allowed_time(moment: datetime, settings: Settings) -> datetime:
    """The first moment at or after ``moment`` outside quiet hours (aware UTC)."""
    if not in_quiet_hours(moment, settings):
        return moment.astimezone(UTC)
    _, end = settings.quiet_window
    local_day = moment.astimezone(settings.zone).date()
    for offset in range(3):
        candidate = _local_wall_time(local_day + timedelta(days=offset), end, settings)
        if candidate > moment and not in_quiet_hours(candidate, settings):
            return _earliest_allowed(max(moment, candidate - timedelta(hours=3)), candidate,
                                     settings)
    raise AssertionError("quiet hours never end")  # unreachable: the window is < 24 h


def _earliest_allowed(quiet: datetime, allowed: datetime, settings: Settings) -> datetime:
    """The first allowed moment in (quiet, allowed]. Usually ``allowed`` itself; earlier only
    when the end of quiet hours was skipped by a clock change (they then end at the jump)."""
    if not in_quiet_hours(quiet, settings):
        return allowed
    step = timedelta(microseconds=1)
    while allowed - quiet > step:  # quiet before, allowed after: bisect (about 35 rounds)
        middle = quiet + (allowed - quiet) / 2
        if in_quiet_hours(middle, settings):
            quiet = middle
        else:
            allowed = middle
    return allowed


def check_quiet_hours(moment: datetime, settings: Settings) -> None:
    """Raises QuietHoursRefusal when a send would start at ``moment`` inside quiet hours."""
    if not in_quiet_hours(moment, settings):
        return
    allowed = next_allowed_time(moment, settings)
    raise QuietHoursRefusal(
        f"{format_local(moment, settings)} is inside quiet hours ({settings.quiet_hours}, "
        f"MAILER_QUIET_HOURS); the next allowed time is {format_local(allowed, settings)}",
        allowed,
    )


def blackout_election(moment: datetime, settings: Settings) -> date | None:
    """The election whose blackout period covers ``moment`` (office calendar day), or None."""
    day = moment.astimezone(settings.zone).date()
    for election in sorted(settings.election_dates):
        if election - timedelta(days=settings.blackout_days) <= day <= election:
            return election
    return None


def blackout_message(election: date, settings: Settings) -> str:
    first = election - timedelta(days=settings.blackout_days)
    return (
        f"election blackout: mass mailings are not allowed from {first.isoformat()} through "
        f"the election on {election.isoformat()} (MAILER_BLACKOUT_DAYS={settings.blackout_days}); "
        'to send anyway use --override-blackout --reason "..."'
    )


def check_blackout(campaign: Campaign | None, moment: datetime, settings: Settings) -> None:
    """Raises BlackoutRefusal when ``moment`` falls in a blackout and ``campaign`` carries no
    recorded override (``campaign=None``: there is nothing that could carry one)."""
    election = blackout_election(moment, settings)
    if election is None:
        return
    if campaign is not None and campaign.blackout_override_reason:
        return
    raise BlackoutRefusal(blackout_message(election, settings), election)


def check_approval(campaign: Campaign, settings: Settings) -> None:
    """Raises ApprovalRefusal unless the campaign carries a valid approval."""
    if not settings.require_approval:
        return
    if campaign.approved_by is None:
        raise ApprovalRefusal(
            f"campaign {campaign.id} has not been approved "
            f"(mailer campaigns approve {campaign.id} --by USER)"
        )
    if campaign.created_by and campaign.approved_by == campaign.created_by:
        raise ApprovalRefusal(
            f"campaign {campaign.id} was approved by its own author {campaign.approved_by}; "
            "someone else must approve it (MAILER_REQUIRE_APPROVAL)"
        )


def check_schedule_allowed(campaign: Campaign, at: datetime, settings: Settings) -> None:
    """The checks made when a campaign is scheduled to start at ``at``.

    The blackout override, if any, must already be recorded on ``campaign``.
    Raises ApprovalRefusal, QuietHoursRefusal or BlackoutRefusal.
    """
    check_approval(campaign, settings)
    check_quiet_hours(at, settings)
    check_blackout(campaign, at, settings)


def check_send_allowed(
    campaign: Campaign, settings: Settings, now: datetime | None = None, *, starting: bool = True,
) -> None:
    """The checks made just before a send starts (``starting``) or resumes (not starting:
    quiet hours only stop a send from *starting*). The delivery engine and the scheduled job
    both call this.

    Raises ApprovalRefusal, QuietHoursRefusal or BlackoutRefusal.
    """
    now = now or utcnow()
    check_approval(campaign, settings)
    if starting:
        check_quiet_hours(now, settings)
    check_blackout(campaign, now, settings)
