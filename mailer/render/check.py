"""``mailer templates check``: lint the office's templates before anything is sent with them.

Each template is checked twice. Statically, from its syntax tree: every name it reads must be
one the product provides, and no attribute or key may start with ``_`` (the way out of a
sandbox, e.g. ``''.__class__.__mro__``) — this also covers branches sample data never takes.
Then by rendering it with sample data through the real pipeline (sandbox, StrictUndefined,
css-inline, Gmail's size limit) and reading the result: no scripts, forms or external
stylesheets, alt text on every image, and a footer with the postal address and the
unsubscribe, preferences and view-in-browser links in both the HTML and the text part.
"""

from __future__ import annotations

import html as html_module
import re
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from mailer.render.compile import base_context, render_html, render_text
from mailer.render.context import (
    digest_context,
    intro_context,
    links_context,
    release_context,
)
from mailer.render.environment import (
    PARTS,
    REQUIRED_TEMPLATES,
    TemplateFailure,
    environment,
    template_kind,
)
from mailer.render.placeholders import HTML_KEYS, TEXT_KEYS
from mailer.render.sample import SAMPLE_INTRO, sample_releases, seed_release, system_context
from mailer.settings import Settings

#: Layout files: parsed and checked statically, rendered through the templates that use them.
LAYOUT_PREFIXES = ("base", "_")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_FORBIDDEN_HTML = [
    (re.compile(r"<script\b", re.I), "contains a <script> (mail clients block scripts)"),
    (re.compile(r"<link\b[^>]*stylesheet", re.I),
     "links an external stylesheet (mail clients ignore it: put the CSS in <style>)"),
    (re.compile(r"@import\b", re.I), "imports external CSS"),
    (re.compile(r"<(form|iframe|object|embed)\b", re.I), "contains a <{0}>"),
    (re.compile(r"""(href|src)\s*=\s*["']?\s*javascript:""", re.I), "uses a javascript: URL"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "has an inline event handler"),
]
#: Filters that leave a placeholder intact (everything else would change the key itself).
_PLACEHOLDER_SAFE_FILTERS = frozenset({"e", "escape", "safe", "string", "forceescape"})
_HTML_TAG = re.compile(r"</?(p|div|span|br|a|table|tr|td|b|strong|em|i|h[1-6])\b[^>]*>", re.I)
#: Longest line a text version may have (RFC 5322 recommends 78); URLs may run over.
TEXT_LINE_LIMIT = 78
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ALT = re.compile(r"\salt\s*=", re.I)


@dataclass(frozen=True)
class Problem:
    template: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.template}:{self.line}" if self.line else self.template
        return f"{where}: {self.message}"


def check_all(settings: Settings) -> list[Problem]:
    """Every problem in the configured template folder: layouts first, then each template by
    name (a layout problem seen through several templates is reported once)."""
    folder = settings.effective_templates_dir
    names = set(REQUIRED_TEMPLATES)
    problems: list[Problem] = []
    for path in sorted(folder.glob("*")):
        if path.suffix.lstrip(".") not in PARTS:
            continue
        if path.stem.startswith(LAYOUT_PREFIXES):
            problems += _static_problems(settings, path.name, _known_names("layout"))
        else:
            names.add(path.stem)
    for name in sorted(names):
        problems += check_template(name, settings)
    return _unique(problems)


def assert_template_ok(template_name: str, settings: Settings) -> None:
    """Raises TemplateError naming template, line and cause of the first problem found."""
    problems = check_template(template_name, settings)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise TemplateFailure(first.template, first.line, first.message + more)


def check_template(name: str, settings: Settings) -> list[Problem]:
    """Problems of one template (both parts, plus the layouts it uses when rendered)."""
    kind = template_kind(name)
    problems: list[Problem] = []
    for part in PARTS:
        filename = f"{name}.{part}"
        if not (settings.effective_templates_dir / filename).is_file():
            problems.append(Problem(filename, None, "missing: every template needs an .html "
                                    "and a .txt version"))
            continue
        problems += _static_problems(settings, filename, _known_names(kind))
    if problems:
        return _unique(problems)
    for context in sample_contexts(name, settings):
        problems += _render_problems(name, settings, context, kind)
    return _unique(problems)


def sample_contexts(name: str, settings: Settings) -> list[dict[str, Any]]:
    """The contexts a real send would pass, filled with sample data (both the email and the
    archive's web view for campaign templates)."""
    kind = template_kind(name)
    if kind == "system":
        subject = "Please confirm your subscription"
        extra = {"preheader": subject, **system_context(name, settings)}
        return [{**extra, **base_context(settings, campaign_id=None, subject=subject,
                                         web_view=False)}]
    if kind == "digest":
        web = links_context(settings, 1)["web"]
        extra = {"releases": digest_context(sample_releases(), settings, web),
                 "preheader": "This week's news"}
        subject = "This week from the Senator"
    else:
        release = release_context(seed_release(), settings)
        extra = {"release": release, "preheader": release["subtitle"]}
        subject = release["title"]
        # The email with an intro note, the web view without: both ways are rendered.
        return [{**extra, "intro": intro_context(SAMPLE_INTRO if not view else None),
                 **base_context(settings, campaign_id=1, subject=subject, web_view=view)}
                for view in (False, True)]
    return [{**extra, **base_context(settings, campaign_id=1, subject=subject, web_view=view)}
            for view in (False, True)]


