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


@dataclass(slots=True)
class PersonalizedMessage:
    """One recipient's finished message: what the outbox and SMTP transports put in MIME.

    (Not frozen: a frozen dataclass's ``__init__`` costs about a microsecond per recipient.)
    """

    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)


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
                  delivery_id: int | None = None) -> Recipient:
        """The recipient with its placeholder values (HTML values escaped, text verbatim).

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


def personalize(message: CompiledMessage, recipient: Recipient) -> PersonalizedMessage:
    """Fill ``message``'s placeholders with ``recipient``'s values, in one pass per part.

    A key the recipient lacks is left in place (so a bug shows, rather than silently vanishing).
    """
    subject, html, text = _parts(message)
    subs = recipient.substitutions
    headers = {**message.headers, **recipient.headers}
    return PersonalizedMessage(subject.fill(subs), html.fill(subs), text.fill(subs), headers)


def substitute(text: str, substitutions: dict[str, str]) -> str:
    """Replace every placeholder in ``text`` (the same one-pass fill as ``personalize``)."""
    return _Segments(text).fill(substitutions)


class _Segments:
    """A compiled part split at its placeholders: literal, key, literal, key, …, literal."""

    __slots__ = ("parts", "slots")

    def __init__(self, text: str):
        literals = PLACEHOLDER_RE.split(text)
        keys = PLACEHOLDER_RE.findall(text)
        # split() drops the separators; interleave them back at the odd positions.
        merged: list[str] = []
        for literal, key in zip(literals, keys, strict=False):
            merged += (literal, key)
        merged.append(literals[-1])
        self.parts = merged
        self.slots = tuple((i, merged[i]) for i in range(1, len(merged), 2))

    def fill(self, subs: dict[str, str]) -> str:
        if not self.slots:
            return self.parts[0]
        out = self.parts.copy()
        for index, key in self.slots:
            out[index] = subs.get(key, key)
        return "".join(out)


#: id(message) -> (message, its split parts). Holding the message keeps its id from being
#: reused; a send uses one message, so a handful of entries is plenty.
_SPLIT_CACHE: dict[int, tuple[CompiledMessage, tuple[_Segments, _Segments, _Segments]]] = {}
_SPLIT_CACHE_SIZE = 16


def _parts(message: CompiledMessage) -> tuple[_Segments, _Segments, _Segments]:
    entry = _SPLIT_CACHE.get(id(message))
    if entry is not None and entry[0] is message:
        return entry[1]
    parts = (_Segments(message.subject), _Segments(message.html), _Segments(message.text))
    if len(_SPLIT_CACHE) >= _SPLIT_CACHE_SIZE:
        _SPLIT_CACHE.clear()
    _SPLIT_CACHE[id(message)] = (message, parts)
    return parts
