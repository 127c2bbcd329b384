"""``mailer doctor``: checks the configuration and says what to fix, one line per finding."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from email_validator import EmailNotValidError, validate_email

from mailer.errors import MailerError
from mailer.render.check import check_all
from mailer.settings import Settings
from mailer.storage.db import current_revision, head_revision, open_database

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # ok | warn | fail
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def run_checks(settings: Settings) -> list[Finding]:
    """Every check, in the order a person should fix them. Never raises."""
    checks = (_database, _postal_address, _sender, _public_url, _transport, _webhook,
              _templates, _schedule_rules)
    findings: list[Finding] = []
    for check in checks:
        try:
            findings.extend(check(settings))
        except MailerError as exc:
            findings.append(Finding(check.__name__.strip("_"), FAIL, str(exc)))
    return findings


def _database(settings: Settings) -> list[Finding]:
    db = open_database(settings, migrate=False)
    try:
        revision, head = current_revision(db.engine), head_revision()
    finally:
        db.dispose()
    if revision != head:
        return [Finding("database", WARN, f"schema is at {revision or 'nothing'}, newest is {head}:"
                        " run `mailer init`")]
    return [Finding("database", OK, f"reachable, schema {revision}")]


def _postal_address(settings: Settings) -> list[Finding]:
    if settings.postal_address_is_placeholder or not settings.postal_address.strip():
        return [Finding("postal_address", FAIL, "set MAILER_POSTAL_ADDRESS to the office's postal"
                        " address: CAN-SPAM requires it in every email footer")]
    return [Finding("postal_address", OK, settings.postal_address)]


def _sender(settings: Settings) -> list[Finding]:
    findings = []
    for name in ("from_email", "reply_to"):
        value = getattr(settings, name)
        if value is None:
            continue
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError as exc:
            findings.append(Finding(name, FAIL, f"MAILER_{name.upper()} {value!r}: {exc}"))
    if settings.from_email.endswith(".example.gov"):
        findings.append(Finding("from_email", WARN, "MAILER_FROM_EMAIL is the sample address;"
                                " set the office's sending address"))
    return findings or [Finding("sender", OK, f"{settings.from_name} <{settings.from_email}>")]


def _public_url(settings: Settings) -> list[Finding]:
    url = settings.public_url
    if url.startswith("http://") and "localhost" not in url and "127.0.0.1" not in url:
        return [Finding("public_url", FAIL, "MAILER_PUBLIC_URL must be https:// so unsubscribe"
                        " links work in Gmail and Yahoo (RFC 8058)")]
    if "localhost" in url or "127.0.0.1" in url:
        return [Finding("public_url", WARN, f"MAILER_PUBLIC_URL is {url}: links in sent email"
                        " will not work for constituents")]
    return [Finding("public_url", OK, url)]


def _transport(settings: Settings) -> list[Finding]:
    if settings.transport == "sendgrid" and settings.sendgrid_api_key is None:
        return [Finding("transport", FAIL,
                        "MAILER_TRANSPORT=sendgrid needs MAILER_SENDGRID_API_KEY")]
    if settings.transport == "smtp" and not settings.smtp_host:
        return [Finding("transport", FAIL, "MAILER_TRANSPORT=smtp needs MAILER_SMTP_HOST")]
    if settings.transport == "outbox":
        return [Finding("transport", WARN, f"outbox: messages are written to {settings.outbox_dir}/"
                        " and not sent; set MAILER_TRANSPORT=sendgrid or smtp to send")]
    return [Finding("transport", OK, settings.transport)]


def _webhook(settings: Settings) -> list[Finding]:
    if settings.transport != "sendgrid":
        return []
    if settings.sendgrid_webhook_public_key is None:
        return [Finding("webhook", WARN, "MAILER_SENDGRID_WEBHOOK_PUBLIC_KEY is not set: bounces"
                        " and complaints will not suppress anyone, and in-doubt sends follow"
                        f" MAILER_IN_DOUBT_POLICY={settings.in_doubt_policy}")]
    return [Finding("webhook", OK, "signed Event Webhook key set")]


def _templates(settings: Settings) -> list[Finding]:
    problems = check_all(settings)
    if problems:
        return [Finding("templates", FAIL, str(problem)) for problem in problems]
    return [Finding("templates", OK, f"all templates in {settings.effective_templates_dir} render")]


def _schedule_rules(settings: Settings) -> list[Finding]:
    dates = ", ".join(d.isoformat() for d in settings.election_dates) or "none"
    quiet = settings.quiet_hours or "off"
    return [Finding("schedule", OK, f"zone {settings.timezone}; quiet hours {quiet};"
                    f" election dates {dates} (blackout {settings.blackout_days} days)")]
