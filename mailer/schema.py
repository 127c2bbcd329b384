"""The whole schema: imports every model module so ``Base.metadata`` knows every table (Alembic
migrations, tests). It sits above every package that owns a table, so nothing in the app imports
it; the migration environment reads it."""

from mailer.campaigns import models as campaigns  # noqa: F401
from mailer.delivery import outgoing  # noqa: F401
from mailer.delivery import records as delivery  # noqa: F401
from mailer.ingest import models as ingest  # noqa: F401
from mailer.scheduling import models as scheduling  # noqa: F401
from mailer.storage import limits, meta  # noqa: F401
from mailer.storage.base import Base
from mailer.tracking import models as tracking  # noqa: F401
from mailer.web import models as web  # noqa: F401
from subscribers import models as subscribers  # noqa: F401

metadata = Base.metadata
