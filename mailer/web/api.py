"""The JSON API under /api, for the office's own scripts. Every call needs
``Authorization: Bearer <token>`` (made with ``mailer tokens create``); without one the answer
is 401. Every operation names its ``Permission`` through ``api_may``, so the token's role is
read from the same table as the dashboard's (``mailer.web.roles``); a refusal is 403.
Errors are ``{"detail": "<one line>"}`` with 400/403/404/409/422, and the OpenAPI
document lists, operation by operation, every status it can answer with its body
(``answers`` and ``errors`` in ``mailer.web.api_models``); the conformance test holds the
document to what the app answers.

The shapes match the CLI's ``--json`` output (see CONTRACT.md), so a script can move between
the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from mailer.campaigns import actions as ops
from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.campaigns.service import campaign_to_dict, get_campaign
from mailer.delivery.outgoing import queue_mail
from mailer.errors import InvalidInput, NotFound
from mailer.ingest.models import Release
from mailer.ingest.service import list_releases as find_releases
from mailer.ingest.service import release_to_dict as to_dict
from mailer.web import constituents
from mailer.web.api_models import (
    CampaignDetailOut,
    CampaignOut,
    ReleaseOut,
    RetryOut,
    StatusOut,
    SubscriberDetailOut,
    SubscriberOut,
    answers,
    errors,
)
from mailer.web.auth import Caller, api_user
from mailer.web.params import Id, Limit, Offset, as_id
from mailer.web.public import Links, mail_queued
from mailer.web.recounts import recount_later, shown
from mailer.web.roles import Permission, check
from subscribers.models import ACTIVE, FREQUENCIES, PENDING, STATUSES, Subscriber
from subscribers.service import add_subscriber as add
from subscribers.service import get_by_email, subscriber_to_dict, unsubscribe

_bearer = HTTPBearer(auto_error=False, description="A token from `mailer tokens create`")


def caller(request: Request,
           _credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> Caller:
    """The authenticated caller (401 otherwise); ``_credentials`` documents the scheme."""
    return api_user(request)


def api_may(permission: Permission):
    """A dependency: the caller, refused with 403 unless their role has ``permission``
    (``mailer.web.roles`` decides, as for the dashboard's ``staff_may``)."""

    def dependency(who: Caller = Depends(caller)) -> Caller:
        check(who, permission)
        return who

    dependency.permission = permission  # read by the tests that walk every route
    return dependency


#: A status filter names one of the states (an unknown one is a 422, not an empty list);
#: subscripting Literal with a tuple lists its members.
CampaignState = Literal[CampaignStatus.ALL]
SubscriberState = Literal[STATUSES]


router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(caller)],
                   responses=errors(401, 422))
VIEW = Depends(api_may(Permission.VIEW))


# --- releases -------------------------------------------------------------------------------

def release_to_dict(session, release: Release) -> dict[str, Any]:
    """The contract's release object (the same as ``mailer releases show --json``)."""

    return to_dict(release)


#: ``?topic=`` and ``?search=``: the dashboard's filters and ``mailer releases list``'s.
TopicFilter = Annotated[str | None, Query(
    max_length=200, description="only releases tagged with this topic (slug or name); 404 "
                                "for a topic that does not exist")]
SearchFilter = Annotated[str | None, Query(
    max_length=1000, description="only releases whose title or body holds every word of "
                                 "this, any case")]


@router.get("/releases", dependencies=[VIEW],
            summary="List releases, newest first (by release date, then id)",
            **answers(list[ReleaseOut], 403, 404))
def list_releases(request: Request, limit: Limit = 50, offset: Offset = 0,
                  topic: TopicFilter = None, search: SearchFilter = None) -> list[dict]:
    with request.app.state.db.session() as session:
        rows = find_releases(session, topic=topic or None, text=search, limit=limit,
                             offset=offset)
        return [release_to_dict(session, r) for r in rows]


@router.get("/releases/{release_id}", dependencies=[VIEW], summary="One release",
            **answers(ReleaseOut, 403, 404))
def show_release(release_id: Id, request: Request) -> dict:
    with request.app.state.db.session() as session:
        release = session.get(Release, release_id)
        if release is None:
            raise NotFound(f"no release with id {release_id}")
        return release_to_dict(session, release)


# --- campaigns ------------------------------------------------------------------------------

