"""Every dashboard page reachable from the navigation and every public page, in headless
Chromium: axe-core finds no serious or critical WCAG violation, and at 375 px nothing scrolls
sideways (the HTML report included).

The dashboard is crawled, not listed: the navigation's links, then the links on those pages
(one page per path shape, so ``/admin/campaigns/7`` stands for every campaign), so a page added
to the navigation is checked without touching this file. The data make every kind of page
non-empty: a sent campaign with deliveries and provider events (its report has charts and
tables), a draft on a saved segment, a subscriber and a feed with long addresses.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import sync_playwright

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.delivery.records import Delivery
from mailer.ingest.models import Feed
from mailer.storage.base import utcnow
from mailer.tracking.models import DeliveryEventRow
from mailer.web.app import create_app
from subscribers.models import Segment
from tests.web.browsing import (
    ARGS,
    AXE_JS,
    CHROMIUM,
    axe_violations,
    describe_violations,
    invisible_focus,
    overflow_problems,
    raw_times,
    serving,
)
from tests.web.conftest import add_subscriber, add_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed"),
]
PASSWORD = "correct horse battery"
PHONE = {"width": 375, "height": 740}
#: Long unbroken text: addresses and URLs must wrap, not push the page sideways.
LONG_EMAIL = "constituent.with.a.very.long.address.for.wrapping@mail.cass-county-example.org"
LONG_FEED = ("https://www.senator.example.gov/newsroom/press-releases/rss/feeds/"
             "?type=press&category=agriculture-and-rural-development&format=atom")
#: The axe rules whose answer changes with the viewport (a table that scrolls only on a
#: phone, colours or sizes set by a media query): run again at 375px.
LAYOUT_RULES = ["scrollable-region-focusable", "color-contrast", "target-size"]
#: Dashboard links the crawl does not follow: downloads, machine-readable answers, leaving.
NOT_PAGES = re.compile(r"(\.(csv|json|rss|xml|txt)|/logout)$")


def _week_of_data(db, topics, release_id) -> dict:
    """A draft on a saved segment, a sent campaign with deliveries and events, people in every
    public state, a feed: the ids the public and explicit pages need."""
    person = add_subscriber(db, LONG_EMAIL, topics=topics, name="Casey Constituent")
    leaving = add_subscriber(db, "leaving@example.org", topics=["agriculture"])
    pending = add_subscriber(db, "pending@example.org", status="pending")
    now = utcnow()
    with db.session() as session:
        segment = Segment(name="fargo-trafficking",
                          query='topic = "human-trafficking" and county = "Cass"')
        session.add(segment)
        session.add(Feed(url=LONG_FEED, title="Press releases"))
        session.flush()
        draft = Campaign(release_id=release_id, segment_id=segment.id, query=segment.query,
                         subject="Draft: trafficking bill", template="press_release",
                         status=S.DRAFT, created_by="ada")
        session.add(draft)
        sent = Campaign(release_id=release_id, query='status = "active"', template="press_release",
                        subject="Heitkamp Bill to Combat Human Trafficking Passes Senate",
                        status=S.SENT, created_by="ada", approved_by="bo", recipients=2,
                        started_at=now - timedelta(hours=3), finished_at=now - timedelta(hours=2))
        session.add(sent)
        session.flush()
        for i, (who, email) in enumerate(((person, LONG_EMAIL),
                                          (leaving, "leaving@example.org"))):
            delivery = Delivery(campaign_id=sent.id, subscriber_id=who, email=email,
                                status="delivered", sent_at=now - timedelta(hours=3),
                                delivered_at=now - timedelta(hours=3),
                                opened_at=now - timedelta(hours=2))
            session.add(delivery)
            session.flush()
            for n, kind in enumerate(("delivered", "open")):
                session.add(DeliveryEventRow(
                    provider_event_id=f"ev-{i}-{n}", delivery_id=delivery.id,
                    campaign_id=sent.id, subscriber_id=who, email=email, type=kind,
                    occurred_at=now - timedelta(hours=3 - n), raw={}))
        return {"person": person, "leaving": leaving, "pending": pending, "sent": sent.id,
                "segment": segment.id, "draft": draft.id}


def _shape(path: str) -> str:
    """The path with its ids blanked: one page stands for all of its shape."""
    return re.sub(r"/\d+(?=/|$)", "/{id}", path)


def _admin_links(page, base: str, selector: str) -> list[str]:
    hrefs = page.eval_on_selector_all(selector, "els => els.map(a => a.getAttribute('href'))")
    urls = []
    for href in hrefs:
        url = urljoin(page.url, href or "")
        parts = urlsplit(url)
        if (url.startswith(base) and parts.path.startswith("/admin")
                and not NOT_PAGES.search(parts.path)):
            urls.append(url.split("#")[0])
    return urls


class Findings:
    """What the pages got wrong, gathered so one run shows every page's problems."""

    def __init__(self) -> None:
        self.axe: list[str] = []
        self.overflow: list[str] = []
        self.focus: list[str] = []
        self.times: list[str] = []

    def report(self) -> str:
        parts = []
        if self.axe:
            parts.append("axe-core found serious or critical violations:\n" + "\n".join(self.axe))
        if self.overflow:
            parts.append("pages scroll sideways at 375px:\n" + "\n".join(self.overflow))
        if self.focus:
            parts.append("controls with no visible focus:\n" + "\n".join(self.focus))
        if self.times:
            parts.append("machine timestamps instead of the office format:\n"
                         + "\n".join(self.times))
        return "\n\n".join(parts)

    def check(self, tab, label: str) -> None:
        """axe on the page ``tab`` shows; at phone width only the rules that depend on the
        layout (the rest were checked at desktop width), and sideways scrolling."""
        width = tab.viewport_size["width"]
        phone = width <= PHONE["width"]
        if violations := axe_violations(tab, LAYOUT_RULES if phone else None):
            self.axe.append(describe_violations(f"{label} at {width}px", violations))
        if not phone and (stamps := raw_times(tab)):
            self.times.append(f"{label}: {', '.join(stamps)}")
        if not phone and (unseen := invisible_focus(tab)):
            self.focus.append(f"{label}\n  " + "\n  ".join(unseen))
        if phone and (problems := overflow_problems(tab)):
            self.overflow.append(f"{label}\n  " + "\n  ".join(problems))


