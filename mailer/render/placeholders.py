"""Per-recipient values: placeholders in the compiled message, substitution per recipient.

A campaign is rendered once with *placeholders* where a recipient's values go. Each value has
two keys, one for the HTML part (``-name_h-``, value HTML-escaped) and one for the text part
(``-name_t-``, value verbatim), because SendGrid applies one ``substitutions`` map to every
part of a message. Keys are short (SendGrid bills the substitution size against a 10,000-byte
limit per personalization) and made of characters that neither Jinja2's autoescape nor
css-inline alter, so they reach the compiled message untouched.

``Personalizer.recipient`` makes a ``Recipient`` (substitutions + List-Unsubscribe header);
``personalize`` applies it locally (outbox, SMTP) in one pass over precomputed segments.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from mailer.settings import Settings
from mailer.transports.base import CompiledMessage, Recipient

#: The values a template can print per recipient (``recipient.<name>``).
FIELDS = ("name", "email", "unsubscribe_url", "preferences_url")
_SHORT = {"name": "name", "email": "email", "unsubscribe_url": "unsub",
          "preferences_url": "prefs"}
HTML_KEYS = {f: f"-{_SHORT[f]}_h-" for f in FIELDS}
TEXT_KEYS = {f: f"-{_SHORT[f]}_t-" for f in FIELDS}
ALL_KEYS = frozenset(HTML_KEYS.values()) | frozenset(TEXT_KEYS.values())
PLACEHOLDER_RE = re.compile("|".join(re.escape(k) for k in sorted(ALL_KEYS)))


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

    @classmethod
    def for_template(cls, template_name: str) -> RecipientPlaceholders:
        return cls(html=template_name.endswith(".html"))


@dataclass(frozen=True, slots=True)
class PersonalizedMessage:
    """One recipient's finished message: what the outbox and SMTP transports put in MIME."""

    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)


class Personalizer:
    """Makes each recipient's substitutions and headers for one campaign (or system message).

    Build one per send; ``recipient()`` is called once per person and must stay cheap (two
    token signatures and a few string operations).
    """

    def __init__(self, settings: Settings, signer, campaign_id: int | None):
        self._base = settings.public_url
        self._signer = signer
        self.campaign_id = campaign_id

    def recipient(self, *, email: str, name: str | None, subscriber_id: int | None,
                  delivery_id: int | None = None) -> Recipient:
        """The recipient with its placeholder values (HTML values escaped, text verbatim)."""
        sid = subscriber_id if subscriber_id is not None else 0
        unsub = f"{self._base}/unsubscribe/{self._signer.make(sid, 'unsubscribe')}"
        prefs = f"{self._base}/preferences/{self._signer.make(sid, 'preferences')}"
        shown = name.strip() if name and name.strip() else NAME_FALLBACK
        substitutions = {
            "-name_h-": str(escape(shown)), "-name_t-": shown,
            "-email_h-": str(escape(email)), "-email_t-": email,
            # Tokens and the public URL are URL-safe, but escape anyway: correctness is cheap.
            "-unsub_h-": str(escape(unsub)), "-unsub_t-": unsub,
            "-prefs_h-": str(escape(prefs)), "-prefs_t-": prefs,
        }
        return Recipient(email=email, name=name, delivery_id=delivery_id,
                         subscriber_id=subscriber_id, substitutions=substitutions,
                         headers={"List-Unsubscribe": f"<{unsub}>"})


def neutral_substitutions(settings: Settings) -> dict[str, str]:
    """Values for a copy nobody in particular receives (archive page, samples)."""
    subscribe = f"{settings.public_url}/subscribe"
    values = {"name": NAME_FALLBACK, "email": "", "unsubscribe_url": subscribe,
              "preferences_url": subscribe}
    subs = {HTML_KEYS[f]: str(escape(v)) for f, v in values.items()}
    subs.update({TEXT_KEYS[f]: v for f, v in values.items()})
    return subs


def personalize(message: CompiledMessage, recipient: Recipient) -> PersonalizedMessage:
    """Fill ``message``'s placeholders with ``recipient``'s values, in one pass per part.

    A key the recipient lacks is left in place (so a bug shows, rather than silently vanishing).
    """
    subs = recipient.substitutions
    headers = dict(message.headers)
    headers.update(recipient.headers)
    return PersonalizedMessage(
        subject=_segments(message.subject).fill(subs),
        html=_segments(message.html).fill(subs),
        text=_segments(message.text).fill(subs),
        headers=headers,
    )


def substitute(text: str, substitutions: dict[str, str]) -> str:
    """Replace every placeholder in ``text`` (the same one-pass fill as ``personalize``)."""
    return _segments(text).fill(substitutions)


class _Segments:
    """A compiled part split at its placeholders: literal, key, literal, key, …, literal."""

    __slots__ = ("parts", "slots")

    def __init__(self, text: str):
        self.parts = PLACEHOLDER_RE.split(text)
        keys = PLACEHOLDER_RE.findall(text)
        # split() drops the separators; interleave them back at the odd positions.
        merged: list[str] = []
        for literal, key in zip(self.parts, keys, strict=False):
            merged += (literal, key)
        merged.append(self.parts[-1])
        self.parts = merged
        self.slots = tuple((i, merged[i]) for i in range(1, len(merged), 2))

    def fill(self, subs: dict[str, str]) -> str:
        if not self.slots:
            return self.parts[0]
        out = self.parts.copy()
        for index, key in self.slots:
            out[index] = subs.get(key, key)
        return "".join(out)


@functools.lru_cache(maxsize=64)
def _segments(text: str) -> _Segments:
    # Keyed by the part's text: Python caches a str's hash, so a send pays the split once
    # and each recipient pays a dictionary lookup.
    return _Segments(text)
