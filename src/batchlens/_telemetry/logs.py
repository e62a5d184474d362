"""Structured logs (structlog): one entry per record and a summary per batch; message bodies are never logged.

The ``batchlens`` logger is looked up through structlog's configuration at each batch start, so the
application's setup (and ``structlog.testing.capture_logs()``) applies, and no entry is built for a level the
logger filters out. batchlens never calls ``structlog.configure()``: when structlog is unconfigured and the code
runs in Lambda, entries go to a private logger that prints one JSON object per line on stdout.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import structlog

from batchlens._observer import SKIPPED, noop_hook

if TYPE_CHECKING:
    from collections.abc import Callable

    from batchlens._config import Telemetry
    from batchlens._observer import BatchInfo, RecordInfo
    from batchlens._sources import Source

__all__ = ["LOGGER_NAME", "LoggingObserver"]

LOGGER_NAME = "batchlens"
RECORD_PROCESSED = "record processed"
RECORD_FAILED = "record failed"
BATCH_PROCESSED = "batch processed"
OTHER_ERROR = "_OTHER"

_STATE_KEY = "batchlens.logs"
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# Lambda's advanced logging controls name a few levels differently
_LAMBDA_LEVELS = {"TRACE": logging.DEBUG, "WARN": logging.WARNING, "FATAL": logging.CRITICAL}


def _lambda_log_level(raw: str | None) -> int:
    if not raw:
        return logging.NOTSET
    name = raw.strip().upper()
    if name in _LAMBDA_LEVELS:
        return _LAMBDA_LEVELS[name]
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.NOTSET


def _enabled(logger: Any, level: int) -> bool:
    # Look the check up on the class: structlog's generic BoundLogger turns any missing *instance* attribute
    # into a log method, so getattr(logger, "is_enabled_for") would log instead of asking.
    check = getattr(type(logger), "is_enabled_for", None)
    if check is None:
        return True
    try:
        return bool(check(logger, level))
    except Exception:
        return True


class _BatchLog:
    """The loggers of one batch, resolved once; a None method means that level is filtered out."""

    __slots__ = ("destination", "event_source", "failure", "info", "message_id", "source", "success", "trace_hex")

    def __init__(
        self,
        success: Callable[..., Any] | None,
        failure: Callable[..., Any] | None,
        info: Callable[..., Any] | None,
        source: Source,
        destination: str | None,
    ) -> None:
        self.success = success
        self.failure = failure
        self.info = info
        self.source = source
        self.message_id = source.message_id
        self.event_source = source.event_source
        self.destination = destination
        # (trace id, its hex): record spans of a batch share the batch's trace; one tuple so threads swap it whole
        self.trace_hex: tuple[int, str] = (0, "")


class LoggingObserver:
    """Logs ``record processed`` / ``record failed`` per record and ``batch processed`` per batch.

    Args:
        telemetry: The configuration; ``success_log_level`` sets the level of ``record processed``.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self._success_method = telemetry.success_log_level
        self._success_level = _LEVELS[telemetry.success_log_level]
        # read once: the Lambda runtime sets these before any code runs
        self._in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
        self._lambda_level = _lambda_log_level(os.environ.get("AWS_LAMBDA_LOG_LEVEL"))
        self._private: Any = None
        self._private_stream: Any = None

    def _logger(self) -> Any:
        if self._in_lambda and not structlog.is_configured():
            return self._private_logger()
        return structlog.get_logger(LOGGER_NAME).bind()

    def _private_logger(self) -> Any:
        stream = sys.stdout
        if self._private is None or self._private_stream is not stream:
            processors: list[Any] = [
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.dict_tracebacks,
                structlog.processors.JSONRenderer(),
            ]
            self._private = structlog.wrap_logger(
                structlog.PrintLogger(stream),
                processors=processors,
                wrapper_class=structlog.make_filtering_bound_logger(self._lambda_level),
                cache_logger_on_first_use=True,
            ).bind(logger=LOGGER_NAME)
            self._private_stream = stream
        return self._private

    # -- batch -------------------------------------------------------------------------------------------
    def batch_start(self, batch: BatchInfo) -> None:
        """Resolve the logger for this batch and which of its levels are enabled."""
        logger = self._logger()
        success = getattr(logger, self._success_method) if _enabled(logger, self._success_level) else None
        failure = logger.error if _enabled(logger, logging.ERROR) else None
        info = logger.info if _enabled(logger, logging.INFO) else None
        batch.extra[_STATE_KEY] = _BatchLog(success, failure, info, batch.source, batch.destination)

    def batch_end(self, batch: BatchInfo) -> None:
        """Log the ``batch processed`` summary."""
        state: _BatchLog | None = batch.extra.get(_STATE_KEY)
        if state is None or state.info is None:
            return
        state.info(
            BATCH_PROCESSED,
            batch_size=batch.size,
            success_count=batch.success_count,
            failure_count=batch.failure_count,
            destination=state.destination,
            duration_ms=(batch.end_ns - batch.start_ns) // 1000 / 1000,
        )

    # -- records -----------------------------------------------------------------------------------------
    @noop_hook
    def record_start(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Nothing to log before the handler runs."""

    def record_success(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Log ``record processed`` at the configured success level."""
        state: _BatchLog | None = batch.extra.get(_STATE_KEY)
        if state is None or state.success is None:
            return
        state.success(RECORD_PROCESSED, **self._fields(batch, state, record))

    def record_failure(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Log ``record failed`` with the error type, and the exception unless the record was skipped."""
        state: _BatchLog | None = batch.extra.get(_STATE_KEY)
        if state is None or state.failure is None:
            return
        fields = self._fields(batch, state, record)
        exc = record.exception
        fields["error_type"] = type(exc).__name__ if exc is not None else OTHER_ERROR
        if exc is not None and record.outcome != SKIPPED:
            # the exception itself, so renderers (format_exc_info, dict_tracebacks) format its traceback
            fields["exc_info"] = exc
        state.failure(RECORD_FAILED, **fields)

    @staticmethod
    def _fields(batch: BatchInfo, state: _BatchLog, record: RecordInfo) -> dict[str, Any]:
        raw = record.raw
        destination = state.destination
        if destination is None:
            destination = state.source.destination(raw)
        fields: dict[str, Any] = {
            "record_id": state.message_id(raw),
            "outcome": record.outcome,
            "event_source": state.event_source,
            "destination": destination,
            # microsecond resolution, without round()'s cost
            "duration_ms": (record.end_ns - record.start_ns) // 1000 / 1000,
        }
        span = record.span
        if span is not None and span.is_recording():
            context = span.get_span_context()
            trace_id = context.trace_id
            cached = state.trace_hex
            if cached[0] != trace_id:
                cached = (trace_id, format(trace_id, "032x"))
                state.trace_hex = cached
            fields["trace_id"] = cached[1]
            fields["span_id"] = format(context.span_id, "016x")
        return fields

    def flush(self, timeout_millis: int) -> None:
        """Nothing is buffered: structlog writes synchronously."""
