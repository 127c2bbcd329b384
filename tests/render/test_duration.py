"""How long a confirmation link works reads as a person says it."""

import pytest

from mailer.render import compile_system_message
from mailer.render.environment import duration


@pytest.mark.parametrize("hours, words", [
    (168, "7 days"), (24, "1 day"), (48, "2 days"), (36, "36 hours"), (1, "1 hour"),
])
def test_duration_in_words(hours, words):
    assert duration(hours) == words


def test_the_confirmation_email_says_seven_days(settings):
    message = compile_system_message(
        "confirm_subscription", settings, subject="Please confirm your subscription",
        context={"confirm_url": "https://news.senator.example.gov/confirm/x",
                 "expires_hours": 7 * 24})
    for part in (message.text, message.html):
        assert "The link works for 7 days." in part and "168" not in part
