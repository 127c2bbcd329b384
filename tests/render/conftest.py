"""Fixtures for rendering tests: the seed release as a campaign in the test database."""

from __future__ import annotations

import pytest

from mailer.cli import context

from .factory import add_campaign, add_release


@pytest.fixture
def seed_campaign_id(db) -> int:
    """A draft campaign for the seed press release."""
    with db.session() as session:
        return add_campaign(session, add_release(session)).id


@pytest.fixture
def signer(db):
    return context.signer()
