"""OTLP ``ExportTraceServiceRequest`` written straight to the protobuf wire format, from SDK ``ReadableSpan``s.

No protobuf, opentelemetry-proto or OTLP exporter import: this is the trace path of the X-Ray UDP exporter, and
cold start counts. The bytes are the ones ``encode_spans(spans).SerializeToString()`` of
``opentelemetry-exporter-otlp-proto-common`` produces (fields in number order, proto3 defaults left out, an
attribute whose value cannot be encoded skipped), which the tests check against that encoder.

A span is encoded once into :class:`SpanParts` (its fields, with attributes, events and links kept apart) so that
an exporter can size it, and shrink it, before framing it into a request with :func:`frame`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = ["SpanParts", "encode_spans", "field_size", "frame", "group_spans", "span_parts"]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

# span flags as the SDK writes them: the context's is_remote is known, and whether it is remote
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_FLAGS_LOCAL = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE)  # field 16, fixed32
_FLAGS_REMOTE = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_LINK_FLAGS_LOCAL = b"\x35" + _pack_fixed32(_HAS_IS_REMOTE)  # field 6, fixed32
_LINK_FLAGS_REMOTE = b"\x35" + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = tuple(bytes((i,)) for i in range(0x80))


def _len_prefix(size: int) -> bytes:
    return _SMALL_VARINTS[size] if size < 0x80 else _varint(size)


def field_size(payload_size: int) -> int:
    """Bytes a length-delimited field (one-byte tag) with ``payload_size`` bytes of payload takes."""
    return 1 + len(_len_prefix(payload_size)) + payload_size


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _len_prefix(len(payload)) + payload


def _string(tag: bytes, text: str) -> bytes:
    # strict: an attribute that is not valid UTF-8 is left out, as the SDK's encoder does
    data = text.encode("utf-8")
    return tag + _len_prefix(len(data)) + data


def _text(tag: bytes, text: str) -> bytes:
    # names and descriptions: a lone surrogate becomes U+FFFD rather than failing the whole span
    data = text.encode("utf-8", "replace")
    return tag + _len_prefix(len(data)) + data


# -- AnyValue ----------------------------------------------------------------------------------------------------


def _any_value(value: Any) -> bytes:
    """The body of an AnyValue; raises like the SDK's encoder for what OTLP cannot carry."""
    if value is None:
        return b""
    if value is True:
        return b"\x10\x01"
    if value is False:
        return b"\x10\x00"
    if isinstance(value, str):
        return _string(b"\x0a", value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"integer attribute out of the int64 range: {value}")
        return b"\x18" + _varint(value if value >= 0 else value + (1 << 64))
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _delimited(b"\x3a", value)
    if isinstance(value, Sequence):
        array = b"".join(_delimited(b"\x0a", _any_value(item)) for item in value)
        return _delimited(b"\x2a", array)
    if isinstance(value, Mapping):
        entries = b"".join(_delimited(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _delimited(b"\x32", entries)
    raise TypeError(f"invalid attribute value type {type(value).__name__}")


def _key(key: str) -> bytes:
    return _string(b"\x0a", key) if key else b""  # proto3 leaves an empty string out


def _key_value(key: str, value: Any) -> bytes:
    return _key(key) + _delimited(b"\x12", _any_value(value))


_KEY_CACHE: dict[str, bytes] = {}  # key -> its encoded KeyValue.key field; attribute names repeat endlessly
_KEY_CACHE_LIMIT = 1024


def _attribute_fields(tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
    """One length-delimited KeyValue field per attribute; one that cannot be encoded is left out."""
    if not attributes:
        return []
    out = []
    cache = _KEY_CACHE
    for key, value in attributes.items():
        try:
            key_field = cache.get(key)
            if key_field is None:
                key_field = _key(key)
                if len(cache) < _KEY_CACHE_LIMIT:
                    cache[key] = key_field
            if type(value) is str:  # the common case, without the type dispatch
                data = value.encode("utf-8")
                any_value = b"\x0a" + _len_prefix(len(data)) + data
            else:
                any_value = _any_value(value)
            body = key_field + b"\x12" + _len_prefix(len(any_value)) + any_value
        except Exception:  # what OTLP cannot carry (the SDK's encoder logs and skips it too)
            continue
        out.append(tag + _len_prefix(len(body)) + body)
    return out


# -- spans -------------------------------------------------------------------------------------------------------


class SpanParts:
    """One span's encoded fields: ``head`` (ids, name, kind, times), then the repeated and trailing fields apart.

    ``attributes``, ``events`` and ``links`` hold one complete field each, so an exporter can leave some out
    (and raise the matching ``dropped_*`` count) without encoding the span again.
    """

    __slots__ = (
        "attributes",
        "dropped_attributes",
        "dropped_events",
        "dropped_links",
        "events",
        "head",
        "links",
        "tail",
    )

    def __init__(
        self,
        head: bytes,
        attributes: list[bytes],
        dropped_attributes: int,
        events: list[bytes],
        dropped_events: int,
        links: list[bytes],
        dropped_links: int,
        tail: bytes,
    ) -> None:
        self.head = head
        self.attributes = attributes
        self.dropped_attributes = dropped_attributes
        self.events = events
        self.dropped_events = dropped_events
        self.links = links
        self.dropped_links = dropped_links
        self.tail = tail  # status and flags

    def body(self) -> bytes:
        """The Span message."""
        parts = [self.head, *self.attributes]
        if self.dropped_attributes:
            parts.append(b"\x50" + _varint(self.dropped_attributes))
        parts.extend(self.events)
        if self.dropped_events:
            parts.append(b"\x60" + _varint(self.dropped_events))
        parts.extend(self.links)
        if self.dropped_links:
            parts.append(b"\x70" + _varint(self.dropped_links))
        parts.append(self.tail)
        return b"".join(parts)


def _trace_state(trace_state: Any) -> str:
    if trace_state is None:
        return ""
    return ",".join(f"{key}={value}" for key, value in trace_state.items())


def span_parts(span: ReadableSpan) -> SpanParts:
    """Encode one finished span."""
    context = span.get_span_context()
    assert context is not None  # an SDK span always has one
    head = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    trace_state = _trace_state(context.trace_state)
    if trace_state:
        head.append(_text(b"\x1a", trace_state))
    parent = span.parent
    if parent is not None:
        head.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        head.append(_text(b"\x2a", span.name))
    head.append(b"\x30" + _SMALL_VARINTS[span.kind.value + 1])  # OTLP's SpanKind counts from UNSPECIFIED=0
    if span.start_time:
        head.append(b"\x39" + _pack_fixed64(span.start_time))
    if span.end_time:
        head.append(b"\x41" + _pack_fixed64(span.end_time))
    events = [_event(event) for event in span.events] if span.events else []
    links = [_link(link) for link in span.links] if span.links else []
    status = span.status
    tail = b""
    if status is not None:
        status_body = b""
        if status.description:
            status_body = _text(b"\x12", status.description)
        code = status.status_code.value
        if code:
            status_body += b"\x18" + _varint(code)
        tail = _delimited(b"\x7a", status_body)
    tail += _FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL
    return SpanParts(
        b"".join(head),
        _attribute_fields(b"\x4a", span.attributes),
        span.dropped_attributes,
        events,
        span.dropped_events,
        links,
        span.dropped_links,
        tail,
    )


def _event(event: Any) -> bytes:
    parts = []
    if event.timestamp:
        parts.append(b"\x09" + _pack_fixed64(event.timestamp))
    if event.name:
        parts.append(_text(b"\x12", event.name))
    parts.extend(_attribute_fields(b"\x1a", event.attributes))
    if event.dropped_attributes:
        parts.append(b"\x20" + _varint(event.dropped_attributes))
    return _delimited(b"\x5a", b"".join(parts))


def _link(link: Any) -> bytes:
    context = link.context
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        *_attribute_fields(b"\x22", link.attributes),
    ]
    if link.dropped_attributes:
        parts.append(b"\x28" + _varint(link.dropped_attributes))
    parts.append(_LINK_FLAGS_REMOTE if context.is_remote else _LINK_FLAGS_LOCAL)
    return _delimited(b"\x6a", b"".join(parts))


# -- resource and scope --------------------------------------------------------------------------------------------

# Resource and scope objects live as long as their provider and tracer: encode each once
_RESOURCES: dict[int, tuple[Any, bytes, bytes]] = {}
_SCOPES: dict[int, tuple[Any, bytes, bytes]] = {}
_OBJECT_CACHE_LIMIT = 64


def _cached(cache: dict[int, tuple[Any, bytes, bytes]], obj: Any, encode: Any) -> tuple[bytes, bytes]:
    entry = cache.get(id(obj))
    if entry is not None and entry[0] is obj:
        return entry[1], entry[2]
    message, schema = encode(obj)
    if len(cache) >= _OBJECT_CACHE_LIMIT:
        cache.clear()
    cache[id(obj)] = (obj, message, schema)
    return message, schema


def _resource(resource: Resource) -> tuple[bytes, bytes]:
    """(the ResourceSpans.resource field, the ResourceSpans.schema_url field)."""
    message = _delimited(b"\x0a", b"".join(_attribute_fields(b"\x0a", resource.attributes)))
    schema = _text(b"\x1a", resource.schema_url) if resource.schema_url else b""
    return message, schema


def _scope(scope: InstrumentationScope | None) -> tuple[bytes, bytes]:
    """(the ScopeSpans.scope field, the ScopeSpans.schema_url field)."""
    if scope is None:
        return b"\x0a\x00", b""
    body = []
    if scope.name:
        body.append(_text(b"\x0a", scope.name))
    if scope.version:
        body.append(_text(b"\x12", scope.version))
    body.extend(_attribute_fields(b"\x1a", scope.attributes))
    schema = _text(b"\x1a", scope.schema_url) if scope.schema_url else b""
    return _delimited(b"\x0a", b"".join(body)), schema


def encoded_resource(resource: Resource) -> tuple[bytes, bytes]:
    """The resource's two ResourceSpans fields, encoded once per resource object."""
    return _cached(_RESOURCES, resource, _resource)


def encoded_scope(scope: InstrumentationScope | None) -> tuple[bytes, bytes]:
    """The scope's two ScopeSpans fields, encoded once per scope object."""
    if scope is None:
        return _scope(None)
    return _cached(_SCOPES, scope, _scope)


# -- requests ------------------------------------------------------------------------------------------------------

Group = tuple[tuple[bytes, bytes], list[tuple[tuple[bytes, bytes], list[bytes]]]]
"""One ResourceSpans: (resource fields, [(scope fields, [span bodies])])."""


def group_spans(spans: Iterable[ReadableSpan]) -> dict[Any, dict[Any, list[ReadableSpan]]]:
    """Spans by resource, then by instrumentation scope, in order of first appearance (as the SDK groups them)."""
    grouped: dict[Any, dict[Any, list[ReadableSpan]]] = {}
    last_resource: Any = None
    by_scope: dict[Any, list[ReadableSpan]] = {}
    for span in spans:
        resource = span.resource
        if resource is not last_resource:  # hashing a Resource serialises its attributes to JSON: once per run
            found = grouped.get(resource)
            if found is None:
                found = grouped[resource] = {}
            last_resource, by_scope = resource, found
        scope = span.instrumentation_scope or None
        members = by_scope.get(scope)
        if members is None:
            by_scope[scope] = [span]
        else:
            members.append(span)
    return grouped


def frame(groups: Sequence[Group]) -> bytes:
    """An ExportTraceServiceRequest of already encoded resources, scopes and span bodies."""
    out = []
    for (resource, resource_schema), scopes in groups:
        resource_body = [resource]
        for (scope, scope_schema), bodies in scopes:
            scope_body = b"".join([scope, *(b"\x12" + _len_prefix(len(b)) + b for b in bodies), scope_schema])
            resource_body.append(_delimited(b"\x12", scope_body))
        resource_body.append(resource_schema)
        out.append(_delimited(b"\x0a", b"".join(resource_body)))
    return b"".join(out)


def encode_spans(spans: Iterable[ReadableSpan]) -> bytes:
    """The serialised ``ExportTraceServiceRequest`` of ``spans``."""
    groups: list[Group] = []
    for resource, by_scope in group_spans(spans).items():
        scopes = [(encoded_scope(scope), [span_parts(s).body() for s in spans_]) for scope, spans_ in by_scope.items()]
        groups.append((encoded_resource(resource), scopes))
    return frame(groups)