def _known_names(kind: str) -> set[str]:
    names = {"office", "links", "subject", "web_view", "campaign_id", "recipient", "preheader"}
    extra = {"release": {"release", "intro"}, "digest": {"releases"},
             "system": {"confirm_url", "topics", "frequency", "expires_hours"},
             "layout": {"release", "releases", "intro", "confirm_url", "topics", "frequency",
                        "expires_hours"}}
    return names | extra[kind]


def _static_problems(settings: Settings, filename: str, known: set[str]) -> list[Problem]:
    env = environment(settings)
    try:
        source = env.loader.get_source(env, filename)[0]
        tree = env.parse(source, filename)
    except TemplateSyntaxError as exc:
        return [Problem(filename, exc.lineno, f"syntax error: {exc.message}")]
    problems = _source_problems(filename, source) if filename.endswith(".html") else []
    allowed = known | set(env.globals)
    for name in sorted(meta.find_undeclared_variables(tree) - allowed):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), None)
        problems.append(Problem(filename, line, f"undefined variable '{name}'"))
    for node in tree.find_all(nodes.Filter):
        target = node.node
        if (node.name not in _PLACEHOLDER_SAFE_FILTERS and isinstance(target, nodes.Getattr)
                and isinstance(target.node, nodes.Name) and target.node.name == "recipient"):
            problems.append(Problem(filename, node.lineno, (
                f"recipient.{target.attr} is filled in per person when sending; print it as "
                f"it is (no '{node.name}' filter)")))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        # Report the first private name of a chain (``__class__`` in ``''.__class__.__mro__``).
        if _private_key(node) and not _private_key(node.node):
            problems.append(Problem(filename, node.lineno,
                                    f"unsafe access to '{_private_key(node)}'"))
    return problems


def _source_problems(filename: str, source: str) -> list[Problem]:
    """Forbidden HTML written in the template itself, with its line."""
    problems = []
    for number, line in enumerate(source.splitlines(), 1):
        for message in lint_html(line, whole_document=False):
            problems.append(Problem(filename, number, message))
    return problems


def _private_key(node: nodes.Node) -> str | None:
    """The attribute or constant key ``node`` reads when it starts with ``_`` (off limits)."""
    if isinstance(node, nodes.Getattr):
        key = node.attr
    elif isinstance(node, nodes.Getitem):
        key = getattr(node.arg, "value", None)
    else:
        return None
    return key if isinstance(key, str) and key.startswith("_") else None


def _render_problems(name: str, settings: Settings, context: dict[str, Any], kind: str
                     ) -> list[Problem]:
    try:
        html = render_html(name, settings, context)
        text = render_text(name, settings, context)
    except TemplateFailure as exc:
        return [Problem(exc.template, exc.line, _reason(exc.reason))]
    except Exception as exc:  # TemplateError from inlining or size: no line to point at
        return [Problem(f"{name}.html", None, str(exc))]
    problems = [Problem(f"{name}.html", None, m) for m in lint_html(html)]
    problems += [Problem(f"{name}.txt", None, m) for m in lint_text(text)]
    if kind != "system" and not context.get("web_view"):
        problems += [Problem(f"{name}.html", None, m)
                     for m in footer_problems(html, HTML_KEYS, settings, context)]
        problems += [Problem(f"{name}.txt", None, m)
                     for m in footer_problems(text, TEXT_KEYS, settings, context)]
    return problems


def lint_html(html: str, whole_document: bool = True) -> list[str]:
    """What an email's HTML must never contain (and, for a whole document, must contain)."""
    found = []
    for pattern, message in _FORBIDDEN_HTML:
        match = pattern.search(html)
        if match:
            found.append(message.format(*(match.groups() or ("",))))
    if whole_document and not re.search(r"<meta[^>]+name=[\"']?viewport", html, re.I):
        found.append("has no viewport <meta> (phones will zoom out)")
    for img in _IMG.findall(html):
        if not _ALT.search(img):
            found.append(f"image without alt text: {img[:80]}")
    return found


def lint_text(text: str) -> list[str]:
    """The text version is read as it is: no markup, no overlong lines."""
    found = []
    tag = _HTML_TAG.search(text)
    if tag:
        found.append(f"the text version contains HTML ({tag.group()}); write it as plain text")
    for line in text.splitlines():
        if len(line) > TEXT_LINE_LIMIT and "://" not in line:
            found.append(f"the text version has a line of {len(line)} characters (keep them "
                         f"under {TEXT_LINE_LIMIT + 1}; use the wordwrap filter): {line[:40]}…")
            break
    return found


def footer_problems(body: str, keys: dict[str, str], settings: Settings,
                    context: dict[str, Any]) -> list[str]:
    """The footer every campaign email must carry (CAN-SPAM, RFC 8058, the office's rules)."""
    if keys is HTML_KEYS:
        body = html_module.unescape(body)
    required = {
        "the unsubscribe link (recipient.unsubscribe_url)": keys["unsubscribe_url"],
        "the preferences link (recipient.preferences_url)": keys["preferences_url"],
        "the view-in-browser link (links.web)": context["links"]["web"],
        "the postal address (office.postal_address)": settings.postal_address,
    }
    return [f"the footer must show {what}" for what, value in required.items()
            if value not in body]


def _reason(reason: str) -> str:
    """Jinja's wording turned into the check's: name the variable or attribute."""
    if reason.startswith("undefined: "):
        detail = reason.removeprefix("undefined: ")
        match = _UNDEFINED.match(detail) or _NO_ATTRIBUTE.search(detail)
        if match:
            kind = "variable" if _UNDEFINED.match(detail) else "attribute"
            return f"undefined {kind} '{match.group(1)}'"
    return reason


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for problem in problems:
        key = (problem.template, problem.line, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out

