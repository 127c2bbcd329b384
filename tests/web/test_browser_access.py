"""The users, API tokens and digests pages, and the live audience split, in headless Chromium
at a phone's width: nothing scrolls sideways, every field has a label, text has AA contrast,
no script error."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.scheduling.models import Digest
from mailer.storage.base import utcnow
from tests.campaigns.factory import add_subscriber as add_reader
from tests.web.conftest import add_user
from tests.web.test_browser import (  # noqa: F401 (fixtures)
    CHROMIUM,
    PASSWORD,
    _low_contrast,
    _unlabelled_inputs,
    browser,
    server,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def phone(browser):  # noqa: F811
    _, chromium = browser
    context = chromium.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems
    yield page
    context.close()


def _fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"{page.url} is {width}px wide"
    assert _unlabelled_inputs(page) == [], page.url
    assert _low_contrast(page) == [], page.url


def test_access_and_digest_pages_on_a_phone(phone, server, db, artifacts_dir):  # noqa: F811
    base, _live, _app = server
    add_user(db, "ada", "admin", PASSWORD)
    add_user(db, "alice", "author", PASSWORD)
    with db.session() as session:
        session.add(Digest(name="Weekly digest", frequency="weekly", at="Fri 16:00",
                           query='county = "Cass"', last_run_at=utcnow() - timedelta(days=7)))
        add_reader(session, "now@example.org", county="Cass")
        add_reader(session, "week@example.org", county="Cass", frequency="weekly")
    phone.goto(f"{base}/admin/login")
    phone.fill("#name", "ada")
    phone.fill("#password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url("**/admin/campaigns")

    phone.goto(f"{base}/admin/users")
    _fits(phone)
    phone.screenshot(path=str(artifacts_dir / "access-users-375.png"), full_page=True)
    phone.click("text=alice")
    _fits(phone)
    phone.goto(f"{base}/admin/tokens")
    phone.fill("#name", "website script with a long descriptive name")
    phone.click("text=Create token")
    assert phone.input_value("#secret").startswith("mlr_")
    _fits(phone)
    phone.screenshot(path=str(artifacts_dir / "access-token-created-375.png"), full_page=True)
    phone.click("text=Revoke…")  # asks first
    assert "Revoke the API token" in phone.text_content("h1")
    _fits(phone)

    phone.goto(f"{base}/admin/digests")
    _fits(phone)
    phone.screenshot(path=str(artifacts_dir / "access-digests-375.png"), full_page=True)
    phone.click("text=Run now…")
    assert "to up to 1 person?" in phone.text_content("h1")

    # The live count on the campaign form says who gets it now and who in a digest.
    phone.goto(f"{base}/admin/segments/new")
    phone.fill("#query", 'county = "Cass"')
    phone.locator('[data-field="split"]').wait_for(state="visible")
    assert phone.text_content('[data-field="now"]') == "1"
    assert phone.text_content('[data-field="in-digests"]') == "1"
    _fits(phone)
    assert phone.problems == []
