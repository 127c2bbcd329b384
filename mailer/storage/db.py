"""Engine, sessions and schema upgrades.

``open_database(settings)`` is how every command, worker and web process gets a ``Database``:
it connects, brings the schema to the newest Alembic revision (creating it on an empty
database) and returns an object whose ``session()`` context commits on success and rolls back
on any error, so nothing is ever half-written.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailer.errors import ConfigError
from mailer.settings import Settings
from mailer.storage.meta import AppMeta

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Any fixed 64-bit number: the advisory lock that serialises schema upgrades on PostgreSQL.
_UPGRADE_LOCK = 7_263_110_001


class Database:
    """An engine plus a session factory. Cheap to pass around; one per process."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends normally, rolls back on any exception."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a generous busy timeout.

    Raises ConfigError for a URL SQLAlchemy cannot use.
    """
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"invalid setting MAILER_DATABASE_URL: {exc}") from None
    return engine


#: Pages (4 KiB each) the SQLite WAL may hold before a commit copies them back.
WAL_CHECKPOINT_PAGES = 16384


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint the WAL into the database file every 64 MiB instead of SQLite's 4 MiB: a
    # page written by many transactions (an index page during an import or a send) is then
    # copied back once per checkpoint rather than once per few commits (a tenth of a
    # million-row import's time).
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


#: Tables the ORM does not map: APScheduler's job store, and SQLite's full-text search tables
#: (and their shadow tables) behind subscriber search (migration 0011) and release search
#: (0017).
UNMAPPED_TABLE_PREFIXES = ("apscheduler", "subscriber_search", "release_search")
#: PostgreSQL's trigram indexes for subscriber search (0011) and release search (0017), and
#: the releases list's order (0017, NULLS LAST only on PostgreSQL): indexes the ORM's
#: metadata cannot state for both databases at once.
UNMAPPED_INDEXES = frozenset({"ix_subscribers_email_trgm", "ix_subscribers_name_trgm",
                              "ix_releases_title_trgm", "ix_releases_body_trgm",
                              "ix_releases_newest"})


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic filter: what migrations own outside the ORM's metadata is not compared."""
    if type_ == "index" and name in UNMAPPED_INDEXES:
        return False
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or not table.name.startswith(UNMAPPED_TABLE_PREFIXES)


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> bool:
    """Bring the schema to ``revision`` (the newest by default; an older one serves tests of
    the migrations themselves). Returns True when anything was applied.

    Safe to call from several processes at once: PostgreSQL serialises on an advisory lock,
    SQLite on its write lock.
    """
    if current_revision(engine) == (head_revision() if revision == "head" else revision):
        return False
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild a SQLite table by copying it and dropping the old one;
            # with foreign keys enforced, that drop would first delete (cascade) every row
            # that refers to it. Off for the migration only (it cannot change inside one).
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if not sqlite:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                       {"k": _UPGRADE_LOCK})
                config = alembic_config(engine)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise ConfigError("database upgrade stopped: it would leave rows whose "
                                      "references are broken (nothing was changed)")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
    return True


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Connect to ``settings.database_url`` and (by default) upgrade the schema.

    Raises ConfigError with a one-line reason when the database cannot be reached.
    """
    engine = make_engine(settings.database_url)
    try:
        if migrate:
            upgrade(engine)
        else:
            with engine.connect():
                pass
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        where = engine.url.render_as_string()  # hides the password
        raise ConfigError(f"cannot open database {where}: {reason}") from None
    return Database(engine)


def secret_key(db: Database, settings: Settings) -> str:
    """The key that signs tokens: MAILER_SECRET_KEY, else one generated once and stored in the
    database (so every worker and web process of one installation agrees on it)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()

    for _ in range(2):
        try:
            with db.session() as session:
                row = session.scalar(select(AppMeta).where(AppMeta.key == "secret_key"))
                if row is None:
                    row = AppMeta(key="secret_key", value=secrets.token_urlsafe(48))
                    session.add(row)
                return row.value
        except IntegrityError:  # another process stored it first: read theirs
            continue
    raise RuntimeError("could not read or store the secret key")
