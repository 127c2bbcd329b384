"""Structured JSON logs: one line per hand-off and per provider event.

``log_event(kind, **fields)`` writes ``{"ts": ..., "kind": kind, ...fields}`` as one JSON line
on the ``mailer.events`` logger at INFO. Callers pass ids and outcomes (campaign, delivery,
attempt, outcome, batch, provider ids); the helper guarantees no secret reaches a log:
fields whose names look secret are replaced by ``"[redacted]"``, ``SecretStr`` values never
print, and email addresses are masked to ``j***@example.org`` (a log is not a mailing list).

Cheap when INFO is off: nothing is formatted.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretBytes, SecretStr

LOGGER_NAME = "mailer.events"
logger = logging.getLogger(LOGGER_NAME)

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"(secret|passw|token|api_?key|authorization|signature|private|credential|cookie)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-]+)@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")


def log_event(kind: str, /, **fields: Any) -> None:
    """Log one structured event. Must never raise: logging cannot break a send."""
    if not logger.isEnabledFor(logging.INFO):
        return
    try:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "kind": kind}
        record.update({name: _clean(name, value) for name, value in fields.items()})
        logger.info(json.dumps(record, default=str, ensure_ascii=False, separators=(",", ":")))
    except Exception:  # noqa: BLE001 - a log line is never worth a failed send
        logger.debug("could not log event %s", kind, exc_info=True)


def _clean(name: str, value: Any) -> Any:
    if _SECRET_NAME.search(name) or isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, str):
        return mask_emails(value)
    if isinstance(value, dict):
        return {str(k): _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(name, item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def mask_emails(text: str) -> str:
    """``jane.doe@example.org`` -> ``j***@example.org`` everywhere in ``text``."""
    if "@" not in text:
        return text
    return _EMAIL.sub(lambda m: f"{m.group(1)[:1]}***@{m.group(2)}", text)
