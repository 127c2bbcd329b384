"""The shapes the JSON API answers with, for its OpenAPI document.

The handlers return the same dicts the CLI's ``--json`` prints (CONTRACT.md); these models
only describe them (``**answers(...)`` on each route of ``mailer.web.api``), so documenting
never filters or re-validates an answer. Each names the contract's fields and allows more, as the
contract does ("add to it freely"). The conformance test checks real answers against them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorOut(BaseModel):
    """Every error answer of the API, the validation answer (422) included."""

    detail: str = Field(description="what was wrong, in one line")


class ReleaseOut(_Open):
    """A press release, as ``mailer releases show --json`` prints it."""

    id: int
    title: str
    subtitle: str | None
    date: str | None = Field(description="ISO 8601 date")
    dateline: str | None
    body: str
    topics: list[str] = Field(description="topic slugs")
    source: str
    link: str | None


class CampaignOut(_Open):
    """A campaign, as ``mailer campaigns show --json`` prints it."""

    id: int
    status: str
    kind: str
    release_id: int | None
    segment_id: int | None
    query: str | None
    template: str
    subject: str
    created_by: str | None
    approved_by: str | None
    approved_at: str | None
    scheduled_at: str | None
    started_at: str | None
    finished_at: str | None
    recipients: int | None = Field(description="drawn when it starts sending")
    created_at: str | None
    preheader: str | None = Field(description="the inbox preview line; null for the release's")
    intro: str | None = Field(description="a plain-text note above the release")


class RetryOut(CampaignOut):
    retried: int = Field(description="recipients whose failed delivery is being sent again")


class CampaignDetailOut(CampaignOut):
    audience: dict[str, Any] | None = Field(
        description='who it reaches if it starts now ({"now", "in_digests"}, or '
                    '{"error"}); null once its audience is drawn. On a list above '
                    'MAILER_AUDIENCE_LIVE_LIMIT people it may be the last count, with '
                    '"counted_at" (ISO 8601, UTC): recounted after answering when older than '
                    'a minute')


class StatusOut(_Open):
    """``mailer campaigns status --json``: the state and the delivery counts."""

    id: int
    status: str
    counts: dict[str, int] = Field(
        description="recipients, pending, accepted, delivered, bounced, dropped, failed, "
                    "in_doubt, opened, clicked, complained, unsubscribed, and more")


class SubscriberOut(_Open):
    """A subscriber, as ``mailer subscribers show --json`` prints it."""

    id: int
    email: str
    name: str | None
    zip: str | None
    county: str | None
    state: str | None
    district: str | None
    topics: list[str]
    frequency: str
    status: str
    suppressed: bool
    consent: dict[str, Any]


class StatusChangeOut(_Open):
    at: str | None
    from_: str | None = Field(alias="from")
    to: str
    cause: str


class SubscriberDetailOut(SubscriberOut):
    history: list[StatusChangeOut] = Field(description="joining, then every status change")


#: What each error status means here (the body is always ``ErrorOut``).
ERROR_MEANING = {
    400: "The request cannot be used: a query that does not parse, a time in the past, "
         "text the database cannot store (such as a NUL character), or a JSON body too "
         "deeply nested or with a number too long to read",
    401: "No valid bearer token",
    403: "The token's user may not do this, or a rule forbids it now (approval, quiet "
         "hours, election blackout)",
    404: "Nothing has this id or address, or the body names a release, segment or topic "
         "that does not exist",
    409: "The campaign's state does not allow this",
    422: "A parameter or the body does not match this document",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry documenting the error statuses ``codes``."""
    documented: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorOut, "description": ERROR_MEANING[code]} for code in codes}
    if 401 in documented:
        documented[401]["headers"] = {"WWW-Authenticate": {
            "description": "the scheme to use: Bearer", "schema": {"type": "string"}}}
    return documented


def answers(model: Any, *codes: int, status: int = 200) -> dict[str, Any]:
    """An operation's documented answers: ``model`` on success and the error ``codes``,
    besides the 401 and 422 every operation can answer. Only documented: the handlers'
    dicts are sent as they are (``response_model=None``), as the CLI prints them."""
    return {"response_model": None,
            "responses": {status: {"model": model, "description": "Success"}, **errors(*codes)}}
