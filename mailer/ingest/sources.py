"""Reading what staff point the importer at: files and http(s) URLs.

Everything comes back as bytes plus what kind of document it is; ``decode`` turns bytes into
text the way offices actually produce it (UTF-8 with or without a BOM, UTF-16 from Word's
"Unicode text", Windows-1252 with smart quotes). Empty, binary and oversized input is refused
with a one-line ``IngestError`` before any parser sees it.
"""

from __future__ import annotations

import codecs
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mailer.errors import IngestError
from mailer.settings import Settings

KINDS = ("text", "html", "markdown", "feed")
_EXTENSIONS = {
    ".txt": "text", ".text": "text", "": "text",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".md": "markdown", ".markdown": "markdown", ".mdown": "markdown",
    ".xml": "feed", ".rss": "feed", ".atom": "feed", ".rdf": "feed",
}
_MAGIC = [
    (b"%PDF", "a PDF; save it as text or HTML first"),
    (b"PK\x03\x04", "a ZIP or Word (.docx) file; save it as text first"),
    (b"\xd0\xcf\x11\xe0", "a Word (.doc) file; save it as text first"),
    (b"{\\rtf", "an RTF file; save it as plain text first"),
    (b"\x89PNG", "an image"), (b"GIF8", "an image"), (b"\xff\xd8\xff", "an image"),
]
USER_AGENT = "mailer/0.1 (press-release importer)"
#: What an uploaded file's name may end in: the kinds ``sniff_kind`` tells apart by name.
UPLOAD_SUFFIXES = tuple(sorted(suffix for suffix in _EXTENSIONS if suffix))


@dataclass
class Loaded:
    """One source, read. ``url`` is the final URL after redirects (None for files)."""

    source: str
    data: bytes
    kind: str
    url: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200

    @property
    def text(self) -> str:
        return decode(self.data, self.source, declared=charset_of(self.content_type))


def is_url(source: str) -> bool:
    return bool(re.match(r"^https?://", source, re.I))


def read_source(source: str, settings: Settings, *, client: httpx.Client | None = None,
                kind: str | None = None) -> Loaded:
    """Read a path or URL and work out its kind (unless given).

    Raises IngestError for a missing, empty, binary or oversized file, and for a URL that
    fails, times out or answers with an error.
    """
    if is_url(source):
        loaded = fetch(source, settings, client=client)
    elif source == "-":
        loaded = _read_stdin(settings)
    else:
        loaded = _read_file(source, settings)
    check_content(loaded.data, source)
    loaded.kind = kind or sniff_kind(source, loaded.data, loaded.content_type)
    return loaded


def load_upload(filename: str, data: bytes, settings: Settings) -> Loaded:
    """A file staff uploaded (the dashboard), read as ``read_source`` reads a path.

    The release's source is the file's own name (never the server's temporary path). Raises
    IngestError for a name that is not a text, HTML, Markdown or feed file, an oversized,
    empty or binary file; a file that cannot be decoded is refused when it is parsed.
    """
    # The name becomes the release's source: no folders, no control characters (PostgreSQL
    # refuses a NUL in text).
    name = re.sub(r"[\x00-\x1f\x7f]", "", Path(filename.replace("\\", "/")).name)
    name = name.strip()[:200] or "upload"
    if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
        raise IngestError(f"{name}: not a text, HTML, Markdown or feed file "
                          f"(the name must end in {', '.join(UPLOAD_SUFFIXES)})")
    if len(data) > settings.max_import_bytes:
        raise IngestError(f"{name}: over the import limit of {settings.max_import_bytes} bytes "
                          "(MAILER_MAX_IMPORT_BYTES)")
    check_content(data, name)
    return Loaded(source=name, data=data, kind=sniff_kind(name, data, None))