class CampaignIn(BaseModel):
    """Exactly one of ``segment`` and ``query`` (else 400)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"release_id": 1, "query": 'topic = "human-trafficking" and county = "Cass"'}]})

    # Strict numbers and booleans: a JSON "1" is no id and 0 no boolean (the document's
    # types are the types taken; a body is validated from parsed JSON, so not model-wide,
    # which would refuse the ISO text of a datetime too).
    release_id: Id = Field(strict=True)
    segment: str | None = Field(None, description="a saved segment's name")
    query: str | None = Field(None, description="an audience query (instead of a segment)")
    subject: str | None = None
    template: str = "press_release"
    preheader: str | None = Field(None, description="the inbox preview line, at most "
                                  "150 characters (default: from the release)")
    intro: str | None = Field(None, description="a short plain-text note above the release; "
                              "blank lines separate paragraphs")


class ScheduleIn(BaseModel):
    """Exactly one of ``at`` and ``now: true`` (else 400)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"at": "2030-11-24T07:00:00"}]})

    at: datetime | None = Field(None, description="ISO 8601; without an offset it is read "
                                "in the office's time zone")
    now: bool = Field(False, strict=True)


@router.get("/campaigns", dependencies=[VIEW], summary="List campaigns, newest first",
            **answers(list[CampaignOut], 403))
def list_campaigns(request: Request, status: CampaignState | None = None,
                   limit: Limit = 50, offset: Offset = 0
                   ) -> list[dict]:
    stmt = select(Campaign).order_by(Campaign.id.desc()).limit(limit).offset(offset)
    if status:
        stmt = stmt.where(Campaign.status == status)
    with request.app.state.db.session() as session:
        return [campaign_to_dict(c) for c in session.scalars(stmt)]


@router.post("/campaigns", status_code=201, summary="Create a draft campaign",
             **answers(CampaignOut, 400, 403, 404, status=201))
def create_campaign(body: CampaignIn, request: Request,
                    who: Caller = Depends(api_may(Permission.EDIT_DRAFTS))) -> dict:
    with request.app.state.db.session() as session:
        campaign = ops.create(session, release_id=body.release_id, segment=body.segment,
                              query=body.query, subject=body.subject, template=body.template,
                              by=who.name, settings=request.app.state.settings,
                              preheader=body.preheader, intro=body.intro)
        return campaign_to_dict(campaign)


@router.get("/campaigns/{campaign_id}", dependencies=[VIEW], summary="One campaign",
            **answers(CampaignDetailOut, 403, 404))
def show_campaign(campaign_id: Id, request: Request, background: BackgroundTasks) -> dict:
    state = request.app.state
    with state.db.session() as session:
        campaign = get_campaign(session, campaign_id)
        audience = ops.audience(session, campaign, state.settings)
    recount_later(background, state.db, audience)
    return {**campaign_to_dict(campaign), "audience": shown(audience)}


@router.get("/campaigns/{campaign_id}/status", dependencies=[VIEW],
            summary="Status and delivery counts", **answers(StatusOut, 403, 404))
def campaign_status(campaign_id: Id, request: Request) -> dict:
    with request.app.state.db.session() as session:
        campaign = get_campaign(session, campaign_id)
        return ops.status(session, campaign, request.app.state.settings)


@router.post("/campaigns/{campaign_id}/approve",
             summary="Approve (refused to the campaign's author)",
             **answers(CampaignOut, 400, 403, 404, 409))
def approve_campaign(campaign_id: Id, request: Request,
                     who: Caller = Depends(api_may(Permission.APPROVE))) -> dict:
    with request.app.state.db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        ops.approve(session, campaign, by=who.name, settings=request.app.state.settings)
        return campaign_to_dict(campaign)


@router.post("/campaigns/{campaign_id}/schedule", summary="Schedule at a time, or now",
             **answers(CampaignOut, 400, 403, 404, 409))
def schedule_campaign(campaign_id: Id, body: ScheduleIn, request: Request,
                      who: Caller = Depends(api_may(Permission.SCHEDULE))) -> dict:
    settings = request.app.state.settings
    if body.now == (body.at is not None):
        raise InvalidInput("give exactly one of at or now")
    at = body.at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=settings.zone)
    if body.now:
        ops.send_now(request.app.state.db, settings, campaign_id, by=who.name)
    with request.app.state.db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        if not body.now:
            ops.schedule(session, campaign, at=at, by=who.name, settings=settings)
        return campaign_to_dict(campaign)


def _lifecycle(action: str):
    def endpoint(campaign_id: Id, request: Request,
                 who: Caller = Depends(api_may(Permission.STEER))) -> dict:
        with request.app.state.db.session() as session:
            campaign = get_campaign(session, campaign_id, for_update=True)
            getattr(ops, action)(session, campaign, by=who.name,
                                 settings=request.app.state.settings)
            return campaign_to_dict(campaign)
    endpoint.__name__ = f"{action}_campaign"
    return endpoint


for _action in ("pause", "resume", "cancel"):
    router.add_api_route(f"/campaigns/{{campaign_id}}/{_action}", _lifecycle(_action),
                         methods=["POST"], summary=f"{_action.capitalize()} a campaign",
                         **answers(CampaignOut, 403, 404, 409))


