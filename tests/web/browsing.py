"""What the browser tests share: Debian's Chromium, the app served by uvicorn on 127.0.0.1,
and the page checks (axe-core, sideways scrolling at phone width).

axe-core comes from ``node_modules`` (``package.json`` pins it, ``package-lock.json`` holds
its hash; ``scripts/setup.sh test`` runs ``npm ci``).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
#: The impacts that fail a page: above the issue's bar (serious, critical), moderate ones too
#: (landmarks among them); "minor" findings are left to axe's users.
FAILING_IMPACTS = ("moderate", "serious", "critical")


@contextmanager
def serving(make_app: Callable[[str], Any]) -> Iterator[tuple[str, Any]]:
    """Serve ``make_app(base_url)`` with uvicorn in a thread, on a socket bound before the app
    is made (so its public URL is its own address, and no other process can take the port);
    yields the base URL and the app."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(base)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield base, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# axe runs on the top document only: frames (the email preview, the report) are checked as
# pages of their own, and a frame without axe would make axe wait for it.
AXE_RUN = """async (rules) => {
  const options = {iframes: false, resultTypes: ['violations']};
  if (rules) options.runOnly = {type: 'rule', values: rules};
  const result = await axe.run(document, options);
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary || ''}))
  }));
}"""


def axe_violations(page, rules: list[str] | None = None) -> list[dict]:
    """axe-core's serious and critical violations on the page now shown (of ``rules`` only,
    when given; else of every rule axe runs by default: WCAG 2.x A and AA and best
    practices). axe is added to the page unless the context's init script did it (faster,
    and the only way past a page's CSP)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    return [v for v in page.evaluate(AXE_RUN, rules) if v["impact"] in FAILING_IMPACTS]


def describe_violations(url: str, violations: list[dict]) -> str:
    """One readable block per page: rule, impact, what it asks, and each offending element."""
    lines = [url]
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']}")
        for node in v["nodes"][:8]:
            summary = " ".join(node["summary"].split())
            lines.append(f"      {node['target']}  — {summary[:300]}")
        if len(v["nodes"]) > 8:
            lines.append(f"      … and {len(v['nodes']) - 8} more")
    return "\n".join(lines)


# The innermost elements whose box or content (a long unbroken address overflows the box
# that holds it) passes the viewport's right edge. Skipped: whatever is inside a scrolling or
# clipping box (a table in its .table-wrap may be wider than the phone: it scrolls there, not
# the page) and what is deliberately moved off-screen (skip link, honeypot, hidden text).
OVERFLOW_JS = """(width) => {
  const doc = document.documentElement;
  function contained(el) {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  }
  function over(el) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || box.left < 0) return false;
    const style = getComputedStyle(el);
    if (style.position === 'fixed' || contained(el)) return false;
    const content = style.overflowX === 'visible' ? box.left + el.scrollWidth : box.right;
    return Math.max(box.right, content) > width + 1;
  }
  const wide = Array.from(document.body.querySelectorAll('*')).filter(over)
    .filter(el => !Array.from(el.children).some(over))
    .map(el => {
      const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
        (el.classList.length ? '.' + Array.from(el.classList).join('.') : '');
      return `${name}: ${(el.innerText || '').trim().replace(/\\s+/g, ' ').slice(0, 60)}`;
    });
  return {scrollWidth: doc.scrollWidth, wide: wide.slice(0, 10)};
}"""


def overflow_problems(page) -> list[str]:
    """Why the page now shown scrolls sideways at its viewport's width (empty when it does
    not). Measured against the viewport set, not ``clientWidth``: a mobile browser widens
    its layout viewport to fit content that overflows, so the page would seem to fit."""
    width = page.viewport_size["width"]
    found = page.evaluate(OVERFLOW_JS, width)
    problems = list(found["wide"])
    if found["scrollWidth"] > width:
        problems.insert(0, f"page is {found['scrollWidth']}px wide in a {width}px viewport")
    return problems


# Each control a keyboard reaches, focused in turn: it must show a focus indicator (an outline
# or a box shadow) different from how it looks unfocused. The page is first given keyboard
# focus (a Tab press) so :focus-visible applies as it does for a keyboard user.
FOCUS_JS = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, ' +
    '[tabindex]:not([tabindex="-1"])';
  const look = el => { const s = getComputedStyle(el);
    return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow].join(' '); };
  const shows = el => { const s = getComputedStyle(el);
    return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) ||
      s.boxShadow !== 'none'; };
  const missing = [];
  if (document.activeElement) document.activeElement.blur();  // the one the Tab reached
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (el.disabled || box.width === 0 || el.closest('[aria-hidden=true], .hp')) continue;
    const before = look(el);
    el.focus();
    if (document.activeElement === el && !(shows(el) && look(el) !== before)) {
      const text = (el.innerText || el.name || el.id || '').trim().slice(0, 40);
      missing.push(el.tagName.toLowerCase() + ' ' + text);
    }
    el.blur();
  }
  return missing;
}"""


def invisible_focus(page) -> list[str]:
    """The controls on the page now shown that show no focus indicator when focused."""
    page.keyboard.press("Tab")
    return page.evaluate(FOCUS_JS)


#: A time in page text that is not in the product's one format (``2026-11-23 07:00 CST``,
#: ``mailer.settings.TIME_FORMAT``): ISO 8601 text (2026-11-23T07:00, with seconds or an
#: offset) or a date and time with no zone named.
RAW_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?!(?<= \d\d:\d\d) [A-Z]{2,5})"
                      r"(:\d\d)?(\.\d+)?([+-]\d\d:\d\d|Z)?")


def raw_times(page) -> list[str]:
    """Machine-format timestamps in the visible text of the page now shown (code samples
    and form values excepted: a person types those)."""
    text = page.evaluate("""() => {
      const copy = document.body.cloneNode(true);
      copy.querySelectorAll('code, pre, script, style, input, textarea').forEach(e => e.remove());
      return copy.innerText;
    }""")
    return sorted({text[m.start():m.end() + 6].strip() for m in RAW_TIME.finditer(text)})