def _read_stdin(settings: Settings) -> Loaded:
    """``-``: what staff paste or pipe in."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is not None:
        data = stream.read(settings.max_import_bytes + 1)
    else:  # a text stream (tests, some shells' wrappers)
        data = sys.stdin.read(settings.max_import_bytes + 1).encode("utf-8")
    if len(data) > settings.max_import_bytes:
        raise IngestError(f"standard input is over the import limit of "
                          f"{settings.max_import_bytes} bytes (MAILER_MAX_IMPORT_BYTES)")
    return Loaded(source="-", data=data, kind="text")


def _read_file(source: str, settings: Settings) -> Loaded:
    path = Path(source).expanduser()
    if path.is_dir():
        raise IngestError(f"{source}: is a folder; give the files in it (e.g. {source}/*.txt)")
    if not path.is_file():
        raise IngestError(f"{source}: no such file")
    size = path.stat().st_size
    if size > settings.max_import_bytes:
        raise IngestError(f"{source}: {size} bytes is over the import limit of "
                          f"{settings.max_import_bytes} bytes (MAILER_MAX_IMPORT_BYTES)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(f"{source}: cannot read: {exc.strerror or exc}") from None
    return Loaded(source=source, data=data, kind="text")


def fetch(url: str, settings: Settings, *, client: httpx.Client | None = None,
          etag: str | None = None, last_modified: str | None = None) -> Loaded:
    """GET ``url`` (conditionally when ``etag``/``last_modified`` are given), at most
    ``settings.max_import_bytes``, within ``settings.fetch_timeout`` seconds.

    A 304 comes back as ``Loaded(status=304, data=b"")``. Raises IngestError otherwise.
    """
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    own = client is None
    client = client or httpx.Client(follow_redirects=True, timeout=settings.fetch_timeout)
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return Loaded(url, b"", "feed", str(response.url), None,
                              dict(response.headers), 304)
            if response.status_code >= 400:
                raise IngestError(f"{url}: the server answered HTTP {response.status_code}")
            data = _read_limited(response, url, settings.max_import_bytes,
                                 time.monotonic() + settings.fetch_timeout * 3)
            return Loaded(url, data, "text", str(response.url),
                          response.headers.get("content-type"), dict(response.headers),
                          response.status_code)
    except httpx.TimeoutException:
        raise IngestError(f"{url}: no answer within {settings.fetch_timeout:g} s "
                          "(MAILER_FETCH_TIMEOUT)") from None
    except httpx.HTTPError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IngestError(f"{url}: cannot fetch: {reason}") from None
    finally:
        if own:
            client.close()


def _read_limited(response: httpx.Response, url: str, limit: int, deadline: float) -> bytes:
    """The body, refused when over ``limit`` bytes or still dripping in at ``deadline``
    (httpx's timeout bounds each read, not the whole download)."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise IngestError(f"{url}: {declared} bytes is over the import limit of {limit} bytes "
                          "(MAILER_MAX_IMPORT_BYTES)")
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > limit:
            raise IngestError(f"{url}: more than the import limit of {limit} bytes "
                              "(MAILER_MAX_IMPORT_BYTES)")
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise IngestError(f"{url}: the download did not finish in time (MAILER_FETCH_TIMEOUT)")
    return b"".join(chunks)


def check_content(data: bytes, source: str) -> None:
    """Raises IngestError for empty or binary content."""
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff"):
        raise IngestError(f"{source}: the file is empty")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise IngestError(f"{source}: this is {what}")
    head = data[:8192]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if b"\x00" in head or controls > len(head) // 100 + 2:
        raise IngestError(f"{source}: this is a binary file, not text, HTML or a feed")


def charset_of(content_type: str | None) -> str | None:
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.I)
    return match.group(1) if match else None


def decode(data: bytes, source: str, *, declared: str | None = None) -> str:
    """Bytes to text: BOMs first, then strict UTF-8, then a declared charset, then
    Windows-1252 (what Word writes when it is not asked for UTF-8)."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding)
            except UnicodeDecodeError:
                raise IngestError(f"{source}: not valid {encoding} text despite its "
                                  "byte-order mark") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared:
        try:
            if codecs.lookup(declared).name not in ("utf-8", "latin-1", "iso8859-1", "ascii"):
                return data.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    # Browsers read Latin-1 labels as Windows-1252 too; the five bytes 1252 leaves undefined
    # fall back to Latin-1 so nothing is lost.
    return "".join(
        chunk.decode("cp1252", errors="strict") if _cp1252_ok(chunk) else chunk.decode("latin-1")
        for chunk in re.split(rb"([\x81\x8d\x8f\x90\x9d])", data)
    )


def _cp1252_ok(chunk: bytes) -> bool:
    return not (len(chunk) == 1 and chunk[0] in b"\x81\x8d\x8f\x90\x9d")


def sniff_kind(source: str, data: bytes, content_type: str | None) -> str:
    """"text", "html", "markdown" or "feed", from the content first, then type and name."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if re.match(rb"(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:rss|feed|rdf:rdf)\b", head, re.S):
        return "feed"
    if re.match(rb"(?:<!doctype\s+html|<html|<head|<body|<article|<div|<p[ >])", head):
        return "html"
    if head.startswith(b"<?xml"):  # XHTML, else some XML: only a feed could be a release
        return "html" if re.search(rb"<(?:!doctype\s+html|html)\b", head) else "feed"
    if head.startswith(b"---") and re.match(rb"---\s*\n", head):
        return "markdown"
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in ("application/rss+xml", "application/atom+xml", "application/rdf+xml"):
        return "feed"
    if mime in ("text/html", "application/xhtml+xml"):
        return "html"
    if mime in ("text/markdown", "text/x-markdown"):
        return "markdown"
    if mime in ("application/xml", "text/xml") and re.search(rb"<(?:rss|feed|rdf:rdf)\b", head):
        return "feed"
    path = source.split("?")[0].split("#")[0] if is_url(source) else source
    return _EXTENSIONS.get(Path(path).suffix.lower(), "text")
