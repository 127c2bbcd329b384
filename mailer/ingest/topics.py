"""Topics from issue pages, and tagging releases by a relevance score anyone can check.

An issue page (the seed ``issue_human_trafficking.txt``) gives a topic: its name (the first
short line after the office line), a slug, a description (the opening sentences) and weighted
key terms::

    the name as a phrase ("human trafficking")              weight 5
    each content word of the name ("trafficking")           weight 2
    two-word phrases said 3+ times on the page               weight 2
    other words said 3+ times on the page                   weight 1

Words on the office line (the senator's name, the state), common English words, generic
Capitol vocabulary ("senator", "bill", "federal"…) and proper names (words the page always
capitalizes mid-sentence) are never terms. A front matter ``terms:`` mapping replaces the
computed terms, so staff can tune them.

The score of a release for a topic::

    score = sum over terms of weight × (3 × hits in title and subtitle + hits in body)
            × 1000 / max(words in title, subtitle and body, 200)

Matching is on lower-cased words with plural "s" and possessives removed; longer terms match
first and a word counts for one term only. A release is tagged when the score reaches
``THRESHOLD`` *and* at least one core term (weight >= ``CORE_WEIGHT``: the name, a name
word or a phrase) matched, so a pile of common words alone never tags a release. Score and
matched terms are stored on ``ReleaseTopic`` and shown by ``mailer releases show``. Staff
tags (origin "manual") and removals (origin "removed") are never undone by the tagger.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailer.errors import IngestError, NotFound
from mailer.ingest.html import article_text
from mailer.ingest.markdown import front_matter
from mailer.ingest.models import Release, ReleaseTopic
from mailer.ingest.parsed import clean_inline
from mailer.ingest.sources import read_source
from mailer.ingest.text import OFFICE_LINE, split_blocks
from mailer.settings import Settings, get_settings
from subscribers.models import Topic

THRESHOLD = 15.0
CORE_WEIGHT = 2.0
TITLE_FACTOR = 3
MIN_WORDS = 200
NAME_WEIGHT, NAME_WORD_WEIGHT, PHRASE_WEIGHT, WORD_WEIGHT = 5.0, 2.0, 2.0, 1.0
MAX_PHRASES, MAX_WORDS = 8, 10

STOPWORDS = frozenset("""
a about above across after again against all almost also although always am among an and
another any anyone are around as at away back be became because been before being below
between both but by came can cannot could did do does doing done down during each either
else enough even ever every few first for from further get gets getting give given go goes
going got had has have having he her here hers herself him himself his how however i if in
into is it its itself just last least less let like made make makes many may me might more
most much must my myself never new next no nor not now of off often on once one only onto
or other others our ours ourselves out over own per put rather said same say says see seek
seen several shall she should since so some such than that the their theirs them themselves
then there these they this those though three through thus to today together too toward
two under until up upon us very via was we well were what when where whether which while
who whom whose why will with within without would yet you your yours yesterday tomorrow
week weeks year years day days time times month months including include includes among
""".split())
GENERIC = frozenset("""
senator senators senate congress congressional congressman congresswoman representative
house bill bills act acts legislation law laws federal state states local government
officials official office offices committee hearing hearings member members work working
worked works help helps helped issue issues effort efforts important support supported
supports leader leaders leadership people nation national country community communities
united u.s american americans department washington statement release press news announce
announced announces today continue continues continued continuing need needs needed ensure
provide provides provided bring brought take taking joined join joins new first also well
better way ways forward meet meeting meetings year bipartisan introduce introduced
introducing pass passed passes discuss discussed many number percent million billion
thousand thousands address addressing across level levels public program programs
human problem problems global world stop combat fight end advocate advocates advocacy
training solution solutions step steps strategy action actions growing crack frontline
frontlines around support vulnerable concern concerns matter together able lead led
""".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]|[A-Za-z]")


def stem(word: str) -> str:
    """Lower case, no possessive, no plural s: "Victims'" and "victim" match."""
    word = word.lower().replace("’", "'")
    word = re.sub(r"'s?$", "", word)
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokens(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text or "")]


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", clean_inline(name).lower().replace("&", " and "))
    return slug.strip("-")[:100]


# ---------------------------------------------------------------- issue pages -> topics


@dataclass
class TopicDraft:
    name: str
    slug: str
    description: str
    terms: dict[str, float] = field(default_factory=dict)


def parse_issue_page(text: str, source: str, *, meta: dict | None = None) -> TopicDraft:
    """Read an issue page (plain text; HTML and Markdown are turned into text first).

    Raises IngestError when the page has no name line or no text.
    """

    meta = meta or {}
    blocks = [" ".join(b) for b in split_blocks(text)]
    office_words: set[str] = set()
    while blocks and OFFICE_LINE.search(blocks[0]):
        office_words |= set(tokens(blocks.pop(0)))
    name = clean_inline(str(meta.get("name") or meta.get("title") or ""))
    if not name:
        heading = next((b for b in blocks if _is_heading(b)), None)
        if heading is None:
            raise IngestError(f"{source}: no topic name (a short first line) found")
        name = heading
    prose = [b for b in blocks if not _is_heading(b)]
    if not prose:
        raise IngestError(f"{source}: the issue page has no text under its name")
    terms = meta.get("terms")
    if terms is not None:
        terms = _checked_terms(terms, source)
    else:
        terms = key_terms(name, blocks, exclude=office_words)
    return TopicDraft(
        name=name[:200], slug=slugify(str(meta.get("slug") or name)),
        description=clean_inline(str(meta.get("description") or _opening(prose[0]))),
        terms=terms,
    )


def _is_heading(block: str) -> bool:
    return len(block) <= 100 and len(block.split()) <= 12 and not block.endswith((".", ":"))


def _opening(paragraph: str) -> str:
    """The first two sentences, at most ~400 characters."""
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z“\"])", paragraph)
    out = ""
    for sentence in sentences[:2]:
        if out and len(out) + len(sentence) > 400:
            break
        out = f"{out} {sentence}".strip()
    return out


def _checked_terms(terms, source: str) -> dict[str, float]:
    if not isinstance(terms, dict) or not terms:
        raise IngestError(f"{source}: `terms` must map each term to a weight")
    out = {}
    for term, weight in terms.items():
        if not isinstance(weight, int | float) or weight <= 0 or not tokens(str(term)):
            raise IngestError(f"{source}: term {term!r} needs a positive number as its weight")
        out[clean_inline(str(term)).lower()] = float(weight)
    return out


def key_terms(name: str, blocks: list[str], *, exclude: set[str]) -> dict[str, float]:
    """Weighted terms for a topic (see the module docstring)."""
    name_tokens = tokens(name)
    blocked = STOPWORDS | GENERIC | exclude | _proper_names(blocks)
    terms: dict[str, float] = {" ".join(name_tokens): NAME_WEIGHT} if name_tokens else {}
    content = [t for t in name_tokens if t not in STOPWORDS | GENERIC | exclude]
    if len(name_tokens) > 1:
        for word in content:
            terms.setdefault(word, NAME_WORD_WEIGHT)
    words, pairs = Counter(), Counter()
    for block in blocks:
        toks = tokens(block)
        words.update(t for t in toks if t not in blocked and len(t) > 2)
        pairs.update(f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)
                     if a not in blocked and b not in blocked and len(a) > 2 and len(b) > 2)
    for pair, count in pairs.most_common(MAX_PHRASES):
        if count >= 3:
            terms.setdefault(pair, PHRASE_WEIGHT)
    for word, count in words.most_common(MAX_WORDS):
        if count >= 3:
            terms.setdefault(word, WORD_WEIGHT)
    return terms


def _proper_names(blocks: list[str]) -> set[str]:
    """Words always capitalized when not starting a sentence (names, places)."""
    upper, lower = Counter(), Counter()
    for block in blocks:
        for match in re.finditer(r"(?<=[a-z,;)] )([A-Za-z][A-Za-z'’\-]+)", block):
            word = match.group(1)
            (upper if word[0].isupper() else lower)[stem(word)] += 1
    return {w for w, n in upper.items() if n >= 1 and lower[w] == 0}


def import_topic_pages(session: Session, paths: list[str | Path],
                       settings: Settings | None = None) -> list[Topic]:
    """Create (or update, by slug) a topic from each issue page, then re-tag every release.

    Raises IngestError for an unreadable page; nothing is stored then (the caller's session
    rolls back).
    """

    settings = settings or get_settings()
    drafts = [_draft_from(read_source(str(p), settings)) for p in paths]
    topics = []
    for draft in drafts:
        topic = session.scalar(select(Topic).where(Topic.slug == draft.slug))
        if topic is None:
            topic = Topic(slug=draft.slug)
            session.add(topic)
        topic.name, topic.description, topic.terms = draft.name, draft.description, draft.terms
        topics.append(topic)
    session.flush()
    for release in session.scalars(select(Release).options(selectinload(Release.topic_links))):
        tag_release(session, release, topics)
    return topics


def _draft_from(loaded) -> TopicDraft:
    if loaded.kind == "feed":
        raise IngestError(f"{loaded.source}: a feed is not an issue page")
    text, meta = loaded.text, {}
    if loaded.kind == "markdown":
        meta, text = front_matter(text, loaded.source)
    elif loaded.kind == "html":
        text = article_text(text, loaded.source)
    return parse_issue_page(text, loaded.source, meta=meta)


# ---------------------------------------------------------------- scoring and tagging


@dataclass
class Score:
    topic: Topic
    score: float
    matched: dict[str, dict]

    @property
    def qualifies(self) -> bool:
        """Reaches the threshold with at least one core term."""
        core = any(m["weight"] >= CORE_WEIGHT for m in self.matched.values())
        return self.score >= THRESHOLD and core


def release_words(release: Release) -> tuple[list[str], list[str]]:
    """The release's title-and-subtitle words and body words, as the scorer sees them."""
    return tokens(f"{release.title} {release.subtitle or ''}"), tokens(release.body)


