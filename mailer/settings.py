"""Configuration: every knob the product has, read from ``MAILER_*`` variables and ``./.env``.

``get_settings()`` is the one way code obtains settings; tests call ``get_settings.cache_clear()``
after changing the environment. Invalid values raise ``ConfigError`` with a one-line reason that
names the variable, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import functools
from datetime import date, time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mailer.errors import ConfigError

PLACEHOLDER_POSTAL_ADDRESS = "Office postal address not configured (set MAILER_POSTAL_ADDRESS)"
PACKAGE_DIR = Path(__file__).resolve().parent
#: The office-editable templates that ship with the project (used when MAILER_TEMPLATES_DIR
#: does not exist, e.g. when `mailer demo` runs in an empty folder).
BUNDLED_TEMPLATES_DIR = PACKAGE_DIR.parent / "templates"


#: How every time is shown to the office, in its zone (``2026-11-23 07:00 CST``): the CLI,
#: the dashboard, reports and the reasons the product writes all use it.
TIME_FORMAT = "%Y-%m-%d %H:%M %Z"


class Settings(BaseSettings):
    """All settings; names match ``../shared/CONTRACT.md`` without the ``MAILER_`` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="MAILER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///mailer.db"
    transport: str = "outbox"
    outbox_dir: Path = Path("outbox")
    #: Where a sender that must exit while the database is unreachable writes the outcomes the
    #: provider gave it (JSON lines); every start applies them before in-doubt recovery.
    journal_dir: Path = Path("journal")
    #: How long the long-running processes wait out an unreachable database (seconds) before
    #: giving up, and the longest wait between their tries.
    db_outage_seconds: float = 300.0
    db_retry_max: float = 8.0

    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_timeout: float = 30.0
    sendgrid_webhook_public_key: SecretStr | None = None
    webhook_max_age: int = 300
    webhook_max_body: int = 5 * 1024 * 1024

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: str = "starttls"  # starttls | tls | none
    smtp_timeout: float = 30.0

    from_email: str = "newsletter@senator.example.gov"
    #: Default: the office's name (MAILER_OFFICE_NAME), so an office sets its name once.
    from_name: str = ""
    reply_to: str | None = None
    office_name: str = "Office of the Senator"
    #: The office's state (two letters): ``constituent = "yes"`` in a segment keeps a mailing
    #: to subscribers who live there (their state given, or derived from their ZIP code).
    office_state: str | None = None
    logo_url: str | None = None
    postal_address: str = PLACEHOLDER_POSTAL_ADDRESS
    public_url: str = "http://localhost:8000"
    secret_key: SecretStr | None = None
    timezone: str = "America/Chicago"
    templates_dir: Path = Path("templates")

    batch_size: int = 1000
    rate_limit: float = 0
    concurrency: int = 8
    #: The ceiling the requests in flight may grow to when the provider answers slowly
    #: (``mailer.delivery.pacing.InFlightWindow``); MAILER_CONCURRENCY is where they start.
    max_in_flight: int = 32
    #: Processes one `campaigns send` spreads a large campaign over (0: one per core, up to 4).
    send_processes: int = 0
    in_doubt_grace: int = 600
    #: What to do with in-doubt rows when no webhook is configured: "resend" after the grace
    #: period, or "hold" them for a person to decide.
    in_doubt_policy: str = "resend"
    lease_seconds: int = 120
    max_consecutive_errors: int = 5
    #: Delivery engine: tries per batch for temporary failures, and the exponential backoff
    #: (seconds, with jitter) between them; a 429 waits until X-RateLimit-Reset instead.
    retry_attempts: int = 5
    retry_backoff: float = 0.5
    retry_backoff_max: float = 30.0
    soft_bounce_threshold: int = 3
    #: Queued system emails (signup confirmations): ``mailer serve`` sends them itself in a
    #: background thread unless this is false (then ``mailer worker`` or ``mailer run`` does);
    #: tries per email, and the first wait between tries (seconds, doubling, at most an hour).
    web_sends_mail: bool = True
    mail_queue_attempts: int = 5
    mail_queue_backoff: float = 5.0

    #: On a list with more people than this, the campaign, segment and schedule pages show
    #: each audience count as last made (with its time, at most a minute old when viewed
    #: again) and recount it in the background (``mailer.delivery.reach``); 0: always.
    audience_live_limit: int = 100_000

    require_approval: bool = True
    election_dates: Annotated[list[date], NoDecode] = Field(default_factory=list)
    blackout_days: int = 60
    quiet_hours: str | None = None
    misfire_grace: int = 21600
    #: Scheduler leadership: a lease (SQLite) lasts this long unless renewed; a standby checks
    #: about four times per lease whether it can take over.
    leader_lease_seconds: float = 15.0
    #: How often the leading scheduler mirrors scheduled campaigns into its job store and looks
    #: for overdue ones (seconds).
    scheduler_tick: float = 5.0
    feed_poll_interval: int = 900
    max_import_bytes: int = 20 * 1024 * 1024
    #: Seconds to wait for a release page or feed URL before giving up.
    fetch_timeout: float = 20.0

    @field_validator("election_dates", mode="before")
    @classmethod
    def _split_dates(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("transport")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        if value not in {"outbox", "sendgrid", "smtp"}:
            raise ValueError("must be one of outbox, sendgrid, smtp")
        return value

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError("must be between 1 and 1000 (SendGrid takes at most 1000 per request)")
        return value

    @field_validator("concurrency", "max_in_flight")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise ValueError("must be between 1 and 64")
        return value

    @field_validator("rate_limit", "in_doubt_grace", "webhook_max_age", "blackout_days",
                     "misfire_grace", "audience_live_limit")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("leader_lease_seconds", "scheduler_tick", "db_outage_seconds",
                     "db_retry_max", "mail_queue_attempts", "mail_queue_backoff")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than zero")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("smtp_tls")
    @classmethod
    def _smtp_tls(cls, value: str) -> str:
        value = value.lower()
        if value in {"true", "1", "yes"}:
            return "starttls"
        if value in {"false", "0", "no"}:
            return "none"
        if value not in {"starttls", "tls", "none"}:
            raise ValueError("must be starttls, tls or none")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quiet_hours(value)
        return value

    @model_validator(mode="after")
    def _from_name(self) -> Settings:
        if not self.from_name.strip():
            self.from_name = self.office_name
        return self

    @model_validator(mode="after")
    def _in_doubt_policy(self) -> Settings:
        if self.in_doubt_policy not in {"resend", "hold"}:
            raise ValueError("MAILER_IN_DOUBT_POLICY must be resend or hold")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def quiet_window(self) -> tuple[time, time] | None:
        return parse_quiet_hours(self.quiet_hours) if self.quiet_hours else None

    @property
    def effective_templates_dir(self) -> Path:
        """The configured template folder, or the bundled one when it does not exist."""
        if self.templates_dir.is_dir():
            return self.templates_dir
        return BUNDLED_TEMPLATES_DIR

    @property
    def postal_address_is_placeholder(self) -> bool:
        return self.postal_address == PLACEHOLDER_POSTAL_ADDRESS


def parse_quiet_hours(value: str) -> tuple[time, time]:
    """Parse ``"21:00-07:00"``. Raises ValueError with a readable message."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise ValueError(f"quiet hours {value!r} must look like 21:00-07:00") from None
    if start == end:
        raise ValueError("quiet hours must not start and end at the same time")
    return start, end


@functools.cache
def get_settings() -> Settings:
    """Load and validate settings once per process.

    Raises ConfigError naming the first bad variable.
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = first["loc"][0] if first["loc"] else ""
    name = f"MAILER_{str(field).upper()}" if field else "settings"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"invalid setting {name}: {message}"
