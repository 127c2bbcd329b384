"""Render a campaign once into a ``CompiledMessage`` (HTML with inlined CSS + text), with
placeholders where each recipient's values go.

The HTML goes through css-inline at render time: every rule is moved into ``style``
attributes (Gmail and Outlook ignore or strip ``<style>``), only at-rules such as media
queries stay in a ``<style>`` block, and ``<link>`` stylesheets are dropped, never fetched.
A message that would be clipped by Gmail (over 102 KB of HTML) fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import css_inline

from mailer.errors import InvalidInput, NotFound, TemplateError
from mailer.render.context import (
    campaign_preheader,
    digest_context,
    intro_context,
    links_context,
    office_context,
    release_context,
)
from mailer.render.environment import environment, render, template_kind
from mailer.render.placeholders import (
    PLACEHOLDER_RE,
    RecipientPlaceholders,
    defuse,
    neutral_substitutions,
    substitute,
)
from mailer.settings import Settings
from mailer.transports.base import CompiledMessage

#: Gmail clips a message whose HTML exceeds 102 KB ("[Message clipped] View entire message").
GMAIL_CLIP_BYTES = 102 * 1024
#: Room left per placeholder for the value that replaces it (a URL with a signed token).
PLACEHOLDER_ALLOWANCE = 160
_FAKE_REPLY = re.compile(r"^\s*(re|fw|fwd|aw|tr)\s*:", re.IGNORECASE)
SHARED_HEADERS = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

_INLINER = css_inline.CSSInliner(
    keep_at_rules=True, keep_style_tags=False, keep_link_tags=False,
    load_remote_stylesheets=False,
)


def compile_campaign(campaign: Any, releases: Sequence[Any], settings: Settings, *,
                     web_view: bool = False) -> CompiledMessage:
    """Render ``campaign`` once, with placeholders for per-recipient values.

    Takes data and fetches none: ``releases`` are the campaign's releases, gathered by the
    caller (``mailer.campaigns.content``) — the one release of a release campaign, rendered
    with ``campaign.template``, or a digest's releases in order. Raises NotFound (a release
    campaign without its release), InvalidInput (a digest without releases), TemplateError
    (template broken, of the wrong kind, or over 102 KB).
    """
    if campaign.kind == "digest":
        return compile_digest(releases, settings, subject=campaign.subject,
                              campaign_id=campaign.id, template=campaign.template or "digest",
                              web_view=web_view)
    template = campaign.template or "press_release"
    if template_kind(template) != "release":
        raise TemplateError(f"campaign {campaign.id} sends one release, but template "
                            f"{template!r} is for {template_kind(template)} messages")
    if not releases:
        raise NotFound(f"campaign {campaign.id} has no release (id {campaign.release_id})")
    data = release_context(releases[0], settings)
    extra = {"release": data, "preheader": campaign_preheader(campaign, data),
             "intro": intro_context(getattr(campaign, "intro", None))}
    return _compile(template, settings, subject=campaign.subject,
                    campaign_id=campaign.id, extra=extra, web_view=web_view)


def compile_digest(releases: Sequence[Any], settings: Settings, *, subject: str,
                   campaign_id: int | None = None, template: str = "digest",
                   web_view: bool = False) -> CompiledMessage:
    """Render a digest of ``releases`` (each with its summary and a link). Raises
    InvalidInput for an empty digest, TemplateError for a broken template."""
    if not releases:
        raise InvalidInput("a digest needs at least one release")
    web = links_context(settings, campaign_id)["web"]
    items = digest_context(releases, settings, web)
    titles = "; ".join(item["title"] for item in items[:3])
    extra = {"releases": items, "preheader": titles}
    return _compile(template, settings, subject=subject, campaign_id=campaign_id,
                    extra=extra, web_view=web_view)


def compile_system_message(template_name: str, settings: Settings, *, subject: str,
                           context: dict[str, Any]) -> CompiledMessage:
    """Render a message to one person (``confirm_subscription``, ``welcome``).

    ``context`` adds the template's own values (e.g. ``confirm_url``, ``topics``); it cannot
    replace ``office``, ``links`` or ``recipient``. Raises TemplateError.
    """
    extra = {"preheader": subject, **context}
    return _compile(template_name, settings, subject=subject, campaign_id=None, extra=extra,
                    web_view=False, categories=(template_name,))


def render_web_view(campaign: Any, releases: Sequence[Any], settings: Settings) -> str:
    """The campaign as the public archive shows it: no personal data, neutral links."""
    message = compile_campaign(campaign, releases, settings, web_view=True)
    return substitute(message.html, neutral_substitutions(settings))


def _compile(template: str, settings: Settings, *, subject: str, campaign_id: int | None,
             extra: dict[str, Any], web_view: bool,
             categories: tuple[str, ...] | None = None) -> CompiledMessage:
    subject = honest_subject(subject)
    context = {**extra, **base_context(settings, campaign_id=campaign_id, subject=subject,
                                       web_view=web_view)}
    html = render_html(template, settings, context)
    text = render_text(template, settings, context)
    if categories is None:
        categories = (f"campaign-{campaign_id}",) if campaign_id is not None else ()
    return CompiledMessage(
        subject=subject, html=html, text=text, from_email=settings.from_email,
        from_name=settings.from_name, reply_to=settings.reply_to, campaign_id=campaign_id,
        headers=dict(SHARED_HEADERS), categories=categories,
    )


def base_context(settings: Settings, *, campaign_id: int | None, subject: str,
                 web_view: bool) -> dict[str, Any]:
    """What every template sees besides its own data (``recipient`` is added per part)."""
    return {
        "office": office_context(settings),
        "links": links_context(settings, campaign_id),
        "subject": subject,
        "web_view": web_view,
        "campaign_id": campaign_id,
    }


def render_html(template: str, settings: Settings, context: dict[str, Any]) -> str:
    """Render ``template``.html, inline its CSS and check Gmail's size limit."""
    name = f"{template}.html"
    html = render(environment(settings), name,
                  {**context, "recipient": RecipientPlaceholders(html=True)})
    try:
        html = _INLINER.inline(html)
    except ValueError as exc:  # css-inline's error for CSS it cannot parse
        raise TemplateError(f"{name}: CSS could not be inlined: {exc}") from None
    check_size(name, html)
    return html


def render_text(template: str, settings: Settings, context: dict[str, Any]) -> str:
    name = f"{template}.txt"
    text = render(environment(settings), name,
                  {**context, "recipient": RecipientPlaceholders(html=False)})
    return text.strip() + "\n"


def check_size(name: str, html: str) -> None:
    """Raises TemplateError when the HTML, with room for the recipient's values, would be
    clipped by Gmail."""
    size = len(html.encode("utf-8"))
    size += PLACEHOLDER_ALLOWANCE * len(PLACEHOLDER_RE.findall(html))
    if size > GMAIL_CLIP_BYTES:
        raise TemplateError(
            f"{name} renders to {size / 1024:.1f} KB of HTML; Gmail clips messages over "
            f"{GMAIL_CLIP_BYTES // 1024} KB — shorten the release or the template"
        )


def honest_subject(subject: str) -> str:
    """One line, no surrounding space, nothing that could look like a placeholder.

    Raises InvalidInput for an empty subject, or one that pretends to be a reply or a
    forward ("RE:", "FWD:"): CAN-SPAM forbids misleading subject lines.
    """
    line = " ".join((subject or "").split())
    if not line:
        raise InvalidInput("a message needs a subject")
    if _FAKE_REPLY.match(line):
        raise InvalidInput(f"subject {line!r} pretends to be a reply or forward; "
                           "say what the email is")
    return defuse(line)
