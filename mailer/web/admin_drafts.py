"""The dashboard's draft editing: change a campaign's subject, audience, template, preheader
and intro note with its preview beside the form, and duplicate a campaign into a new draft.

Both call the actions ``mailer campaigns edit`` and ``mailer campaigns duplicate`` call. An
edit of an approved or scheduled campaign sends it back to draft (it needs approval again);
the form says so before it is saved.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from mailer.campaigns import actions as ops
from mailer.campaigns.models import Campaign
from mailer.campaigns.service import PREHEADER_MAX, get_campaign
from mailer.errors import MailerError
from mailer.render.environment import release_templates
from mailer.web.models import User
from mailer.web.pages import flash, render
from mailer.web.params import Id
from mailer.web.roles import Permission
from mailer.web.staff import checked_form, see_other, staff_may
from subscribers.models import Segment, Topic

router = APIRouter(prefix="/admin", include_in_schema=False)
FIELDS = ("subject", "segment", "query", "template", "preheader", "intro")


@router.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
def edit_form(campaign_id: Id, request: Request,
              user: User = Depends(staff_may(Permission.EDIT_DRAFTS))) -> Response:
    with request.app.state.db.session() as session:
        campaign = get_campaign(session, campaign_id)
        return _page(request, session, campaign, _current(session, campaign))


@router.post("/campaigns/{campaign_id}/edit", response_class=HTMLResponse)
async def edit_save(campaign_id: Id, request: Request,
                    user: User = Depends(staff_may(Permission.EDIT_DRAFTS))) -> Response:
    form = await checked_form(request)
    wanted = {k: str(form.get(k) or "").strip() for k in FIELDS}
    with request.app.state.db.session() as session:
        campaign = get_campaign(session, campaign_id, for_update=True)
        was = campaign.status
        try:
            changed = ops.edit(session, campaign, by=user.name,
                               settings=request.app.state.settings,
                               **_changes(_current(session, campaign), wanted))
        except MailerError as exc:
            session.rollback()
            campaign = get_campaign(session, campaign_id)
            return _page(request, session, campaign, wanted, str(exc), status_code=422)
    note = " It is a draft again and needs approval." if was != "draft" else ""
    flash(request, f"Saved: {', '.join(c.removesuffix('_id') for c in changed)}.{note}",
          "success")
    return see_other(f"/admin/campaigns/{campaign_id}")


@router.post("/campaigns/{campaign_id}/duplicate")
async def duplicate(campaign_id: Id, request: Request,
                    user: User = Depends(staff_may(Permission.EDIT_DRAFTS))) -> Response:
    await checked_form(request)
    with request.app.state.db.session() as session:
        copy = ops.duplicate(session, get_campaign(session, campaign_id), by=user.name)
        copy_id = copy.id
    flash(request, f"Campaign {copy_id} is a new draft copied from campaign {campaign_id}.",
          "success")
    return see_other(f"/admin/campaigns/{copy_id}/edit")


def _current(session, campaign: Campaign) -> dict[str, str]:
    segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
    return {"subject": campaign.subject, "segment": segment.name if segment else "",
            "query": campaign.query or "", "template": campaign.template,
            "preheader": campaign.preheader or "", "intro": campaign.intro or ""}


def _changes(current: dict[str, str], wanted: dict[str, str]) -> dict[str, str]:
    """Only what the form changed, as ``ops.edit`` takes it (a segment or a query)."""
    changes = {k: wanted[k] for k in ("subject", "template", "preheader", "intro")
               if wanted[k] != current[k]}
    if wanted["segment"] and wanted["segment"] != current["segment"]:
        changes["segment"] = wanted["segment"]
    elif not wanted["segment"] and (current["segment"] or wanted["query"] != current["query"]):
        changes["query"] = wanted["query"]
    return changes


def _page(request: Request, session, campaign: Campaign, values: dict[str, str],
          error: str | None = None, status_code: int = 200) -> Response:
    return render(request, "admin/campaign_edit.html", {
        "c": campaign, "values": values, "error": error, "preheader_max": PREHEADER_MAX,
        "segments": list(session.scalars(select(Segment).order_by(Segment.name))),
        "topics": list(session.scalars(select(Topic).order_by(Topic.name))),
        "templates": release_templates(request.app.state.settings),
    }, status_code=status_code)
