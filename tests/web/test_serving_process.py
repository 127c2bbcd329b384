"""What a serving process does once before its first request (``mailer.web.app.serving``)."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from mailer.web.app import create_app, serving
from subscribers import places


def test_a_served_app_builds_the_zip_table_and_freezes_long_lived_objects(settings, db):
    """Served (``mailer serve``/``run``, each ``--workers`` process): the first signup does
    not build the ZIP table, and the objects that live as long as the process are out of
    the cyclic collector's full passes. An app a test builds leaves its process alone."""
    settings = settings.model_copy(update={"web_sends_mail": False})
    places._table.cache_clear()
    frozen = gc.get_freeze_count()
    with TestClient(create_app(settings, db)):
        assert places._table.cache_info().currsize == 0
        assert gc.get_freeze_count() == frozen
    try:
        with TestClient(serving(create_app(settings, db))):
            assert places._table.cache_info().currsize == 1
            assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
