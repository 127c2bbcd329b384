"""Build an approved campaign with N subscribers quickly (Core inserts), for delivery tests,
the kill -9 test's subprocesses and the bench."""

from __future__ import annotations

from sqlalchemy import insert, update

from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.ingest.models import Release
from mailer.storage.base import utcnow
from mailer.storage.db import Database
from subscribers.models import ACTIVE, Subscriber

AUDIENCE_QUERY = 'email ~ "*@example.org"'


def add_subscribers(db: Database, count: int, *, start: int = 0, chunk: int = 50_000) -> None:
    """``count`` active subscribers ``person{N}@example.org`` named ``Person N``."""
    now = utcnow()
    with db.session() as session:
        for low in range(start, start + count, chunk):
            high = min(low + chunk, start + count)
            session.execute(insert(Subscriber), [
                {"email": f"person{i}@example.org",
                 "name": f"Person {i}", "status": ACTIVE, "frequency": "immediate",
                 "created_at": now, "updated_at": now}
                for i in range(low, high)])


def approved_campaign(db: Database, *, subject: str = "Senator acts on trafficking",
                      query: str = AUDIENCE_QUERY) -> int:
    """An approved campaign for a small release; returns its id."""
    with db.session() as session:
        release = Release(title=subject, body="First paragraph.\n\nSecond paragraph.",
                          source="test", content_hash=f"h-{subject}-{utcnow().timestamp()}")
        session.add(release)
        session.flush()
        campaign = Campaign(kind="release", release_id=release.id, query=query,
                            template="press_release", subject=subject, created_by="author",
                            status=CampaignStatus.APPROVED, approved_by="approver",
                            approved_at=utcnow())
        session.add(campaign)
        session.flush()
        return campaign.id


def set_subscriber_status(db: Database, email: str, status: str) -> None:
    with db.session() as session:
        session.execute(update(Subscriber).where(Subscriber.email == email)
                        .values(status=status))
