"""The schedule view's data (``mailer.scheduling.agenda``) and its dashboard page: what goes
out in the next 14 days, grouped by the office's calendar day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailer.campaigns.models import CampaignStatus as S
from mailer.scheduling import digests
from mailer.scheduling.agenda import upcoming
from tests.campaigns.factory import add_audience, add_campaign

#: Monday 7 December 2026, noon in Chicago.
NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


@pytest.fixture
def planned(db, settings):
    with db.session() as session:
        add_audience(session, 3)
        soon = add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                            scheduled_at=datetime(2026, 12, 9, 15, 0, tzinfo=UTC)).id
        add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                     scheduled_at=datetime(2026, 12, 30, 15, 0, tzinfo=UTC))  # too far
        add_campaign(session, status=S.DRAFT)
        digests.create_digest(session, settings, frequency="daily", at="07:00")
        digests.create_digest(session, settings, frequency="weekly", at="Fri 16:00")
        paused = digests.create_digest(session, settings, frequency="daily", at="08:00",
                                       name="Paused digest")
        paused.active = False
    return soon


def test_the_next_14_days_grouped_by_office_day(db, settings, planned):
    with db.session() as session:
        days = upcoming(session, settings, now=NOW)
    assert [d.day.isoformat() for d in days] == [f"2026-12-{n:02d}" for n in range(8, 22)]
    campaigns = [e for d in days for e in d.entries if e.kind == "campaign"]
    assert len(campaigns) == 1 and campaigns[0].id == planned
    assert (campaigns[0].approved_by, campaigns[0].audience) == ("bob", {"now": 3,
                                                                         "in_digests": 0})
    runs = [(e.title, e.at.astimezone(settings.zone).strftime("%a %H:%M"))
            for d in days for e in d.entries if e.kind == "digest"]
    daily = [when for title, when in runs if title == "Daily digest"]
    assert len(daily) == 14 and all(when.endswith(" 07:00") for when in daily)
    assert [r for r in runs if r[0] == "Weekly digest"] == [("Weekly digest", "Fri 16:00")] * 2
    wednesday = days[1]
    assert [e.kind for e in wednesday.entries] == ["digest", "campaign"]  # 07:00, then 09:00


def test_nothing_planned_is_an_empty_schedule(db, settings):
    with db.session() as session:
        assert upcoming(session, settings, now=NOW) == []
