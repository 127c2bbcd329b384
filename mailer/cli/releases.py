"""``mailer releases …``, ``mailer topics …`` and ``mailer feeds …``."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import select

from mailer.cli import context
from mailer.cli.apps import feeds_app, releases_app, topics_app
from mailer.ingest.actions import import_releases, set_release_tag
from mailer.ingest.feeds import add_feed, feed_to_dict, get_feed, poll_all_feeds, poll_due_feeds
from mailer.ingest.models import Feed
from mailer.ingest.service import get_release, list_releases, release_detail, release_to_dict
from mailer.ingest.topics import import_topic_pages, topic_to_dict
from subscribers.models import Topic

JSON = typer.Option(False, "--json", help="Print one JSON document.")


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")


def _release_table(console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no releases")
        return
    table = Table("id", "date", "title", "topics", box=None)
    for row in rows:
        table.add_row(str(row["id"]), row["date"] or "—", row["title"],
                      ", ".join(row["topics"]) or "—")
    console.print(table)




# ---------------------------------------------------------------- releases


@releases_app.command("import")
def import_command(
    sources: list[str] = typer.Argument(..., metavar="PATH_OR_URL…",
                                        help="Text, HTML or Markdown files, RSS/Atom feeds, "
                                             "http(s) URLs of any of them, or - to read "
                                             "standard input."),
    as_json: bool = JSON,
    with_existing: bool = typer.Option(
        False, "--with-existing",
        help="Also list the releases a source carried that were already imported (or were "
             "updated), each with an \"outcome\" of created, updated or existing."),
) -> None:
    """Import press releases; prints the releases created (re-imports create nothing).

    The summary on standard error names the ids of releases already imported; with
    ``--with-existing`` the printed list holds them too, so a script can find the id of a
    release it imported before without parsing that line."""
    with context.progress("reading") as progress:
        result = import_releases(context.database(), sources, context.settings(),
                                 progress=progress)
    _note(f"releases: {result.summary}")
    if len(result.sources) > 1:
        for source in result.sources:
            _note(f"  {source.source}: {source.summary()}")
    if result.campaigns_touched:
        _note("campaigns following changed releases: "
              + ", ".join(map(str, result.campaigns_touched)))
    context.emit(result.rows if with_existing else result.created(), as_json, _release_table)


@releases_app.command("list")
def list_command(
    topic: str | None = typer.Option(None, "--topic", help="Only releases tagged with this topic."),
    search: str | None = typer.Option(None, "--search", help="Only releases whose title or "
                                      "body holds every word of this (any case)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    as_json: bool = JSON,
) -> None:
    """Releases, newest first (the dashboard's releases list)."""

    with context.database().session() as session:
        rows = [release_to_dict(r)
                for r in list_releases(session, topic=topic, limit=limit, text=search)]
    context.emit(rows, as_json, _release_table)


@releases_app.command("show")
def show_command(release_id: int = typer.Argument(..., metavar="ID"), as_json: bool = JSON) -> None:
    """One release with its topic scores and the terms that matched."""

    with context.database().session() as session:
        data = release_detail(session, get_release(session, release_id))
    context.emit(data, as_json, _show_human)


def _show_human(console, data: dict[str, Any]) -> None:
    console.print(f"[bold]{data['title']}[/bold]", highlight=False)
    if data["subtitle"]:
        console.print(data["subtitle"], style="italic", highlight=False)
    console.print(f"#{data['id']}  {data['date'] or 'undated'}  {data['dateline'] or ''}  "
                  f"{data['link'] or data['source']}", highlight=False)
    console.print()
    first, *rest = data["body"].split("\n\n") if data["body"] else [""]
    if data["dateline"]:
        first = f"{data['dateline']} – {first}"
    for paragraph in [first, *rest]:
        console.print(paragraph, highlight=False, markup=False)
        console.print()
    if data["contact"]:
        console.print(f"Contact: {data['contact']}", highlight=False, markup=False)
    table = Table("topic", "score", "tagged", "matched terms (weight: title/body hits)", box=None)
    for s in data["scores"]:
        terms = "\n".join(f"{t} ({m['weight']:g}: {m['title']}/{m['body']})"
                           for t, m in s["matched"].items())
        tagged = s["origin"] if s["tagged"] else ("removed" if s["origin"] else "no")
        table.add_row(s["slug"], f"{s['score']:g}", tagged, terms or "—")
    if data["campaigns"]:
        console.print("campaigns: " + ", ".join(f"{c['id']} ({c['status']})"
                                                for c in data["campaigns"]), highlight=False)
    if data["scores"]:
        console.print(f"topic scores (tagged at {data['scores'][0]['threshold']:g} or more "
                      "with a core term):")
        console.print(table)


def _tag(release_id: int, topic: str, on: bool, as_json: bool) -> None:
    data = set_release_tag(context.database(), release_id, topic, on=on)
    context.emit(data, as_json, lambda c, d: c.print(
        f"release {d['id']} topics: {', '.join(d['topics']) or '—'}", highlight=False))


@releases_app.command("tag")
def tag_command(release_id: int = typer.Argument(..., metavar="ID"),
                topic: str = typer.Argument(..., metavar="TOPIC"), as_json: bool = JSON) -> None:
    """Tag a release with a topic by hand (the tagger never removes a staff tag)."""
    _tag(release_id, topic, True, as_json)


@releases_app.command("untag")
def untag_command(release_id: int = typer.Argument(..., metavar="ID"),
                  topic: str = typer.Argument(..., metavar="TOPIC"), as_json: bool = JSON) -> None:
    """Take a topic off a release (the tagger will not add it back)."""
    _tag(release_id, topic, False, as_json)


# ---------------------------------------------------------------- topics


def _topic_table(console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no topics")
        return
    table = Table("slug", "name", "key terms", box=None)
    for row in rows:
        terms = ", ".join(f"{t} ({w:g})" for t, w in list(row.get("terms", {}).items())[:6])
        table.add_row(row["slug"], row["name"], terms)
    console.print(table)


@topics_app.command("import")
def topics_import_command(
    paths: list[str] = typer.Argument(..., metavar="PATH…", help="Issue pages (text, HTML, "
                                      "Markdown with front matter)."),
    as_json: bool = JSON,
) -> None:
    """Turn issue pages into topics (by slug: re-importing updates), then re-tag releases."""

    with context.database().session() as session:
        rows = [topic_to_dict(t) for t in import_topic_pages(session, paths, context.settings())]
    context.emit(rows, as_json, _topic_table)


@topics_app.command("list")
def topics_list_command(as_json: bool = JSON) -> None:
    """Every topic with its weighted key terms."""
    with context.database().session() as session:
        rows = [topic_to_dict(t) for t in session.scalars(select(Topic).order_by(Topic.slug))]
    context.emit(rows, as_json, _topic_table)


# ---------------------------------------------------------------- feeds


def _feed_table(console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no feeds")
        return
    table = Table("id", "url", "auto", "last success", "next poll", "failures", "last error",
                  box=None)
    for row in rows:
        table.add_row(str(row["id"]), row["url"], "yes" if row["auto"] else "no",
                      _local(row["last_success_at"]), _local(row["next_poll_at"]),
                      str(row["failures"]), row["last_error"] or "")
    console.print(table)


def _local(iso: str | None) -> str:
    """An ISO UTC time as the office reads it (MAILER_TIMEZONE)."""
    return context.local(iso, empty="—")


@feeds_app.command("add")
def feeds_add_command(
    url: str = typer.Argument(..., metavar="URL"),
    auto: bool = typer.Option(False, "--auto", help="New items' campaigns go through the "
                              "approval rules and get scheduled without a person."),
    as_json: bool = JSON,
) -> None:
    """Watch a feed. Its current items are imported now (without campaigns)."""

    with context.database().session() as session:
        feed, report = add_feed(session, url, context.settings(), auto=auto)
        data = {**feed_to_dict(feed, session), "baseline": report.summary(),
                "created": [r.id for r in report.created]}
    context.emit(data, as_json, lambda c, d: c.print(
        f"watching feed {d['id']} {d['url']} ({d['baseline']})", highlight=False))


@feeds_app.command("list")
def feeds_list_command(as_json: bool = JSON) -> None:
    """Watched feeds and how their polling goes."""
    with context.database().session() as session:
        rows = [feed_to_dict(f, session) for f in session.scalars(select(Feed).order_by(Feed.id))]
    context.emit(rows, as_json, _feed_table)


@feeds_app.command("remove")
def feeds_remove_command(ref: str = typer.Argument(..., metavar="ID_OR_URL"),
                         as_json: bool = JSON) -> None:
    """Stop watching a feed. Its releases and campaigns stay."""

    with context.database().session() as session:
        feed = get_feed(session, ref)
        data = feed_to_dict(feed)
        session.delete(feed)
    context.emit(data, as_json, lambda c, d: c.print(
        f"no longer watching feed {d['id']} {d['url']}", highlight=False))


@feeds_app.command("poll")
def feeds_poll_command(
    due_only: bool = typer.Option(False, "--due", help="Only feeds whose next poll has come."),
    as_json: bool = JSON,
) -> None:
    """Poll feeds now; new items become releases and draft campaigns. Exits 1 when any
    feed failed (after reporting every feed)."""

    db, settings = context.database(), context.settings()
    results = poll_due_feeds(db, settings) if due_only else poll_all_feeds(db, settings)
    context.emit(results, as_json, _poll_human)
    failed = [r for r in results if r["status"] == "error"]
    if failed:
        _note(f"mailer: error: {len(failed)} of {len(results)} feeds failed; first: "
              f"{failed[0].get('url', failed[0]['feed_id'])}: {failed[0]['error']}")
        raise typer.Exit(1)


def _poll_human(console, results: list[dict[str, Any]]) -> None:
    if not results:
        console.print("no feeds to poll")
    for r in results:
        if r["status"] == "ok":
            drafts = [c["campaign_id"] for c in r["campaigns"] if c.get("campaign_id")]
            console.print(f"feed {r['feed_id']}: {len(r['created'])} new, "
                          f"{len(r['updated'])} updated, draft campaigns: "
                          f"{', '.join(map(str, drafts)) or 'none'}", highlight=False)
        else:
            console.print(f"feed {r['feed_id']}: {r['status']} {r.get('error', '')}",
                          highlight=False, markup=False)
