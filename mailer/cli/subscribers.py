"""``mailer subscribers …`` and ``mailer segments …``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import select

from mailer.cli import context
from mailer.campaigns.actions import edit_segment
from mailer.cli.apps import segments_app, subscribers_app
from mailer.delivery.audience import audience_count
from mailer.delivery.confirmations import send_confirmations
from mailer.delivery.list_import import import_list
from mailer.errors import UsageError
from mailer.tracking.erasure import forget
from subscribers import places, service
from subscribers import segments as seg
from subscribers.export import export_subscribers
from subscribers.models import ACTIVE, PENDING, Segment

JSON = typer.Option(False, "--json", help="Print one JSON document.")


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").replace(";", ",").split(",") if t.strip()]


# --- subscribers -----------------------------------------------------------------------------

@subscribers_app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="CSV: a plain list, a Mailchimp or a listmonk export."),
    topics: str = typer.Option("", "--topics", help="Comma-separated topic slugs for every row."),
    double_opt_in: bool = typer.Option(False, "--double-opt-in",
                                       help="New people start pending and get a confirmation."),
    as_json: bool = JSON,
) -> None:
    """Import subscribers. Idempotent; never re-activates anyone who unsubscribed."""

    with context.progress("importing") as progress:
        data = import_list(context.database(), context.settings(), context.signer(), file,
                           topics=_split(topics), double_opt_in=double_opt_in,
                           progress=progress)
    context.emit(data, as_json, _show_import)




def _show_import(console, data: dict) -> None:
    console.print(
        f"{data['rows']} rows: {data['created']} created, {data['updated']} updated, "
        f"{data['unchanged']} unchanged, {data['suppressed']} added to the suppression list, "
        f"{data['skipped']} skipped ({data['error_count']} invalid, {data['duplicates']} "
        f"duplicates, {data['kept_suppressed']} kept unsubscribed)", markup=False)
    for error in data["errors"]:
        console.print(f"  line {error['line']}: {error['reason']}", markup=False)
    if data["error_count"] > len(data["errors"]):
        console.print(f"  … and {data['error_count'] - len(data['errors'])} more", markup=False)
    for warning in data["warnings"][:20]:
        console.print(f"  line {warning['line']}: {warning['reason']}", markup=False)
    for slug, n in data["unknown_topics"].items():
        console.print(f"  unknown topic {slug!r} on {n} rows (not created; people imported "
                      "without it)", markup=False)
    if "confirmations" in data:
        c = data["confirmations"]
        console.print(f"confirmation emails: {c['sent']} sent, {c['failed']} failed", markup=False)


@subscribers_app.command("export")
def export_command(
    file: Path = typer.Argument(..., help="Where to write the CSV."),
    query: str = typer.Option(None, "--query", help="Only subscribers matching this query."),
    as_json: bool = JSON,
) -> None:
    """Write subscribers to CSV (spreadsheet-safe: formula-like cells are neutralized)."""

    written = export_subscribers(context.database(), file, query=query)
    context.emit({"file": str(file), "exported": written}, as_json,
                 lambda c, d: c.print(f"wrote {d['exported']} subscribers to {d['file']}",
                                      markup=False))


@subscribers_app.command("add")
def add_command(
    email: str = typer.Argument(...),
    name: str = typer.Option(None, "--name"),
    zip_code: str = typer.Option(None, "--zip"),
    county: str = typer.Option(None, "--county"),
    state: str = typer.Option(None, "--state"),
    district: str = typer.Option(None, "--district"),
    topics: str = typer.Option("", "--topics", help="Comma-separated topic slugs."),
    frequency: str = typer.Option("immediate", "--frequency", help="immediate, daily or weekly."),
    pending: bool = typer.Option(False, "--pending", help="Start pending (double opt-in)."),
    as_json: bool = JSON,
) -> None:
    """Add a subscriber (or update one). Never re-activates an unsubscribed address."""
    with context.database().session() as session:
        subscriber, created = service.add_subscriber(
            session, email=email, name=name, zip=zip_code, county=county, state=state,
            district=district, topics=_split(topics), frequency=frequency,
            status=PENDING if pending else ACTIVE, consent_source="staff (mailer subscribers add)")
        data = {**service.subscriber_to_dict(session, subscriber), "created": created}
    context.emit(data, as_json, lambda c, d: c.print(
        f"{'added' if d['created'] else 'updated'} {d['email']} ({d['status']})", markup=False))


@subscribers_app.command("show")
def show_command(email: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """One subscriber: details, topics, status, consent and the history of status changes."""
    with context.database().session() as session:
        data = service.subscriber_to_dict(session, service.get_by_email(session, email),
                                          history=True)
    context.emit(data, as_json, _show_subscriber)


def _show_subscriber(console, d: dict) -> None:
    for key in ("email", "name", "zip", "city", "county", "state", "district", "frequency",
                "status"):
        console.print(f"{key:>10}: {d[key] or '—'}", markup=False)
    console.print(f"{'topics':>10}: {', '.join(d['topics'])}", markup=False)
    consent = d["consent"]
    when = context.local(consent["at"], "?")
    console.print(f"{'consent':>10}: {consent['source'] or ''} at {when}"
                  f"{' from ' + consent['ip'] if consent['ip'] else ''}; confirmed "
                  f"{context.local(consent['confirmed_at'], 'no')}", markup=False)
    if d["suppressed"]:
        console.print(f"{'':>10}  on the suppression list", markup=False)
    for change in d.get("history", []):
        move = change["to"] if change["from"] is None else f"{change['from']} → {change['to']}"
        console.print(f"  {context.local(change['at'])}  {move} ({change['cause']})",
                      markup=False)


@subscribers_app.command("unsubscribe")
def unsubscribe_command(email: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Unsubscribe an address (at the constituent's request) and suppress it."""
    with context.database().session() as session:
        subscriber = service.get_by_email(session, email)
        changed = service.unsubscribe(session, subscriber, cause="staff (mailer subscribers "
                                                                 "unsubscribe)")
        data = {"email": subscriber.email, "status": subscriber.status, "changed": changed}
    context.emit(data, as_json, lambda c, d: c.print(
        f"{d['email']} {'unsubscribed' if d['changed'] else 'was already unsubscribed'}",
        markup=False))


