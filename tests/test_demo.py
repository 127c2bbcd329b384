"""The foundation's promise: `mailer demo` in an empty folder, on the defaults, does the whole
job, and re-running it mails nobody twice."""

import csv
import email
import json
import os
import re
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _mailer(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    return subprocess.run([sys.executable, "-m", "mailer", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _expected_recipients() -> set[str]:
    """From the bundled sample: followers of the topic who take every release as it comes
    (daily and weekly subscribers get digests instead)."""
    from mailer.demo import SAMPLE_SUBSCRIBERS

    with SAMPLE_SUBSCRIBERS.open(encoding="utf-8") as handle:
        return {row["email"].lower() for row in csv.DictReader(handle)
                if "human-trafficking" in row["topics"].split(";")
                and row.get("frequency", "immediate") in ("", "immediate")}


def _parts(message):
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


def test_demo_in_an_empty_folder_sends_one_valid_email_per_subscriber(tmp_path):
    first = _mailer(tmp_path, "demo")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "mailer.db").exists()
    emls = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(emls) >= 10
    written = re.search(r"│ written\s+│\s+(\d+) │", first.stdout)
    assert written and int(written.group(1)) == len(emls), first.stdout  # the report's word

    recipients = set()
    for path in emls:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message.get_content_type() == "multipart/alternative"
        assert message["List-Unsubscribe"].strip().startswith("<http://localhost:8000/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        recipients.add(message["To"].addresses[0].addr_spec)
        text, html = _parts(message)
        for part in (text, html):
            flat = " ".join(part.replace("&amp;", "&").split()).lower()
            assert "heitkamp leads training in fargo on identifying & reporting" in flat
            assert "joined officials from the u.s. department of homeland security" in flat
            assert "incremental and crucial steps" in flat
            assert "/unsubscribe/" in part and "/preferences/" in part and "/archive/" in part
            assert "set MAILER_POSTAL_ADDRESS" in part  # the placeholder doctor flags
    assert len(recipients) == len(emls)
    assert recipients == _expected_recipients()

    status = _mailer(tmp_path, "campaigns", "status", "1", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    counts = data["counts"]
    assert data["status"] == "sent"
    assert counts["recipients"] == len(emls) == counts["accepted"]
    per_row = sum(v for k, v in counts.items()
                  if k not in ("recipients", "opened", "clicked", "complained", "unsubscribed"))
    assert per_row == counts["recipients"]

    again = _mailer(tmp_path, "demo", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["campaign"]["counts"]["accepted"] == len(emls)
    assert sorted((tmp_path / "outbox").glob("*.eml")) == emls
