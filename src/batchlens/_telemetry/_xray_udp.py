"""Spans to X-Ray with no collector: OTLP over UDP to the daemon endpoint Lambda provides.

One datagram is ``{"format":"json","version":1}``, a newline, ``T1S`` (sampled spans), then the base64 of an OTLP
``ExportTraceServiceRequest``, the format AWS's OpenTelemetry distributions send in Lambda. Every datagram, header
and base64 included, is at most 65,507 bytes (the UDP payload limit): an export is split into as many requests as
needed, and a span too large on its own loses its largest attributes and events first (then links) and is marked
``batchlens.export.truncated=true``; it is never cut mid-encoding. The socket is non-blocking and a send error is
logged (once per kind), never raised.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import socket
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator

from batchlens._telemetry._otlp_wire import (
    Group,
    SpanParts,
    encoded_resource,
    encoded_scope,
    field_size,
    frame,
    group_spans,
    span_parts,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "DATAGRAM_HEADER",
    "DEFAULT_DAEMON_ADDRESS",
    "MAX_DATAGRAM_BYTES",
    "TRUNCATED_ATTRIBUTE",
    "XRayIdGenerator",
    "XRayUdpSpanExporter",
    "parse_daemon_address",
]

DEFAULT_DAEMON_ADDRESS = "127.0.0.1:2000"
"""Where spans go when ``AWS_XRAY_DAEMON_ADDRESS`` is unset (Lambda always sets it, to this value)."""

DATAGRAM_HEADER = b'{"format":"json","version":1}\nT1S'
"""What precedes the base64 OTLP request in every datagram (``T1S``: the spans are sampled)."""

MAX_DATAGRAM_BYTES = 65_507
"""The largest UDP payload over IPv4."""

TRUNCATED_ATTRIBUTE = "batchlens.export.truncated"
"""Set to true on a span that lost attributes, events or links to fit in one datagram."""

_logger = logging.getLogger("batchlens.telemetry")

# the KeyValue field of batchlens.export.truncated=true, as a span attribute (field 9)
_key = TRUNCATED_ATTRIBUTE.encode()
_kv = b"\x0a" + bytes((len(_key),)) + _key + b"\x12\x02\x10\x01"
_TRUNCATED_FIELD = b"\x4a" + bytes((len(_kv),)) + _kv
_COUNT_SLACK = 15  # the dropped_* count fields a shrunk span may gain (three varints with their tags)
_GROUP_SLACK = 6  # a group's tag and the longest length prefix a datagram needs


def parse_daemon_address(raw: str | None) -> tuple[str, int]:
    """The UDP ``(host, port)`` of an ``AWS_XRAY_DAEMON_ADDRESS`` value.

    Accepts ``host:port`` and the X-Ray SDKs' ``tcp:host:port udp:host:port`` form (the UDP one is used).

    Raises:
        ValueError: The value names no host and port.
    """
    if raw is None or not raw.strip():
        raw = DEFAULT_DAEMON_ADDRESS
    text = raw.strip()
    for part in text.split():
        if part.lower().startswith("udp:"):
            text = part[4:]
            break
    else:
        if len(text.split()) != 1 or text.lower().startswith("tcp:"):
            raise ValueError(f"AWS_XRAY_DAEMON_ADDRESS={raw!r} names no UDP address; expected host:port")
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"AWS_XRAY_DAEMON_ADDRESS={raw!r} is not host:port (e.g. {DEFAULT_DAEMON_ADDRESS})")
    return host, int(port_text)


def _host_name(host: str) -> str | bytes:
    """``host`` for ``getaddrinfo``: an ASCII name as bytes, which skips the IDNA codec.

    ``getaddrinfo`` encodes a ``str`` host with the ``idna`` codec, whose import (``encodings.idna``, ``stringprep``,
    ``unicodedata``) costs about 0.8 MB and a few ms on the first export of a cold start; an ASCII name (an IP
    address, ``localhost``) is its own IDNA form, so its bytes resolve the same. Other names keep the codec.
    """
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:
        return host


class XRayIdGenerator(IdGenerator):
    """Trace ids as X-Ray makes them: the first 8 hex digits are the epoch seconds, the other 24 random."""

    def generate_span_id(self) -> int:
        """A random, non-zero 64-bit span id."""
        span_id = random.getrandbits(64)
        while not span_id:
            span_id = random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        """Epoch seconds in the top 32 bits, 96 random bits below."""
        return (int(time.time()) & 0xFFFFFFFF) << 96 | random.getrandbits(96)


_live_exporters: weakref.WeakSet[XRayUdpSpanExporter] = weakref.WeakSet()
_renewal_registered = False


def _renew_sockets() -> None:
    """After a SnapStart restore: every copy of the snapshot opens a socket of its own at its next export."""
    for exporter in list(_live_exporters):
        exporter._renew_socket()


class XRayUdpSpanExporter(SpanExporter):
    """Sends sampled spans to the X-Ray daemon endpoint as OTLP in UDP datagrams; never blocks, never raises.

    Args:
        address: ``host:port`` of the daemon; defaults to ``AWS_XRAY_DAEMON_ADDRESS``, then ``127.0.0.1:2000``.
        max_datagram_bytes: The largest datagram to send (at most 65,507).

    Raises:
        ValueError: The address is malformed.
    """

    def __init__(self, address: str | None = None, *, max_datagram_bytes: int = MAX_DATAGRAM_BYTES) -> None:
        if address is None:
            address = os.environ.get("AWS_XRAY_DAEMON_ADDRESS")
        self.address = parse_daemon_address(address)
        self.max_datagram_bytes = min(int(max_datagram_bytes), MAX_DATAGRAM_BYTES)
        # the largest request whose base64 still fits after the header
        self._max_request = (self.max_datagram_bytes - len(DATAGRAM_HEADER)) // 4 * 3
        if self._max_request < 256:
            raise ValueError(f"max_datagram_bytes={max_datagram_bytes} leaves no room for a span")
        self._socket: socket.socket | None = None
        self._sockaddr: Any = None
        self._reported: set[str] = set()
        self._shut_down = False
        self.sent_datagrams = 0
        self.failed_datagrams = 0
        self.truncated_spans = 0
        self.dropped_spans = 0
        global _renewal_registered
        if not _renewal_registered:
            from batchlens._telemetry._restore import register_after_restore

            _renewal_registered = True
            register_after_restore(_renew_sockets)
        _live_exporters.add(self)

    # -- encoding ------------------------------------------------------------------------------------------------
    def datagrams(self, spans: Sequence[ReadableSpan]) -> list[bytes]:
        """The datagrams that carry the sampled ones of ``spans``, each within the size limit."""
        return [DATAGRAM_HEADER + base64.b64encode(request) for request in self.requests(spans)]

    def requests(self, spans: Sequence[ReadableSpan]) -> list[bytes]:
        """The OTLP requests of the sampled ones of ``spans``, split so each fits in one datagram."""
        limit = self._max_request
        sampled = [span for span in spans if _sampled(span)]
        out: list[bytes] = []
        chunk: list[Group] = []
        size = 0
        for resource, by_scope in group_spans(sampled).items():
            resource_fields = encoded_resource(resource)
            resource_cost = len(resource_fields[0]) + len(resource_fields[1]) + _GROUP_SLACK
            resource_entry: Group | None = None
            for scope, members in by_scope.items():
                scope_fields = encoded_scope(scope)
                scope_cost = len(scope_fields[0]) + len(scope_fields[1]) + _GROUP_SLACK
                bodies: list[bytes] | None = None
                room = limit - resource_cost - scope_cost  # what one span may take in a request of its own
                for span in members:
                    body = self._fitting_body(span_parts(span), room)
                    if body is None:
                        continue
                    cost = field_size(len(body))
                    if bodies is None:
                        cost += scope_cost
                    if resource_entry is None:
                        cost += resource_cost
                    if chunk and size + cost > limit:
                        out.append(frame(chunk))
                        chunk, size, resource_entry, bodies = [], 0, None, None
                        cost = field_size(len(body)) + scope_cost + resource_cost
                    if resource_entry is None:
                        resource_entry = (resource_fields, [])
                        chunk.append(resource_entry)
                    if bodies is None:
                        bodies = []
                        resource_entry[1].append((scope_fields, bodies))
                    bodies.append(body)
                    size += cost
        if chunk:
            out.append(frame(chunk))
        return out

    def _fitting_body(self, parts: SpanParts, room: int) -> bytes | None:
        body = parts.body()
        if field_size(len(body)) <= room:
            return body
        shrunk = _shrink(parts, room)
        if shrunk is None:
            self.dropped_spans += 1
            self._report("oversize", "batchlens.telemetry: a span too large for one X-Ray datagram was dropped")
            return None
        self.truncated_spans += 1
        return shrunk

    # -- sending -------------------------------------------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode and send; returns FAILURE (never raises) when a datagram could not be sent."""
        if self._shut_down:
            return SpanExportResult.FAILURE
        try:
            datagrams = self.datagrams(spans)
            if not datagrams:
                return SpanExportResult.SUCCESS
            sock = self._open()
            if sock is None:
                self.failed_datagrams += len(datagrams)
                return SpanExportResult.FAILURE
            failed = 0
            for datagram in datagrams:
                try:
                    sock.sendto(datagram, self._sockaddr)
                except OSError as exc:  # a full buffer (EAGAIN), EMSGSIZE, no route: the datagram is lost
                    failed += 1
                    self._report(
                        f"send-{exc.errno}",
                        "batchlens.telemetry: sending spans to X-Ray at %s:%d failed: %s",
                        *self.address,
                        exc,
                    )
            self.sent_datagrams += len(datagrams) - failed
            self.failed_datagrams += failed
            return SpanExportResult.FAILURE if failed else SpanExportResult.SUCCESS
        except Exception as exc:
            self._report(f"error-{type(exc).__name__}", "batchlens.telemetry: X-Ray span export failed: %r", exc)
            return SpanExportResult.FAILURE

    def _open(self) -> socket.socket | None:
        if self._socket is not None:
            return self._socket
        host, port = self.address
        try:
            found = socket.getaddrinfo(_host_name(host), port, type=socket.SOCK_DGRAM)
            family, _type, _proto, _name, sockaddr = found[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
        except OSError as exc:
            self._report("open", "batchlens.telemetry: cannot reach X-Ray at %s:%d: %s", host, port, exc)
            return None
        self._socket, self._sockaddr = sock, sockaddr
        return sock

    def _renew_socket(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _report(self, kind: str, message: str, *args: Any) -> None:
        # once per kind of failure: an exporter that cannot send must not flood the function's logs
        if kind in self._reported:
            _logger.debug(message, *args)
            return
        self._reported.add(kind)
        _logger.warning(message, *args)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True

    def shutdown(self) -> None:
        """Close the socket; later exports fail."""
        self._shut_down = True
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def _sampled(span: ReadableSpan) -> bool:
    context = span.get_span_context()
    return context is not None and context.trace_flags.sampled


def _shrink(parts: SpanParts, room: int) -> bytes | None:
    """The span without its largest attributes and events (then links) so that it fits in ``room``, or None."""
    excess = field_size(len(parts.body())) + len(_TRUNCATED_FIELD) + _COUNT_SLACK - room
    keep = {"attributes": list(parts.attributes), "events": list(parts.events), "links": list(parts.links)}
    dropped = dict.fromkeys(keep, 0)
    for kinds in (("attributes", "events"), ("links",)):
        candidates = sorted(((len(f), kind, i) for kind in kinds for i, f in enumerate(keep[kind])), reverse=True)
        removed = set()
        for length, kind, index in candidates:
            if excess <= 0:
                break
            removed.add((kind, index))
            dropped[kind] += 1
            excess -= length
        for kind in kinds:
            keep[kind] = [f for i, f in enumerate(keep[kind]) if (kind, i) not in removed]
    if excess > 0:
        return None
    shrunk = SpanParts(
        parts.head,
        [*keep["attributes"], _TRUNCATED_FIELD],
        parts.dropped_attributes + dropped["attributes"],
        keep["events"],
        parts.dropped_events + dropped["events"],
        keep["links"],
        parts.dropped_links + dropped["links"],
        parts.tail,
    )
    body = shrunk.body()
    return body if field_size(len(body)) <= room else None