def _visit(tabs, url: str, status: int | None, found: Findings) -> None:
    for tab in tabs:
        response = tab.goto(url)
        assert response is not None, url
        if status is not None:
            assert response.status == status, f"{url} answered {response.status}"
        found.check(tab, url)


def _crawl_dashboard(tab, base: str, extra: list[str], found: Findings,
                     limit: int = 60) -> list[str]:
    """Check the navigation's pages, the given pages, and what they link to in ``main`` (two
    levels deep), one page per path shape and set of query-parameter names; the pages
    checked, in order."""
    tab.goto(f"{base}/admin/campaigns")
    queue = [(url, 0) for url in _admin_links(tab, base, "nav a[href]")]
    queue += [(url, 0) for url in extra]
    seen: dict[str, str] = {}
    while queue and len(seen) < limit:
        url, depth = queue.pop(0)
        parts = urlsplit(url)
        key = _shape(parts.path) + "?" + ",".join(sorted(
            q.split("=")[0] for q in parts.query.split("&") if q))
        if url in seen.values() or (key in seen and url not in extra):
            continue
        seen[url if key in seen else key] = url
        _visit([tab], url, 200, found)
        if depth < 2:
            queue += [(link, depth + 1) for link in _admin_links(tab, base, "main a[href]")]
    return list(seen.values())


def _public_pages(base: str, signer, ids: dict) -> list[tuple[str, int]]:
    """Each public page with the status it answers."""
    return [
        (f"{base}/subscribe", 200),
        (f"{base}/preferences/{signer.make(ids['person'], 'preferences')}", 200),
        (f"{base}/unsubscribe/{signer.make(ids['leaving'], 'unsubscribe')}", 200),
        (f"{base}/confirm/{signer.make(ids['pending'], 'confirm')}", 200),
        (f"{base}/archive", 200),
        (f"{base}/archive/{ids['sent']}", 200),
        (f"{base}/no-such-page", 404),
        (f"{base}/archive/999999", 404),
        (f"{base}/unsubscribe/1.AAAAAA.forged", 400),
        (f"{base}/admin/login", 200),
        (f"{base}/api/docs", 200),
    ]


def _answers(tab, base: str, signer, ids: dict):
    """The public pages that answer a form: "check your email" after signing up, "you are
    unsubscribed" after the button; yields each once it is shown."""
    tab.goto(f"{base}/subscribe")
    tab.fill("#email", f"new-{tab.viewport_size['width']}@example.org")
    tab.click("button[type=submit]")
    tab.wait_for_selector("text=Check your email")
    yield f"{base}/subscribe (answer)"
    tab.goto(f"{base}/unsubscribe/{signer.make(ids['leaving'], 'unsubscribe')}")
    if tab.locator("button:has-text('Unsubscribe')").count():  # the first tab presses it
        tab.click("button:has-text('Unsubscribe')")
    tab.wait_for_selector("h1:has-text('unsubscribed')")
    yield f"{base}/unsubscribe (answer)"


