"""Rendering: a campaign is rendered once into a ``CompiledMessage`` with placeholders, then
each recipient is personalized by substitution (SendGrid ``substitutions`` for the API
transport, ``personalize`` locally for outbox and SMTP).

    compiled = compile_campaign(campaign, releases, settings)   # releases: campaigns.content
    personalizer = Personalizer(settings, signer, campaign.id)
    recipient = personalizer.recipient(email=..., name=..., subscriber_id=..., delivery_id=...)
    message = personalize(compiled, recipient)   # subject, html, text, headers
"""

from mailer.render.compile import (
    GMAIL_CLIP_BYTES,
    compile_campaign,
    compile_digest,
    compile_system_message,
    render_web_view,
)
from mailer.render.placeholders import (
    CONFIRM_LINK,
    PersonalizedMessage,
    Personalizer,
    neutral_substitutions,
    personalize,
    substitute,
)

__all__ = [
    "CONFIRM_LINK",
    "GMAIL_CLIP_BYTES",
    "PersonalizedMessage",
    "Personalizer",
    "compile_campaign",
    "compile_digest",
    "compile_system_message",
    "neutral_substitutions",
    "personalize",
    "render_web_view",
    "substitute",
]
