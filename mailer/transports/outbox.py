"""The outbox transport: one ``.eml`` file per message under ``MAILER_OUTBOX_DIR``.

Used for demos, previews and offices that hand files to another system. Each file is written
to a temporary name and renamed into place, so a reader (or a crash) never sees half a
message; the name carries the campaign and delivery ids (``c12-d3456.eml``), so sending the
same delivery again replaces its file instead of adding a second copy.
"""

from __future__ import annotations

import errno
import os
import tempfile
import uuid
from pathlib import Path

from mailer.transports.base import Batch, Recipient, RecipientResult
from mailer.transports.errors import DiskFull
from mailer.transports.mime import build_mime
from mailer.transports.substitution import personalize

#: What a write says when there is no space (or quota) left.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def message_filename(campaign_id: int | None, recipient: Recipient,
                     kind: str | None = None) -> str:
    """``c12-d345.eml`` for a campaign's delivery (what recovery looks for); a one-off never
    replaces one: ``confirm_subscription-….eml``, ``welcome-….eml`` for a system email
    (``kind``, its template), ``cx-test-….eml`` for a test copy."""
    campaign = "x" if campaign_id is None else str(campaign_id)
    if recipient.delivery_id is None:
        unique = uuid.uuid4().hex[:12]
        if kind and kind != "test":
            return f"{kind}-{unique}.eml"
        return f"c{campaign}-test-{unique}.eml"
    return f"c{campaign}-d{recipient.delivery_id}.eml"


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def send(self, batch: Batch) -> list[RecipientResult]:
        """Write one file per recipient. A recipient whose message cannot be built fails alone;
        a full disk raises DiskFull with the results of the files already written (no half
        file is left); any other unwritable folder raises OSError for the batch (the engine
        pauses the campaign)."""
        results: list[RecipientResult] = []
        try:
            self._write_all(batch, results)
        except OSError as exc:
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            raise DiskFull(f"disk full writing the outbox ({exc.strerror}: {self.directory})",
                           done=results) from exc
        return results

    def _write_all(self, batch: Batch, results: list[RecipientResult]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for recipient in batch.recipients:
            try:
                mime = build_mime(batch.message, personalize(batch.message, recipient), recipient)
            except (ValueError, TypeError) as exc:
                results.append(RecipientResult(recipient, False, error=f"cannot build: {exc}"))
                continue
            kind = batch.message.categories[0] if batch.message.categories else None
            name = message_filename(batch.message.campaign_id, recipient, kind)
            write_atomically(self.directory / name, mime.as_bytes())
            results.append(RecipientResult(recipient, True, provider_message_id=name))

    def close(self) -> None:
        pass


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either nothing or all of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
