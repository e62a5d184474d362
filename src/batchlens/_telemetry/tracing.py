"""OpenTelemetry spans: one CONSUMER span per batch, one per record, linked to the producers' traces.

Uses the OpenTelemetry API only; the application (or ``batchlens.telemetry.configure``) chooses the SDK. With no
SDK installed the observer notices at batch start and does nothing per record.

Span layout (the names are a contract, see the README's telemetry reference)::

    process {destination}   batch span: messaging.batch.message_count, links to every producer
    └── process {destination}   record span: messaging.message.id, ...; current while the handler runs
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from batchlens._observer import SKIPPED
from batchlens._sources import Source
from batchlens._telemetry._errors import error_type, exception_event, exception_message, format_exception
from batchlens._telemetry._providers import is_noop_tracer_provider, span_link_limit, tracer_provider
from batchlens._telemetry._xray import parse_xray_header

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from batchlens._config import Telemetry
    from batchlens._observer import BatchInfo, RecordInfo
    from batchlens._telemetry.capture import CaptureBudget

__all__ = ["CAPTURE_BUDGET_KEY", "TracingObserver", "format_exception", "producer_contexts"]

TRACER_NAME = "batchlens"
CAPTURE_BUDGET_KEY = "batchlens.capture_budget"
"""Key in ``BatchInfo.extra`` of the batch's response-capture budget (when capture is on)."""

_STATE_KEY = "batchlens.tracing"
_MAX_STATUS_LENGTH = 1024  # a BatchProcessingError's text embeds every child traceback

# attribute names (OpenTelemetry messaging semantic conventions, plus batchlens.* for our own)
MESSAGING_SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
DESTINATION_NAME = "messaging.destination.name"
MESSAGE_ID = "messaging.message.id"
BATCH_MESSAGE_COUNT = "messaging.batch.message_count"
ERROR_TYPE = "error.type"
BATCH_FAILURE_COUNT = "batchlens.batch.failure_count"
BATCH_SUCCESS_COUNT = "batchlens.batch.success_count"
OTHER_ERROR = "_OTHER"  # semconv's error.type when there is no exception to name


class _BatchState:
    """What record spans of one batch share, computed once in ``batch_start``."""

    __slots__ = (
        "batch_links",
        "budget",
        "context",
        "name",
        "parsed",
        "producers",
        "records",
        "source",
        "start_span",
        "template",
        "thread",
        "tracer",
    )

    def __init__(self, tracer: Tracer, source: Source, name: str | None, template: dict[str, Any]) -> None:
        self.tracer = tracer
        self.start_span = tracer.start_span
        self.source = source
        # None when records have different destinations: each record span then names its own
        self.name = name
        self.template = template
        self.context: Context | None = None
        # whether the source carries producer context at all
        self.producers = False
        # producer contexts of the first records, parsed in batch_start for the batch links; the others
        # are parsed when their record starts, so a big batch does not hold them all at once
        self.parsed: list[list[SpanContext] | None] = []
        self.batch_links: list[Link] = []
        self.records: list[Any] = []
        self.thread = threading.get_ident()
        self.budget: CaptureBudget | None = None


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


def _record_contexts(source: Source, raw: Any) -> list[SpanContext] | None:
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


def _short(text: str) -> str:
    return text if len(text) <= _MAX_STATUS_LENGTH else text[: _MAX_STATUS_LENGTH - 3] + "..."


_CONSUMER = SpanKind.CONSUMER
_ERROR_STATUS = Status(StatusCode.ERROR)
_attach = otel_context.attach
_detach = otel_context.detach
_set_span_in_context = trace.set_span_in_context


def _load_capture(telemetry: Telemetry) -> Any:
    from batchlens._telemetry.capture import ResponseCapture

    return ResponseCapture(telemetry)


