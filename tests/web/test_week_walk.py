"""The press office's week in headless Chromium, without the command line.

Only the first admin is made directly (as an office bootstraps with ``mailer users add``);
everything after goes through the dashboard's pages, by clicks, fills and file choosers:

1. the admin adds an author and an approver;
2. the author uploads a release file;
3. the approver uploads the subscriber CSV (importing people is an approver's right in the
   contract: the author is refused, and the walk checks that too);
4. the author saves a segment, creates a draft on it, edits it and sends a test;
5. the approver approves it and schedules it a few seconds ahead (confirmation page first);
6. the real scheduler and send worker (in threads, as ``mailer run`` starts them) send it;
7. the report counts what went out.

The walk runs on SQLite and on PostgreSQL. Each step is shot at 1280 px and 375 px wide into
``test-artifacts/week-walk/`` (SQLite; ``week-walk-postgresql/`` for PostgreSQL; rewritten by
every run), and at 375 px the page must not scroll sideways.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from mailer.campaigns.models import Campaign
from mailer.delivery.worker import run_worker
from mailer.scheduling.scheduler import run_scheduler
from mailer.web.app import create_app
from tests.web.browsing import ARGS, CHROMIUM, overflow_problems, raw_times, serving
from tests.web.conftest import add_user, outbox_messages

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]
ROOT = Path(__file__).resolve().parents[2]
RELEASE_FILE = ROOT / "mailer" / "data" / "release_heitkamp_2014-05-09.txt"
SUBSCRIBERS_CSV = ROOT / "mailer" / "data" / "sample_subscribers.csv"
PASSWORD = "correct horse battery"
WIDE, NARROW, HEIGHT = 1280, 375, 900
#: Cass County people who take every release as it goes out (the sample file's Ole Hanson,
#: Ingrid Sørensen, Mary Lindqvist and Eric Lee; Dale Peterson there takes a daily digest).
SEGMENT_QUERY = 'county = "Cass" and frequency = "immediate"'
AUDIENCE = 4
SEND_WITHIN = 90  # seconds from scheduling until the campaign must be sent


class Walk:
    """The browser, one context (cookie jar) per person, and the numbered screenshots."""

    def __init__(self, chromium, base: str, shots: Path):
        self.chromium, self.base, self.shots, self.step = chromium, base, shots, 0
        self.problems: list[str] = []
        self.contexts = []

    def person(self, name: str):
        """A fresh browser window logged in as ``name``."""
        context = self.chromium.new_context(viewport={"width": WIDE, "height": HEIGHT})
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda exc: self.problems.append(str(exc)))
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{self.base}/admin/login")
        page.fill("#name", name)
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_selector("h1:has-text('Campaigns')")
        return page

    def shoot(self, page, what: str) -> None:
        """``NN-what-1280.png`` and ``NN-what-375.png``; the narrow page must fit. The narrow
        shot is taken with a viewport as tall as the page, not as a full-page shot: headless
        Chromium leaves frames (preview, report charts) below the viewport blank in those."""
        self.step += 1
        stem = f"{self.step:02d}-{what}"
        assert raw_times(page) == [], f"{stem} shows machine timestamps"
        page.screenshot(path=str(self.shots / f"{stem}-{WIDE}.png"), full_page=True)
        page.set_viewport_size({"width": NARROW, "height": HEIGHT})
        try:
            assert overflow_problems(page) == [], f"{stem} scrolls sideways at {NARROW} px"
            tall = page.evaluate("document.documentElement.scrollHeight")
            page.set_viewport_size({"width": NARROW, "height": tall})
            page.wait_for_timeout(200)  # the frames repaint at the new size
            page.screenshot(path=str(self.shots / f"{stem}-{NARROW}.png"))
        finally:
            page.set_viewport_size({"width": WIDE, "height": HEIGHT})

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def office(settings, db, artifacts_dir, backend):
    """The app on uvicorn, with the real scheduler and send worker beside it on the same
    database (ticking faster than production so the walk stays short), and Chromium."""
    shots = artifacts_dir / ("week-walk" if backend == "sqlite" else f"week-walk-{backend}")
    shots.mkdir(exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    fast = {"scheduler_tick": 0.5, "leader_lease_seconds": 2.0, "web_sends_mail": False}
    made = {}

    def make_app(base: str):
        made["settings"] = settings.model_copy(update={**fast, "public_url": base})
        return create_app(made["settings"], db)

    with serving(make_app) as (base, _app):
        live = made["settings"]
        stop = threading.Event()
        threads = [threading.Thread(target=run_scheduler, args=(live, stop, db), daemon=True),
                   threading.Thread(target=run_worker, args=(db, live, stop),
                                    kwargs={"poll_interval": 0.2}, daemon=True)]
        for thread in threads:
            thread.start()
        playwright = sync_playwright().start()
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        walk = Walk(chromium, base, shots)
        try:
            yield walk, live
        finally:
            walk.close()
            chromium.close()
            playwright.stop()
            stop.set()
            for thread in threads:
                thread.join(timeout=30)


def test_a_week_in_the_browser(office, db):
    walk, live = office
    add_user(db, "ada", "admin", PASSWORD)  # the office's first login, made on the server

    admin = walk.person("ada")
    _admin_adds_users(walk, admin)
    author, approver = walk.person("alice"), walk.person("bob")
    release_id = _author_uploads_release(walk, author)
    _approver_imports_subscribers(walk, author, approver)
    _author_saves_segment(walk, author)
    campaign_id = _author_writes_draft(walk, author, release_id)
    _author_sends_test(walk, author, live, campaign_id)
    _approver_approves_and_schedules(walk, approver, live, campaign_id)
    _scheduled_send_goes_out(walk, approver, campaign_id)
    _report_counts_the_audience(walk, approver, live, campaign_id)

    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert (campaign.status, campaign.created_by, campaign.approved_by) == \
            ("sent", "alice", "bob")
    shots = sorted(p.name for p in walk.shots.glob("*.png"))
    assert len(shots) == 2 * walk.step and f"01-admin-adds-users-{NARROW}.png" in shots
    assert walk.problems == []


def _admin_adds_users(walk: Walk, page) -> None:
    page.click("nav >> text=Users")
    for name, role in (("alice", "author"), ("bob", "approver")):
        page.fill("#name", name)
        page.fill("#password", PASSWORD)
        page.select_option("#role", role)
        page.click("button:has-text('Add user')")
        page.wait_for_selector(f"text=User {name} added ({role}).")
    rows = page.locator("table tbody tr")
    found = {rows.nth(i).locator("td").nth(0).inner_text():
             rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())}
    assert found == {"ada": "admin", "alice": "author", "bob": "approver"}
    walk.shoot(page, "admin-adds-users")


def _author_uploads_release(walk: Walk, page) -> int:
    page.click("nav >> text=Releases")
    page.set_input_files("#release-file", str(RELEASE_FILE))
    page.click("form[action='/admin/releases/import'] button[type=submit]")
    page.wait_for_selector("h1:has-text('Import finished')")
    row = page.locator(f"tr[data-source='{RELEASE_FILE.name}']")
    assert row.locator("td").nth(1).inner_text() == "1"  # created
    link = page.locator("li[data-outcome=created] a")
    assert "Heitkamp" in link.inner_text()
    walk.shoot(page, "author-uploads-release")
    return int(link.get_attribute("href").rsplit("/", 1)[1])


def _approver_imports_subscribers(walk: Walk, author, page) -> None:
    # The author has no import button, and the import page itself refuses them.
    author.click("nav >> text=Subscribers")
    assert author.locator("a:has-text('Import a CSV')").count() == 0
    refused = author.goto(f"{walk.base}/admin/subscribers/import")
    assert refused.status == 403
    assert walk.problems[-1].endswith("status of 403 (Forbidden)")  # the console says so too
    walk.problems.pop()
    walk.shoot(author, "author-may-not-import-people")

    page.click("nav >> text=Subscribers")
    page.click("a:has-text('Import a CSV')")
    page.set_input_files("#file", str(SUBSCRIBERS_CSV))
    page.click("form[action='/admin/subscribers/import'] button[type=submit]")
    page.wait_for_selector("h1:has-text('Import finished')")
    expect(page.locator("[data-field=summary]")).to_contain_text("25 rows: 25 created")
    walk.shoot(page, "approver-imports-subscribers")


def _author_saves_segment(walk: Walk, page) -> None:
    page.goto(f"{walk.base}/admin/segments")
    page.click("a[href='/admin/segments/new']")
    page.fill("#name", "cass-every-release")
    page.fill("#query", SEGMENT_QUERY)
    expect(page.locator("[data-field=count]")).to_have_text(str(AUDIENCE))  # the live count
    page.click("button:has-text('Save segment')")
    page.wait_for_selector("h1:has-text('cass-every-release')")
    expect(page.locator("[data-field=count]")).to_have_text(str(AUDIENCE))
    assert page.locator("[data-field=sample] li").count() == AUDIENCE
    walk.shoot(page, "author-saves-segment")


def _author_writes_draft(walk: Walk, page, release_id: int) -> int:
    page.click("nav >> text=Campaigns")
    page.goto(f"{walk.base}/admin/campaigns/new")
    page.select_option("#release_id", str(release_id))
    page.fill("#subject", "Trafficking bill passes")
    page.select_option("#segment", "cass-every-release")
    page.click("button:has-text('Create draft')")
    page.wait_for_selector("text=created as a draft")
    campaign_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    expect(page.locator("[data-field=status]")).to_have_text("draft")
    walk.shoot(page, "author-creates-draft")

    page.click("a:has-text('Edit')")
    page.fill("#subject", "Heitkamp's trafficking bill passes the Senate")
    page.fill("#preheader", "What the bill does for victims in North Dakota")
    page.fill("#intro", "A note from the office: the bill now goes to the House.")
    page.select_option("#template", "press_release")
    walk.shoot(page, "author-edits-draft")
    page.click("button:has-text('Save changes')")
    page.wait_for_selector("h1:has-text(\"Heitkamp's trafficking bill passes the Senate\")")
    frame = page.frame_locator("#preview")
    frame.locator("text=the bill now goes to the House").wait_for()
    expect(page.locator("[data-field=audience]")).to_have_text(str(AUDIENCE))
    walk.shoot(page, "author-saves-draft")
    return campaign_id


def _author_sends_test(walk: Walk, page, live, campaign_id: int) -> None:
    page.fill("#to", "press.secretary@senator.example.gov")
    page.click("button:has-text('Send test')")
    page.wait_for_selector(".notice >> text=test")
    tests = [m for m in outbox_messages(live) if m["Subject"].startswith("[TEST] ")]
    assert [m["To"].addresses[0].addr_spec for m in tests] == \
        ["press.secretary@senator.example.gov"]
    assert "Heitkamp's trafficking bill passes the Senate" in tests[0]["Subject"]
    assert page.locator("button:has-text('Approve')").count() == 0  # not for its author
    walk.shoot(page, "author-sends-test")


def _approver_approves_and_schedules(walk: Walk, page, live, campaign_id: int) -> None:
    page.goto(f"{walk.base}/admin/campaigns/{campaign_id}")
    page.click("button:has-text('Approve')")
    page.wait_for_selector("text=Approved.")
    expect(page.locator("[data-field=status]")).to_have_text("approved")
    walk.shoot(page, "approver-approves")

    # The picker takes whole minutes: the next one at least 15 s away (time to confirm).
    at = (datetime.now(live.zone) + timedelta(seconds=75)).replace(second=0, microsecond=0)
    page.fill("#at", at.strftime("%Y-%m-%dT%H:%M"))
    page.click("button[name=when][value=at]")
    question = page.locator("h1#confirm-question")
    expect(question).to_contain_text(f"Send to {AUDIENCE} people at")
    walk.shoot(page, "approver-confirms-schedule")
    page.click("form:has(input[name=confirmed]) button[type=submit]")
    expect(page.locator("[data-field=status]")).to_have_text("scheduled")
    walk.shoot(page, "approver-schedules")

    page.click("nav >> text=Schedule")
    expect(page.locator("main")).to_contain_text("Heitkamp's trafficking bill passes the Senate")
    walk.shoot(page, "schedule-shows-it")


def _scheduled_send_goes_out(walk: Walk, page, campaign_id: int) -> None:
    page.goto(f"{walk.base}/admin/campaigns/{campaign_id}")
    seen = []
    deadline = time.monotonic() + SEND_WITHIN
    while (status := page.locator("[data-field=status]").inner_text()) != "sent":
        if not seen or seen[-1] != status:
            seen.append(status)
        assert time.monotonic() < deadline, f"not sent within {SEND_WITHIN} s: {seen}"
        time.sleep(1)
        page.reload()
    assert seen[0] == "scheduled" and set(seen) <= {"scheduled", "sending"}
    expect(page.locator("[data-field=text]")).to_have_text(f"{AUDIENCE} / {AUDIENCE}")
    walk.shoot(page, "scheduled-send-goes-out")


def _report_counts_the_audience(walk: Walk, page, live, campaign_id: int) -> None:
    page.click("a:has-text('Report')")
    page.wait_for_selector("dl.counts")
    terms = page.locator("dl.counts dt").all_inner_texts()
    values = page.locator("dl.counts dd").all_inner_texts()
    counts = dict(zip(terms, values, strict=True))
    # The outbox reports no deliveries: what went out is "written", not "0 delivered".
    assert counts["recipients"] == counts["written"] == str(AUDIENCE)
    assert counts["delivered"] == "not reported" and counts["failed"] == "0"
    frame = page.frame_locator("iframe.report-frame")
    expect(frame.locator("body")).to_contain_text("Written")
    walk.shoot(page, "report-counts")

    sent = sorted(m["To"].addresses[0].addr_spec for m in outbox_messages(live)
                  if not m["Subject"].startswith("[TEST] "))
    assert sent == ["eric.lee@example.org", "ingrid.sorensen@example.org",
                    "mary.lindqvist@example.com", "ole.hanson@example.org"]
    assert re.search(r"\bWritten\b", frame.locator("body").inner_text())