def score_release(release: Release, topic: Topic,
                  words: tuple[list[str], list[str]] | None = None) -> Score:
    """The topic's score for the release and, per matched term, its weight and hits.
    ``words`` (from ``release_words``) saves tokenizing again for every topic."""
    head, body = words or release_words(release)
    # Longest first (for matching), then by weight and name so results do not depend on the
    # order the database returns the JSON in.
    terms = sorted(((tokens(t), t, float(w)) for t, w in (topic.terms or {}).items()),
                   key=lambda entry: (-len(entry[0]), -entry[2], entry[1]))
    head_hits, body_hits = _count(head, terms), _count(body, terms)
    matched, total = {}, 0.0
    for _, term, weight in terms:
        in_title, in_body = head_hits.get(term, 0), body_hits.get(term, 0)
        if in_title or in_body:
            matched[term] = {"weight": weight, "title": in_title, "body": in_body}
            total += weight * (TITLE_FACTOR * in_title + in_body)
    words = max(len(head) + len(body), MIN_WORDS)
    matched = dict(sorted(matched.items(), key=lambda kv: (
        -kv[1]["weight"] * (TITLE_FACTOR * kv[1]["title"] + kv[1]["body"]), kv[0])))
    return Score(topic, round(total * 1000 / words, 2), matched)


