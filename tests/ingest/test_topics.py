"""Issue pages become topics; releases are tagged by a score anyone can recompute."""

from __future__ import annotations

import pytest

from mailer.errors import IngestError, NotFound
from mailer.ingest.models import Release, ReleaseTopic
from mailer.ingest.service import import_sources, release_to_dict
from mailer.ingest.topics import (
    THRESHOLD,
    import_topic_pages,
    parse_issue_page,
    score_release,
    set_tag,
    tag_release,
    tokens,
)
from subscribers.models import Topic
from tests.conftest import FEEDS_DIR, SEED_ISSUE, SEED_RELEASE


def test_seed_issue_page_yields_the_topic():
    draft = parse_issue_page(SEED_ISSUE.read_text(encoding="utf-8"), "issue.txt")
    assert (draft.slug, draft.name) == ("human-trafficking", "Human Trafficking")
    assert draft.description.startswith("Since joining the Senate, Senator Heitkamp")
    assert draft.terms["human trafficking"] == 5.0
    assert draft.terms["trafficking"] == 2.0
    # the office line, generic Capitol words and proper names are never terms
    for word in ("heitkamp", "north", "dakota", "senator", "senate", "mccain", "klobuchar",
                 "mexico", "fargo"):
        assert word not in draft.terms


def test_score_is_the_documented_formula():
    topic = Topic(slug="t", name="T", terms={"human trafficking": 5.0, "trafficking": 2.0,
                                             "victim": 1.0})
    release = Release(title="Human Trafficking Hearing", subtitle=None,
                      body="Victims of human trafficking and of trafficking. " + "word " * 300)
    result = score_release(release, topic)
    words = len(tokens(release.title)) + len(tokens(release.body))
    # longest first: "human trafficking" takes its words, so "trafficking" counts once
    assert result.matched == {
        "human trafficking": {"weight": 5.0, "title": 1, "body": 1},
        "trafficking": {"weight": 2.0, "title": 0, "body": 1},
        "victim": {"weight": 1.0, "title": 0, "body": 1},
    }
    expected = (5 * (3 * 1 + 1) + 2 * 1 + 1 * 1) * 1000 / words
    assert result.score == round(expected, 2)


def test_common_words_alone_never_tag():
    topic = Topic(slug="t", name="T", terms={"human trafficking": 5.0, "victim": 1.0})
    release = Release(title="Victims", subtitle=None, body="victims victims victims")
    result = score_release(release, topic)
    assert result.score >= THRESHOLD and not result.qualifies


def test_seed_release_is_tagged_and_feed_items_are_not(db, settings):
    with db.session() as session:
        [topic] = import_topic_pages(session, [SEED_ISSUE], settings)
        created = import_sources(session, [str(SEED_RELEASE), str(FEEDS_DIR / "ruiz_rss.xml"),
                                           str(FEEDS_DIR / "culberson_rss.xml")], settings)
        tagged = [r.title for r in created if release_to_dict(r)["topics"]]
        assert tagged == [created[0].title]
        link = created[0].topic_links[0]
        assert link.topic_id == topic.id and link.origin == "auto"
        assert link.score > THRESHOLD and link.matched["human trafficking"]["title"] == 1


def test_topics_imported_after_releases_tag_them(db, settings):
    with db.session() as session:
        [release] = import_sources(session, [str(SEED_RELEASE)], settings)
        assert release_to_dict(release)["topics"] == []
        import_topic_pages(session, [SEED_ISSUE], settings)
        assert release_to_dict(release)["topics"] == ["human-trafficking"]


def test_reimporting_an_issue_page_updates_the_topic(db, settings, tmp_path):
    page = tmp_path / "issue.md"
    page.write_text("---\nname: Human Trafficking\ndescription: Our work.\n"
                    "terms: {trafficking: 4, exploitation: 2}\n---\nHuman Trafficking\n\n"
                    "A paragraph of text about the issue.\n")
    with db.session() as session:
        import_topic_pages(session, [SEED_ISSUE], settings)
        [topic] = import_topic_pages(session, [page], settings)
        assert topic.slug == "human-trafficking" and topic.description == "Our work."
        assert topic.terms == {"trafficking": 4.0, "exploitation": 2.0}
        assert session.query(Topic).count() == 1


def test_staff_tags_and_removals_survive_retagging(db, settings):
    with db.session() as session:
        [release] = import_sources(session, [str(FEEDS_DIR / "ruiz_rss.xml")], settings)[:1]
        import_topic_pages(session, [SEED_ISSUE], settings)
        assert release_to_dict(release)["topics"] == []
        set_tag(session, release, "human-trafficking", on=True)
        tag_release(session, release)
        assert release_to_dict(release)["topics"] == ["human-trafficking"]
        [seed] = import_sources(session, [str(SEED_RELEASE)], settings)
        set_tag(session, seed, "Human Trafficking", on=False)
        tag_release(session, seed)
        import_topic_pages(session, [SEED_ISSUE], settings)  # re-tags everything
        assert release_to_dict(seed)["topics"] == []
        origins = {lt.release_id: lt.origin for lt in session.query(ReleaseTopic)}
        assert origins == {release.id: "manual", seed.id: "removed"}
        with pytest.raises(NotFound, match="no topic 'farm-bill'"):
            set_tag(session, seed, "farm-bill", on=True)


@pytest.mark.parametrize("text, reason", [
    ("This page is one long paragraph of prose that never gives the topic a name, because it "
     "just keeps going and going and going with sentences.", "no topic name"),
    ("Senator Jane Smith United States Senator for North Dakota\n\nHuman Trafficking\n",
     "no text under its name"),
])
def test_unusable_issue_pages(text, reason):
    with pytest.raises(IngestError, match=reason):
        parse_issue_page(text, "issue.txt")


def test_html_issue_page(db, settings, tmp_path):
    page = tmp_path / "issue.html"
    text = SEED_ISSUE.read_text(encoding="utf-8").split("\n\n")
    page.write_text("<html><body><nav><a href='/'>Home</a></nav><main>"
                    f"<p>{text[0]}</p><h1>{text[1]}</h1>"
                    + "".join(f"<p>{p}</p>" for p in text[2:])
                    + "</main><footer>Privacy</footer></body></html>", encoding="utf-8")
    with db.session() as session:
        [topic] = import_topic_pages(session, [page], settings)
        assert (topic.slug, topic.name) == ("human-trafficking", "Human Trafficking")
        assert topic.terms["human trafficking"] == 5.0 and "home" not in topic.terms
