"""The one cleaning every free-text subscriber detail gets (names above all), wherever it
comes from: the sign-up and preference forms, the API and CLI, import files.

A detail is one line of printable text: runs of whitespace (tabs, line breaks, the ASCII
separators) become one space; other control characters (C0, DEL, C1: NUL, escape, backspace
and the like) are removed, since no name holds them and they break what reads the name
later (PostgreSQL refuses NUL; mail headers and terminals give the others meaning); lone
surrogates, which no database stores, become U+FFFD.
"""

from __future__ import annotations

_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0)]
#: str.translate table: non-whitespace controls removed, lone surrogates replaced. The
#: whitespace controls stay for ``str.split`` to collapse.
_UNWANTED = {
    **{code: None for code in _CONTROLS if not chr(code).isspace()},
    **{code: "\ufffd" for code in range(0xD800, 0xE000)},
}


def clean_text(value: str | None, limit: int | None = None) -> str | None:
    """``value`` as one clean line (see the module), cut to ``limit`` characters; None when
    nothing is left. Idempotent."""
    if not value:
        return None
    text = value
    # The usual name is already clean: printable (so no control, no whitespace but the
    # space), single-spaced, trimmed. Import files bring millions of them.
    if not text.isprintable() or "  " in text or text[:1] == " " or text[-1:] == " ":
        text = " ".join(text.translate(_UNWANTED).split())
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip()  # a cut may end on the space between two words
    return text or None
