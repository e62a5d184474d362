"""X-Ray trace headers: SQS's ``AWSTraceHeader`` on messages and the invocation's ``_X_AMZN_TRACE_ID``.

The format is ``Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>``, fields in any order, possibly with
more fields (``Lineage=``, ``Self=``) and spaces. The 32 hex digits of the root are the W3C trace id and the
parent is the span id, so no X-Ray propagator package is needed. Anything malformed yields None: a bad header
from a producer must never fail a record.
"""

from __future__ import annotations

import os
import re
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import NonRecordingSpan, set_span_in_context

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanContext

__all__ = ["XRAY_ENV", "follow_lambda_sampling", "invocation_parent", "parse_xray_header"]

XRAY_ENV = "_X_AMZN_TRACE_ID"  # the invocation's trace header; Lambda sets it per invocation

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


# the last header, its parent context, and whether it is sampled: one parse per invocation
_last_xray: tuple[str, Context | None, bool] = ("", None, False)

# tracer providers that follow Lambda's sampling decision (the X-Ray exporter's): an unsampled header is their
# batch span's non-sampled parent, so nothing is recorded while log lines still carry the invocation's trace id
_following: weakref.WeakSet[object] = weakref.WeakSet()


def follow_lambda_sampling(provider: object) -> None:
    """Make an unsampled ``_X_AMZN_TRACE_ID`` the (non-sampled) parent of batches traced through ``provider``."""
    _following.add(provider)


# os.environ.get() of a missing variable raises and catches a KeyError inside (about 10k instructions per batch
# outside Lambda, measured); the mapping behind os.environ answers in one lookup. It is a CPython detail, hence
# the fallback.
_ENVIRON_DATA: Any = getattr(os.environ, "_data", None)
try:
    _XRAY_KEY: Any = os.environ.encodekey(XRAY_ENV)
    _decode: Any = os.environ.decodevalue
except AttributeError:  # pragma: no cover - another interpreter
    _ENVIRON_DATA = None


def _xray_header() -> str | None:
    if _ENVIRON_DATA is None:  # pragma: no cover - another interpreter
        return os.environ.get(XRAY_ENV)
    raw = _ENVIRON_DATA.get(_XRAY_KEY)
    return None if raw is None else str(_decode(raw))


def invocation_parent(provider: object = None) -> Context | None:
    """The invocation's X-Ray trace as a parent context, when Lambda marked it sampled.

    An unsampled header is a parent too when ``provider`` follows Lambda's sampling (see
    :func:`follow_lambda_sampling`); for other providers it is ignored, so their own sampler decides.
    """
    global _last_xray
    header = _xray_header()
    if not header:
        return None
    last = _last_xray
    if last[0] != header:
        span_context = parse_xray_header(header)
        parent = None if span_context is None else set_span_in_context(NonRecordingSpan(span_context))
        last = _last_xray = (header, parent, span_context is not None and span_context.trace_flags.sampled)
    if last[2]:
        return last[1]
    if last[1] is not None and provider is not None and _following:
        try:
            return last[1] if provider in _following else None
        except TypeError:  # a provider that cannot be weakly referenced was never registered
            return None
    return None
