from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from mailer.campaigns.lifecycle import transition
from mailer.campaigns.models import Campaign, CampaignLog, CampaignStatus
from mailer.errors import ConfigError, InvalidTransition
from mailer.ingest.models import Release
from mailer.schema import metadata
from mailer.settings import Settings
from mailer.storage.db import (
    current_revision,
    head_revision,
    include_object,
    open_database,
    secret_key,
)
from mailer.storage.meta import AppMeta


def test_schema_is_at_head_and_matches_the_models(db):
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": False, "include_object": include_object})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_datetimes_come_back_as_aware_utc(db):
    local = datetime(2026, 3, 8, 9, 30, tzinfo=timezone(timedelta(hours=-6)))
    with db.session() as session:
        release = Release(title="t", body="b", source="x", content_hash="h1")
        session.add(release)
        session.flush()
        release.created_at = local
    with db.session() as session:
        got = session.get(Release, release.id).created_at
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert got == local


def test_naive_datetime_is_refused(db):
    with pytest.raises(Exception, match="naive"), db.session() as session:
        session.add(Release(title="t", body="b", source="x", content_hash="h2",
                            created_at=datetime(2026, 1, 1)))
        session.flush()


def test_session_rolls_back_on_error(db):
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(Release(title="t", body="b", source="x", content_hash="h3"))
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        assert session.scalar(select(Release).where(Release.content_hash == "h3")) is None


def test_generated_secret_key_is_stored_once(db, settings):
    keyless = settings.model_copy(update={"secret_key": None})
    first = secret_key(db, keyless)
    assert secret_key(db, keyless) == first and len(first) > 40
    with db.session() as session:
        assert session.get(AppMeta, "secret_key").value == first


def test_unreachable_database_is_a_config_error():
    settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigError, match="cannot open database"):
        open_database(settings)


def test_lifecycle_logs_allowed_moves_and_refuses_others(db):
    with db.session() as session:
        session.add(Release(id=1, title="t", body="b", source="x", content_hash="h4"))
        session.flush()
        campaign = Campaign(release_id=1, subject="s", query='topic = "x"')
        session.add(campaign)
        session.flush()
        transition(session, campaign, CampaignStatus.APPROVED, by="ann")
        with pytest.raises(InvalidTransition, match="approved; it cannot become sent"):
            transition(session, campaign, CampaignStatus.SENT)
        logs = session.scalars(select(CampaignLog)).all()
    assert [(log.from_status, log.to_status, log.by) for log in logs] == [
        ("draft", "approved", "ann")]
    assert campaign.status == CampaignStatus.APPROVED


def test_utc_type_stores_utc(db):
    when = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    with db.session() as session:
        session.add(Release(title="t", body="b", source="x", content_hash="h5", created_at=when))


def test_postgresql_storage_choices_are_in_the_migrated_schema(db):
    """What the models cannot show autogenerate: the event payload is ``json`` (kept as
    posted, migration 0004) and delivery pages keep room for row updates (0005)."""
    if db.dialect != "postgresql":
        pytest.skip("PostgreSQL storage parameters")
    from sqlalchemy import text

    with db.engine.connect() as conn:
        raw_type = conn.execute(text(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'delivery_events' AND column_name = 'raw'")).scalar_one()
        options = conn.execute(text(
            "SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")).scalar_one()
    assert (raw_type, options) == ("json", ["fillfactor=85"])
