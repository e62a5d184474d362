"""The structlog output ``batchlens.telemetry.configure(logs=...)`` installs for the application."""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace as trace_api


def _add_trace_context(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Correlate application log lines with the active span; keys already set (by batchlens) win."""
    context = trace_api.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def configure_structlog(log_format: str, level: int) -> None:
    import structlog

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if log_format == "json":
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.set_exc_info, structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(),
        # Caching would pin loggers to this configuration and defeat structlog.testing.capture_logs() in
        # the application's tests; the per-call lookup costs about a microsecond.
        cache_logger_on_first_use=False,
    )