def _login(page, base: str) -> None:
    page.goto(f"{base}/admin/login")
    page.fill("#name", "ada")
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_selector("h1:has-text('Campaigns')")


def _open_confirmation(tab, base: str, ids: dict) -> str:
    """A no-JavaScript confirmation page ("Unsubscribe … ?"), reached by its button (it is
    the answer to a POST, so it has no address to load)."""
    tab.goto(f"{base}/admin/subscribers/{ids['person']}")
    tab.click("button:has-text('Unsubscribe this person')")
    tab.wait_for_selector("#confirm-question")
    return f"{tab.url} (confirmation)"


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module (each test opens its own contexts)."""
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    yield browser
    browser.close()
    playwright.stop()


def test_every_page_passes_axe_and_fits_a_phone(chromium, db, settings, topics, release_id,
                                                artifacts_dir):
    assert AXE_JS.exists(), f"{AXE_JS} is missing: run scripts/setup.sh test (npm ci)"

    add_user(db, "ada", "admin", PASSWORD)
    ids = _week_of_data(db, topics, release_id)
    with serving(lambda base: create_app(
            settings.model_copy(update={"public_url": base}), db)) as (base, app):
        desktop = chromium.new_context(viewport={"width": 1100, "height": 900})
        phone_context = chromium.new_context(viewport=PHONE, is_mobile=True)
        for context in (desktop, phone_context):
            # In every page before its own scripts: past the pages' CSP (which rightly
            # refuses a script tag), and compiled once rather than once per page.
            context.add_init_script(path=str(AXE_JS))
        tabs = (desktop.new_page(), phone_context.new_page())
        found = Findings()
        try:
            for url, status in _public_pages(base, app.state.signer, ids):
                _visit(tabs, url, status, found)
            for tab in tabs:
                for label in _answers(tab, base, app.state.signer, ids):
                    found.check(tab, label)
            for tab in tabs:
                _login(tab, base)
            explicit = [f"{base}/admin/campaigns/{ids['draft']}",
                        f"{base}/admin/campaigns/{ids['sent']}",
                        f"{base}/admin/campaigns/{ids['sent']}/report",
                        f"{base}/admin/campaigns/{ids['sent']}/report.html",
                        f"{base}/admin/subscribers/{ids['person']}",
                        f"{base}/admin/segments/{ids['segment']}"]
            pages = _crawl_dashboard(tabs[0], base, explicit, found)
            for url in pages:
                _visit(tabs[1:], url, 200, found)
            for tab in tabs:
                found.check(tab, _open_confirmation(tab, base, ids))
            tabs[1].goto(f"{base}/admin/campaigns/{ids['sent']}/report.html")
            tabs[1].screenshot(path=str(artifacts_dir / "a11y-report-375.png"), full_page=True)
        finally:
            desktop.close()
            phone_context.close()
    print("checked:", *pages, sep="\n  ")
    assert len(pages) >= 10, pages  # the crawl found the dashboard
    assert not (found.axe or found.overflow or found.focus or found.times), found.report()


def test_the_checks_are_not_vacuous(chromium):
    """axe-core reports an unlabelled field and pale text; the overflow check reports an
    unbroken address wider than the phone and a table outside a wrapper, but not a table that
    scrolls inside its .table-wrap; the focus check reports a button whose outline is
    removed."""
    context = chromium.new_context(viewport=PHONE, is_mobile=True)
    phone = context.new_page()
    try:
        phone.set_content('<html lang="en"><head><title>t</title><meta name="viewport" '
                          'content="width=device-width, initial-scale=1"></head><body><main>'
                          '<h1>Form</h1><input type="text" name="q">'
                          '<p style="color:#aaa;background:#fff">pale</p></main></body></html>')
        assert {v["id"] for v in axe_violations(phone)} >= {"label", "color-contrast"}
        assert overflow_problems(phone) == []
        wide_table = "<table><tr>" + "<td>column&nbsp;of&nbsp;data</td>" * 8 + "</tr></table>"
        phone.set_content(f'<main><div class="table-wrap" style="overflow-x:auto">{wide_table}'
                          "</div></main>")
        assert overflow_problems(phone) == []
        phone.set_content(f"<main><h1>{LONG_EMAIL}</h1>{wide_table}</main>")
        problems = overflow_problems(phone)
        assert problems[0].startswith("page is ") and "375px viewport" in problems[0]
        assert any(p.startswith("h1: constituent.with") for p in problems)
        assert any(p.startswith("td: column") for p in problems)
        phone.set_content('<style>.flat:focus { outline: none; }</style><main>'
                          '<button class="flat">Hidden focus</button><button>Ring</button></main>')
        assert invisible_focus(phone) == ["button Hidden focus"]
    finally:
        context.close()
