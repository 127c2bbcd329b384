"""The two journeys in headless Chromium (Debian's /usr/bin/chromium) against a real uvicorn
server on 127.0.0.1: a constituent subscribes, confirms from the emailed link, changes
preferences and unsubscribes in one click; the press office logs in, creates, previews,
approves as a second person, sends, and sees it sent. Screenshots go to ``artifacts_dir``.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from mailer.campaigns.models import Campaign
from tests.web.browsing import overflow_problems
from tests.web.conftest import add_subscriber, add_user, link_in, outbox_messages

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "correct horse battery"


@pytest.fixture
def server(settings, db):
    """The app served by uvicorn in a thread; its public URL is the server's own address so
    the links in emails lead back to it."""
    import uvicorn

    from mailer.web.app import create_app

    # Bind first and hand the socket to uvicorn: no window for another process to take the port.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    live = settings.model_copy(update={"public_url": base})
    app = create_app(live, db)
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield base, live, app
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    yield playwright, chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def page(browser):
    _, chromium = browser
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems
    yield page
    context.close()


def _wait_for_mail(settings, count: int, timeout: float = 10) -> list:
    deadline = time.monotonic() + timeout
    while len(messages := outbox_messages(settings)) < count:
        assert time.monotonic() < deadline, f"expected {count} emails, found {len(messages)}"
        time.sleep(0.05)
    return messages


def _unlabelled_inputs(page) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        'input:not([type=hidden]), select, textarea')).filter(el =>
        !el.closest('[aria-hidden=true]') && el.labels.length === 0 &&
        !el.getAttribute('aria-label')).map(el => el.name)""")


CONTRAST_JS = """() => {
  function rgb(text) { const m = text.match(/[\\d.]+/g) || []; return m.map(Number); }
  function lum([r, g, b]) {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  }
  function background(el) {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  }
  const failures = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own || box.width === 0 || el.closest('[aria-hidden=true]')) continue;
    const style = getComputedStyle(el);
    const a = lum(rgb(style.color).slice(0, 3)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) {
      failures.push(`${el.tagName} ${el.textContent.trim().slice(0, 30)} ${ratio.toFixed(2)}`);
    }
  }
  return failures;
}"""


def _low_contrast(page) -> list[str]:
    """Text whose contrast with its background is under WCAG AA (4.5:1, 3:1 when large)."""
    return page.evaluate(CONTRAST_JS)