@router.post("/campaigns/{campaign_id}/retry",
             summary="Send a sent campaign again to its recipients whose delivery failed",
             **answers(RetryOut, 400, 403, 404, 409))
def retry_campaign(campaign_id: Id, request: Request,
                   who: Caller = Depends(api_may(Permission.SCHEDULE))) -> dict:
    """Only failed rows worth another try, to people who can still be mailed (the campaign
    goes back to ``sending``; ``retried`` says how many). 409 unless it is sent, 400 when
    nobody is left to retry."""
    with request.app.state.db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        retried = ops.retry(session, campaign, by=who.name, settings=request.app.state.settings)
        return {**campaign_to_dict(campaign), "retried": retried}


# --- subscribers ----------------------------------------------------------------------------

#: A subscriber named in a path, by id or by address.
EmailOrId = Annotated[str, Path(description="the subscriber's id or email address",
                                examples=["someone@example.org", "1"])]


class SubscriberIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "someone@example.org", "name": "Pat Doe", "zip": "58102",
         "topics": ["agriculture"], "double_opt_in": False}]})

    email: str
    name: str | None = None
    zip: str | None = None
    topics: list[str] = []
    frequency: Literal[FREQUENCIES] = "immediate"
    double_opt_in: bool = Field(True, strict=True,
                                description="pending until they confirm by email")


@router.get("/subscribers", dependencies=[VIEW], summary="Search subscribers",
            **answers(list[SubscriberOut], 400, 403))
def list_subscribers(request: Request, q: str | None = None,
                     status: SubscriberState | None = None,
                     limit: Limit = 50, offset: Offset = 0
                     ) -> list[dict]:

    stmt = select(Subscriber).order_by(Subscriber.id).limit(limit).offset(offset)
    if q:
        like = "%" + q.strip().lower().replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        stmt = stmt.where(or_(func.lower(Subscriber.email).like(like, escape="\\"),
                              func.lower(Subscriber.name).like(like, escape="\\")))
    if status:
        stmt = stmt.where(Subscriber.status == status)
    with request.app.state.db.session() as session:
        return [subscriber_to_dict(session, s) for s in session.scalars(stmt)]


@router.get("/subscribers/{email_or_id}", dependencies=[VIEW],
            summary="One subscriber, with status history",
            **answers(SubscriberDetailOut, 400, 403, 404))
def show_subscriber(email_or_id: EmailOrId, request: Request) -> dict:
    with request.app.state.db.session() as session:
        return subscriber_to_dict(session, _find_subscriber(session, email_or_id),
                                  history=True)


@router.post("/subscribers", status_code=201, summary="Add a subscriber",
             **answers(SubscriberOut, 400, 403, 404, status=201))
def add_subscriber(body: SubscriberIn, request: Request,
                   who: Caller = Depends(api_may(Permission.CHANGE_LIST))) -> dict:
    """Adds (or updates) a subscriber: a change of the list, so approvers and admins only.
    With ``double_opt_in`` (the default) a new address is pending and its confirmation email
    is queued (sent within seconds by the queue runner); without it the caller vouches for
    consent."""

    with request.app.state.db.session() as session:
        subscriber, created = add(
            session, email=body.email, name=body.name, zip=body.zip, topics=body.topics,
            frequency=body.frequency, status=PENDING if body.double_opt_in else ACTIVE,
            consent_source=f"api ({who.name})")
        data = subscriber_to_dict(session, subscriber)
        queued = created and subscriber.status == PENDING
        if queued:
            queue_mail(session, constituents.confirmation_mail(session, subscriber,
                                                               Links(request)))
    if queued:
        mail_queued(request)
    return data


@router.post("/subscribers/{email_or_id}/unsubscribe",
             summary="Unsubscribe and suppress (e.g. a request by phone)",
             **answers(SubscriberOut, 400, 403, 404))
def unsubscribe_subscriber(email_or_id: EmailOrId, request: Request,
                           who: Caller = Depends(api_may(Permission.CHANGE_LIST))) -> dict:

    with request.app.state.db.session() as session:
        found = _find_subscriber(session, email_or_id)
        unsubscribe(session, found, cause=f"staff: {who.name} (api)")
        return subscriber_to_dict(session, found)


def _find_subscriber(session, email_or_id: str) -> Subscriber:
    """By id (digits) or address. Raises NotFound, InvalidEmail."""

    if email_or_id.isascii() and email_or_id.isdigit():
        subscriber_id = as_id(email_or_id)  # None: past any id, so nobody's
        found = session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
        if found is None:
            raise NotFound(f"no subscriber with id {email_or_id}")
        return found
    return get_by_email(session, email_or_id)
