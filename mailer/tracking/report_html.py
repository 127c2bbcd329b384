"""The campaign report as one self-contained HTML file (``mailer campaigns report --html``).

Built from the dict ``reports.campaign_report`` returns, so the page and ``--json`` never
disagree. Everything is inline: CSS, two SVG charts (``mailer.tracking.charts``); there is no
script, no web font, no link to anything outside the file, so it opens the same from an
email attachment, a shared drive or an air-gapped laptop. All text is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from mailer.tracking.charts import funnel_svg, timeline_svg, wall_time

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#111827;
margin:0;background:#f3f4f6}
main{max-width:960px;margin:0 auto;padding:24px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}.meta{color:#4b5563;font-size:13px}
.reason{background:#fef3c7;border-left:4px solid #b45309;padding:8px 12px;margin:12px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}.card{flex:1 1 120px;border:1px
solid #e5e7eb;border-radius:6px;padding:8px 12px}.card b{display:block;font-size:20px}
.card span{color:#4b5563;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;border-bottom:1px
solid #e5e7eb;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f9fafb}.scroll{overflow-x:auto;position:relative}
.scroll:focus-visible{outline:3px solid #b45309;outline-offset:2px}
h1,p{overflow-wrap:anywhere}@media (max-width:480px){main{padding:16px}}
svg.chart{max-width:100%;height:auto;display:block}
svg .label,svg .value{font-size:14px;fill:#111827}svg .tick{font-size:11px;fill:#374151}
svg .axis{stroke:#9ca3af;stroke-width:1}.empty{color:#6b7280;font-style:italic}
.rates th:last-child,.rates td:last-child{text-align:left;color:#4b5563}
@media print{body{background:#fff}main{padding:0}}
"""
RATE_LABELS = (("delivery", "Delivery rate", "delivered / sent"),
               ("bounce", "Bounce rate", "bounced / sent"),
               ("drop", "Drop rate", "dropped / sent"),
               ("open", "Open rate", "opened / arrived (indicative)"),
               ("click", "Click rate", "clicked / arrived"),
               ("complaint", "Complaint rate", "complaints / arrived (limit 0.3%)"),
               ("unsubscribe", "Unsubscribe rate", "unsubscribed / arrived"))
METRICS = ("recipients", "delivered", "bounced", "opened", "clicked", "complained",
           "unsubscribed")


def render_report_html(report: dict[str, Any]) -> str:
    """The full page for one campaign report."""
    title = f"Campaign {report['id']}: {report['subject']}"
    zone = ZoneInfo(report["timezone"])
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Status <b>{escape(report["status"])}</b> · started '
        f'{_when(report["started_at"], zone)} · finished {_when(report["finished_at"], zone)} '
        f'· report made {_when(report["generated_at"], zone)}</p>',
    ]
    if report.get("status_reason"):
        body.append(f'<p class="reason">{escape(report["status_reason"])}</p>')
    body += [_cards(report), '<h2 id="funnel">Delivery funnel</h2>', _funnel(report),
             '<h2 id="timeline">Events over time</h2>', _timeline(report),
             '<h2 id="rates">Rates</h2>', _rates_table(report["rates"]),
             '<h2 id="counts">Delivery status</h2>', _counts_table(report["counts"]),
             '<h2 id="by-topic">By topic</h2>', _breakdown(report["by_topic"], "topic", "Topic"),
             '<h2 id="by-county">By county</h2>',
             _breakdown(report["by_county"], "county", "County"),
             '<h2 id="domains">Slowest domains</h2>', _domains(report["slowest_domains"])]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def _when(value: str | None, zone: ZoneInfo) -> str:
    """An ISO 8601 time of the report as ``2026-11-23 07:00 CST`` (— when unset)."""
    if not value:
        return "—"
    return escape(wall_time(value, zone=zone))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _cards(report: dict[str, Any]) -> str:
    funnel, rates = report["funnel"], report["rates"]
    word = report.get("handed_off_as", "sent").capitalize()
    cards = (("Recipients", f"{funnel['recipients']:,}"), (word, f"{funnel['sent']:,}"),
             ("Delivered", _pct(rates["delivery"])), ("Bounced", _pct(rates["bounce"])),
             ("Opened", _pct(rates["open"])), ("Complaints", _pct(rates["complaint"])))
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{escape(value)}</b><span>{escape(name)}</span></div>'
        for name, value in cards) + "</div>"


def _funnel(report: dict[str, Any]) -> str:
    funnel = report["funnel"]
    steps = [("Recipients", funnel["recipients"]),
             (report.get("handed_off_as", "sent").capitalize(), funnel["sent"]),
             ("Arrived", funnel["arrived"]), ("Opened", funnel["opened"]),
             ("Clicked", funnel["clicked"])]
    return funnel_svg(steps)


def _timeline(report: dict[str, Any]) -> str:
    timeline = report["timeline"]
    if not timeline["buckets"]:
        return '<p class="empty">No provider events yet.</p>'
    return timeline_svg(timeline["buckets"], timeline["types"],
                        _duration(timeline["bucket_seconds"]), ZoneInfo(report["timezone"]))


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day(s)"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    return f"{seconds // 60} minute(s)"


def _table(headers: list[str], rows: list[list[Any]], heading: str, css: str = "") -> str:
    """A table in a box that scrolls sideways on a narrow screen (not the page), named by
    the heading ``heading`` (an id) and focusable so a keyboard can scroll it."""
    head = "".join(f"<th scope=\"col\">{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    klass = f' class="{css}"' if css else ""
    return (f'<div class="scroll" role="region" aria-labelledby="{heading}" tabindex="0">'
            f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _rates_table(rates: dict[str, float | None]) -> str:
    rows = [[label, _pct(rates.get(key)), meaning] for key, label, meaning in RATE_LABELS]
    return _table(["Measure", "Value", "Meaning"], rows, "rates", css="rates")


def _counts_table(counts: dict[str, int]) -> str:
    return _table(["Count", "Number"], [[name, f"{value:,}"] for name, value in counts.items()],
                  "counts")


def _breakdown(rows: list[dict[str, Any]], key: str, label: str) -> str:
    if not rows:
        return '<p class="empty">No data.</p>'
    table_rows = [[row[key] if row[key] is not None else "(not on file)",
                   *(f"{row[m]:,}" for m in METRICS)] for row in rows]
    return _table([label, *(m.capitalize() for m in METRICS)], table_rows, f"by-{key}")


def _domains(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="empty">No delivery times yet.</p>'
    return _table(["Domain", "Delivered", "Median", "90th percentile", "Slowest"],
                  [[r["domain"], r["delivered"], _seconds(r["median_seconds"]),
                    _seconds(r["p90_seconds"]), _seconds(r["max_seconds"])] for r in rows],
                  "domains")


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
