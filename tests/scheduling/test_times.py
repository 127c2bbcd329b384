"""Reading typed times in the office zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.errors import InvalidInput
from mailer.scheduling.times import parse_digest_at, parse_when
from mailer.settings import Settings

OFFICE = Settings(_env_file=None, timezone="America/Chicago")


def test_naive_is_office_time_and_offsets_are_honoured():
    assert parse_when("2026-07-01T07:00", OFFICE) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert parse_when("2026-12-01T07:00", OFFICE) == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    assert parse_when("2026-12-01T07:00Z", OFFICE) == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert parse_when("2026-12-01T07:00-05:00", OFFICE) == datetime(2026, 12, 1, 12, 0,
                                                                     tzinfo=UTC)


def test_ambiguous_fall_back_time_is_its_first_occurrence():
    # 01:30 happens twice on 2026-11-01; the first is CDT (UTC-5).
    assert parse_when("2026-11-01T01:30", OFFICE) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def test_skipped_spring_forward_time_is_refused():
    with pytest.raises(InvalidInput, match="does not exist.*choose 03:30 or later"):
        parse_when("2026-03-08T02:30", OFFICE)


def test_nonsense_is_refused():
    with pytest.raises(InvalidInput, match="not an ISO 8601 time"):
        parse_when("next friday", OFFICE)


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31)))
def test_existing_wall_times_round_trip(wall):
    wall = wall.replace(second=0, microsecond=0)
    try:
        stored = parse_when(wall.isoformat(), OFFICE)
    except InvalidInput:  # only the skipped hour may be refused
        assert wall.month == 3 and wall.hour == 2
        return
    assert stored.tzinfo is UTC or stored.utcoffset().total_seconds() == 0
    assert stored.astimezone(OFFICE.zone).replace(tzinfo=None) == wall


@pytest.mark.parametrize(("text", "frequency", "shown"), [
    ("Fri 16:00", "weekly", "Fri 16:00"), ("friday 7:05", "weekly", "Fri 07:05"),
    ("TUES 09:30", "weekly", "Tue 09:30"), ("06:45", "daily", "06:45"),
])
def test_digest_times(text, frequency, shown):
    assert str(parse_digest_at(text, frequency)) == shown
