"""FastAPI dependencies: the app's settings, database session and token signer."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from mailer.settings import Settings
from mailer.storage.db import Database
from mailer.tokens import TokenSigner


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_database(request: Request) -> Database:
    return request.app.state.db


def get_signer(request: Request) -> TokenSigner:
    return request.app.state.signer


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    with request.app.state.db.session() as session:
        yield session
