"""The releases pages in headless Chromium at a phone's width: an author uploads a release
file through the form (the upload script and its report page), opens the release, tags it;
no page scrolls sideways at 375 px. Screenshots go to ``artifacts_dir``."""

from __future__ import annotations

import pytest

from tests.conftest import SEED_RELEASE
from tests.web import test_browser as journeys
from tests.web.conftest import add_user
from tests.web.test_browser import CHROMIUM, PASSWORD, _login

#: The journeys' fixtures: headless Chromium, and the app on uvicorn.
browser, server = journeys.browser, journeys.server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]
#: Nothing wider than the 375 px layout (a mobile viewport would widen to fit the content).
FITS = "document.documentElement.scrollWidth <= 375"


def test_author_uploads_tags_and_every_releases_page_fits_a_phone(browser, server, db, topics,
                                                                  artifacts_dir):
    base, _, _ = server
    add_user(db, "alice", "author", PASSWORD)
    _, chromium = browser
    context = chromium.new_context(viewport={"width": 375, "height": 740})
    phone = context.new_page()
    errors: list[str] = []
    phone.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _login(phone, base, "alice")

    phone.goto(f"{base}/admin/releases")
    assert phone.evaluate(FITS)
    phone.set_input_files("#release-file", str(SEED_RELEASE))
    phone.click("button:has-text('Import')")
    phone.wait_for_selector("h1:has-text('Import finished')")
    assert "1 created, 0 updated, 0 already imported" in phone.inner_text("main")
    assert phone.evaluate(FITS)
    phone.screenshot(path=str(artifacts_dir / "releases-01-imported-375.png"), full_page=True)

    phone.click("a:has-text('Heitkamp Leads Training')")
    phone.wait_for_selector("h2:has-text('Topics')")
    assert "May 09, 2014" in phone.inner_text("main")
    assert phone.evaluate(FITS)
    phone.select_option("#add-topic", "agriculture")
    phone.click("button:has-text('Add topic')")
    phone.wait_for_selector("text=Topics: agriculture")
    assert phone.evaluate(FITS)
    phone.screenshot(path=str(artifacts_dir / "releases-02-release-375.png"), full_page=True)

    phone.goto(f"{base}/admin/releases?topic=agriculture")
    assert "Heitkamp Leads Training" in phone.inner_text("main") and phone.evaluate(FITS)
    phone.screenshot(path=str(artifacts_dir / "releases-03-list-375.png"), full_page=True)
    assert errors == []
    context.close()