@subscribers_app.command("forget")
def forget_command(email: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Erase a person's data; only a hash of the address stays, so no import adds them back."""
    with context.database().session() as session:
        subscriber = service.get_by_email(session, email)
        forget(session, subscriber, cause="staff (mailer subscribers forget)")
    context.emit({"forgotten": True, "suppressed": True}, as_json,
                 lambda c, d: c.print("forgotten; the address stays on the suppression list "
                                      "(as a hash)", markup=False))


@subscribers_app.command("fill-places")
def fill_places_command(as_json: bool = JSON) -> None:
    """Fill the county and state of subscribers who have a ZIP code but no county or state,
    from the bundled U.S. ZIP dataset (what they gave is kept)."""
    with context.database().session() as session:
        changed = places.backfill(session)
    context.emit({"updated": changed}, as_json,
                 lambda c, d: c.print(f"{d['updated']:,} subscribers' county or state filled "
                                      "from their ZIP code"))


@subscribers_app.command("list")
def list_command(
    query: str = typer.Option(None, "--query", help="A segment query (any status)."),
    limit: int = typer.Option(50, "--limit", min=1, max=100_000),
    as_json: bool = JSON,
) -> None:
    """Subscribers (matching a query, whatever their status), oldest first."""
    with context.database().session() as session:
        rows = session.scalars(seg.matching_select(session, query=query).limit(limit)).all()
        data = [{"id": s.id, "email": s.email, "name": s.name, "zip": s.zip,
                 "county": s.county, "state": s.state, "status": s.status,
                 "frequency": s.frequency} for s in rows]
    context.emit(data, as_json, _show_list)


def _show_list(console, rows: list[dict]) -> None:
    table = Table("id", "email", "name", "zip", "county", "status")
    for r in rows:
        table.add_row(str(r["id"]), r["email"], r["name"] or "", r["zip"] or "",
                      r["county"] or "", r["status"])
    console.print(table)


@subscribers_app.command("send-confirmations")
def send_confirmations_command(as_json: bool = JSON) -> None:
    """Send the confirmation email to pending subscribers who have not had one yet."""

    data = send_confirmations(context.database(), context.settings(), context.signer())
    context.emit(data, as_json, lambda c, d: c.print(
        f"confirmation emails: {d['sent']} sent, {d['failed']} failed", markup=False))


# --- segments --------------------------------------------------------------------------------

@segments_app.command("create")
def segment_create(
    name: str = typer.Argument(...),
    query: str = typer.Option(..., "--query", help='e.g. topic = "human-trafficking"'),
    as_json: bool = JSON,
) -> None:
    """Save a query under a name; it is evaluated afresh each time it is used."""
    with context.database().session() as session:
        _warn_unknown_topics(session, query)
        segment = seg.create_segment(session, name, query)
        data = seg.segment_to_dict(segment, seg.count(session, segment=segment.id))
    context.emit(data, as_json, lambda c, d: c.print(
        f"segment {d['name']!r} saved ({d['count']} subscribers now)", markup=False))


@segments_app.command("count")
def segment_count(
    name: str = typer.Argument(None, help="A saved segment."),
    query: str = typer.Option(None, "--query", help="A query instead of a saved segment."),
    every_status: bool = typer.Option(False, "--all",
                                      help="Count every match, not only who a send reaches."),
    as_json: bool = JSON,
) -> None:
    """How many active, unsuppressed subscribers a send to this segment or query reaches:
    ``{"count", "now", "in_digests"}`` (who gets a release as it goes out, who gets it in
    their daily or weekly digest); with ``--all``, ``{"count"}`` of every match."""
    if (name is None) == (query is None):
        raise UsageError("give a segment NAME or --query, not both")
    with context.database().session() as session:
        if query is not None:
            _warn_unknown_topics(session, query)
        if every_status:
            data = {"count": seg.count(session, query=query, segment=name, audience=False)}
        else:
            data = audience_count(session, query=query, segment=name)
    context.emit(data, as_json, _print_count)


def _print_count(console, data) -> None:
    split = (f" ({data['now']} get each release as it goes out, {data['in_digests']} in "
             "their daily or weekly digest)" if data.get("in_digests") else "")
    console.print(f"{data['count']}{split}", markup=False)


@segments_app.command("list")
def segment_list(
    counts: bool = typer.Option(False, "--counts", help="Also count each segment's audience."),
    as_json: bool = JSON,
) -> None:
    """Saved segments."""
    with context.database().session() as session:
        segments = session.scalars(select(Segment).order_by(Segment.name)).all()
        data = [seg.segment_to_dict(s, seg.count(session, segment=s.id) if counts else None)
                for s in segments]
    context.emit(data, as_json, _show_segments)


def _show_segments(console, rows: list[dict]) -> None:
    table = Table("name", "query", *(["count"] if rows and "count" in rows[0] else []))
    for r in rows:
        table.add_row(r["name"], r["query"], *([str(r["count"])] if "count" in r else []))
    console.print(table)


@segments_app.command("update")
def segment_update(
    name: str = typer.Argument(..., help="The saved segment to change."),
    new_name: str = typer.Option(None, "--name", help="A new name."),
    query: str = typer.Option(None, "--query", help="A new query."),
    by: str = typer.Option(..., "--by", help="Who makes the change (logged)."),
    as_json: bool = JSON,
) -> None:
    """Rename a saved segment or change its query. A changed query sends approved and
    scheduled campaigns using it back to draft: they must be approved again."""
    if new_name is None and query is None:
        raise UsageError("give --name and/or --query")
    with context.database().session() as session:
        segment = seg.get_segment(session, name)
        if query is not None:
            _warn_unknown_topics(session, query)
        result = edit_segment(session, segment, name=new_name or segment.name,
                              query=query or segment.query, by=by)
        data = {**seg.segment_to_dict(segment), "changed": result["changed"],
                "withdrawn": result["withdrawn"]}
    context.emit(data, as_json, _show_update)


def _show_update(console, d: dict) -> None:
    console.print(f"segment {d['name']!r} saved ({' and '.join(d['changed'])} changed)",
                  markup=False)
    for campaign_id in d["withdrawn"]:
        console.print(f"campaign {campaign_id} went back to draft: approve it again",
                      markup=False)


@segments_app.command("delete")
def segment_delete(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Delete a saved segment (refused while a campaign uses it)."""
    with context.database().session() as session:
        seg.delete_segment(session, seg.get_segment(session, name))
    context.emit({"deleted": name}, as_json, lambda c, d: c.print(f"deleted {d['deleted']!r}",
                                                                 markup=False))


def _warn_unknown_topics(session, query: str) -> None:
    for slug in seg.unknown_topics(session, query):
        context.stderr().print(f"warning: no topic {slug!r} exists; it matches nobody",
                               markup=False)
