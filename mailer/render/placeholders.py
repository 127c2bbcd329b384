"""Per-recipient values: placeholders in the compiled message, substitution per recipient.

A campaign is rendered once with *placeholders* where a recipient's values go. Each value has
two keys, one for the HTML part (``-name_h-``, value HTML-escaped) and one for the text part
(``-name_t-``, value verbatim), because SendGrid applies one ``substitutions`` map to every
part of a message. Keys are short (SendGrid bills the substitution size against a 10,000-byte
limit per personalization) and made of characters that neither Jinja2's autoescape nor
css-inline alter, so they reach the compiled message untouched.

``Personalizer.recipient`` makes a ``Recipient`` (substitutions + List-Unsubscribe header);
``mailer.transports.substitution.personalize`` applies it locally (outbox, SMTP). The keys
and the fill live in transports because they are the contract between a compiled message and
the transport that delivers it: SendGrid substitutes server-side, the local transports there.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from mailer.settings import Settings
from mailer.transports.base import Recipient
from mailer.transports.substitution import (  # noqa: F401  (re-exported for render's users)
    ALL_KEYS,
    FIELDS,
    HTML_KEYS,
    LINK_KEYS,
    PLACEHOLDER_RE,
    TEXT_KEYS,
    PersonalizedMessage,
    personalize,
    substitute,
)


def defuse(text: str) -> str:
    """``text`` with any placeholder look-alike made inert (its hyphens become non-breaking
    hyphens, which read the same), so content can never trigger a substitution."""
    if "_" not in text:
        return text
    return PLACEHOLDER_RE.sub(lambda m: f"\u2011{m.group()[1:-1]}\u2011", text)


#: What ``recipient.name`` reads when the subscriber gave no name ("Dear friend,").
NAME_FALLBACK = "friend"


class RecipientPlaceholders:
    """What templates see as ``recipient``: each attribute prints its placeholder.

    The HTML variant returns ``Markup`` so autoescape leaves the key alone; the value that
    replaces it is escaped by ``Personalizer``.
    """

    def __init__(self, html: bool):
        keys = HTML_KEYS if html else TEXT_KEYS
        for name, key in keys.items():
            setattr(self, name, Markup(key) if html else key)


class PartPlaceholder:
    """A per-recipient value a template prints under a name of its own (``{{ confirm_url }}``):
    the HTML key where autoescape prints it (``__html__``), the text key in a text part.
    The template must print it as it is: a filter would work on the key, not the value."""

    __slots__ = ("_html", "_text")

    def __init__(self, html_key: str, text_key: str):
        self._html, self._text = html_key, text_key

    def __html__(self) -> str:
        return self._html

    def __str__(self) -> str:
        return self._text


#: What a batched confirmation email is rendered with as its ``confirm_url``.
_CONFIRM_H, _CONFIRM_T = LINK_KEYS["confirm_url"]
CONFIRM_LINK = PartPlaceholder(_CONFIRM_H, _CONFIRM_T)


class Personalizer:
    """Makes each recipient's substitutions and headers for one campaign (or system message).

    Build one per send; ``recipient()`` is called once per person and must stay cheap (two
    token signatures and a few string operations: a few microseconds).
    """

    def __init__(self, settings: Settings, signer, campaign_id: int | None):
        self._make_many = signer.make_many
        self.campaign_id = campaign_id
        self._unsub_t = f"{settings.public_url}/unsubscribe/"
        self._prefs_t = f"{settings.public_url}/preferences/"
        # Tokens are URL-safe base64, so only the (constant) base needs escaping for HTML.
        self._unsub_h = html_escape(self._unsub_t)
        self._prefs_h = html_escape(self._prefs_t)

    def recipient(self, *, email: str, name: str | None, subscriber_id: int | None,
                  delivery_id: int | None = None, confirm_url: str | None = None) -> Recipient:
        """The recipient with its placeholder values (HTML values escaped, text verbatim);
        ``confirm_url`` fills ``CONFIRM_LINK`` too.

        Without a ``subscriber_id`` (a test copy to staff) the links carry a token for id 0,
        which matches nobody.
        """
        sid = 0 if subscriber_id is None else subscriber_id
        unsub_token, prefs_token = self._make_many(sid, _PURPOSES)
        unsub = self._unsub_t + unsub_token
        shown = (name.strip() if name else "") or NAME_FALLBACK
        substitutions = {
            "-name_h-": html_escape(shown), "-name_t-": shown,
            "-email_h-": html_escape(email), "-email_t-": email,
            "-unsub_h-": self._unsub_h + unsub_token, "-unsub_t-": unsub,
            "-prefs_h-": self._prefs_h + prefs_token, "-prefs_t-": self._prefs_t + prefs_token,
        }
        if confirm_url is not None:
            substitutions[_CONFIRM_H] = html_escape(confirm_url)
            substitutions[_CONFIRM_T] = confirm_url
        return Recipient(email=email, name=name, delivery_id=delivery_id,
                         subscriber_id=subscriber_id, substitutions=substitutions,
                         headers={"List-Unsubscribe": f"<{unsub}>"})


_PURPOSES = ("unsubscribe", "preferences")
_HTML_SPECIAL = re.compile(r"[&<>\"']")


def html_escape(value: str) -> str:
    """``value`` escaped for HTML text and attributes (as autoescape would); most values
    (addresses, names) need nothing, so look before building a new string."""
    return str(escape(value)) if _HTML_SPECIAL.search(value) else value


def neutral_substitutions(settings: Settings) -> dict[str, str]:
    """Values for a copy nobody in particular receives (archive page, samples)."""
    subscribe = f"{settings.public_url}/subscribe"
    values = {"name": NAME_FALLBACK, "email": "", "unsubscribe_url": subscribe,
              "preferences_url": subscribe}
    subs = {HTML_KEYS[f]: html_escape(v) for f, v in values.items()}
    subs.update({TEXT_KEYS[f]: v for f, v in values.items()})
    return subs
