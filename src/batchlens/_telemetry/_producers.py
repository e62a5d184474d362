"""Producer span contexts a record carries (X-Ray ``AWSTraceHeader``, W3C ``traceparent``): the links of the
batch and record spans."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

from batchlens._telemetry._xray import parse_xray_header

if TYPE_CHECKING:
    from typing import Any

    from opentelemetry.trace import SpanContext

    from batchlens._sources import Source

__all__ = ["producer_contexts", "record_contexts"]


def producer_contexts(xray_header: str | None, carrier: Mapping[str, str] | None) -> list[SpanContext]:
    """The producer span contexts a record carries: from the X-Ray header and from a W3C carrier, deduplicated.

    Args:
        xray_header: An ``AWSTraceHeader`` value, or None.
        carrier: ``traceparent``/``tracestate`` values for the global propagator, or None.

    Returns:
        Zero, one or two valid remote span contexts; malformed headers are ignored.
    """
    found: list[SpanContext] = []
    if xray_header is not None:
        parsed = parse_xray_header(xray_header)
        if parsed is not None:
            found.append(parsed)
    if carrier:
        w3c = _extract_w3c(carrier)
        if w3c is not None and not any(c.trace_id == w3c.trace_id and c.span_id == w3c.span_id for c in found):
            found.append(w3c)
    return found


def record_contexts(source: Source, raw: Any) -> list[SpanContext] | None:
    """The producer contexts of one raw record, or None when it carries none."""
    try:
        xray, carrier = source.producer_headers(raw)
    except Exception:  # a record of the wrong shape has no producer context
        return None
    if xray is None and not carrier:
        return None
    return producer_contexts(xray, carrier) or None


def _extract_w3c(carrier: Mapping[str, str]) -> SpanContext | None:
    from opentelemetry import propagate
    from opentelemetry.context import Context

    try:
        # an empty base context: with the current one, a carrier without traceparent would yield our own span
        extracted = propagate.extract(carrier, context=Context())
    except Exception:
        return None
    span_context = trace.get_current_span(extracted).get_span_context()
    return span_context if span_context.is_valid else None
