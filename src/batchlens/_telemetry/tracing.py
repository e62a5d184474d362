"""OpenTelemetry spans: one CONSUMER span per batch, one per record, linked to the producers' traces.

Uses the OpenTelemetry API only; the application (or ``batchlens.telemetry.configure``) chooses the SDK. With no
SDK installed the observer notices at batch start and does nothing per record.

Span layout (the names are a contract, see docs/telemetry.md)::

    process {destination}   batch span: messaging.batch.message_count, links to every producer
    └── process {destination}   record span: messaging.message.id, ...; current while the handler runs

The batch span joins the invocation: its parent is the current span, else the invocation's sampled X-Ray trace
(``_X_AMZN_TRACE_ID``, the semantic conventions' rule for Lambda), else the direct caller's W3C ``traceparent``
from ``context.w3c()`` (awslambdaric 4.2+; its sampled flag and ``tracestate`` kept), else none. When the
current span is already a batch-level ``process ...`` CONSUMER span (opentelemetry-instrumentation-aws-lambda
creates one for SQS events), batchlens adopts it as the batch span instead of starting a second one, and leaves
ending it to its owner.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from batchlens._observer import NOT_READ, SKIPPED
from batchlens._sources import Source, current_event
from batchlens._telemetry._errors import error_type, exception_event, exception_message, format_exception
from batchlens._telemetry._producers import producer_contexts, record_contexts
from batchlens._telemetry._providers import is_noop_tracer_provider, span_link_limit, tracer_provider
from batchlens._telemetry._w3c import caller_parent
from batchlens._telemetry._xray import invocation_parent

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from batchlens._config import Telemetry
    from batchlens._observer import BatchInfo, RecordInfo
    from batchlens._telemetry.capture import CaptureBudget

__all__ = ["CAPTURE_BUDGET_KEY", "SCHEMA_URL", "TracingObserver", "format_exception", "producer_contexts"]

TRACER_NAME = "batchlens"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions version batchlens' attribute names follow (checked against the semconv package)."""
CAPTURE_BUDGET_KEY = "batchlens.capture_budget"
"""Key in ``BatchInfo.extra`` of the batch's response-capture budget (when capture is on)."""

_STATE_KEY = "batchlens.tracing"

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
BATCH_SAMPLING_RATE = "batchlens.batch.sampling_rate"
BATCH_UNSAMPLED_COUNT = "batchlens.batch.unsampled_count"
OTHER_ERROR = "_OTHER"  # semconv's error.type when there is no exception to name
FAAS_TRIGGER = "faas.trigger"
FAAS_INVOCATION_ID = "faas.invocation_id"
CLOUD_RESOURCE_ID = "cloud.resource_id"
CLOUD_ACCOUNT_ID = "cloud.account.id"
INVOKED_ARN = "aws.lambda.invoked_arn"

_CACHE_SIZE = 64  # (source, destination) pairs and invoked ARNs one processor keeps constant attributes for


