"""A loopback UDP socket standing in for the X-Ray daemon endpoint, and the decoding of what it receives."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HEADER = b'{"format":"json","version":1}\nT1S'
MAX_DATAGRAM = 65_507


class Daemon:
    """A UDP socket on 127.0.0.1 that keeps every datagram it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def datagrams(self, wait_s: float = 0.2) -> list[bytes]:
        """Everything received so far, waiting at most ``wait_s`` for the first and the next datagram."""
        out = []
        self.sock.settimeout(wait_s)
        while True:
            try:
                out.append(self.sock.recv(70_000))
            except (TimeoutError, BlockingIOError):
                return out

    def requests(self, wait_s: float = 0.2) -> list[ExportTraceServiceRequest]:
        return [decode(d) for d in self.datagrams(wait_s)]

    def close(self) -> None:
        self.sock.close()


def decode(datagram: bytes) -> ExportTraceServiceRequest:
    """Check the datagram's header and size, then decode its base64 OTLP request."""
    assert len(datagram) <= MAX_DATAGRAM
    assert datagram.startswith(HEADER), datagram[:40]
    return ExportTraceServiceRequest.FromString(base64.b64decode(datagram[len(HEADER) :], validate=True))


def spans_of(requests: list[ExportTraceServiceRequest]) -> list[Any]:
    return [span for r in requests for rs in r.resource_spans for ss in rs.scope_spans for span in ss.spans]


def attributes_of(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


@pytest.fixture(name="daemon")
def daemon_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """The daemon socket, with AWS_XRAY_DAEMON_ADDRESS pointing at it."""
    daemon = Daemon()
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.address)
    yield daemon
    daemon.close()
