"""Fixtures for ingest tests."""

from tests.ingest.webserver import web_fixture  # noqa: F401  (the `web` fixture)
