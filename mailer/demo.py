"""``mailer demo``: the whole job end to end on bundled sample data.

Imports the sample issue page (a topic) and press release, ~25 sample subscribers, creates a
campaign to the ``human-trafficking`` topic, approves it as a second person, sends it through
the outbox transport and returns its status. Re-running is safe: imports are idempotent and
the demo campaign is found again instead of created twice, so nobody is mailed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from mailer.campaigns.models import Campaign
from mailer.campaigns.models import CampaignStatus as S
from mailer.campaigns.service import approve_campaign, create_campaign
from mailer.delivery.engine import send_campaign
from mailer.errors import MailerError
from mailer.ingest.models import Release
from mailer.ingest.service import import_report
from mailer.ingest.topics import import_topic_pages
from mailer.settings import Settings
from mailer.storage.db import Database
from mailer.tracking.reports import campaign_status
from subscribers.importer import import_subscribers

DATA = Path(__file__).resolve().parent / "data"
SAMPLE_ISSUE = DATA / "issue_human_trafficking.txt"
SAMPLE_RELEASE = DATA / "release_heitkamp_2014-05-09.txt"
SAMPLE_SUBSCRIBERS = DATA / "sample_subscribers.csv"
AUDIENCE = 'topic = "human-trafficking"'
AUTHOR, APPROVER = "demo-press-secretary", "demo-communications-director"


@dataclass
class DemoResult:
    campaign_id: int
    release_id: int
    subscribers: dict
    status: dict


def run_demo(db: Database, settings: Settings) -> DemoResult:
    """Run the demo on ``db``. Sends only through the outbox, whatever MAILER_TRANSPORT says.

    Raises MailerError when a step fails (the step's own one-line reason).
    """
    settings = settings.model_copy(update={"transport": "outbox"})
    with db.session() as session:
        import_topic_pages(session, [SAMPLE_ISSUE], settings)
        report = import_report(session, [str(SAMPLE_RELEASE)], settings)
    release_id = _release_id(db, report)
    subscribers = _import_subscribers(db)
    campaign_id = _demo_campaign(db, settings, release_id)
    _send(db, settings, campaign_id)

    with db.session() as session:
        status = campaign_status(session, campaign_id)
    return DemoResult(campaign_id, release_id, subscribers, status)


def _release_id(db: Database, report) -> int:
    for release in report.created + report.updated:
        return release.id
    with db.session() as session:  # already imported on an earlier run
        release_id = session.scalar(
            select(Release.id).where(Release.source == str(SAMPLE_RELEASE)).order_by(Release.id))
    if release_id is None:
        raise MailerError("the sample release was not imported")
    return release_id


def _import_subscribers(db: Database) -> dict:
    return import_subscribers(db, SAMPLE_SUBSCRIBERS, source="mailer demo").to_dict()


def _demo_campaign(db: Database, settings: Settings, release_id: int) -> int:
    """The demo's campaign for this release: the existing one, or a new approved one."""
    with db.session() as session:
        campaign = session.scalar(
            select(Campaign).where(Campaign.release_id == release_id,
                                   Campaign.created_by == AUTHOR).order_by(Campaign.id))
        if campaign is None:
            campaign = create_campaign(session, release_id=release_id, query=AUDIENCE, by=AUTHOR)
        if campaign.status == S.DRAFT:
            approve_campaign(session, campaign, by=APPROVER, settings=settings)
        return campaign.id


def _send(db: Database, settings: Settings, campaign_id: int) -> None:
    with db.session() as session:
        status = session.get(Campaign, campaign_id).status
    if status in (S.APPROVED, S.SCHEDULED, S.SENDING):
        send_campaign(db, settings, campaign_id)
