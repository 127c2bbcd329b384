"""The dashboard's campaign moves: test, approve, schedule or send now, pause, resume, cancel,
retry the failed recipients of a sent campaign.

``POST /admin/campaigns/{id}/{action}`` checks the move's permission (``mailer.web.roles``),
asks first for every move that sends or cancels (a page naming how many people it reaches,
``mailer.web.staff``), then calls the same action the CLI and the API call.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from mailer.campaigns import actions as ops
from mailer.campaigns.models import Campaign
from mailer.campaigns.service import get_campaign
from mailer.delivery import records
from mailer.errors import InvalidInput, MailerError
from mailer.scheduling.policy import format_local
from mailer.web.models import User
from mailer.web.pages import flash, flash_error
from mailer.web.params import Id
from mailer.web.roles import Permission, check
from mailer.web.staff import (
    Confirmation,
    ask,
    checked_form,
    needs_confirmation,
    see_other,
    staff_user,
)

router = APIRouter(prefix="/admin", include_in_schema=False)

#: Each move and the permission it needs.
MOVES: dict[str, Permission] = {
    "test": Permission.SEND_TESTS, "approve": Permission.APPROVE,
    "schedule": Permission.SCHEDULE, "pause": Permission.STEER,
    "resume": Permission.STEER, "cancel": Permission.STEER,
    "retry": Permission.SCHEDULE,  # it sends, as "send now" does
}
#: Moves that send or cancel: asked first.
ASKED = ("schedule", "resume", "cancel", "retry")
DONE = {"approve": "Approved.", "pause": "Paused.", "resume": "Resumed.",
        "cancel": "Cancelled.", "schedule": "Scheduled."}


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(campaign_id: Id, action: str, request: Request,
                          user: User = Depends(staff_user)) -> Response:
    """approve | schedule | pause | resume | cancel | retry | test, as the logged-in user."""
    if action not in MOVES:
        raise HTTPException(404, "There is no such action.")
    check(user, MOVES[action])
    form = await checked_form(request)
    back = f"/admin/campaigns/{campaign_id}"
    try:
        if action in ASKED and needs_confirmation(form):
            return _ask(request, campaign_id, action, form)
        message = _move(request, campaign_id, action, form, user)
    except MailerError as exc:  # refused: nothing was changed (the session rolled back)
        flash_error(request, exc)
    else:
        flash(request, message, "success")
    return see_other(back)


def _move(request: Request, campaign_id: int, action: str, form, user: User) -> str:
    state = request.app.state
    if action == "schedule" and form.get("when") == "now":
        ops.send_now(state.db, state.settings, campaign_id, by=user.name)
        return "Sending has started."
    with state.db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        if action == "test":
            to = str(form.get("to") or "").replace(";", ",").split(",")
            sent = ops.send_test(session, campaign, to=to, settings=state.settings,
                                 signer=state.signer)
            return f"Test sent to {sent} address{'es' if sent != 1 else ''}."
        if action == "retry":
            retried = ops.retry(session, campaign, by=user.name, settings=state.settings)
            return f"Sending again to {_people(retried)} whose delivery failed."
        if action == "approve":
            ops.approve(session, campaign, by=user.name, settings=state.settings)
        elif action == "schedule":
            at = parse_local(str(form.get("at") or ""), state.settings)
            ops.schedule(session, campaign, at=at, by=user.name, settings=state.settings)
        else:
            {"pause": ops.pause, "resume": ops.resume, "cancel": ops.cancel}[action](
                session, campaign, by=user.name, settings=state.settings)
    return DONE[action]


def _ask(request: Request, campaign_id: int, action: str, form) -> Response:
    """The confirmation page for a move that sends or cancels, with the people it reaches."""
    settings = request.app.state.settings
    with request.app.state.db.session() as session:
        campaign = get_campaign(session, campaign_id)
        if action == "retry":
            return _ask_retry(request, campaign, ops.retryable(session, campaign))
        reach = _reach(session, campaign)
        if action == "schedule" and form.get("when") != "now":
            at = format_local(parse_local(str(form.get("at") or ""), settings), settings)
        subject = campaign.subject
    fields = {k: str(form.get(k) or "") for k in ("when", "at") if form.get(k)}
    back = f"/admin/campaigns/{campaign_id}"
    if action == "schedule" and form.get("when") == "now":
        asked = Confirmation(
            question=f"Send to {reach} now?",
            consequence=f"“{subject}” goes out at once. Sent email cannot be called back.",
            action=f"{back}/schedule", button="Send now", back=back, fields=fields)
    elif action == "schedule":
        asked = Confirmation(
            question=f"Send to {reach} at {at}?",
            consequence=f"“{subject}” goes out then by itself, unless someone pauses or "
                        "cancels it first.",
            action=f"{back}/schedule", button="Schedule", back=back, fields=fields,
            danger=False)
    elif action == "resume":
        asked = Confirmation(
            question=f"Resume sending to {reach}?",
            consequence=f"“{subject}” goes on to everyone not yet sent a copy.",
            action=f"{back}/resume", button="Resume sending", back=back, danger=False)
    else:
        asked = Confirmation(
            question=f"Cancel “{subject}”?",
            consequence=f"Nobody else gets it ({reach} not yet sent a copy); people already "
                        "sent one keep it. A cancelled campaign cannot be restarted.",
            action=f"{back}/cancel", button="Cancel campaign", back=back)
    return ask(request, asked)


def _ask_retry(request: Request, campaign: Campaign, people: int) -> Response:
    """"Send again to 37 people whose delivery failed?" (refused when nobody is left)."""
    if not people:
        raise InvalidInput(f"campaign {campaign.id} has no failed recipients to retry")
    back = f"/admin/campaigns/{campaign.id}"
    return ask(request, Confirmation(
        question=f"Send again to {_people(people)} whose delivery failed?",
        consequence=f"“{campaign.subject}” goes once more to those people only. Nobody who "
                    "was already sent a copy gets another, nor anyone who unsubscribed, "
                    "bounced or was suppressed since.",
        action=f"{back}/retry", button="Send again", back=back, danger=False))


def _people(count: int) -> str:
    return f"{count:,} {'person' if count == 1 else 'people'}"


def _reach(session, campaign: Campaign) -> str:
    """"18,204 people": who a start reaches, or who is still to be sent once started."""
    audience = ops.audience(session, campaign)
    if audience is None:
        counts = records.counts_by_campaign(session, [campaign.id])[campaign.id]
        left = ops.progress(campaign, counts)
        people = left["recipients"] - left["done"]
    elif "error" in audience:
        raise InvalidInput(f"its audience cannot be counted: {audience['error']}")
    else:
        people = audience["now"]
    return _people(people)


def parse_local(text: str, settings) -> datetime:
    """A ``datetime-local`` value in the office's zone, as aware UTC. Raises InvalidInput."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("give the date and time to send") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=settings.zone)
    return moment
