"""The web application: constituent pages, the dashboard, the JSON API and the SendGrid
webhook, one FastAPI app. ``create_app`` takes its settings and database explicitly so tests
build apps against their own databases."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import threading

from fastapi import FastAPI

from mailer.delivery.mailqueue import start_runner
from mailer.settings import Settings, get_settings
from mailer.storage.db import Database, open_database, secret_key
from mailer.tokens import TokenSigner
from mailer.transports.base import Transport
from mailer.web import apidocs
from mailer.web.pages import install
from subscribers import places

#: Modules exposing ``router`` (an APIRouter); each capability owns its own.
ROUTER_MODULES = (
    "mailer.web.public",
    "mailer.web.admin",
    "mailer.web.admin_people",
    "mailer.web.admin_segments",
    "mailer.web.admin_releases",
    "mailer.web.admin_drafts",  # before admin_sending: its /campaigns/{id}/{action} is wider
    "mailer.web.admin_sending",
    "mailer.web.admin_access",
    "mailer.web.admin_digests",
    "mailer.web.admin_schedule",
    "mailer.web.api",
    "mailer.tracking.webhook",
)


def create_app(settings: Settings | None = None, db: Database | None = None, *,
               mail_transport: Transport | None = None) -> FastAPI:
    """The app. While it is served (its lifespan) it runs a mail queue runner in a thread
    unless ``MAILER_WEB_SENDS_MAIL`` is false, sending through ``mail_transport`` (default:
    the configured one); ``app.state.mail_wake`` wakes the runner after a request queues
    mail (``mailer run`` passes it to the runner it starts itself)."""
    settings = settings or get_settings()
    db = db or open_database(settings)
    # /api/docs is served by mailer.web.apidocs (server-rendered: no CDN, no inline script).
    app = FastAPI(title="mailer", docs_url=None, openapi_url="/api/openapi.json",
                  redoc_url=None, lifespan=_lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.mail_wake = threading.Event()
    app.state.mail_transport = mail_transport
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


def serving(app: FastAPI) -> FastAPI:
    """``app``, marked as the one this process serves until it exits (``mailer serve`` and
    ``run``, each worker of ``--workers N``): its lifespan then prepares the process before
    the first request (``_prepare_process``). Apps that tests build are not marked."""
    app.state.serves_process = True
    return app


def _prepare_process() -> None:
    """Build the ZIP table (otherwise built by the first signup, holding every request in
    flight for half a second), then move everything that lives as long as the process
    (modules, the app, the ZIP table: about 400,000 objects) out of the cyclic garbage
    collector's reach: its full passes over them held every request in flight for up to
    0.17 s, the slowest signups under load. What requests leave behind is still collected."""
    places.load()
    gc.collect()
    gc.freeze()


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    """Serving: the queued system emails go out from this process too, unless a worker is
    said to send them (``MAILER_WEB_SENDS_MAIL=false``)."""
    state = app.state
    if getattr(state, "serves_process", False):
        # Here, not before uvicorn starts: a SIGTERM meanwhile is uvicorn's to answer.
        _prepare_process()
    stop = threading.Event()
    # A web process's runner keeps to MAILER_CONCURRENCY emails in flight: its requests come
    # first (with 32 in flight here, signups/s fell by a third); a worker sends 32 at a time.
    runner = (start_runner(state.db, state.settings, stop, wake=state.mail_wake,
                           transport=state.mail_transport, in_flight=state.settings.concurrency)
              if state.settings.web_sends_mail else None)
    try:
        yield
    finally:
        stop.set()
        state.mail_wake.set()
        if runner is not None:
            await asyncio.to_thread(runner.join, 60)  # a hand-off in flight is recorded
