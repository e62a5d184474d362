"""Structured logs (structlog or ``logging``): an entry per record and a summary per batch, never a message body.

Where entries go is decided at each batch start (``Telemetry.log_output``, ``BATCHLENS_LOG_OUTPUT``):

- structlog configured by the application: its configuration (and ``structlog.testing.capture_logs()``) applies;
- otherwise, when the application logs through ``logging`` (its handlers, Powertools' ``Logger``, Lambda's JSON
  log format): ``logging.getLogger("batchlens")`` records with the keys as extras (``_log_stdlib``). structlog as
  ``batchlens.telemetry.configure()`` set it up is batchlens' choice, not the application's, so it does not
  keep entries off this route;
- otherwise the pipeline ``configure()`` installed when there is one; else, in Lambda, a private logger printing
  one JSON object per line on stdout; outside Lambda, structlog's defaults. batchlens never calls
  ``structlog.configure()`` here.

No entry is built for a level that is filtered out. With a Lambda context, every entry carries the request id as
``function_request_id``, the key Powertools' Logger uses, so one Logs Insights filter finds both; with a recording
span, every entry carries its ``trace_id`` and ``span_id`` (the record span's, or the batch span's for
``batch processed``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from batchlens._observer import NOT_READ, SKIPPED, noop_hook
from batchlens._telemetry._errors import error_type, renders_as_is
from batchlens._telemetry._log_lambda import JsonLinesLogger
from batchlens._telemetry._log_render import exception_fields
from batchlens._telemetry._log_stdlib import (
    StdlibMethod,
    enabled,
    lambda_json_format,
    stdlib_logging_detected,
    stdlib_target,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from batchlens._config import Telemetry
    from batchlens._observer import BatchInfo, RecordInfo
    from batchlens._sources import Source

__all__ = ["LOGGER_NAME", "REQUEST_ID_KEY", "LoggingObserver"]

LOGGER_NAME = "batchlens"
RECORD_PROCESSED = "record processed"
RECORD_FAILED = "record failed"
BATCH_PROCESSED = "batch processed"
OTHER_ERROR = "_OTHER"
REQUEST_ID_KEY = "function_request_id"
"""The Lambda request id's key: Powertools Logger's name for it, so its users' queries find batchlens' lines too."""

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


def _fixed_level_classes() -> frozenset[type]:
    """structlog's filtering bound logger classes (``make_filtering_bound_logger``): each fixes its level."""
    try:
        from structlog._native import LEVEL_TO_FILTERING_LOGGER
    except ImportError:  # another structlog layout: nothing is cached
        return frozenset()
    return frozenset(LEVEL_TO_FILTERING_LOGGER.values())


