"""Status counts, rates, breakdowns, slowest domains, CSV, timeline and the HTML report."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest

from mailer.tracking.ingest import ingest_events
from mailer.tracking.report_html import render_report_html
from mailer.tracking.reports import (
    campaign_report,
    campaign_status,
    person_timeline,
    write_delivery_log,
)
from tests.tracking.factory import T0, make_campaign, make_delivery, make_subscriber, sg_event

SUBJECT = 'Heitkamp: <script>alert("x")</script> & "Cass" bill'


@pytest.fixture
def sent(db, settings):
    """A campaign of 12: gmail delivers in 1-2 min, yahoo in 10-20 min, two pending rows,
    one hard bounce, two opens, one click, one complaint, one unsubscribe."""
    with db.session() as session:
        campaign = make_campaign(session, subject=SUBJECT, status="sent")
        rows = []
        for i in range(12):
            domain = "gmail.com" if i % 2 == 0 else "yahoo.com"
            subscriber = make_subscriber(
                session, f"p{i}@{domain}", county=("Cass" if i < 6 else None),
                topics=(["human-trafficking"] if i < 8 else ["agriculture"]))
            status = "pending" if i >= 10 else "accepted"
            rows.append(make_delivery(session, campaign, subscriber, status=status,
                                      sent_at=None if status == "pending" else T0))
    events = []
    for i, row in enumerate(rows[:9]):
        delay = timedelta(minutes=1 + i % 3) if i % 2 == 0 else timedelta(minutes=10 + i)
        events.append(sg_event(row, "delivered", at=T0 + delay))
    events.append(sg_event(rows[9], "bounce", type="bounce", reason="550 unknown user"))
    events += [sg_event(rows[0], "open", at=T0 + timedelta(hours=1)),
               sg_event(rows[1], "open", at=T0 + timedelta(hours=2)),
               sg_event(rows[1], "click", at=T0 + timedelta(hours=2, minutes=1),
                        url="https://news.senator.example.gov/=cmd"),
               sg_event(rows[2], "spamreport", at=T0 + timedelta(hours=3)),
               sg_event(rows[3], "unsubscribe", at=T0 + timedelta(hours=4))]
    with db.session() as session:
        ingest_events(session, events, settings)
    return campaign, rows


def test_status_counts_add_up(db, sent):
    campaign, _ = sent
    with db.session() as session:
        data = campaign_status(session, campaign.id)
    counts = data["counts"]
    assert data["id"] == campaign.id and data["status"] == "sent"
    for key in ("recipients", "pending", "accepted", "delivered", "bounced", "dropped", "failed",
                "in_doubt", "opened", "clicked", "complained", "unsubscribed", "sending",
                "skipped", "deferred"):
        assert key in counts
    per_row = ("pending", "sending", "accepted", "in_doubt", "failed", "delivered", "deferred",
               "bounced", "dropped", "skipped")
    assert counts["recipients"] == sum(counts[k] for k in per_row) == 12
    assert (counts["delivered"], counts["bounced"], counts["pending"]) == (9, 1, 2)
    assert (counts["opened"], counts["clicked"], counts["complained"],
            counts["unsubscribed"]) == (2, 1, 1, 1)


def test_report_rates_and_breakdowns(db, settings, sent):
    campaign, _ = sent
    with db.session() as session:
        report = campaign_report(session, campaign.id, settings)
    assert report["funnel"] == {"recipients": 12, "sent": 10, "arrived": 9, "opened": 2,
                                "clicked": 1}
    rates = report["rates"]
    assert rates["delivery"] == 0.9 and rates["bounce"] == 0.1
    assert rates["open"] == round(2 / 9, 4) and rates["click"] == round(1 / 9, 4)
    assert rates["complaint"] == round(1 / 9, 4) and rates["unsubscribe"] == round(1 / 9, 4)
    topics = {row["topic"]: row for row in report["by_topic"]}
    assert topics["human-trafficking"]["recipients"] == 8
    assert topics["agriculture"]["recipients"] == 4
    assert topics["agriculture"]["bounced"] == 1
    counties = {row["county"]: row for row in report["by_county"]}
    assert counties["Cass"]["recipients"] == 6 and counties["Cass"]["opened"] == 2
    assert counties[None]["recipients"] == 6


def test_slowest_domains_come_first(db, settings, sent):
    campaign, _ = sent
    with db.session() as session:
        domains = campaign_report(session, campaign.id, settings)["slowest_domains"]
    assert [d["domain"] for d in domains] == ["yahoo.com", "gmail.com"]
    assert domains[0]["median_seconds"] > 10 * 60 > domains[1]["max_seconds"]
    assert domains[1]["delivered"] == 5


def test_events_over_time_are_in_the_office_zone(db, settings, sent):
    campaign, _ = sent
    with db.session() as session:
        timeline = campaign_report(session, campaign.id, settings)["timeline"]
    assert timeline["types"][0] == "delivered"
    assert timeline["buckets"][0]["start"].endswith("-06:00")  # Chicago in November
    total = sum(sum(b["counts"].values()) for b in timeline["buckets"])
    assert total == 15
    assert len(timeline["buckets"]) <= 48


def test_csv_export_has_every_row_and_defuses_formulas(db, settings, sent):
    campaign, rows = sent
    with db.session() as session:
        from mailer.delivery.records import Delivery
        session.get(Delivery, rows[11].id).last_error = "=HYPERLINK(\"http://evil\")"
    out = io.StringIO()
    with db.session() as session:
        assert write_delivery_log(session, campaign.id, out, settings) == 12
    records = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(records) == 12
    assert records[0]["status"] == "delivered" and records[0]["sent_at"].endswith("-06:00")
    assert records[11]["last_error"].startswith("'=")


def test_person_timeline_across_campaigns(db, settings, sent):
    campaign, rows = sent
    with db.session() as session:
        other = make_campaign(session, subject="Second release")
        from subscribers.models import Subscriber
        person = session.get(Subscriber, rows[2].subscriber_id)
        second = make_delivery(session, other, person, status="skipped")
    with db.session() as session:
        data = person_timeline(session, "P2@Gmail.com", settings)
    assert data["email"] == "p2@gmail.com"
    assert data["subscriber"]["status"] == "complained"
    assert "spam complaint" in data["subscriber"]["history"][0]["cause"]
    assert [d["campaign_id"] for d in data["deliveries"]] == [campaign.id, second.campaign_id]
    assert [e["type"] for e in data["deliveries"][0]["events"]] == ["delivered", "complained"]
    assert data["deliveries"][0]["events"][0]["at"].endswith("-06:00")


def test_html_report_is_self_contained_and_escaped(db, settings, sent):
    campaign, _ = sent
    with db.session() as session:
        html = render_report_html(campaign_report(session, campaign.id, settings))
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Cass&quot;" in html
    assert re.search(r"(src|href)\s*=", html) is None  # nothing fetched from anywhere
    assert "@import" not in html and "url(" not in html
    assert html.count("<svg") == 2
    assert 'data-step="Recipients"' in html and 'data-type="delivered"' in html
    assert "yahoo.com" in html and "Cass" in html


def test_report_of_an_empty_campaign(db, settings):
    with db.session() as session:
        campaign = make_campaign(session, status="approved")
    with db.session() as session:
        report = campaign_report(session, campaign.id, settings)
    assert report["counts"]["recipients"] == 0
    assert report["rates"]["delivery"] is None
    html = render_report_html(report)
    assert "No provider events yet" in html and html.count("<svg") == 1


@pytest.mark.browser
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_html_report_renders_in_chromium(db, settings, sent, tmp_path, artifacts_dir):
    from playwright.sync_api import sync_playwright

    campaign, _ = sent
    with db.session() as session:
        html = render_report_html(campaign_report(session, campaign.id, settings))
    page_file = tmp_path / "report.html"
    page_file.write_text(html, encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            for chart in ("#chart-funnel", "#chart-timeline"):
                box = page.locator(chart).bounding_box()
                assert page.locator(chart).is_visible()
                assert box["width"] > 300 and box["height"] > 100
            assert page.locator("#chart-funnel rect.bar").count() == 5
            widths = [float(w) for w in page.locator("#chart-funnel rect.bar")
                      .evaluate_all("els => els.map(e => e.getAttribute('width'))")]
            assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1] > 0
            assert page.locator("#chart-timeline rect.seg").count() >= 5
            assert page.title().startswith(f"Campaign {campaign.id}:")
            assert requests == [page_file.as_uri()]  # no CDN, no fonts, nothing else
            page.screenshot(path=str(artifacts_dir / "tracking_report.png"), full_page=True)
        finally:
            browser.close()
    assert (artifacts_dir / "tracking_report.png").stat().st_size > 10_000


def test_timeline_orders_same_second_events_by_lifecycle(db, settings):
    with db.session() as session:
        delivery = make_delivery(session, make_campaign(session, status="sent"),
                                 make_subscriber(session, "tie@example.org"))
    same = T0 + timedelta(minutes=5)
    events = [sg_event(delivery, kind, at=same, event_id=f"{n}-{kind}")
              for n, kind in zip("abc", ("open", "delivered", "processed"), strict=True)]
    with db.session() as session:
        ingest_events(session, events, settings)
        data = person_timeline(session, "tie@example.org", settings)
    assert [e["type"] for e in data["deliveries"][0]["events"]] == ["queued", "delivered",
                                                                    "opened"]
