"""The structlog output ``batchlens.telemetry.configure(logs=...)`` installs for the application.

``logs="json"`` is structlog's documented fast path: ``make_filtering_bound_logger``, cached loggers, bytes output
and orjson when installed (stdlib ``json`` otherwise). The lines go to ``sys.stdout`` as it is at each write
(``_log_stdout``), bytes to its buffer when it has one. Tracebacks are batchlens' bounded text without frame
locals (``render_exception``), in JSON and on the console alike. Every line of a named logger carries ``logger``.

A configuration installed here is batchlens', not the application's: :func:`configured_by_batchlens` tells the log
observer so, and batchlens' own entries then follow the application's ``logging`` set-up when it has one.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace as trace_api

from batchlens._telemetry._log_render import MillisecondTimeStamper, json_serializer, render_exception
from batchlens._telemetry._log_stdout import StdoutLoggerFactory

# What configure_structlog() installed last: (the processor list, its items, wrapper class, logger factory)
_installed: tuple[list[Any], tuple[Any, ...], Any, Any] | None = None


# structlog's names of the levels of its method aliases (its add_log_level maps them the same way)
_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}


def _add_correlation(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Add ``logger`` (the name the logger was created with), ``level``, and the active span's ids.

    One processor, since it runs for every line: ``logger`` unless the entry has one or the logger has no name;
    ``level`` as structlog's ``add_log_level`` names it; ``trace_id``/``span_id`` of the active span, unless the
    entry carries ids already (batchlens' own entries carry their record's or batch's).
    """
    name = getattr(logger, "name", None)
    if name is not None and "logger" not in event_dict:
        event_dict["logger"] = name
    event_dict["level"] = _LEVEL_OF_METHOD.get(method_name, method_name)
    if "trace_id" in event_dict:
        return event_dict
    context = trace_api.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _processors(log_format: str) -> list[Any]:
    import structlog

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_correlation,
        MillisecondTimeStamper(),
        structlog.processors.StackInfoRenderer(),
    ]
    if log_format == "json":
        processors += [render_exception, structlog.processors.JSONRenderer(serializer=json_serializer())]
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
    global _installed
    processors = structlog.get_config()["processors"]
    processors[:] = _processors(log_format)
    # JSON is rendered to bytes; each line goes to stdout's buffer, or as text to a stdout without one
    factory = StdoutLoggerFactory(text=log_format != "json")
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    if not _capture_logs_reaches_cached_loggers():
        structlog.configure(cache_logger_on_first_use=False)
    config = structlog.get_config()
    _installed = (processors, tuple(processors), config["wrapper_class"], config["logger_factory"])


def configured_by_batchlens() -> bool:
    """Whether structlog's configuration is the one configure_structlog() installed last.

    Not when the application configured structlog since, nor inside ``structlog.testing.capture_logs()``, which
    swaps the items of the processor list (the list object stays).
    """
    installed = _installed
    if installed is None:
        return False
    import structlog

    config = structlog.get_config()
    processors = config["processors"]
    return (
        processors is installed[0]
        and config["wrapper_class"] is installed[2]
        and config["logger_factory"] is installed[3]
        and len(processors) == len(installed[1])
        and all(map(operator.is_, processors, installed[1]))
    )
