"""The seed release as a phone and a desktop mail client show it (headless Chromium)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailer.campaigns.content import compile_for
from mailer.campaigns.models import Campaign
from mailer.render import (
    Personalizer,
    compile_digest,
    compile_system_message,
    personalize,
)
from mailer.render.sample import sample_releases, system_context

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]


@pytest.fixture
def seed_email(db, settings, signer, seed_campaign_id, tmp_path) -> Path:
    with db.session() as session:
        message = compile_for(session, session.get(Campaign, seed_campaign_id), settings)
    recipient = Personalizer(settings, signer, seed_campaign_id).recipient(
        email="constituent.with.a.long.address@example.com", name="Jane Q. Constituent",
        subscriber_id=1)
    path = tmp_path / "seed_release.html"
    path.write_text(personalize(message, recipient).html, encoding="utf-8")
    return path


def test_seed_release_fits_desktop_and_phone(seed_email, artifacts_dir):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 600, "height": 900})
            # Nothing may be fetched: the email must render from its own bytes.
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(seed_email.as_uri())
            page.screenshot(path=str(artifacts_dir / "render_seed_release_600.png"),
                            full_page=True)
            desktop = _measure(page)
            page.set_viewport_size({"width": 375, "height": 800})
            page.screenshot(path=str(artifacts_dir / "render_seed_release_375.png"),
                            full_page=True)
            phone = _measure(page)
        finally:
            browser.close()
    assert requests == [seed_email.as_uri()]
    assert desktop["scroll"] <= 600 and desktop["container"] == 600
    assert phone["scroll"] <= 375, f"horizontal overflow at 375 px: {phone['scroll']} px"
    assert phone["container"] <= 375
    # The media query took over on the phone: narrower gutters, smaller headline.
    assert phone["padding"] == "20px" and desktop["padding"] == "32px"
    assert phone["h1"] < desktop["h1"]
    assert phone["dateline"] == "small-caps"


def _measure(page) -> dict:
    return page.evaluate("""() => {
        const content = document.querySelector('td.content');
        return {
            scroll: document.scrollingElement.scrollWidth,
            container: document.querySelector('table.container').getBoundingClientRect().width,
            padding: getComputedStyle(content).paddingLeft,
            h1: parseFloat(getComputedStyle(document.querySelector('h1')).fontSize),
            dateline: getComputedStyle(document.querySelector('.dateline')).fontVariantCaps,
        };
    }""")


def test_digest_and_confirmation_fit_a_phone(settings, signer, tmp_path, artifacts_dir):
    from playwright.sync_api import sync_playwright

    messages = {
        "digest": compile_digest(sample_releases(), settings, subject="Weekly news: 3 new "
                                 "releases", campaign_id=3),
        "confirm_subscription": compile_system_message(
            "confirm_subscription", settings, subject="Please confirm your subscription",
            context=system_context("confirm_subscription", settings)),
    }
    personalizer = Personalizer(settings, signer, 3)
    widths = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 800})
            for name, message in messages.items():
                path = tmp_path / f"{name}.html"
                path.write_text(personalize(message, personalizer.recipient(
                    email="jane@example.com", name="Jane", subscriber_id=1)).html)
                page.goto(path.as_uri())
                page.screenshot(path=str(artifacts_dir / f"render_{name}_375.png"),
                                full_page=True)
                widths[name] = page.evaluate("document.scrollingElement.scrollWidth")
        finally:
            browser.close()
    assert widths == {"digest": 375, "confirm_subscription": 375}