def test_constituent_journey(page, browser, server, db, topics, artifacts_dir):
    base, live, _ = server
    page.goto(f"{base}/subscribe")
    assert _unlabelled_inputs(page) == []
    assert _low_contrast(page) == []
    # Keyboard: the first Tab reaches the skip link, and it leads to the form.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.fill("#email", "constituent@example.org")
    page.fill("#name", "Casey Constituent")
    page.fill("#zip", "58102")
    page.check("#topic-human-trafficking")
    page.check("#frequency-weekly")
    page.screenshot(path=str(artifacts_dir / "web-01-subscribe.png"), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your email")

    [confirm_mail] = _wait_for_mail(live, 1)  # sent after the response, by a background task
    confirm_url = link_in(confirm_mail, "confirm")
    assert confirm_url.startswith(base)
    page.goto(confirm_url)
    page.wait_for_selector("text=You're subscribed")
    page.screenshot(path=str(artifacts_dir / "web-02-confirmed.png"), full_page=True)

    page.click("text=Choose topics and how often")
    page.wait_for_selector("h1:has-text('Your email preferences')")
    assert page.is_checked("#topic-human-trafficking")
    assert page.is_checked("#frequency-weekly")
    page.check("#topic-agriculture")
    page.uncheck("#topic-human-trafficking")
    page.check("#frequency-daily")
    page.select_option("#pause", "30")
    page.click("button:has-text('Save my choices')")
    page.wait_for_selector("text=Your choices are saved")
    page.wait_for_selector("text=Your emails are paused until")
    assert page.is_checked("#topic-agriculture") and page.is_checked("#frequency-daily")
    assert _low_contrast(page) == [] and _unlabelled_inputs(page) == []
    page.screenshot(path=str(artifacts_dir / "web-03-preferences.png"), full_page=True)

    # The welcome email's List-Unsubscribe URL, posted the way a mail provider does
    # (RFC 8058: no cookies, no page, just the one-click body).
    welcome = _wait_for_mail(live, 2)[-1]
    unsubscribe_url = welcome["List-Unsubscribe"].strip().strip("<>")  # may be folded
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    playwright, _ = browser
    provider = playwright.request.new_context()
    response = provider.post(unsubscribe_url, data="List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 200 <= response.status < 300
    provider.dispose()

    page.reload()
    page.wait_for_selector("text=You are unsubscribed")
    page.screenshot(path=str(artifacts_dir / "web-04-unsubscribed.png"), full_page=True)
    with db.session() as session:
        from subscribers.service import find_by_email

        person = find_by_email(session, "constituent@example.org")
        assert person.status == "unsubscribed" and person.frequency == "daily"
    assert page.problems == []


def test_subscribe_page_fits_a_phone(browser, server, topics, artifacts_dir):
    base, _, _ = server
    _, chromium = browser
    context = chromium.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    phone = context.new_page()
    phone.goto(f"{base}/subscribe")
    assert overflow_problems(phone) == []  # against 375px: a phone widens to fit overflow
    phone.screenshot(path=str(artifacts_dir / "web-05-subscribe-375.png"), full_page=True)
    context.close()


def test_forged_token_page_and_anonymous_refusals(page, browser, server):
    base, _, _ = server
    response = page.goto(f"{base}/unsubscribe/1.AAAAAA.forgedsignature")
    assert response.status == 400
    assert "not valid" in page.content()
    response = page.goto(f"{base}/admin/campaigns")
    assert page.url.startswith(f"{base}/admin/login")
    playwright, _ = browser
    api = playwright.request.new_context()
    assert api.get(f"{base}/api/campaigns").status == 401
    api.dispose()


def test_repeat_signups_look_the_same_in_the_browser(page, server, db, topics):
    import re

    base, _, _ = server
    add_subscriber(db, "known@example.org", topics=["agriculture"])
    answers = []
    for email in ("fresh@example.org", "fresh@example.org", "known@example.org"):
        page.goto(f"{base}/subscribe")
        page.fill("#email", email)
        with page.expect_response(lambda r: r.url == f"{base}/subscribe"
                                  and r.request.method == "POST") as answer:
            page.click("button[type=submit]")
        response = answer.value
        body = re.sub(r'name="csrf_token" value="[^"]+"', "", response.text())
        answers.append((response.status, body, page.inner_text("main")))
    assert len(set(answers)) == 1
    assert answers[0][0] == 200


def _login(page, base: str, name: str) -> None:
    page.goto(f"{base}/admin/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_selector("h1:has-text('Campaigns')")


@pytest.mark.slow
def test_press_office_journey(page, server, db, topics, release_id, artifacts_dir):
    from playwright.sync_api import expect

    from mailer.delivery.worker import run_worker

    base, live, _ = server
    add_user(db, "alice", "author", PASSWORD)
    add_user(db, "bob", "approver", PASSWORD)
    for i in range(3):
        add_subscriber(db, f"farmer{i}@example.org", topics=["agriculture"])
    add_subscriber(db, "other@example.org", topics=["human-trafficking"])

    _login(page, base, "alice")
    page.click("nav >> text=Releases")
    page.click(f"a[href='/admin/campaigns/new?release_id={release_id}']")
    # The builder writes the query; the live count follows (no string eval: our CSP forbids it).
    page.check("#b-topic-agriculture")
    expect(page.locator("#query")).to_have_value('topic = "agriculture"')
    expect(page.locator("[data-field=count]")).to_have_text("3")
    page.fill("#b-zip", "581")
    expect(page.locator("#query")).to_have_value('topic = "agriculture" and zip ~ "581*"')
    expect(page.locator("[data-field=count]")).to_have_text("0")
    page.fill("#b-zip", "")
    page.fill("#query", 'topic = "agriculture" and')
    expect(page.locator("[data-field=count-error]")).to_contain_text("position")
    page.fill("#query", 'topic = "agriculture"')
    expect(page.locator("[data-field=count]")).to_have_text("3")
    page.screenshot(path=str(artifacts_dir / "web-10-segment-builder.png"), full_page=True)
    page.click("button:has-text('Create draft')")
    page.wait_for_selector("text=created as a draft")
    campaign_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    frame = page.frame_locator("#preview")
    frame.locator("text=Heitkamp Bill to Combat Human Trafficking").first.wait_for()
    page.screenshot(path=str(artifacts_dir / "web-11-preview-desktop.png"), full_page=True)
    page.click("button[data-preview-width=mobile]")
    assert page.evaluate("document.getElementById('preview').getBoundingClientRect().width") \
        <= 376
    page.screenshot(path=str(artifacts_dir / "web-12-preview-mobile.png"), full_page=True)
    assert page.locator("button:has-text('Approve')").count() == 0  # not for the author
    assert _low_contrast(page) == [] and _unlabelled_inputs(page) == []
    page.click("button:has-text('Log out')")

    _login(page, base, "bob")
    page.goto(f"{base}/admin/campaigns/{campaign_id}")
    page.click("button:has-text('Approve')")
    page.wait_for_selector("text=Approved.")
    page.click("button:has-text('Send now')")
    page.wait_for_selector("h1:has-text('people now?')")  # asked first, naming the reach
    assert _low_contrast(page) == [] and _unlabelled_inputs(page) == []
    page.click("button:has-text('Send now')")
    page.wait_for_selector("text=Sending has started.")

    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(db, live, stop),
                              kwargs={"poll_interval": 0.1}, daemon=True)
    worker.start()
    try:
        page.goto(f"{base}/admin/campaigns")
        row = page.locator(f"tr[data-campaign-id='{campaign_id}'] [data-field=status]")
        row.filter(has_text="sent").wait_for(timeout=20_000)  # updated by admin.js polling
    finally:
        stop.set()
        worker.join(timeout=10)
    assert page.locator(f"tr[data-campaign-id='{campaign_id}'] [data-field=text]") \
        .inner_text() == "3 / 3"
    page.screenshot(path=str(artifacts_dir / "web-13-campaign-sent.png"), full_page=True)

    with db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        assert (campaign.status, campaign.created_by, campaign.approved_by) == \
            ("sent", "alice", "bob")
    # Nothing else was mailed in this journey: every message written is the campaign's.
    recipients = sorted(m["To"].addresses[0].addr_spec for m in outbox_messages(live))
    assert recipients == [f"farmer{i}@example.org" for i in range(3)]

    page.goto(f"{base}/admin/campaigns/{campaign_id}/report")
    page.frame_locator("iframe.report-frame").locator("svg").first.wait_for()
    page.screenshot(path=str(artifacts_dir / "web-14-report.png"), full_page=True)
    page.goto(f"{base}/archive")
    page.click(f"a[href='/archive/{campaign_id}']")
    page.wait_for_selector("text=Heitkamp Bill to Combat Human Trafficking")
    assert page.problems == []


def test_the_contrast_check_is_not_vacuous(page, backend):
    page.set_content('<p style="color:#999;background:#fff">pale</p>'
                     '<p style="color:#333;background:#fff">dark</p>')
    [failure] = _low_contrast(page)
    assert failure.startswith("P pale")
