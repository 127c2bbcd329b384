"""Content filters see a clean message: a campaign email as the outbox writes it scores 0.0
with SpamAssassin's default local rules (``spamassassin -L -t``). Runs where Debian's
``spamassassin`` is installed (``.ci/run`` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from mailer.delivery.engine import send_campaign
from tests.support.campaigns import add_subscribers, approved_campaign

SPAMASSASSIN = shutil.which("spamassassin")


@pytest.mark.skipif(SPAMASSASSIN is None, reason="spamassassin is not installed")
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_campaign_email_scores_zero(db, settings):
    add_subscribers(db, 1)
    campaign_id = approved_campaign(db)
    send_campaign(db, settings, campaign_id)
    [message] = sorted(settings.outbox_dir.glob(f"c{campaign_id}-d*.eml"))
    result = subprocess.run([SPAMASSASSIN, "-L", "-t"], input=message.read_bytes(),
                            capture_output=True, timeout=120)
    report = result.stdout.decode("utf-8", "replace")
    score = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", report)
    assert score is not None, report[-2000:]
    assert float(score.group(1)) <= 0.0, report[report.index("Content analysis"):]
