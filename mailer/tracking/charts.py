"""Inline SVG charts for the HTML report: no scripts, no fonts or files from elsewhere.

Each function returns one ``<svg>`` element as text. Every piece of text inside is escaped,
each chart carries a ``<title>``/``<desc>`` for screen readers, and the numbers are also in
the report's tables, so nothing depends on seeing the picture.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from html import escape

from mailer.settings import TIME_FORMAT

#: Colours with enough contrast on white; one per event type, stable across reports.
TYPE_COLOURS = {
    "queued": "#6b7280", "delivered": "#15803d", "deferred": "#b45309", "bounced": "#b91c1c",
    "blocked": "#dc2626", "dropped": "#7f1d1d", "opened": "#1d4ed8", "clicked": "#7c3aed",
    "complained": "#be185d", "unsubscribed": "#0f766e", "resubscribed": "#0e7490",
    "unknown": "#9ca3af",
}
FUNNEL_COLOURS = ("#1e3a8a", "#1d4ed8", "#15803d", "#2563eb", "#7c3aed")


def funnel_svg(steps: list[tuple[str, int]]) -> str:
    """Horizontal bars, each as wide as its share of the first step (e.g. recipients →
    sent → arrived → opened → clicked), labelled with the count and the percentage."""
    width, label_w, bar_h, gap = 720, 130, 34, 12
    total = max(steps[0][1], 1) if steps else 1
    height = len(steps) * (bar_h + gap) + gap
    parts = [_open_svg("funnel", width, height, "Delivery funnel",
                       "; ".join(f"{name}: {value}" for name, value in steps))]
    for index, (name, value) in enumerate(steps):
        y = gap + index * (bar_h + gap)
        share = value / total
        bar_w = max(2.0, (width - label_w - 150) * share) if value else 0
        colour = FUNNEL_COLOURS[index % len(FUNNEL_COLOURS)]
        parts.append(
            f'<text x="{label_w - 10}" y="{y + bar_h / 2 + 5}" text-anchor="end" '
            f'class="label">{escape(name)}</text>'
            f'<rect class="bar" data-step="{escape(name)}" x="{label_w}" y="{y}" '
            f'width="{bar_w:.1f}" height="{bar_h}" rx="3" fill="{colour}"/>'
            f'<text x="{label_w + bar_w + 8:.1f}" y="{y + bar_h / 2 + 5}" class="value">'
            f'{value:,} ({share:.1%})</text>')
    parts.append("</svg>")
    return "".join(parts)


def timeline_svg(buckets: list[dict], types: list[str], bucket_label: str,
                 zone: tzinfo | None = None) -> str:
    """Stacked columns of event counts per time bucket, one colour per event type, with a
    legend and the first/middle/last bucket times on the x axis."""
    width, height, left, right, top, bottom = 720, 300, 48, 12, 16, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((sum(b["counts"].values()) for b in buckets), default=0) or 1
    column_w = plot_w / max(len(buckets), 1)
    desc = f"{len(buckets)} buckets of {bucket_label}; peak {peak} events"
    parts = [_open_svg("timeline", width, height, "Events over time", desc),
             _axes(left, top, plot_w, plot_h, peak)]
    for index, bucket in enumerate(buckets):
        x = left + index * column_w
        y = top + plot_h
        for kind in types:
            count = bucket["counts"].get(kind, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(
                f'<rect class="seg" data-type="{escape(kind)}" x="{x + 1:.1f}" y="{y:.1f}" '
                f'width="{max(column_w - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{TYPE_COLOURS.get(kind, "#9ca3af")}"><title>{escape(kind)}: {count} '
                f'from {escape(wall_time(bucket["start"], TIME_FORMAT, zone))}</title></rect>')
    parts.append(_x_labels(buckets, left, column_w, top + plot_h))
    parts.append(_legend(types, left, height - 22))
    parts.append("</svg>")
    return "".join(parts)


def _open_svg(name: str, width: int, height: int, title: str, desc: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="chart-{name}" class="chart" '
            f'role="img" aria-labelledby="chart-{name}-title chart-{name}-desc" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
            f'<title id="chart-{name}-title">{escape(title)}</title>'
            f'<desc id="chart-{name}-desc">{escape(desc)}</desc>')


def _axes(left: float, top: float, plot_w: float, plot_h: float, peak: int) -> str:
    base = top + plot_h
    return (f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" class="axis"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" class="axis"/>'
            f'<text x="{left - 6}" y="{top + 10}" text-anchor="end" class="tick">{peak:,}</text>'
            f'<text x="{left - 6}" y="{base}" text-anchor="end" class="tick">0</text>')


def wall_time(moment: str, fmt: str = TIME_FORMAT, zone: tzinfo | None = None) -> str:
    """An ISO 8601 time of a report (already in the office's zone) as the office reads it;
    ``zone`` names the zone for ``%Z`` (an ISO offset alone has no name)."""
    start = datetime.fromisoformat(moment)
    return (start.astimezone(zone) if zone else start).strftime(fmt)


def _x_labels(buckets: list[dict], left: float, column_w: float, base: float) -> str:
    if not buckets:
        return ""
    picks = sorted({0, len(buckets) // 2, len(buckets) - 1})
    anchors = {0: "start", len(buckets) - 1: "end"}
    out = []
    for index in picks:
        x = left + index * column_w + (column_w if index == len(buckets) - 1 else 0)
        label = wall_time(buckets[index]["start"], "%m-%d %H:%M")
        out.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="'
                   f'{anchors.get(index, "middle")}" class="tick">{escape(label)}</text>')
    return "".join(out)


def _legend(types: list[str], left: float, y: float) -> str:
    out, x = [], left
    for kind in types:
        colour = TYPE_COLOURS.get(kind, "#9ca3af")
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{x + 16}" y="{y}" class="tick">{escape(kind)}</text>')
        x += 24 + 7.5 * len(kind)
    return "".join(out)
