"""The structlog output ``batchlens.telemetry.configure(logs=...)`` installs for the application.

``logs="json"`` is structlog's documented fast path: ``make_filtering_bound_logger``, cached loggers, bytes output
through ``BytesLoggerFactory`` and orjson when installed (stdlib ``json`` otherwise). Tracebacks are batchlens'
bounded text without frame locals (``render_exception``), in JSON and on the console alike.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace as trace_api

from batchlens._telemetry._log_render import MillisecondTimeStamper, json_serializer, render_exception


def _add_trace_context(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Correlate application log lines with the active span; lines that carry ids already (batchlens') keep theirs."""
    if "trace_id" in event_dict:
        return event_dict
    context = trace_api.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _processors(log_format: str, as_bytes: bool) -> list[Any]:
    import structlog

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_trace_context,
        MillisecondTimeStamper(),
        structlog.processors.StackInfoRenderer(),
    ]
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=json_serializer()) if as_bytes else None
        processors += [render_exception, renderer or structlog.processors.JSONRenderer()]
    else:
        # ConsoleRenderer prints a pre-rendered "exception" text as is, instead of its own (Rich) traceback
        processors += [
            structlog.dev.set_exc_info,
            render_exception,
            structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty()),
        ]
    return processors


def _capture_logs_reaches_cached_loggers() -> bool:
    """Whether ``structlog.testing.capture_logs()`` edits the configured processor list in place.

    Cached loggers hold that list; when capture_logs swaps it instead (older structlog), caching would hide the
    application's own log lines from capture_logs() in its tests.
    """
    import structlog
    from structlog.testing import capture_logs

    configured = structlog.get_config()["processors"]
    with capture_logs():
        same = structlog.get_config()["processors"] is configured
    return bool(same)


def configure_structlog(log_format: str, level: int) -> None:
    import structlog

    # Reuse the list object already configured: loggers cached under an earlier configure() keep a reference to
    # it, and structlog.testing.capture_logs() edits it in place, so they follow this configuration (and a
    # capture) instead of writing through a processor chain nobody can reach any more.
    # bytes straight to stdout's buffer; a text-only stdout (some notebook and test harness streams) gets text
    as_bytes = log_format == "json" and getattr(sys.stdout, "buffer", None) is not None
    processors = structlog.get_config()["processors"]
    processors[:] = _processors(log_format, as_bytes)
    factory: Any = structlog.BytesLoggerFactory() if as_bytes else structlog.PrintLoggerFactory()
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    if not _capture_logs_reaches_cached_loggers():
        structlog.configure(cache_logger_on_first_use=False)