def _count(words: list[str], terms: list[tuple[list[str], str, float]]) -> Counter:
    """Non-overlapping hits, longest terms first."""
    used = [False] * len(words)
    positions: dict[str, list[int]] = {}
    for index, word in enumerate(words):
        positions.setdefault(word, []).append(index)
    hits: Counter = Counter()
    for term_words, term, _ in terms:
        if not term_words:
            continue
        size = len(term_words)
        for start in positions.get(term_words[0], ()):
            end = start + size
            if words[start:end] == term_words and not any(used[start:end]):
                used[start:end] = [True] * size
                hits[term] += 1
    return hits


def tag_release(session: Session, release: Release,
                topics: list[Topic] | None = None) -> list[ReleaseTopic]:
    """(Re)compute the release's automatic tags; keep staff tags and removals as they are.
    Returns the release's current tags (origin auto or manual)."""
    topics = topics if topics is not None else list(session.scalars(select(Topic)))
    links = {link.topic_id: link for link in release.topic_links}
    words = release_words(release)
    for topic in topics:
        result = score_release(release, topic, words)
        link = links.get(topic.id)
        if link is None and result.qualifies:
            link = ReleaseTopic(topic_id=topic.id, topic=topic, origin="auto")
            release.topic_links.append(link)
        elif link is not None and link.origin == "auto" and not result.qualifies:
            release.topic_links.remove(link)
            continue
        if link is not None:
            link.score, link.matched = result.score, result.matched
    session.flush()
    return [link for link in release.topic_links if link.origin != "removed"]


def set_tag(session: Session, release: Release, topic_ref: str, *, on: bool) -> ReleaseTopic:
    """Staff add (``on``) or remove a tag by slug or name. Raises NotFound."""
    topic = find_topic(session, topic_ref)
    link = next((lt for lt in release.topic_links if lt.topic_id == topic.id), None)
    if link is None:
        result = score_release(release, topic)
        link = ReleaseTopic(topic_id=topic.id, topic=topic, score=result.score,
                            matched=result.matched)
        release.topic_links.append(link)
    link.origin = "manual" if on else "removed"
    session.flush()
    return link


def find_topic(session: Session, ref: str) -> Topic:
    """A topic by slug or (case-insensitive) name. Raises NotFound."""
    topic = session.scalar(select(Topic).where(Topic.slug == slugify(ref)))
    if topic is None:
        topic = next((t for t in session.scalars(select(Topic))
                      if t.name.casefold() == ref.strip().casefold()), None)
    if topic is None:
        raise NotFound(f"no topic {ref!r} (see `mailer topics list`)")
    return topic


def topic_to_dict(topic: Topic, *, terms: bool = True) -> dict:
    out = {"slug": topic.slug, "name": topic.name, "description": topic.description}
    if terms:
        out["terms"] = dict(sorted((topic.terms or {}).items(), key=lambda kv: -kv[1]))
    return out
