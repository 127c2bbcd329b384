"""Dates as offices write them."""

from __future__ import annotations

from datetime import date

import pytest

from mailer.ingest.dates import parse_date

NOV3 = date(2025, 11, 3)


@pytest.mark.parametrize("text, expected", [
    ("May 09 2014", date(2014, 5, 9)),
    ("November 3, 2025", NOV3),
    ("Nov. 3, 2025", NOV3),
    ("Monday, November 3, 2025", NOV3),
    ("Mon., Nov. 3rd, 2025", NOV3),
    ("3 November 2025", NOV3),
    ("2025-11-03", NOV3),
    ("11/03/2025", NOV3),
    ("Sept. 30, 2025", date(2025, 9, 30)),
    ("Monday, April 15, 2013 - 2:23pm", date(2013, 4, 15)),
    ("Thu, 02 May 2013 11:27:00 EST", date(2013, 5, 2)),
    ("November 3, 2025 at 10:00 a.m. ET", NOV3),
])
def test_a_line_that_is_a_date(text, expected):
    assert parse_date(text, whole=True) == expected


@pytest.mark.parametrize("text", [
    "Smith Statement on November 3, 2025 Election", "February 30, 2025", "13/45/2025",
    "", "May", "Heitkamp Leads Training in Fargo",
])
def test_a_line_that_is_not_just_a_date(text):
    assert parse_date(text, whole=True) is None


def test_dates_inside_text_and_glued_to_words():
    assert parse_date("Released February 28, 2013WASHINGTON, DC") == date(2013, 2, 28)
    assert parse_date("no date here") is None
