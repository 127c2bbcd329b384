"""Fixtures for rendering tests: the seed release as a campaign in the test database."""

from __future__ import annotations

import shutil

import pytest

from mailer.cli import context
from mailer.settings import BUNDLED_TEMPLATES_DIR, get_settings

from .factory import add_campaign, add_release


@pytest.fixture
def seed_campaign_id(db) -> int:
    """A draft campaign for the seed press release."""
    with db.session() as session:
        return add_campaign(session, add_release(session)).id


@pytest.fixture
def signer(db):
    return context.signer()


@pytest.fixture
def folder(tmp_path, monkeypatch, settings):
    """A copy of the shipped templates in MAILER_TEMPLATES_DIR, to break on purpose."""
    target = tmp_path / "office-templates"
    shutil.copytree(BUNDLED_TEMPLATES_DIR, target)
    monkeypatch.setenv("MAILER_TEMPLATES_DIR", str(target))
    get_settings.cache_clear()
    return target
