"""A TCP proxy in front of the database server, for outage tests with real parts.

``DbProxy(target_port=5432)`` listens on a free loopback port and forwards every connection
to ``127.0.0.1:target_port``. ``cut()`` resets every forwarded connection (both ends: the
server sees its client vanish, so a PostgreSQL backend and any advisory lock it held go
away, as in a restart) and refuses new ones (accepted, then reset at once) until
``restore()``. ``url(database_url)`` is the same URL pointed at the proxy.

Threads only, everything bounded: the proxy stops with ``close()`` (or as a context manager).
"""

from __future__ import annotations

import socket
import struct
import threading

from sqlalchemy.engine import make_url


def _reset(sock: socket.socket) -> None:
    """Close with RST, not FIN: the peer sees "connection reset", as after a crash."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes the pump thread blocked in recv()
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class DbProxy:
    def __init__(self, target_port: int = 5432, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = threading.Event()
        self._closed = threading.Event()
        self.refused = 0  # connections refused while cut (proof the outage was felt)
        self._thread = threading.Thread(target=self._accept, daemon=True, name="db-proxy")

    # -- control ---------------------------------------------------------------------------
    def start(self) -> DbProxy:
        self._thread.start()
        return self

    def url(self, database_url: str) -> str:
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False)

    def cut(self) -> None:
        """Reset every connection and refuse new ones until ``restore()``."""
        self._cut.set()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, server in pairs:
            _reset(client)
            _reset(server)

    def restore(self) -> None:
        self._cut.clear()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._thread.join(5)
        self._listener.close()

    def __enter__(self) -> DbProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- forwarding ------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._pairs.append((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs = [p for p in self._pairs if src not in p]
            for sock in (src, dst):  # the other direction's pump wakes and ends too
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
