"""Sample data for checking templates and for benchmarks: the bundled seed press release (in
the office's exact layout) and a small digest, shaped like the real ``Release`` rows."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

SEED_RELEASE = Path(__file__).resolve().parent.parent / "data" / "release_heitkamp_2014-05-09.txt"
#: A campaign's intro note as templates are checked with (two paragraphs).
SAMPLE_INTRO = ("A note from the press office: the Senator will take questions on this at "
                "Friday's town hall in Fargo.\n\nThank you for reading.")
_DATELINE = re.compile(r"^([A-Z][A-Z .,'’]+?(?:, [A-Z][A-Za-z.]+)?)\s+[–—-]\s+")


@dataclass
class SampleRelease:
    """Has the attributes templates read from ``mailer.ingest.models.Release``."""

    id: int
    title: str
    subtitle: str | None
    date: date | None
    dateline: str | None
    body: str
    contact: str | None = None
    link: str | None = None
    body_html: str | None = None


@functools.cache
def seed_release() -> SampleRelease:
    """The bundled Heitkamp release, parsed by its fixed layout (office header, section,
    date, headline, subheadline, body, ``###``, contact line)."""
    chunks = [c.strip() for c in SEED_RELEASE.read_text(encoding="utf-8").split("\n\n")]
    chunks = [c for c in chunks if c]
    when = datetime.strptime(chunks[2], "%B %d %Y").date()
    end = chunks.index("###") if "###" in chunks else len(chunks)
    body = chunks[5:end]
    match = _DATELINE.match(body[0])
    return SampleRelease(
        id=1, title=chunks[3], subtitle=chunks[4], date=when,
        dateline=match.group(1) if match else None, body="\n\n".join(body),
        contact=" ".join(chunks[end + 1:]) or None,
        link="https://www.heitkamp.senate.gov/public/index.cfm/press-releases",
    )


def sample_releases() -> list[SampleRelease]:
    """Three releases for a sample digest."""
    return [
        seed_release(),
        SampleRelease(
            id=2, title="Senator Announces Rural Broadband Grants for Western Counties",
            subtitle=None, date=date(2014, 5, 12), dateline="BISMARCK, N.D.",
            body="BISMARCK, N.D. – Twelve rural cooperatives will share $8 million to bring "
                 "high-speed internet to farms, schools and clinics.\n\nThe grants follow "
                 "a year of listening sessions across the state.",
        ),
        SampleRelease(
            id=3, title="Statement on the Farm Bill Conference Agreement", subtitle=None,
            date=date(2014, 5, 14), dateline="WASHINGTON, D.C.",
            body="WASHINGTON, D.C. – “This agreement gives North Dakota’s farmers and ranchers "
                 "the certainty they have waited two years for,” the Senator said.",
            link="https://www.heitkamp.senate.gov/public/index.cfm/2014/5/farm-bill",
        ),
    ]


def system_context(template: str, settings) -> dict:
    """The values the product passes to a system message (see ``compile_system_message``)."""
    topics = ["Human Trafficking", "Agriculture"]
    if template == "confirm_subscription":
        return {"confirm_url": f"{settings.public_url}/confirm/SAMPLE-TOKEN", "topics": topics,
                "expires_hours": 72}
    return {"topics": topics, "frequency": "weekly"}
