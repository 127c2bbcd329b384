"""`mailer releases|topics|feeds …`: contract JSON shapes, one-line failures, nothing stored."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from mailer.cli import context
from tests.conftest import FEEDS_DIR, SEED_ISSUE, SEED_RELEASE
from tests.ingest.webserver import web_fixture  # noqa: F401  (the `web` fixture)

RELEASE_KEYS = ["id", "title", "subtitle", "date", "dateline", "body", "topics", "source", "link"]


def test_topics_then_release_import_in_the_contract_shape(cli):
    topics = cli("topics", "import", SEED_ISSUE, "--json")
    assert topics.exit_code == 0, topics.stderr
    [topic] = topics.json()
    assert {k: topic[k] for k in ("slug", "name")} == {"slug": "human-trafficking",
                                                       "name": "Human Trafficking"}
    assert topic["description"]

    result = cli("releases", "import", SEED_RELEASE, "--json")
    assert result.exit_code == 0, result.stderr
    [release] = result.json()
    assert list(release)[:9] == RELEASE_KEYS
    assert release["title"] == ("Heitkamp Leads Training in Fargo on Identifying & Reporting "
                                "Human Trafficking")
    assert release["subtitle"] == ("Senator Continues Efforts to Combat Issue which is "
                                   "Unfortunately Growing in North Dakota")
    assert (release["date"], release["dateline"]) == ("2014-05-09", "FARGO, N.D.")
    assert release["body"].startswith("Continuing her efforts since last fall")
    assert release["topics"] == ["human-trafficking"]
    assert release["contact"] == ("Contact Senator Heitkamp's press office at "
                                  "press@heitkamp.senate.gov")
    assert "1 created" in result.stderr

    again = cli("releases", "import", SEED_RELEASE, "--json")
    assert again.exit_code == 0 and again.json() == []
    assert f"1 already imported (release {release['id']})" in again.stderr
    reported = cli("releases", "import", SEED_RELEASE, "--json", "--with-existing").json()
    assert [(r["id"], r["outcome"]) for r in reported] == [(release["id"], "existing")]
    assert [r["id"] for r in cli("releases", "list", "--json").json()] == [release["id"]]
    listed = cli("topics", "list", "--json").json()
    assert [t["slug"] for t in listed] == ["human-trafficking"]


def test_show_gives_scores_and_matched_terms(cli):
    cli("topics", "import", SEED_ISSUE)
    [release] = cli("releases", "import", SEED_RELEASE, "--json").json()
    shown = cli("releases", "show", release["id"], "--json").json()
    assert {k: shown[k] for k in release} == release
    [score] = shown["scores"]
    assert score["slug"] == "human-trafficking" and score["tagged"] and score["origin"] == "auto"
    assert score["score"] >= score["threshold"]
    assert score["matched"]["human trafficking"]["title"] == 1
    human = cli("releases", "show", release["id"])
    assert human.exit_code == 0 and "human trafficking (5: 1/" in human.stdout
    assert "FARGO, N.D. – Continuing" in human.stdout


def test_staff_tag_and_untag(cli):
    cli("topics", "import", SEED_ISSUE)
    [release] = cli("releases", "import", SEED_RELEASE, "--json").json()
    off = cli("releases", "untag", release["id"], "human-trafficking", "--json")
    assert off.exit_code == 0 and off.json()["topics"] == []
    cli("topics", "import", SEED_ISSUE)  # re-tagging must not undo the removal
    assert cli("releases", "show", release["id"], "--json").json()["topics"] == []
    on = cli("releases", "tag", release["id"], "Human Trafficking", "--json")
    assert on.json()["topics"] == ["human-trafficking"]
    listed = cli("releases", "list", "--topic", "human-trafficking", "--json").json()
    assert [r["id"] for r in listed] == [release["id"]]
    missing = cli("releases", "tag", release["id"], "nope")
    assert missing.exit_code == 1
    assert missing.stderr == "mailer: error: no topic 'nope' (see `mailer topics list`)\n"


def test_fixture_feeds_import_through_the_cli(cli):
    feeds = [FEEDS_DIR / n for n in ("culberson_rss.xml", "richard_burr.xml", "ruiz_rss.xml")]
    result = cli("releases", "import", *feeds, "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json()
    assert len(rows) == 45
    assert all(r["link"].startswith("http") and r["title"] == r["title"].strip() for r in rows)
    assert sum(1 for r in rows if r["date"]) == 35
    assert cli("releases", "import", *feeds, "--json").json() == []


def test_list_search_and_per_source_summary_and_campaigns_in_show(cli, db):
    from mailer.campaigns.models import Campaign

    feed = FEEDS_DIR / "ruiz_rss.xml"
    result = cli("releases", "import", SEED_RELEASE, feed, "--json")
    assert result.exit_code == 0, result.stderr
    created = len(result.json()) - 1
    assert f"  {SEED_RELEASE}: 1 created, 0 updated, 0 already imported\n" in result.stderr
    assert f"  {feed}: {created} created, 0 updated, 0 already imported\n" in result.stderr
    found = cli("releases", "list", "--search", "HEITKAMP fargo", "--json").json()
    assert [r["source"] for r in found] == [str(SEED_RELEASE)]
    assert cli("releases", "list", "--search", "heitkamp nosuchword", "--json").json() == []
    release_id = found[0]["id"]
    with db.session() as session:
        session.add(Campaign(release_id=release_id, subject="Training news", query="x = 1"))
    shown = cli("releases", "show", release_id, "--json").json()
    assert [(c["subject"], c["status"]) for c in shown["campaigns"]] == [("Training news",
                                                                          "draft")]
    assert "campaigns: " in cli("releases", "show", release_id).stdout


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty"),
    (b"%PDF-1.4 binary", "this is a PDF"),
    (b"\x00\x01\x02\x03" * 10, "binary file"),
    (b"<?xml version='1.0'?><rss version='2.0'><channel><item><title>x", "the feed is cut off"),
    (b"<?xml version='1.0'?><root><child/></root>", "not an RSS or Atom feed"),
])
def test_bad_input_one_line_non_zero_nothing_stored(cli, tmp_path, content, reason):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    result = cli("releases", "import", SEED_RELEASE, bad, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"mailer: error: {bad}: ") and reason in result.stderr
    assert result.stderr.count("\n") == 1
    assert cli("releases", "list", "--json").json() == []


def test_oversized_file_is_refused(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MAILER_MAX_IMPORT_BYTES", "1000")
    from mailer.settings import get_settings

    get_settings.cache_clear()
    result = cli("releases", "import", SEED_RELEASE)
    assert result.exit_code == 1 and "over the import limit of 1000 bytes" in result.stderr
    assert result.stderr.count("\n") == 1


def test_unknown_release_is_not_found(cli):
    result = cli("releases", "show", "999")
    assert result.exit_code == 1 and result.stderr == "mailer: error: no release with id 999\n"


def test_feeds_add_list_poll(cli, web):
    url = web.put("/ruiz.xml", (FEEDS_DIR / "ruiz_rss.xml").read_bytes(), etag='"a"')
    added = cli("feeds", "add", url, "--auto", "--json")
    assert added.exit_code == 0, added.stderr
    feed = added.json()
    assert feed["url"] == url and feed["auto"] is True and len(feed["created"]) == 10
    [listed] = cli("feeds", "list", "--json").json()
    assert listed["id"] == feed["id"] and listed["releases"] == 10
    polled = cli("feeds", "poll", "--json")
    assert polled.exit_code == 0, polled.stderr
    [result] = polled.json()
    assert result["status"] == "not_modified"

    web.put("/ruiz.xml", b"<html>gone</html>", status=500)
    failed = cli("feeds", "poll", "--json")
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)[0]["status"] == "error"
    assert failed.stderr.startswith("mailer: error: 1 of 1 feeds failed")
    assert cli("feeds", "list", "--json").json()[0]["failures"] == 1


def test_feeds_add_bad_url_stores_nothing(cli, web):
    result = cli("feeds", "add", web.url("/nothing.xml"), "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (f"mailer: error: {web.url('/nothing.xml')}: "
                             "the server answered HTTP 404\n")
    assert cli("feeds", "list", "--json").json() == []


def test_release_pasted_on_standard_input(cli):
    result = cli("releases", "import", "-", "--json",
                 input=SEED_RELEASE.read_text(encoding="utf-8"))
    assert result.exit_code == 0, result.stderr
    [release] = result.json()
    assert release["source"] == "-" and release["dateline"] == "FARGO, N.D."
    empty = cli("releases", "import", "-", input="")
    assert empty.exit_code == 1 and empty.stderr == "mailer: error: -: the file is empty\n"


def test_feeds_remove_keeps_the_releases(cli, web):
    url = web.put("/ruiz.xml", (FEEDS_DIR / "ruiz_rss.xml").read_bytes())
    feed = cli("feeds", "add", url, "--json").json()
    removed = cli("feeds", "remove", url, "--json")
    assert removed.exit_code == 0 and removed.json()["id"] == feed["id"]
    assert cli("feeds", "list", "--json").json() == []
    releases = cli("releases", "list", "--json").json()
    assert len(releases) == 10
    assert cli("feeds", "remove", str(feed["id"])).exit_code == 1


def test_feeds_list_shows_times_in_the_office_zone(cli, web, monkeypatch):
    monkeypatch.setenv("MAILER_TIMEZONE", "America/Chicago")
    from mailer.settings import get_settings

    get_settings.cache_clear()
    cli("feeds", "add", web.put("/f.xml", (FEEDS_DIR / "ruiz_rss.xml").read_bytes()))
    shown = cli("feeds", "list")
    assert shown.exit_code == 0 and (" CST" in shown.stdout or " CDT" in shown.stdout)


def test_service_logs_are_stamped_in_the_office_zone(settings, monkeypatch):
    """Long-running processes stamp their log lines in the office's zone, with the zone
    named, not in the machine's zone."""
    monkeypatch.setenv("MAILER_TIMEZONE", "Pacific/Honolulu")
    context.reset()
    record = logging.LogRecord("mailer", logging.INFO, __file__, 1, "hello", None, None)
    record.created = datetime(2026, 11, 23, 18, 5, 9, tzinfo=UTC).timestamp()
    line = context.OfficeTimeFormatter("%(asctime)s %(message)s").format(record)
    assert line == "2026-11-23 08:05:09 HST hello"
