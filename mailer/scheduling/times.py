"""Reading the times people type, in the office's zone (MAILER_TIMEZONE), DST-correct.

- ``parse_when("2026-11-23T07:00")``: a naive ISO 8601 time is office time; an explicit offset
  (``Z``, ``-05:00``) is honoured. A wall time that does not exist (skipped when clocks spring
  forward) is refused; an ambiguous one (repeated when they fall back) is its first occurrence.
- ``parse_digest_at("Fri 16:00", "weekly")``: a weekday and a time for weekly digests, a time
  alone for daily ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time

from mailer.errors import InvalidInput
from mailer.settings import Settings

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_when(text: str, settings: Settings) -> datetime:
    """An ISO 8601 time as aware UTC. Raises InvalidInput with a one-line reason."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-23T07:00 or "
            "2026-11-23T07:00-06:00)") from None
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    local = value.replace(tzinfo=settings.zone)
    round_trip = local.astimezone(UTC).astimezone(settings.zone).replace(tzinfo=None)
    if round_trip != value:
        raise InvalidInput(
            f"{value:%Y-%m-%d %H:%M} does not exist in {settings.timezone} (the clocks "
            f"spring forward that night); choose {round_trip:%H:%M} or later")
    return local.astimezone(UTC)


@dataclass(frozen=True)
class DigestTime:
    """When a digest goes out: ``weekday`` (``mon``…``sun``, None for daily) at ``at``."""

    weekday: str | None
    at: time

    def __str__(self) -> str:
        clock = self.at.strftime("%H:%M")
        return f"{self.weekday.capitalize()} {clock}" if self.weekday else clock


def parse_digest_at(text: str, frequency: str) -> DigestTime:
    """``"Fri 16:00"`` (weekly) or ``"07:00"`` (daily). Raises InvalidInput."""
    if frequency not in ("daily", "weekly"):
        raise InvalidInput(f"a digest goes out daily or weekly, not {frequency!r}")
    parts = text.split()
    weekday = None
    if len(parts) == 2:
        if not _is_day_name(parts[0]):
            raise InvalidInput(f"{text!r}: {parts[0]!r} is not a day of the week")
        weekday = parts[0][:3].lower()
    elif len(parts) != 1:
        raise InvalidInput(f'{text!r} must look like "Fri 16:00" or "07:00"')
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", parts[-1])
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise InvalidInput(f"{text!r}: {parts[-1]!r} is not a time like 16:00")
    at = time(int(match[1]), int(match[2]))
    if frequency == "weekly" and weekday is None:
        raise InvalidInput(f'a weekly digest needs a day, e.g. "Fri {parts[-1]}"')
    if frequency == "daily" and weekday is not None:
        raise InvalidInput(f'a daily digest goes out every day: give just the time, "{parts[-1]}"')
    return DigestTime(weekday, at)


_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _is_day_name(word: str) -> bool:
    """``Fri``, ``fri``, ``Friday`` and ``Fri.`` are days; ``Frog`` is not."""
    word = word.lower().rstrip(".")
    return len(word) >= 3 and any(full.startswith(word) for full in _FULL_NAMES)
