"""The direct caller's W3C trace context, as Lambda's runtime client hands it to the handler.

awslambdaric 4.2+ gives the context a ``w3c()`` method: a dict of the ``traceparent``, ``tracestate`` and
``baggage`` strings a direct caller sent in its client context (event source mappings send none). The batch
span joins that trace when neither a current span nor a sampled X-Ray trace is there (see ``tracing.py``).

``traceparent`` is ``version-traceid-parentid-flags`` (W3C Trace Context, level 1): lowercase hex, trace and
parent ids not all zero, version ``ff`` invalid, version ``00`` with nothing after the flags; a later version
may append ``-...`` fields, which are ignored. It is parsed here rather than with the API's
``TraceContextTextMapPropagator``, whose module costs an import on every cold start for one regex.

Nothing here may fail a batch: a context whose ``w3c`` is missing, raises, or returns anything but a mapping of
strings yields no parent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState, set_span_in_context

if TYPE_CHECKING:
    from opentelemetry.context import Context

__all__ = ["caller_parent", "parse_traceparent"]

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.S)
_MAX_TRACEPARENT = 512  # version 00 is 55 characters; later versions may append fields, not kilobytes
_MAX_TRACESTATE = 8192  # 32 members of at most 256 + 1 + 256 characters; a longer header is dropped, not cut


def parse_traceparent(traceparent: object, tracestate: object = None) -> SpanContext | None:
    """Turn a ``traceparent`` (and its ``tracestate``) into a remote span context.

    Args:
        traceparent: The ``traceparent`` value.
        tracestate: The ``tracestate`` value, kept on the span context when it is valid (else dropped).

    Returns:
        A valid remote ``SpanContext`` with the header's flags (so its sampled flag is respected by a
        parent-based sampler), or None when ``traceparent`` is missing or invalid.
    """
    if not isinstance(traceparent, str) or len(traceparent) > _MAX_TRACEPARENT:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip(" \t"))
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = None
    if isinstance(tracestate, str) and tracestate and len(tracestate) <= _MAX_TRACESTATE:
        state = TraceState.from_header([tracestate])  # an invalid header gives an empty state
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags_hex, 16)), trace_state=state)


def caller_parent(lambda_context: Any) -> Context | None:
    """The caller's trace from ``lambda_context.w3c()`` as a parent context, or None; never raises an Exception.

    Args:
        lambda_context: The Lambda context given to the processor (any object; ``w3c`` is optional).
    """
    try:
        w3c = getattr(lambda_context, "w3c", None)
        if w3c is None or not callable(w3c):
            return None
        headers = w3c()
        if not isinstance(headers, Mapping):
            return None
        span_context = parse_traceparent(headers.get("traceparent"), headers.get("tracestate"))
    except Exception:  # a home-made context with a broken w3c() must not fail the batch
        return None
    if span_context is None:
        return None
    return set_span_in_context(NonRecordingSpan(span_context))
