"""Parsing of the X-Ray trace header SQS attaches to messages (system attribute ``AWSTraceHeader``).

The format is ``Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>``, fields in any order, possibly with
more fields (``Lineage=``, ``Self=``) and spaces. The 32 hex digits of the root are the W3C trace id and the
parent is the span id, so no X-Ray propagator package is needed. Anything malformed yields None: a bad header
from a producer must never fail a record.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

__all__ = ["parse_xray_header"]

# what SQS writes (possibly followed by more fields): one regex call instead of the general field walk
_CANONICAL = re.compile(r"Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])(?:;|$)")
_ROOT = re.compile(r"1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})")
_PARENT = re.compile(r"[0-9a-fA-F]{16}")
_MAX_HEADER_LENGTH = 2048  # real headers are ~100 characters; refuse to scan anything absurd


def parse_xray_header(header: object) -> SpanContext | None:
    """Turn an X-Ray trace header into a remote span context.

    Args:
        header: The ``AWSTraceHeader`` value.

    Returns:
        A valid remote ``SpanContext`` (sampled when ``Sampled=1``), or None when the header is missing,
        malformed, or names an all-zero trace or span id.
    """
    if not isinstance(header, str) or len(header) > _MAX_HEADER_LENGTH:
        return None
    canonical = _CANONICAL.match(header)
    if canonical is not None:
        trace_id = int(canonical.group(1) + canonical.group(2), 16)
        span_id = int(canonical.group(3), 16)
        if trace_id and span_id:
            return _span_context(trace_id, span_id, canonical.group(4) == "1")
        return None
    trace_id = span_id = 0
    sampled = False
    for field in header.split(";"):
        key, sep, value = field.partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "root":
            match = _ROOT.fullmatch(value.strip())
            if match is None:
                return None
            trace_id = int(match.group(1) + match.group(2), 16)
        elif key == "parent":
            value = value.strip()
            if _PARENT.fullmatch(value) is None:
                return None
            span_id = int(value, 16)
        elif key == "sampled":
            sampled = value.strip() == "1"
    if not trace_id or not span_id:
        return None
    return _span_context(trace_id, span_id, sampled)


_FLAGS: tuple[Any, Any] | None = None  # (not sampled, sampled), built once


def _span_context(trace_id: int, span_id: int, sampled: bool) -> SpanContext:
    from opentelemetry.trace import SpanContext, TraceFlags

    global _FLAGS
    flags = _FLAGS
    if flags is None:
        flags = _FLAGS = (TraceFlags(TraceFlags.DEFAULT), TraceFlags(TraceFlags.SAMPLED))
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags[sampled])
