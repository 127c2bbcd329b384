"""A local web server for URL imports and feed polling (127.0.0.1 only).

``web.put(path, body, content_type=…, etag=…, last_modified=…, status=…, delay=…)`` serves
``body`` at ``path``; ``web.url(path)`` is its address; ``web.requests`` records what each
request carried (path and conditional headers), so tests can check conditional GETs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Page:
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200
    delay: float = 0.0
    #: Seconds between 100-byte pieces of the body (a server that drips).
    drip: float = 0.0


@dataclass
class Web:
    server: ThreadingHTTPServer
    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)

    def put(self, path: str, body: bytes | str, **kwargs) -> str:
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.pages[path] = Page(body, **kwargs)
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def hits(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]


def _handler(web: Web):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            web.requests.append({"path": self.path,
                                 "if_none_match": self.headers.get("If-None-Match"),
                                 "if_modified_since": self.headers.get("If-Modified-Since")})
            page = web.pages.get(self.path)
            if page is None:
                self.send_error(404)
                return
            if page.delay:
                time.sleep(page.delay)
            fresh = (page.etag and self.headers.get("If-None-Match") == page.etag) or (
                page.last_modified and self.headers.get("If-Modified-Since") == page.last_modified)
            if fresh:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(page.status)
            self.send_header("Content-Type", page.content_type)
            self.send_header("Content-Length", str(len(page.body)))
            if page.etag:
                self.send_header("ETag", page.etag)
            if page.last_modified:
                self.send_header("Last-Modified", page.last_modified)
            self.end_headers()
            try:
                if page.drip:
                    for start in range(0, len(page.body), 100):
                        self.wfile.write(page.body[start:start + 100])
                        self.wfile.flush()
                        time.sleep(page.drip)
                else:
                    self.wfile.write(page.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture(name="web")
def web_fixture():
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)
    web = Web(server)
    server.RequestHandlerClass = _handler(web)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield web
    server.shutdown()
    server.server_close()
