"""Release web pages: find the article, read its parts, keep a sanitized copy for email.

The article is the ``<article>`` / ``<main>`` / ``[itemprop=articleBody]`` / content block that
holds the most paragraph text (or, failing those, the block with the most ``<p>`` text).
Navigation, headers and footers outside it, scripts, forms, share bars and the like inside
it are dropped. ``sanitize_html`` reduces any fragment to a small safe subset (nh3) with
absolute links, fit for an email.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

import lxml.html
from lxml import etree

from mailer.errors import IngestError
from mailer.ingest.dates import parse_date, parse_timestamp
from mailer.ingest.fragments import elements_html, sanitize_html, strip_text_prefix
from mailer.ingest.parsed import (
    MAX_SUBTITLE,
    MAX_TITLE,
    ParsedRelease,
    clean_inline,
    is_end_mark,
    split_dateline,
)
from mailer.ingest.text import CHROME, CONTACTISH

_BLOCKS = {"p", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "dd", "dt",
           "figcaption", "address", "td", "th", "div", "section", "article", "main", "center",
           "ul", "ol", "dl", "table", "tbody", "tr", "header", "figure"}
_JUNK_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "form", "button",
              "input", "select", "textarea", "nav", "footer", "aside", "object", "embed",
              "canvas", "video", "audio", "img", "picture", "head")
_JUNK_CLASS = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navigation|menu|breadcrumbs?|share|sharing|social|related|"
    r"comments?|sidebar|footer|skip|subscribe|newsletter|cookie|banner|pagination|pager|"
    r"print|toolbar|masthead|search|tags|byline-share)(?:$|[\s_-])", re.I,
)
_CONTAINER_HINT = re.compile(r"(?:^|[\s_-])(?:content|press|release|entry|post|article|story|"
                             r"body|main)(?:$|[\s_-])", re.I)
_SUBTITLE_CLASS = re.compile(r"sub-?title|sub-?head|deck|dek|summary|lead", re.I)
#: "Posted on May 9, 2014", "Date: …", "Released: …" above the article.
_DATE_LABEL = re.compile(r"^(?:posted|published|released|updated|date)(?:\s+on)?\s*:?\s*",
                         re.I)
_DATE_META = ("article:published_time", "date", "dc.date", "dcterms.date", "dc.date.issued",
              "pubdate", "publishdate", "publish-date", "publish_date", "og:published_time",
              "citation_publication_date", "sailthru.date", "parsely-pub-date")


def parse_html(text: str, source: str, *, base_url: str | None = None,
               zone=None) -> ParsedRelease:
    """Parse a release page. Raises IngestError when there is no document or no headline."""
    doc = parse_document(text, source)
    if base_url:
        doc.make_links_absolute(base_url, resolve_base_href=True, handle_failures="discard")
    meta = _meta(doc)
    link = _canonical(doc, base_url)
    container = _container(doc)
    h1 = _headline_element(doc, container, meta)
    title = clean_inline(h1.text_content()) if h1 is not None else _meta_title(doc, meta)
    if not title or len(title) > MAX_TITLE:
        raise IngestError(f"{source}: no headline found (no <h1>, og:title or <title>)")
    _drop_junk(container)
    leaves = [el for el in _leaves(container) if el is not h1]
    when = _date(doc, container, meta, zone)
    order = {el: index for index, el in enumerate(doc.iter())}
    reader = _BodyReader(h1, title, order)
    for leaf in leaves:
        if not reader.take(leaf):
            break
    if not reader.paragraphs:
        raise IngestError(f"{source}: no article text found under the headline")
    dateline, dateline_date, first = split_dateline(reader.paragraphs[0])
    if dateline:
        reader.paragraphs[0] = first
        strip_text_prefix(reader.elements[0], len(reader.paragraphs[0]))
    return ParsedRelease(
        title=title, subtitle=reader.subtitle, source=source, paragraphs=reader.paragraphs,
        date=when or reader.date or dateline_date, dateline=dateline,
        contact=reader.contact(), link=link, guid=link,
        body_html=sanitize_html(elements_html(reader.elements), base_url) or None,
    )


def _headline_element(doc, container, meta: dict[str, str]):
    """The element holding the headline: the article's <h1>; else its first <h2>/<h3> when
    that comes before any paragraph; else (no og:title either) the page's first <h1>. None
    means "use og:title or <title>" (a site logo is often the page's only <h1>)."""
    found = _first(container, "h1")
    if found is not None:
        return found
    for el in container.iter("h2", "h3", "p"):
        if el.tag == "p" and el.text_content().strip():
            break
        if el.tag != "p" and clean_inline(el.text_content()):
            return el
    if meta.get("og:title") or meta.get("twitter:title"):
        return None
    return _first(doc, "h1")


def article_text(text: str, source: str) -> str:
    """The article's text blocks (headings included), one per paragraph: for issue pages."""
    container = _container(parse_document(text, source))
    _drop_junk(container)
    return "\n\n".join(t for leaf in _leaves(container) for t in _texts(leaf))


def parse_document(text: str, source: str):
    """The lxml document for ``text``. Raises IngestError when there is none."""
    try:
        parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
        doc = lxml.html.document_fromstring(text.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise IngestError(f"{source}: not an HTML document: {exc}") from None
    if doc is None:
        raise IngestError(f"{source}: not an HTML document")
    return doc


def html_paragraphs(fragment: str) -> tuple[list[str], list]:
    """Paragraph texts (and their elements) of an HTML fragment, e.g. a feed description."""
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return [], []
    _drop_junk(root)
    elements, paragraphs = [], []
    for leaf in _leaves(root):
        for text in _texts(leaf):
            paragraphs.append(text)
            elements.append(leaf)
    return paragraphs, elements


class _BodyReader:
    """Walks the article's text blocks in order: chrome and dates before the first prose,
    a subheadline right after the headline, the body until an end mark, the trailer after."""

    def __init__(self, h1, title: str, order: dict):
        self.after_title = h1 is None
        self.h1 = h1
        self.order = order
        self.title = title
        self.subtitle: str | None = None
        self.date = None
        self.paragraphs: list[str] = []
        self.elements: list = []
        self.trailer: list[str] = []
        self.ended = False

    def take(self, leaf) -> bool:
        if self.h1 is not None and not self.after_title:
            self.after_title = self.order.get(leaf, 0) > self.order.get(self.h1, 0)
        for text in _texts(leaf):
            if self.ended:
                self.trailer.append(text)
            elif is_end_mark(text):
                self.ended = True
            elif not self.paragraphs:
                self._head(leaf, text)
            else:
                self._add(leaf, text)
        return True

    def _head(self, leaf, text: str) -> None:
        when = parse_date(_DATE_LABEL.sub("", text), whole=True)
        if when is not None:
            self.date = self.date or when
        elif CHROME.fullmatch(text) or text == self.title:
            pass
        elif not self.after_title:
            pass  # breadcrumbs, section names and the like above the headline
        elif self.subtitle is None and _is_subtitle(leaf, text):
            self.subtitle = text
        else:
            self._add(leaf, text)

    def _add(self, leaf, text: str) -> None:
        self.paragraphs.append(text)
        if not self.elements or self.elements[-1] is not leaf:
            self.elements.append(leaf)

    def contact(self) -> str | None:
        lines = [t for t in self.trailer if CONTACTISH.search(t)]
        return "\n".join(lines) if lines else None


def _is_subtitle(leaf, text: str) -> bool:
    if len(text) > MAX_SUBTITLE:
        return False
    if leaf.tag in ("h2", "h3", "h4", "h5", "h6"):
        return True
    return bool(_SUBTITLE_CLASS.search(leaf.get("class", "") or "")) or (
        leaf.tag in ("p", "div") and len(leaf) and all(c.tag in ("em", "i", "strong", "b")
                                                      for c in leaf)
        and not (leaf.text or "").strip() and not text.endswith(".")
    )


def _leaves(root) -> list:
    out = []
    for el in root.iter():
        if not isinstance(el.tag, str) or el.tag not in _BLOCKS:
            continue
        if any(isinstance(d.tag, str) and d.tag in _BLOCKS for d in el.iterdescendants()):
            continue
        out.append(el)
    return out


def _texts(leaf) -> list[str]:
    """The paragraphs of one block: ``<br><br>`` separates paragraphs, one ``<br>`` is a
    space; list items keep a bullet."""
    parts = [leaf.text or ""]
    for child in leaf:
        if not isinstance(child.tag, str):
            parts.append(child.tail or "")
        elif child.tag == "br":
            parts.append("\n" + (child.tail or ""))
        else:
            parts.append(child.text_content() + (child.tail or ""))
    raw = "".join(parts)
    texts = [clean_inline(chunk) for chunk in re.split(r"\n\s*\n", raw)]
    texts = [t for t in texts if t]
    if leaf.tag == "li" and texts:
        texts[0] = "• " + texts[0]
    return texts


def _drop_junk(root) -> None:
    """Remove scripts, forms, navigation, share bars and the like. An element whose class
    merely sounds like chrome ("entry share-enabled") but holds the headline or most of the
    text is kept."""
    for el in list(root.iter(*_JUNK_TAGS)):
        _remove(el)
    total = _p_text(root)
    for el in list(root.iter()):
        if el is root or not isinstance(el.tag, str) or el.getparent() is None:
            continue
        marks = f"{el.get('class', '')} {el.get('id', '')} {el.get('role', '')}"
        if _JUNK_CLASS.search(marks) or el.get("role") in ("navigation", "banner",
                                                            "contentinfo", "search"):
            if el.find(".//h1") is None and _p_text(el) <= total / 2:
                _remove(el)


def _remove(el) -> None:
    parent = el.getparent()
    if parent is not None:
        el.drop_tree()


def _container(doc):
    candidates = doc.xpath(
        "//article | //main | //*[@role='main'] | //*[@itemprop='articleBody']")
    candidates += [el for el in doc.iter("div", "section", "td")
                   if _CONTAINER_HINT.search(f"{el.get('class', '')} {el.get('id', '')}")]
    scored = [(el, _p_text(el)) for el in candidates]
    best = max((score for _, score in scored), default=0)
    if best > 0:
        good = [el for el, score in scored if score >= 0.8 * best]
        return max(good, key=_depth)
    blocks = [(el, _p_text(el, direct=True)) for el in doc.iter("div", "section", "td")]
    block, score = max(blocks, key=lambda pair: pair[1], default=(None, 0))
    if block is not None and score > 0:
        return block
    body = doc.find("body")
    return body if body is not None else doc


def _p_text(el, direct: bool = False) -> int:
    paragraphs = el.findall("p") if direct else el.iter("p")
    return sum(len(p.text_content().strip()) for p in paragraphs)


def _depth(el) -> int:
    return sum(1 for _ in el.iterancestors())


def _first(root, tag: str):
    return next(root.iter(tag), None)


def _meta(doc) -> dict[str, str]:
    out: dict[str, str] = {}
    for el in doc.iter("meta"):
        key = (el.get("property") or el.get("name") or el.get("itemprop") or "").lower()
        if key and el.get("content") and key not in out:
            out[key] = el.get("content").strip()
    return out


def _meta_title(doc, meta: dict[str, str]) -> str:
    for key in ("og:title", "twitter:title"):
        if meta.get(key):
            return re.split(r"\s+\|\s+", clean_inline(meta[key]))[0]
    title = doc.find(".//title")
    if title is None:
        return ""
    parts = re.split(r"\s+[|–—-]\s+", clean_inline(title.text_content()))
    return next((p for p in parts if len(p) > 10), parts[0])


def _canonical(doc, base_url: str | None) -> str | None:
    for el in doc.iter("link"):
        if "canonical" in (el.get("rel") or "").lower().split() and el.get("href"):
            href = urljoin(base_url or "", el.get("href").strip())
            if href.startswith(("http://", "https://")):
                return href
    og = _meta(doc).get("og:url")
    if og and og.startswith(("http://", "https://")):
        return og
    return base_url


def _date(doc, container, meta: dict[str, str], zone):
    for root in (container, doc):
        for el in root.iter("time"):
            found = parse_timestamp(el.get("datetime") or el.text_content(), zone) \
                if zone else parse_date(el.get("datetime") or el.text_content())
            if found:
                return found
    for key in _DATE_META:
        if meta.get(key):
            found = parse_timestamp(meta[key], zone) if zone else parse_date(meta[key])
            if found:
                return found
    for el in doc.xpath("//*[@itemprop='datePublished']"):
        found = parse_date(el.get("content") or el.get("datetime") or el.text_content())
        if found:
            return found
    return None
