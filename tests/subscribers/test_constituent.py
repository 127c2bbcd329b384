"""Subscribers outside the office's state are told apart: ``constituent = "yes"`` keeps a
mailing to people in MAILER_OFFICE_STATE (their state given, or derived from their ZIP)."""

from __future__ import annotations

import pytest

from mailer.errors import QueryError
from mailer.settings import get_settings
from subscribers import segments, service


@pytest.fixture(autouse=True)
def fresh_settings():
    yield
    get_settings.cache_clear()  # the next test reads its own environment


@pytest.fixture
def people(db):
    with db.session() as session:
        service.add_subscriber(session, email="fargo@example.org", zip="58102")  # ND by ZIP
        service.add_subscriber(session, email="moorhead@example.org", zip="56560")  # MN
        service.add_subscriber(session, email="given@example.org", state="ND")
        service.add_subscriber(session, email="unknown@example.org")


def count(db, query):
    with db.session() as session:
        return segments.count(session, query=query)


def test_constituents_are_those_in_the_office_state(db, people, monkeypatch):
    monkeypatch.setenv("MAILER_OFFICE_STATE", "nd")
    get_settings.cache_clear()
    assert count(db, 'constituent = "yes"') == 2
    assert count(db, 'constituent = "no"') == 2  # Minnesota, and nobody knows
    assert count(db, 'constituent != "yes"') == 2
    assert count(db, 'topic = "x" or constituent in ("yes")') == 2


def test_constituent_needs_the_office_state_and_a_yes_or_no(db, people, monkeypatch):
    monkeypatch.delenv("MAILER_OFFICE_STATE", raising=False)
    get_settings.cache_clear()
    with pytest.raises(QueryError, match="MAILER_OFFICE_STATE"):
        count(db, 'constituent = "yes"')
    monkeypatch.setenv("MAILER_OFFICE_STATE", "ND")
    get_settings.cache_clear()
    with pytest.raises(QueryError, match='"yes" or = "no"'):
        count(db, 'constituent = "maybe"')