class _BatchState:
    """What record spans of one batch share, computed once in ``batch_start``."""

    __slots__ = (
        "batch_links",
        "budget",
        "context",
        "document_keys",
        "epoch_offset",
        "name",
        "owned",
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
        # False when the batch span is an adopted span of the Lambda instrumentation: its owner ends it
        self.owned = True
        self.document_keys = False
        # time.time_ns() minus time.perf_counter_ns() at batch start: turns the processor's clock readings into
        # span timestamps, for the spans of records left out by sampling, made after the record ran
        self.epoch_offset = 0


_CONSUMER = SpanKind.CONSUMER
_ERROR_STATUS = Status(StatusCode.ERROR)
_attach = otel_context.attach
_detach = otel_context.detach
_set_span_in_context = trace.set_span_in_context


def _adoptable(span: Any) -> bool:
    """Whether the current span is another instrumentation's batch span (``process <queue>``, CONSUMER)."""
    if not span.is_recording() or getattr(span, "kind", None) is not _CONSUMER:
        return False
    name = getattr(span, "name", None)
    if not isinstance(name, str) or not name.startswith("process"):
        return False
    # never a span of batchlens' own: a processor run inside a record's handler nests under the record span
    scope = getattr(span, "instrumentation_scope", None)
    return getattr(scope, "name", None) != TRACER_NAME


def _lambda_attributes(context: Any, trigger: str) -> dict[str, Any]:
    """The batch span's constant attributes of a Lambda context: trigger, invoked ARN, resource id, account."""
    out: dict[str, Any] = {FAAS_TRIGGER: trigger}
    arn = getattr(context, "invoked_function_arn", None)
    if isinstance(arn, str) and arn:
        out[INVOKED_ARN] = arn
        parts = arn.split(":")
        if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "lambda":
            # semconv: the function ARN with any alias replaced by the version that runs
            resource = ":".join(parts[:7])
            version = getattr(context, "function_version", None)
            if isinstance(version, str) and version and version != "$LATEST":
                resource = f"{resource}:{version}"
            out[CLOUD_RESOURCE_ID] = resource
            if parts[4]:
                out[CLOUD_ACCOUNT_ID] = parts[4]
    return out


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
        # the provider ``_tracer`` belongs to, once known not to be a no-op (None while it may be one)
        self._real: TracerProvider | None = None
        self._link_limit = span_link_limit()
        self._capture = _load_capture(telemetry) if telemetry.capture_response else None
        # constant attributes, built once: (record span name, attributes) per source and destination, and the
        # Lambda context's per invoked ARN
        self._constants: dict[tuple[Any, ...], tuple[str | None, dict[str, Any]]] = {}
        self._lambda: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _tracer_for(self, provider: TracerProvider) -> Tracer:
        tracer = self._tracer
        if tracer is None or provider is not self._provider:
            import batchlens

            tracer = provider.get_tracer(TRACER_NAME, getattr(batchlens, "__version__", None), schema_url=SCHEMA_URL)
            self._tracer = tracer
            self._provider = provider
        return tracer

    # -- batch -------------------------------------------------------------------------------------------
    def batch_start(self, batch: BatchInfo) -> None:
        """Start the batch span (or adopt the instrumentation's), linked to the producers, and make it current."""
        provider = tracer_provider(self._telemetry)
        tracer = self._tracer
        if provider is not self._real or tracer is None:
            if is_noop_tracer_provider(provider):
                self._provider = provider
                self._real = None
                return
            tracer = self._tracer_for(provider)
            # an SDK provider stays one: later batches skip the no-op check (a proxy may still change)
            self._real = provider if type(provider) is not trace.ProxyTracerProvider else None
        source = batch.source
        name, template = self._constants_for(source, batch.destination, batch.records)
        state = _BatchState(tracer, source, name, template)
        state.records = batch.records
        state.document_keys = self._telemetry.document_keys
        batch.extra[_STATE_KEY] = state
        if self._capture is not None:
            state.budget = batch.extra[CAPTURE_BUDGET_KEY] = self._capture.new_budget()
        if source.may_carry_producer_context(batch.records):
            self._producer_links(batch, state)
        attributes = template.copy()
        attributes[BATCH_MESSAGE_COUNT] = batch.size
        if batch.sampling_rate < 1.0:
            attributes[BATCH_SAMPLING_RATE] = batch.sampling_rate
            state.epoch_offset = time.time_ns() - time.perf_counter_ns()
        lambda_context = batch.lambda_context
        if lambda_context is not None:
            attributes.update(self._lambda_constants(lambda_context, source.faas_trigger))
            request_id = getattr(lambda_context, "aws_request_id", None)
            if isinstance(request_id, str) and request_id:
                attributes[FAAS_INVOCATION_ID] = request_id
        current = trace.get_current_span()
        parent: Context | None = None
        if not current.get_span_context().is_valid:
            if self._telemetry.xray_parent:
                parent = invocation_parent(provider)
        elif _adoptable(current):
            self._adopt(batch, state, current, attributes)
            _unsampled_scope(batch, state)
            return
        if parent is None and lambda_context is not None and not current.get_span_context().is_valid:
            parent = caller_parent(lambda_context)  # the direct caller's W3C trace, context.w3c()
        span_name = name or f"process {source.messaging_system}"
        span = tracer.start_span(
            span_name, context=parent, kind=_CONSUMER, attributes=attributes, links=state.batch_links
        )
        batch.span = span
        ctx = _set_span_in_context(span)
        state.context = ctx
        batch.token = _attach(ctx)
        _unsampled_scope(batch, state)

    @staticmethod
    def _adopt(batch: BatchInfo, state: _BatchState, span: Any, attributes: dict[str, Any]) -> None:
        """Make the current CONSUMER span the batch span: add attributes and links; its owner ends it."""
        span.set_attributes(attributes)
        add_link = getattr(span, "add_link", None)  # API >= 1.23; SDK spans accept links after start
        if add_link is not None and state.batch_links:
            present = {(link.context.trace_id, link.context.span_id) for link in getattr(span, "links", ())}
            for link in state.batch_links:
                if (link.context.trace_id, link.context.span_id) not in present:
                    add_link(link.context, link.attributes)
        state.owned = False
        batch.span = span
        state.context = _set_span_in_context(span)  # already current: nothing to attach

    def _constants_for(
        self, source: Source, destination: str | None, records: list[Any]
    ) -> tuple[str | None, dict[str, Any]]:
        """(record span name, attributes of every span) that do not change between batches of a destination."""
        event_attributes: dict[str, Any] | None = None
        if type(source).event_attributes is not Source.event_attributes:
            event = current_event()
            if event is not None:
                event_attributes = source.event_attributes(event)
        first = records[0] if records and destination is not None else None
        arn = None
        if first is not None:
            try:
                arn = first.get("eventSourceARN") or first.get("eventSourceArn")
            except AttributeError:
                arn = None
        key = (source, destination, arn, tuple(event_attributes.items()) if event_attributes else None)
        constants = self._constants.get(key)
        if constants is None:
            template: dict[str, Any] = {
                MESSAGING_SYSTEM: source.messaging_system,
                OPERATION_NAME: "process",
                OPERATION_TYPE: "process",
            }
            if destination is not None:
                template[DESTINATION_NAME] = destination
                template.update(source.destination_attributes(first))
            if event_attributes:
                template.update(event_attributes)
            # None when records have different destinations: each record span then names its own
            name = f"process {destination}" if destination is not None else None
            constants = (name, template)
            if len(self._constants) < _CACHE_SIZE:
                self._constants[key] = constants
        return constants

    def _lambda_constants(self, context: Any, trigger: str) -> dict[str, Any]:
        key = (getattr(context, "invoked_function_arn", None), getattr(context, "function_version", None), trigger)
        try:
            return self._lambda[key]
        except (KeyError, TypeError):
            pass
        attributes = _lambda_attributes(context, trigger)
        try:
            if len(self._lambda) < _CACHE_SIZE:
                self._lambda[key] = attributes
        except TypeError:  # an unhashable field on a home-made context
            pass
        return attributes

    def _producer_links(self, batch: BatchInfo, state: _BatchState) -> None:
        """Collect the batch span's links (up to the link limit) from the first records' producer contexts.

        Called only when some record may carry a producer header (``Source.may_carry_producer_context``).
        """
        source = batch.source
        state.producers = True
        limit = self._link_limit
        batch_links = state.batch_links
        parsed = state.parsed
        for raw in batch.records:
            if len(batch_links) >= limit:
                break
            contexts = record_contexts(source, raw)
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
        owned = state is None or state.owned
        try:
            if span.is_recording():
                counts = {BATCH_FAILURE_COUNT: batch.failure_count, BATCH_SUCCESS_COUNT: batch.success_count}
                if batch.sampling_rate < 1.0:
                    counts[BATCH_UNSAMPLED_COUNT] = batch.unsampled_count
                span.set_attributes(counts)
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
            if owned:
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
                attributes.update(source.destination_attributes(raw))
            name = f"process {destination or source.messaging_system}"
        message_id = record.message_id
        if message_id is NOT_READ:
            message_id = record.message_id = source.message_id(raw)
        if message_id is not None:
            attributes[MESSAGE_ID] = message_id
        source.add_record_attributes(raw, attributes)
        if state.document_keys:
            source.add_document_name(raw, attributes)
        links = None
        if state.producers:
            index = record.index
            parsed = state.parsed
            if 0 <= index < len(parsed) and state.records[index] is raw:
                contexts = parsed[index]
            else:
                contexts = record_contexts(source, raw)
            if contexts:
                # the record span names its message itself; only the batch span's links carry the attribute
                links = [Link(c) for c in contexts]
        if record.sampled:
            span = state.start_span(name, context=state.context, kind=_CONSUMER, attributes=attributes, links=links)
        else:
            # left out by sampling and failed: the span is made after the record ran, with its real start time
            start_time = state.epoch_offset + record.start_ns
            span = state.start_span(
                name, context=state.context, kind=_CONSUMER, attributes=attributes, links=links, start_time=start_time
            )
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
        # a record left out by sampling: its span, made after it ran, ends (and has its events) at its real end
        end_time = None if record.sampled else _late_end(batch, record)
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
                        span.add_event("exception", exception_event(exc, message), timestamp=end_time)
        finally:
            span.end(end_time)

    def flush(self, timeout_millis: int) -> None:
        """Export buffered spans through the provider's ``force_flush``, when it has one."""
        provider = self._provider or tracer_provider(self._telemetry)
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)


def _late_end(batch: BatchInfo, record: RecordInfo) -> int | None:
    """The span end time (ns since the epoch) of a record left out by sampling: its real end."""
    state: _BatchState | None = batch.extra.get(_STATE_KEY)
    return None if state is None else state.epoch_offset + record.end_ns


def _unsampled_scope(batch: BatchInfo, state: _BatchState) -> None:
    """With record sampling on, what is current while a left-out record runs: an unsampled, non-recording span in
    the batch's trace, so the spans its handler starts are not sampled (the SDK's default sampler follows the
    parent's decision) and calls it makes propagate the decision."""
    if batch.sampling_rate >= 1.0 or batch.span is None:
        return
    parent = batch.span.get_span_context()
    if not parent.is_valid:
        return
    left_out = SpanContext(
        parent.trace_id, parent.span_id, is_remote=False, trace_flags=TraceFlags(0), trace_state=parent.trace_state
    )
    ctx = _set_span_in_context(NonRecordingSpan(left_out), state.context)
    batch.unsampled_scope = (partial(_attach, ctx), _detach)
