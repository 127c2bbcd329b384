"""Storage: one SQLAlchemy metadata for the whole product, Alembic migrations, sessions."""

from mailer.storage.base import Base, UTCDateTime, utcnow
from mailer.storage.db import Database, open_database

__all__ = ["Base", "Database", "UTCDateTime", "open_database", "utcnow"]
