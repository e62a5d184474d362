"""Collectors on 127.0.0.1 for flush tests: one that refuses, one that accepts and never answers, one that answers.

Each is a context manager that closes what it opened (sockets, threads) on exit, within a bounded wait.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound once, then closed): connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def silent_collector() -> Iterator[str]:
    """A TCP endpoint that accepts connections and never reads or answers; yields its ``http://`` URL."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(1)
        for connection in accepted:
            connection.close()
        server.close()


class Collector:
    """What an answering collector saw: request paths and bodies, in order, and how many connections were opened."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.bodies: list[tuple[str, bytes]] = []  # (path, request body)
        self.connections = 0
        self.lock = threading.Lock()


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: an exporter reuses its pooled connection
    collector: Collector

    def setup(self) -> None:
        super().setup()
        with self.collector.lock:
            self.collector.connections += 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.collector.lock:
            self.collector.paths.append(self.path)
            self.collector.bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def answering_collector(port: int = 0) -> Iterator[tuple[str, Collector]]:
    """An HTTP collector answering 200 to every POST (on ``port``, or a free one); yields its URL and record."""
    collector = Collector()
    handler = type("Answer", (_Answer,), {"collector": collector})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(1)
