"""Sentry: one event per failed record, tagged with where the record came from; never its body.

Imported only when ``Telemetry.sentry`` is on, because importing ``sentry_sdk`` costs 100-300 ms of cold start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from batchlens._observer import FAILURE, noop_hook
from batchlens._sentry_guard import OTEL_TRACE_ID_TAG, RECORDS_SENT, exception_chain
from batchlens._telemetry._errors import error_type, exception_message
from batchlens.exceptions import BaseBatchProcessingError

if TYPE_CHECKING:
    from batchlens._config import Telemetry
    from batchlens._observer import BatchInfo, RecordInfo

__all__ = ["CONTEXT_NAME", "OTEL_TRACE_ID_TAG", "REQUEST_ID_TAG", "SENTRY_TRACE_ID_ATTRIBUTE", "SentryObserver"]

CONTEXT_NAME = "batch_record"
"""Name of the Sentry context describing the failed record."""

REQUEST_ID_TAG = "faas.invocation_id"
"""Tag holding the Lambda request id: the batch span's attribute of the same name (OpenTelemetry's ``faas``
conventions), so one search string finds the event, the span and the invocation's log lines."""

SENTRY_TRACE_ID_ATTRIBUTE = "sentry.trace_id"
"""Attribute of the batch span holding Sentry's trace id while a Sentry span is current (``AwsLambdaIntegration``'s,
or the application's): the trace of that span and of the events Sentry captures itself during the invocation,
such as an unhandled ``BatchProcessingError``."""

_TRACE_KEY = "batchlens.sentry.otel_trace_id"  # BatchInfo.extra: the batch span's trace id
_TOKEN_KEY = "batchlens.sentry.records_sent"  # BatchInfo.extra: the RECORDS_SENT token to reset
_INSTALL_HINT = "pip install 'batchlens[sentry]'"
_log = logging.getLogger("batchlens")


