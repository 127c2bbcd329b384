"""HTML fragments a release body is made of: sanitized to a small safe set of tags (nh3), and
rebuilt from the paragraph elements the readers chose (``mailer.ingest.html``, ``.rss``,
``.markdown``)."""

from __future__ import annotations

import copy
import re
from urllib.parse import urljoin

import lxml.html
import nh3

from mailer.ingest.parsed import clean_inline

SAFE_TAGS = {"p", "br", "a", "strong", "b", "em", "i", "u", "ul", "ol", "li", "blockquote",
             "h2", "h3", "h4", "h5", "h6", "sup", "sub", "pre", "code"}
SAFE_ATTRIBUTES = {"a": {"href", "title"}}
SAFE_SCHEMES = {"http", "https", "mailto", "tel"}
#: Blocks whose text is a paragraph when they contain no further blocks.


def sanitize_html(fragment: str, base_url: str | None = None) -> str:
    """``fragment`` reduced to SAFE_TAGS with http(s)/mailto/tel links only; relative links
    resolved against ``base_url`` (dropped when there is none)."""
    if not fragment.strip():
        return ""
    cleaned = nh3.clean(
        fragment, tags=SAFE_TAGS, attributes=SAFE_ATTRIBUTES, url_schemes=SAFE_SCHEMES,
        clean_content_tags={"script", "style", "noscript", "template", "iframe", "svg"},
        link_rel="noopener noreferrer",
        attribute_filter=lambda tag, attr, value: _absolute(value, base_url)
        if attr == "href" else value,
    )
    return re.sub(r"<(strong|b|em|i|u)>\s*</\1>", "", cleaned).strip()


def _absolute(value: str, base_url: str | None) -> str | None:
    if re.match(r"^(?:https?:|mailto:|tel:)", value, re.I):
        return value
    return urljoin(base_url, value) if base_url else None


def strip_text_prefix(element, keep: int) -> None:
    """Cut the dateline off the first paragraph's element so the HTML matches the text:
    drop leading non-space characters until ``keep`` characters of text remain."""
    full = clean_inline(element.text_content())
    cut = len(full) - keep
    if cut > 0:
        state = {"drop": len(re.sub(r"\s", "", full[:cut])), "strip": True}
        _drop_chars(element, state)


def _drop_chars(el, state: dict) -> None:
    el.text = _consume(el.text, state)
    for child in el:
        if isinstance(child.tag, str):
            _drop_chars(child, state)
        child.tail = _consume(child.tail, state)


def _consume(text: str | None, state: dict) -> str | None:
    if not text or not state["strip"]:
        return text
    index = 0
    while index < len(text) and state["drop"] > 0:
        if not text[index].isspace():
            state["drop"] -= 1
        index += 1
    rest = text[index:]
    if state["drop"] == 0:
        rest = rest.lstrip(" \t\r\n\u00a0")
        state["strip"] = not rest
    return rest


def elements_html(elements: list) -> str:
    parts: list[str] = []
    open_list = None
    for el in elements:
        parent = el.getparent()
        if el.tag == "li" and parent is not None and parent.tag in ("ul", "ol"):
            if open_list is not parent:
                if open_list is not None:
                    parts.append(f"</{open_list.tag}>")
                parts.append(f"<{parent.tag}>")
                open_list = parent
        elif open_list is not None:
            parts.append(f"</{open_list.tag}>")
            open_list = None
        node = copy.deepcopy(el)
        node.tail = None
        if node.tag in ("div", "td", "th", "section", "dd", "dt", "address", "figcaption"):
            node.tag = "p"
        parts.append(lxml.html.tostring(node, encoding="unicode"))
    if open_list is not None:
        parts.append(f"</{open_list.tag}>")
    return "".join(parts)
