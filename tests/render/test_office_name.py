"""The office's name everywhere: the From name follows MAILER_OFFICE_NAME, and the bundled
templates stay within the text line limit for office names up to 60 characters."""

from __future__ import annotations

import pytest

from mailer.render import compile_system_message
from mailer.render.check import check_all
from mailer.settings import Settings

LONG = "Office of United States Senator Heidi Heitkamp of North Dako"  # 60 characters


def test_the_from_name_defaults_to_the_office_name(settings):
    named = Settings(office_name="Senator Jane Doe", database_url=settings.database_url)
    assert named.from_name == "Senator Jane Doe"
    own = Settings(office_name="Senator Jane Doe", from_name="Jane Doe press",
                   database_url=settings.database_url)
    assert own.from_name == "Jane Doe press"


@pytest.mark.parametrize("name", ["Senator Jane Doe", LONG])
def test_bundled_templates_pass_the_check_with_any_office_name(settings, name):
    assert len(LONG) == 60
    assert check_all(settings.model_copy(update={"office_name": name})) == []


def test_the_welcome_text_wraps_the_long_name_naturally(settings):
    long = settings.model_copy(update={"office_name": LONG})
    message = compile_system_message("welcome", long, subject="Welcome",
                                     context={"topics": ["Agriculture"], "frequency": "weekly"})
    text = " ".join(message.text.split())
    assert f"You will now receive news from {LONG} in a weekly digest." in text
    assert max(len(line) for line in message.text.splitlines()) <= 78