class SentryObserver:
    """Sends every failed record's exception to Sentry, in a scope of its own.

    Skipped records (FIFO and stream circuit breakers, the deadline guard) are consequences of another failure
    and are not sent. Events carry the tags ``messaging.system``, ``messaging.destination.name``,
    ``messaging.message.id``, ``error.type``, (with a Lambda context) ``faas.invocation_id`` and (with tracing)
    ``otel.trace_id``, a ``batch_record`` context, and the record span's trace id and span id as their ``trace``
    context, so Sentry's trace view and the OpenTelemetry backend show the same trace. With tracing, Sentry's
    current span (``AwsLambdaIntegration``'s ``queue.process`` span in sentry-sdk 3.x, its transaction in 2.x)
    gets the batch span's trace id as ``otel.trace_id`` and the batch span gets Sentry's trace id as
    ``sentry.trace_id``, so each side finds the other. The exception's text is batchlens' bounded,
    sanitised message (validation errors without their input values) and the local variables of stack frames
    are removed, because every frame between the processor and the handler holds the message body.

    Args:
        telemetry: ``sentry_dsn`` initialises the Sentry SDK (without personal data) when the application has
            not set up a client with a transport by the first batch; otherwise the application's client is used
            as it is.

    Raises:
        ImportError: sentry-sdk is not installed.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        try:
            import sentry_sdk
        except ImportError as exc:
            raise ImportError(
                "batchlens sends failed records to Sentry (Telemetry.sentry / BATCHLENS_SENTRY_ENABLED), which "
                f"needs the sentry-sdk package: {_INSTALL_HINT}"
            ) from exc
        self._sdk: Any = sentry_sdk
        self._dsn = telemetry.sentry_dsn
        self._failures_reported = False

    # -- observer events -----------------------------------------------------------------------------------
    def batch_start(self, batch: BatchInfo) -> None:
        """Initialise Sentry with the configured DSN when the application has no working client."""
        # Checked per batch, not at construction: processors are built at module import, often before the
        # application's own sentry_sdk.init() call further down the module.
        if self._dsn and not _has_transport(self._sdk.get_client()):
            self._sdk.init(dsn=self._dsn, **_no_pii_options(self._sdk))
        batch.extra[_TOKEN_KEY] = RECORDS_SENT.set(True)
        span = trace.get_current_span()  # the batch span: tracing runs first and makes it current
        span_context = span.get_span_context()
        if span_context.is_valid and _has_transport(self._sdk.get_client()):
            trace_id = batch.extra[_TRACE_KEY] = format(span_context.trace_id, "032x")
            _cross_link(self._sdk, span, trace_id)

    @noop_hook
    def record_start(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Nothing to do before a record."""

    @noop_hook
    def record_success(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Nothing to do for a success."""

    def record_failure(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Capture the record's exception (failures only; skipped records are consequences)."""
        exc = record.exception
        # BaseExceptions (cancellation, SystemExit) leave the batch and reach the application's own handling
        if record.outcome != FAILURE or not isinstance(exc, Exception):
            return
        try:
            self._capture(batch, record, exc)
        except Exception:
            # a broken transport or client must cost the batch nothing; say so once
            if not self._failures_reported:
                self._failures_reported = True
                _log.warning("batchlens could not send a failed record to Sentry (reported once)", exc_info=True)

    def batch_end(self, batch: BatchInfo) -> None:
        """End the batch's record sending; note the batch span's trace id on a batch error leaving the batch."""
        token = batch.extra.pop(_TOKEN_KEY, None)
        if token is not None:
            try:
                RECORDS_SENT.reset(token)
            except ValueError:  # set in another context (a custom processor's threads): end it here all the same
                RECORDS_SENT.set(False)
        error = batch.error
        if isinstance(error, BaseBatchProcessingError):
            error._otel_trace_id = batch.extra.get(_TRACE_KEY)

    def flush(self, timeout_millis: int) -> None:
        """Wait up to ``timeout_millis`` for queued Sentry events to be sent."""
        self._sdk.flush(timeout=max(0, timeout_millis) / 1000)

    # -- capture -------------------------------------------------------------------------------------------
    def _capture(self, batch: BatchInfo, record: RecordInfo, exc: Exception) -> None:
        source = batch.source
        raw = record.raw
        message_id = source.message_id(raw)
        destination = batch.destination if batch.destination is not None else source.destination(raw)
        tags: dict[str, str] = {}
        context: dict[str, Any] = {
            "record_id": message_id,
            "index": record.index,
            "event_source": source.event_source,
            "batch_size": batch.size,
        }
        receive_count = source.record_attributes(raw).get("batchlens.sqs.receive_count")
        if receive_count is not None:
            context["receive_count"] = receive_count
        # the record span is still current here: tracing ends it after the other observers have run
        span = trace.get_current_span()
        span_context = span.get_span_context()
        trace_context: dict[str, Any] | None = None
        if span_context.is_valid:
            trace_id = format(span_context.trace_id, "032x")
            span_id = format(span_context.span_id, "016x")
            context["trace_id"] = trace_id
            context["span_id"] = span_id
            tags[OTEL_TRACE_ID_TAG] = trace_id
            trace_context = {"trace_id": trace_id, "span_id": span_id, "op": "queue.process"}
            parent = getattr(span, "parent", None)
            if parent is not None and getattr(parent, "is_valid", False):
                trace_context["parent_span_id"] = format(parent.span_id, "016x")
        request_id = _request_id(batch.lambda_context)
        if request_id is not None:
            context["aws_request_id"] = request_id
        sdk = self._sdk
        with sdk.new_scope() as scope:
            scope.set_tag("messaging.system", source.messaging_system)
            if destination is not None:
                scope.set_tag("messaging.destination.name", destination)
            if message_id is not None:
                scope.set_tag("messaging.message.id", message_id)
            scope.set_tag("error.type", error_type(exc))
            if request_id is not None:
                scope.set_tag(REQUEST_ID_TAG, request_id)
            for key, value in tags.items():
                scope.set_tag(key, value)
            scope.set_context(CONTEXT_NAME, context)
            if trace_context is not None:
                # an explicit "trace" context wins over the one Sentry derives from its own propagation
                # context or transaction (AwsLambdaIntegration), which would name another trace
                scope.set_context("trace", trace_context)
            scope.add_event_processor(_drop_frame_variables)
            scope.add_event_processor(_bounded_exception_values(exc))
            sdk.capture_exception(exc)


def _request_id(lambda_context: Any) -> str | None:
    request_id = getattr(lambda_context, "aws_request_id", None) if lambda_context is not None else None
    return request_id if isinstance(request_id, str) and request_id else None


def _bounded_exception_values(exc: BaseException) -> Any:
    """An event processor giving every exception of the event batchlens' message instead of ``str(exc)``.

    ``exception_message`` bounds the text and leaves out validation input values (the record's body).
    """

    def process(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        section = event.get("exception")
        values = section.get("values") if isinstance(section, dict) else None
        if not isinstance(values, list) or not values:
            return event
        # sentry lists the chain root cause first and the raised exception last
        chain = list(reversed(exception_chain(exc)))
        if len(chain) != len(values):
            chain = chain[-1:]
            values = values[-1:]
        for value, error in zip(values, chain, strict=True):
            if isinstance(value, dict) and value.get("type") == type(error).__name__:
                value["value"] = exception_message(error)
        return event

    return process


def _has_transport(client: Any) -> bool:
    # sentry_sdk.init() without a DSN gives a client that is "active" but has no transport: it sends nothing
    return bool(client.is_active()) and getattr(client, "transport", None) is not None


def _no_pii_options(sdk: Any) -> dict[str, Any]:
    """Options that keep personal data and frame variables out of events, as this sentry-sdk version names them."""
    # sentry-sdk 2.75 deprecated send_default_pii (with a warning) in favour of data_collection, which also
    # covers frame variables and is the only form 3.x keeps; left out, 3.x collects user data and frame variables.
    defaults = getattr(getattr(sdk, "consts", None), "DEFAULT_OPTIONS", {})
    if "data_collection" in defaults:
        return {"data_collection": {"user_info": False, "stack_frame_variables": False}}
    return {"send_default_pii": False, "include_local_variables": False}


def _cross_link(sdk: Any, otel_span: Any, otel_trace_id: str) -> None:
    """Sentry's current span names the batch span's trace; the batch span names Sentry's current trace."""
    sentry_span = sdk.get_current_span()
    if sentry_span is None:
        # no Sentry span (no AwsLambdaIntegration, no span of the application's): Sentry's trace id would be the
        # process-wide propagation context's, shared by every invocation and by none of batchlens' events
        return
    # 3.x spans take attributes; 2.x spans and transactions take tags
    setter = getattr(sentry_span, "set_attribute", None) or sentry_span.set_tag
    setter(OTEL_TRACE_ID_TAG, otel_trace_id)
    # "<trace id>-<span id>[-<sampled>]" of a sampled span, else of the propagation context (an unsampled 2.x
    # transaction has a trace id of its own that no event carries): the trace of the invocation's own events
    traceparent = sdk.get_traceparent()
    if isinstance(traceparent, str) and traceparent:
        otel_span.set_attribute(SENTRY_TRACE_ID_ATTRIBUTE, traceparent.split("-", 1)[0])


def _drop_frame_variables(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Remove local variables from the event's stack frames: they hold the record, and so its body."""
    for section in ("exception", "threads"):
        values = event.get(section)
        if isinstance(values, dict):
            values = values.get("values")
        if not isinstance(values, list):
            continue
        for value in values:
            stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
            frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
            if isinstance(frames, list):
                for frame in frames:
                    if isinstance(frame, dict):
                        frame.pop("vars", None)
    return event
