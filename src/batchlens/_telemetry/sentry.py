"""Sentry: one event per failed record, tagged with where the record came from; never its body.

Imported only when ``Telemetry.sentry`` is on, because importing ``sentry_sdk`` costs 100-300 ms of cold start.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from batchlens._observer import FAILURE, noop_hook

if TYPE_CHECKING:
    from batchlens._config import Telemetry
    from batchlens._observer import BatchInfo, RecordInfo

__all__ = ["CONTEXT_NAME", "SentryObserver"]

CONTEXT_NAME = "batch_record"
"""Name of the Sentry context describing the failed record."""

_INSTALL_HINT = "pip install 'batchlens[sentry]'"
_log = logging.getLogger("batchlens")


class SentryObserver:
    """Sends every failed record's exception to Sentry, in a scope of its own.

    Skipped records (FIFO and stream circuit breakers, the deadline guard) are consequences of another failure
    and are not sent. Events carry the tags ``messaging.system``, ``messaging.destination.name`` and
    ``messaging.message.id`` and a ``batch_record`` context; the local variables of stack frames are removed
    from these events, because every frame between the processor and the handler holds the message body.

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
        """Nothing to do after a batch."""

    def flush(self, timeout_millis: int) -> None:
        """Wait up to ``timeout_millis`` for queued Sentry events to be sent."""
        self._sdk.flush(timeout=max(0, timeout_millis) / 1000)

    # -- capture -------------------------------------------------------------------------------------------
    def _capture(self, batch: BatchInfo, record: RecordInfo, exc: Exception) -> None:
        source = batch.source
        raw = record.raw
        message_id = source.message_id(raw)
        destination = batch.destination if batch.destination is not None else source.destination(raw)
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
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            context["trace_id"] = format(span_context.trace_id, "032x")
            context["span_id"] = format(span_context.span_id, "016x")
        sdk = self._sdk
        with sdk.new_scope() as scope:
            scope.set_tag("messaging.system", source.messaging_system)
            if destination is not None:
                scope.set_tag("messaging.destination.name", destination)
            if message_id is not None:
                scope.set_tag("messaging.message.id", message_id)
            scope.set_context(CONTEXT_NAME, context)
            scope.add_event_processor(_drop_frame_variables)
            sdk.capture_exception(exc)


def _has_transport(client: Any) -> bool:
    # sentry_sdk.init() without a DSN gives a client that is "active" but has no transport: it sends nothing
    return bool(client.is_active()) and getattr(client, "transport", None) is not None


def _no_pii_options(sdk: Any) -> dict[str, Any]:
    """Options that keep personal data out of events, in the form this sentry-sdk version expects."""
    # sentry-sdk 2.75 deprecated send_default_pii (with a warning) in favour of data_collection, whose
    # absence means the same thing: collect no personal data. Older versions need the explicit False.
    defaults = getattr(getattr(sdk, "consts", None), "DEFAULT_OPTIONS", {})
    if "data_collection" in defaults:
        return {}
    return {"send_default_pii": False}


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
