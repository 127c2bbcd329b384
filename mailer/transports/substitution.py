"""Substitution: how a compiled message's placeholders become one recipient's values.

This is the contract between a ``CompiledMessage`` and the transport that delivers it. Each
per-recipient value has two keys, one for the HTML part (``-name_h-``, value HTML-escaped by
the renderer) and one for the text part (``-name_t-``, verbatim), because SendGrid applies
one ``substitutions`` map to every part of a message. SendGrid fills them server-side; the
outbox and SMTP transports fill them here with ``personalize``, in one pass per part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailer.transports.base import CompiledMessage, Recipient

#: The values a template can print per recipient (``recipient.<name>``).
FIELDS = ("name", "email", "unsubscribe_url", "preferences_url")
_SHORT = {"name": "name", "email": "email", "unsubscribe_url": "unsub",
          "preferences_url": "prefs"}
HTML_KEYS = {f: f"-{_SHORT[f]}_h-" for f in FIELDS}
TEXT_KEYS = {f: f"-{_SHORT[f]}_t-" for f in FIELDS}
#: Per-recipient values a template prints by a name of its own rather than as a ``recipient``
#: attribute: a confirmation email's ``confirm_url`` (HTML key, text key). Filled only for
#: recipients given one, so a batch of confirmations is rendered once.
LINK_KEYS = {"confirm_url": ("-confirm_h-", "-confirm_t-")}
ALL_KEYS = (frozenset(HTML_KEYS.values()) | frozenset(TEXT_KEYS.values())
            | frozenset(key for pair in LINK_KEYS.values() for key in pair))
PLACEHOLDER_RE = re.compile("|".join(re.escape(k) for k in sorted(ALL_KEYS)))


@dataclass(slots=True)
class PersonalizedMessage:
    """One recipient's finished message: what the outbox and SMTP transports put in MIME.

    (Not frozen: a frozen dataclass's ``__init__`` costs about a microsecond per recipient.)
    """

    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)


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
