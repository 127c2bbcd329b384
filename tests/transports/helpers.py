"""Messages and recipients shaped like the renderer's (same placeholder keys)."""

from mailer.transports.base import CompiledMessage, Recipient


def message(**overrides) -> CompiledMessage:
    fields = dict(
        subject="Heitkamp acts on trafficking, -name_t-",
        html="<p>Dear -name_h-,</p><p><a href=\"-unsub_h-\">Unsubscribe</a></p>",
        text="Dear -name_t-,\n\nUnsubscribe: -unsub_t-\n",
        from_email="news@senator.example.gov", from_name="Office of the Senator",
        reply_to="press@senator.example.gov", campaign_id=7,
        headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        categories=("campaign-7", "press-release"),
    )
    fields.update(overrides)
    return CompiledMessage(**fields)


def recipient(n: int, *, email: str | None = None, name: str | None = "Pat Doe") -> Recipient:
    email = email or f"person{n}@example.org"
    unsub = f"https://news.senator.example.gov/unsubscribe/tok{n}"
    return Recipient(
        email=email, name=name, delivery_id=100 + n, subscriber_id=n,
        substitutions={"-name_h-": name or "friend", "-name_t-": name or "friend",
                       "-unsub_h-": unsub, "-unsub_t-": unsub},
        headers={"List-Unsubscribe": f"<{unsub}>"},
    )