class TracingObserver:
    """Emits the batch span and one span per record (see the module docstring).

    Args:
        telemetry: The configuration; ``tracer_provider`` and ``capture_response`` are read from it.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self._provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        self._link_limit = span_link_limit()
        self._capture = _load_capture(telemetry) if telemetry.capture_response else None

    def _tracer_for(self, provider: TracerProvider) -> Tracer:
        tracer = self._tracer
        if tracer is None or provider is not self._provider:
            import batchlens

            tracer = provider.get_tracer(TRACER_NAME, getattr(batchlens, "__version__", None))
            self._tracer = tracer
            self._provider = provider
        return tracer

    # -- batch -------------------------------------------------------------------------------------------
    def batch_start(self, batch: BatchInfo) -> None:
        """Start the batch span, linked to the producers, and make it current."""
        provider = tracer_provider(self._telemetry)
        if is_noop_tracer_provider(provider):
            self._provider = provider
            return
        tracer = self._tracer_for(provider)
        source = batch.source
        destination = batch.destination
        template: dict[str, Any] = {
            MESSAGING_SYSTEM: source.messaging_system,
            OPERATION_NAME: "process",
            OPERATION_TYPE: "process",
        }
        if destination is not None:
            template[DESTINATION_NAME] = destination
        name = f"process {destination or source.messaging_system}"
        state = _BatchState(tracer, source, name if destination is not None else None, template)
        state.records = batch.records
        batch.extra[_STATE_KEY] = state
        if self._capture is not None:
            state.budget = batch.extra[CAPTURE_BUDGET_KEY] = self._capture.new_budget()
        self._producer_links(batch, state)
        attributes = dict(template)
        attributes[BATCH_MESSAGE_COUNT] = batch.size
        span = tracer.start_span(name, kind=SpanKind.CONSUMER, attributes=attributes, links=state.batch_links)
        batch.span = span
        ctx = trace.set_span_in_context(span)
        state.context = ctx
        batch.token = otel_context.attach(ctx)

    def _producer_links(self, batch: BatchInfo, state: _BatchState) -> None:
        """Collect the batch span's links (up to the link limit) from the first records' producer contexts."""
        source = batch.source
        if type(source).producer_headers is Source.producer_headers:
            return  # this source never carries producer context
        state.producers = True
        limit = self._link_limit
        batch_links = state.batch_links
        parsed = state.parsed
        for raw in batch.records:
            if len(batch_links) >= limit:
                break
            contexts = _record_contexts(source, raw)
            parsed.append(contexts)
            if contexts:
                message_id = source.message_id(raw)
                attributes = {MESSAGE_ID: message_id} if message_id is not None else None
                batch_links.extend(Link(c, attributes) for c in contexts)
        del batch_links[limit:]

    def batch_end(self, batch: BatchInfo) -> None:
        """Record the counts, mark an entirely failed batch as an error, end the batch span."""
        state = batch.extra.get(_STATE_KEY)
        token = batch.token
        if token is not None:
            batch.token = None
            # a token only detaches in the context that attached it: batch_start ran in this thread
            if state is None or state.thread == threading.get_ident():
                otel_context.detach(token)
        span: Span | None = batch.span
        if span is None:
            return
        try:
            if span.is_recording():
                span.set_attributes(
                    {BATCH_FAILURE_COUNT: batch.failure_count, BATCH_SUCCESS_COUNT: batch.success_count}
                )
                error = batch.error
                if batch.entire_batch_failed or error is not None:
                    # an escaping error fails the whole invocation: Lambda retries every record
                    if error is not None:
                        span.set_attribute(ERROR_TYPE, error_type(error))
                        # sanitised and bounded; a batch error is described by its summary, not its records' text
                        description = exception_message(error) or error_type(error)
                    else:
                        description = "All records failed processing"
                    span.set_status(Status(StatusCode.ERROR, description))
        finally:
            span.end()

    # -- records -----------------------------------------------------------------------------------------
    def record_start(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Start the record span as a child of the batch span and make it current for the handler."""
        state: _BatchState | None = batch.extra.get(_STATE_KEY)
        if state is None:
            return
        raw = record.raw
        source = state.source
        # every attribute known now goes in at start: the SDK cleans a start dict in one pass, where each
        # set_attribute() after start takes the span's lock and cleans again
        attributes = state.template.copy()
        name = state.name
        if name is None:
            destination = source.destination(raw)
            if destination is not None:
                attributes[DESTINATION_NAME] = destination
            name = f"process {destination or source.messaging_system}"
        message_id = source.message_id(raw)
        if message_id is not None:
            attributes[MESSAGE_ID] = message_id
        source.add_record_attributes(raw, attributes)
        links = None
        if state.producers:
            index = record.index
            parsed = state.parsed
            if 0 <= index < len(parsed) and state.records[index] is raw:
                contexts = parsed[index]
            else:
                contexts = _record_contexts(source, raw)
            if contexts:
                # the record span names its message itself; only the batch span's links carry the attribute
                links = [Link(c) for c in contexts]
        span = state.start_span(name, context=state.context, kind=_CONSUMER, attributes=attributes, links=links)
        record.span = span
        record.token = _attach(_set_span_in_context(span))

    def record_success(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Attach the captured result (when capture is on) and end the record span."""
        token = record.token
        if token is not None:
            record.token = None
            _detach(token)
        span: Span | None = record.span
        if span is None:
            return
        try:
            capture = self._capture
            if capture is not None and span.is_recording():
                state: _BatchState | None = batch.extra.get(_STATE_KEY)
                budget = state.budget if state is not None else None
                if budget is not None:
                    captured = capture.attributes(record.result, budget)
                    if captured:
                        span.set_attributes(captured)
        finally:
            span.end()

    def record_failure(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Mark the record span as an error (with the exception, unless the record was skipped) and end it."""
        token = record.token
        if token is not None:
            record.token = None
            _detach(token)
        span: Span | None = record.span
        if span is None:
            return
        try:
            if span.is_recording():
                exc = record.exception
                if exc is None:
                    span.set_attribute(ERROR_TYPE, OTHER_ERROR)
                    span.set_status(_ERROR_STATUS)
                else:
                    # sanitised (no validation input) and bounded in bytes, the same text as every other signal
                    message = exception_message(exc)
                    span.set_attribute(ERROR_TYPE, error_type(exc))
                    span.set_status(Status(StatusCode.ERROR, message))
                    if record.outcome != SKIPPED:
                        # the semconv "exception" event, as record_exception() would add, formatted cheaply
                        span.add_event("exception", exception_event(exc, message))
        finally:
            span.end()

    def flush(self, timeout_millis: int) -> None:
        """Export buffered spans through the provider's ``force_flush``, when it has one."""
        provider = self._provider or tracer_provider(self._telemetry)
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)