_fixed_level: frozenset[type] | None = None  # _fixed_level_classes(), once structlog is in use


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

    __slots__ = (
        "destination",
        "event_source",
        "failure",
        "info",
        "message_id",
        "request_id",
        "source",
        "success",
        "trace_hex",
    )

    def __init__(
        self,
        success: Callable[..., Any] | None,
        failure: Callable[..., Any] | None,
        info: Callable[..., Any] | None,
        source: Source,
        destination: str | None,
        request_id: str | None,
    ) -> None:
        self.success = success
        self.failure = failure
        self.info = info
        self.source = source
        self.message_id = source.message_id
        self.event_source = source.event_source
        self.destination = destination
        self.request_id = request_id
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
        self._lambda_json = lambda_json_format()
        self._output = telemetry.log_output
        self._private: JsonLinesLogger | None = None
        self._private_stream: Any = None
        # (structlog configuration and streams, the methods resolved under them)
        self._structlog_methods: tuple[tuple[Any, ...], tuple[Any, Any, Any]] | None = None

    def _methods(self) -> tuple[Any, Any, Any]:
        """(success, failure, info) log methods for this batch; None where the level is filtered out."""
        output = self._output
        # structlog not imported yet is not configured either (and batchlens does not import it to ask)
        structlog_module = sys.modules.get("structlog")
        configured = structlog_module is not None and structlog_module.is_configured()
        if output == "stdlib" or (
            output == "auto"
            # structlog as configure() set it up is no choice of the application's
            and (not configured or _configured_by_batchlens())
            and stdlib_logging_detected(self._lambda_json)
        ):
            own, target = stdlib_target()
            methods = []
            for level in (self._success_level, logging.ERROR, logging.INFO):
                methods.append(StdlibMethod(own, target, level) if enabled(own, target, level) else None)
            return methods[0], methods[1], methods[2]
        if self._in_lambda and not configured:
            private = self._private_logger()
            return private.method(self._success_level), private.method(logging.ERROR), private.method(logging.INFO)
        # structlog's configuration (and the streams its default loggers bind at creation) as it stands now: the
        # methods of the last batch serve again while it is unchanged
        import structlog

        key = (*structlog.get_config().values(), sys.stdout, sys.stderr)
        cached = self._structlog_methods
        if cached is not None and cached[0] == key:
            return cached[1]
        logger = structlog.get_logger(LOGGER_NAME).bind()
        success = getattr(logger, self._success_method) if _enabled(logger, self._success_level) else None
        failure = logger.error if _enabled(logger, logging.ERROR) else None
        info = logger.info if _enabled(logger, logging.INFO) else None
        resolved = (success, failure, info)
        # only where the levels cannot change behind the configuration's back: structlog's filtering loggers fix
        # theirs in the class, a logger without is_enabled_for logs everything (a stdlib-backed one asks each time)
        global _fixed_level
        if _fixed_level is None:
            _fixed_level = _fixed_level_classes()
        kind = type(logger)
        if kind in _fixed_level or getattr(kind, "is_enabled_for", None) is None:
            self._structlog_methods = (key, resolved)
        return resolved

    def _private_logger(self) -> JsonLinesLogger:
        stream = sys.stdout
        private = self._private
        if private is None or self._private_stream is not stream:
            private = self._private = JsonLinesLogger(stream, self._lambda_level, LOGGER_NAME)
            self._private_stream = stream
        return private

    # -- batch -------------------------------------------------------------------------------------------
    def batch_start(self, batch: BatchInfo) -> None:
        """Resolve the logger for this batch and which of its levels are enabled."""
        success, failure, info = self._methods()
        batch.extra[_STATE_KEY] = _BatchLog(
            success, failure, info, batch.source, batch.destination, _request_id(batch.lambda_context)
        )

    def batch_end(self, batch: BatchInfo) -> None:
        """Log the ``batch processed`` summary."""
        state: _BatchLog | None = batch.extra.get(_STATE_KEY)
        if state is None or state.info is None:
            return
        fields: dict[str, Any] = {
            "batch_size": batch.size,
            "success_count": batch.success_count,
            "failure_count": batch.failure_count,
            "destination": state.destination,
            "duration_ms": (batch.end_ns - batch.start_ns) // 1000 / 1000,
        }
        if state.request_id is not None:
            fields[REQUEST_ID_KEY] = state.request_id
        # the batch span's ids, on every route (tracing's batch_end, which ends the span, runs after this one)
        span = batch.span
        if span is not None and span.is_recording():
            context = span.get_span_context()
            fields["trace_id"] = format(context.trace_id, "032x")
            fields["span_id"] = format(context.span_id, "016x")
        state.info(BATCH_PROCESSED, **fields)

    # -- records -----------------------------------------------------------------------------------------
    @noop_hook
    def record_start(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Nothing to log before the handler runs."""

    def record_success(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Log ``record processed`` at the configured success level."""
        state: _BatchLog | None = batch.extra.get(_STATE_KEY)
        if state is None or state.success is None:
            return
        # _fields inlined: this is the line of nearly every record
        raw = record.raw
        destination = state.destination
        if destination is None:
            destination = state.source.destination(raw)
        message_id = record.message_id
        if message_id is NOT_READ:
            message_id = state.message_id(raw)
        fields: dict[str, Any] = {
            "record_id": message_id,
            "outcome": record.outcome,
            "event_source": state.event_source,
            "destination": destination,
            "duration_ms": (record.end_ns - record.start_ns) // 1000 / 1000,
        }
        if state.request_id is not None:
            fields[REQUEST_ID_KEY] = state.request_id
        span = record.span
        # a span left unsampled (an unsampled X-Ray invocation) still names its trace: the logs join it
        context = span.get_span_context() if span is not None else None
        if context is not None and context.trace_id:
            trace_id = context.trace_id
            cached = state.trace_hex
            if cached[0] != trace_id:
                cached = (trace_id, format(trace_id, "032x"))
                state.trace_hex = cached
            fields["trace_id"] = cached[1]
            fields["span_id"] = format(context.span_id, "016x")
        state.success(RECORD_PROCESSED, **fields)

    def record_failure(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Log ``record failed`` with the error type, and the exception unless the record was skipped."""
        state: _BatchLog | None = batch.extra.get(_STATE_KEY)
        if state is None or state.failure is None:
            return
        fields = self._fields(batch, state, record)
        exc = record.exception
        fields["error_type"] = error_type(exc) if exc is not None else OTHER_ERROR
        if exc is not None and record.outcome != SKIPPED:
            if renders_as_is(exc):
                # The exception itself, as structlog expects it. batchlens' own pipelines (the private Lambda
                # logger, configure(logs=), the CLI) and the stdlib route turn it into bounded text without frame
                # locals; an application's own structlog renderer formats it like its other exceptions.
                fields["exc_info"] = exc
            else:
                # Its own text would carry validation input, a batch's tracebacks or an unbounded message, which
                # no renderer of the application's may show: the sanitised, bounded text instead.
                exception_fields(exc, fields)
        state.failure(RECORD_FAILED, **fields)

    @staticmethod
    def _fields(batch: BatchInfo, state: _BatchLog, record: RecordInfo) -> dict[str, Any]:
        # the fields of every record line (record_success builds the same ones inline: keep the two in step)
        raw = record.raw
        destination = state.destination
        if destination is None:
            destination = state.source.destination(raw)
        message_id = record.message_id
        if message_id is NOT_READ:
            message_id = state.message_id(raw)
        fields: dict[str, Any] = {
            "record_id": message_id,
            "outcome": record.outcome,
            "event_source": state.event_source,
            "destination": destination,
            # microsecond resolution, without round()'s cost
            "duration_ms": (record.end_ns - record.start_ns) // 1000 / 1000,
        }
        if state.request_id is not None:
            fields[REQUEST_ID_KEY] = state.request_id
        span = record.span
        # a span left unsampled (an unsampled X-Ray invocation) still names its trace: the logs join it
        context = span.get_span_context() if span is not None else None
        if context is not None and context.trace_id:
            trace_id = context.trace_id
            cached = state.trace_hex
            if cached[0] != trace_id:
                cached = (trace_id, format(trace_id, "032x"))
                state.trace_hex = cached
            fields["trace_id"] = cached[1]
            fields["span_id"] = format(context.span_id, "016x")
        return fields

    @noop_hook
    def flush(self, timeout_millis: int) -> None:
        """Nothing is buffered: structlog writes synchronously (so the chain never hands this to a flush worker)."""


def _configured_by_batchlens() -> bool:
    """Whether structlog's configuration is the one ``configure()`` installed (``_structlog_setup``)."""
    # looked up, not imported: a process that never called configure(logs=...) has not loaded the module
    setup = sys.modules.get("batchlens._telemetry._structlog_setup")
    return setup is not None and bool(setup.configured_by_batchlens())


def _request_id(context: Any) -> str | None:
    """The Lambda request id of ``context`` (``aws_request_id``), when it is a non-empty string."""
    if context is None:
        return None
    try:
        request_id = getattr(context, "aws_request_id", None)
    except Exception:  # a context object of the application's making; telemetry never fails on it
        return None
    return request_id if isinstance(request_id, str) and request_id else None
