"""Per-recipient values: placeholders, escaping, tokens and one-pass substitution."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import settings as settings_profile
from hypothesis import strategies as st

from mailer.render import (
    CONFIRM_LINK,
    Personalizer,
    compile_system_message,
    personalize,
    substitute,
)
from mailer.render.placeholders import HTML_KEYS, PLACEHOLDER_RE, TEXT_KEYS, defuse
from mailer.tokens import InvalidToken, TokenSigner
from mailer.transports.base import CompiledMessage

SCRIPT = "<script>alert(1)</script>"
# Nothing here touches the database: one backend is enough.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _message(html: str, text: str, subject: str = "Hello") -> CompiledMessage:
    return CompiledMessage(subject=subject, html=html, text=text, from_email="a@b.gov",
                           from_name="Office", headers={"List-Unsubscribe-Post":
                                                        "List-Unsubscribe=One-Click"})


@sqlite_only
def test_recipient_links_carry_tokens_that_verify(settings):
    signer = TokenSigner("test-secret-key")
    recipient = Personalizer(settings, signer, 7).recipient(
        email="jane@example.com", name="Jane", subscriber_id=42, delivery_id=9)
    unsub = recipient.substitutions["-unsub_t-"]
    prefs = recipient.substitutions["-prefs_t-"]
    assert unsub.startswith("https://news.senator.example.gov/unsubscribe/")
    assert prefs.startswith("https://news.senator.example.gov/preferences/")
    assert signer.read(unsub.rsplit("/", 1)[1], "unsubscribe") == 42
    assert signer.read(prefs.rsplit("/", 1)[1], "preferences") == 42
    # A token for one purpose never works for another.
    with pytest.raises(InvalidToken):
        signer.read(unsub.rsplit("/", 1)[1], "preferences")
    assert recipient.headers == {"List-Unsubscribe": f"<{unsub}>"}
    assert recipient.delivery_id == 9 and recipient.subscriber_id == 42


@sqlite_only
def test_values_are_escaped_for_html_and_verbatim_for_text(settings):
    recipient = Personalizer(settings, TokenSigner("k"), 1).recipient(
        email="o'brien+news@example.com", name=SCRIPT, subscriber_id=1)
    subs = recipient.substitutions
    assert subs["-name_h-"] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert subs["-name_t-"] == SCRIPT
    assert subs["-email_h-"] == "o&#39;brien+news@example.com"
    assert subs["-email_t-"] == "o'brien+news@example.com"
    # SendGrid takes string keys and values only, and keys are the short placeholders
    # (a confirmation link's only for a recipient given one).
    assert set(subs) == set(HTML_KEYS.values()) | set(TEXT_KEYS.values())
    assert all(isinstance(v, str) for v in subs.values())


@sqlite_only
def test_missing_name_reads_as_friend(settings):
    recipient = Personalizer(settings, TokenSigner("k"), 1).recipient(
        email="a@example.com", name="  ", subscriber_id=1)
    assert recipient.substitutions["-name_t-"] == "friend"


@sqlite_only
def test_personalize_fills_every_part_and_merges_headers(settings):
    message = _message("<p>Hi -name_h- (-email_h-)</p><a href=\"-unsub_h-\">x</a>-name_h-",
                       "Hi -name_t-\n-unsub_t-\n")
    recipient = Personalizer(settings, TokenSigner("k"), 1).recipient(
        email="j@example.com", name="Jo & Al", subscriber_id=3)
    out = personalize(message, recipient)
    assert out.html.startswith("<p>Hi Jo &amp; Al (j@example.com)</p><a href=\"https://")
    assert out.html.endswith("Jo &amp; Al")
    assert out.text.startswith("Hi Jo & Al\nhttps://news.senator.example.gov/unsubscribe/")
    assert out.subject == "Hello"
    assert out.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert out.headers["List-Unsubscribe"].startswith("<https://")
    assert not PLACEHOLDER_RE.search(out.html + out.text)


@sqlite_only
def test_substitution_is_one_pass(settings):
    """A value that looks like a placeholder is never substituted again."""
    message = _message("-name_h- -email_h-", "-name_t-")
    recipient = Personalizer(settings, TokenSigner("k"), 1).recipient(
        email="x@example.com", name="-email_h-", subscriber_id=1)
    assert personalize(message, recipient).html == "-email_h- x@example.com"


def test_unknown_key_is_left_visible():
    assert substitute("a -name_h- b", {}) == "a -name_h- b"


def test_content_cannot_smuggle_a_placeholder():
    text = "Click -unsub_h- now"
    defused = defuse(text)
    assert not PLACEHOLDER_RE.search(defused)
    assert defused == "Click \u2011unsub_h\u2011 now"


@sqlite_only
def test_system_message_personalizes_name_and_escapes_it(settings):
    message = compile_system_message(
        "confirm_subscription", settings, subject="Please confirm your subscription",
        context={"confirm_url": "https://news.senator.example.gov/confirm/abc", "topics": []})
    recipient = Personalizer(settings, TokenSigner("k"), None).recipient(
        email="a@example.com", name=SCRIPT, subscriber_id=5)
    out = personalize(message, recipient)
    assert "Dear &lt;script&gt;alert(1)&lt;/script&gt;," in out.html
    assert SCRIPT not in out.html
    assert f"Dear {SCRIPT}," in out.text
    assert "https://news.senator.example.gov/confirm/abc" in out.html
    assert message.categories == ("confirm_subscription",)
    assert not re.search(r"-[a-z]+_[ht]-", out.html + out.text)


@sqlite_only
def test_a_confirmation_rendered_once_carries_each_persons_own_link(settings):
    # One message for a batch of people: its link is a placeholder each copy fills.
    message = compile_system_message(
        "confirm_subscription", settings, subject="Please confirm your subscription",
        context={"confirm_url": CONFIRM_LINK, "topics": []})
    assert "/confirm/" not in message.html + message.text
    personalizer = Personalizer(settings, TokenSigner("k"), None)
    for n, url in ((5, "https://news.senator.example.gov/confirm/5.a_b-c"),
                   (6, "https://news.senator.example.gov/confirm/6.x?&y")):
        out = personalize(message, personalizer.recipient(
            email=f"p{n}@example.com", name="Pat", subscriber_id=n, confirm_url=url))
        assert out.text.count(url) == 1
        assert f'href="{url.replace("&", "&amp;")}"' in out.html
        assert not re.search(r"-[a-z]+_[ht]-", out.html + out.text)


@sqlite_only
def test_system_message_context_cannot_replace_product_values(settings):
    message = compile_system_message(
        "welcome", settings, subject="Welcome",
        context={"topics": ["Agriculture"], "office": {"name": "Impostor"},
                 "recipient": "nobody"})
    assert "Impostor" not in message.html
    assert "-unsub_h-" in message.html and "Agriculture" in message.text


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                max_size=40)


@settings_profile(max_examples=60, deadline=None)
@given(name=names)
def test_any_name_is_escaped_in_html_and_verbatim_in_text(name):
    from markupsafe import escape

    from mailer.settings import Settings

    config = Settings(public_url="https://news.example.gov", secret_key="k")
    message = _message("<p>Dear -name_h-,</p>", "Dear -name_t-,")
    recipient = Personalizer(config, TokenSigner("k"), 1).recipient(
        email="a@example.com", name=name, subscriber_id=1)
    out = personalize(message, recipient)
    shown = name.strip() or "friend"
    assert out.html == f"<p>Dear {escape(shown)},</p>"
    assert out.text == f"Dear {shown},"
    assert "<" not in out.html[3:-4] and '"' not in out.html
