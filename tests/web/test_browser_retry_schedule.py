"""In headless Chromium on a 375 px phone: the schedule page and a sent campaign's retry
(button, confirmation page, answer) fit the screen without scrolling sideways."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.campaigns.models import CampaignStatus as S
from mailer.delivery.engine import send_campaign
from mailer.scheduling import digests
from mailer.storage.base import utcnow
from mailer.transports.mock import MockTransport, refuse
from tests.campaigns.factory import add_audience, add_campaign
from tests.support.campaigns import add_subscribers, approved_campaign
from tests.web.conftest import add_user
from tests.web.test_browser import CHROMIUM, PASSWORD, browser, server  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def phone(browser):  # noqa: F811 - the imported fixture
    _, chromium = browser
    context = chromium.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def test_schedule_and_retry_fit_a_phone(phone, server, db, settings, artifacts_dir):  # noqa: F811
    base, _, _ = server
    add_user(db, "bob", "approver")
    add_subscribers(db, 4)
    sent = approved_campaign(db, subject="A long subject line about the farm bill's "
                             "conservation title and what it means for North Dakota")
    send_campaign(db, settings, sent, transport=MockTransport(refuse(
        {"person1@example.org": "refused (451): try again later"})))
    with db.session() as session:
        add_audience(session, 2)
        add_campaign(session, status=S.SCHEDULED, approved_by="bob",
                     scheduled_at=utcnow() + timedelta(days=1))
        digests.create_digest(session, settings, frequency="daily", at="07:00")
    phone.goto(f"{base}/admin/login")
    phone.fill("#name", "bob")
    phone.fill("#password", PASSWORD)
    phone.click("button:has-text('Log in')")
    phone.goto(f"{base}/admin/schedule")
    assert phone.locator("h2").count() >= 14  # a daily digest: every day has a run
    assert phone.evaluate(FITS)
    phone.screenshot(path=str(artifacts_dir / "web-schedule-375.png"), full_page=True)
    phone.goto(f"{base}/admin/campaigns/{sent}")
    phone.click("button:has-text('Retry 1 failed')")
    phone.wait_for_selector("text=Send again to 1 person whose delivery failed?")
    assert phone.evaluate(FITS)
    phone.click("button:has-text('Send again')")
    phone.wait_for_selector("text=Sending again to 1 person whose delivery failed.")
    assert phone.evaluate(FITS)
