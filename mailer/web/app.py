"""The web application: constituent pages, the dashboard, the JSON API and the SendGrid
webhook, one FastAPI app. ``create_app`` takes its settings and database explicitly so tests
build apps against their own databases."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from mailer.settings import Settings, get_settings
from mailer.storage.db import Database, open_database, secret_key
from mailer.tokens import TokenSigner
from mailer.web import apidocs
from mailer.web.pages import install

#: Modules exposing ``router`` (an APIRouter); each capability owns its own.
ROUTER_MODULES = (
    "mailer.web.public",
    "mailer.web.admin",
    "mailer.web.admin_people",
    "mailer.web.admin_segments",
    "mailer.web.admin_releases",
    "mailer.web.admin_drafts",  # before admin_sending: its /campaigns/{id}/{action} is wider
    "mailer.web.admin_sending",
    "mailer.web.api",
    "mailer.tracking.webhook",
)


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = db or open_database(settings)
    # /api/docs is served by mailer.web.apidocs (server-rendered: no CDN, no inline script).
    app = FastAPI(title="mailer", docs_url=None, openapi_url="/api/openapi.json",
                  redoc_url=None)
    app.state.settings = settings
    app.state.db = db
    secret = secret_key(db, settings)
    app.state.signer = TokenSigner(secret)
    # Sessions, security headers, templates, static files, error pages.

    install(app, settings, secret)
    apidocs.install(app)

    @app.get("/healthz")
    def healthz() -> dict:
        with db.session() as session:
            session.connection().exec_driver_sql("SELECT 1")
        return {"status": "ok"}

    for name in ROUTER_MODULES:
        app.include_router(importlib.import_module(name).router)
    return app
