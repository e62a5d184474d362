"""The private logger batchlens writes with in Lambda when structlog is unconfigured: one JSON object per line.

It renders what a structlog pipeline of ``add_log_level``, a timestamp, ``render_exception`` and a JSON renderer
would, with the same keys in the same order, but without structlog's generic machinery (context copy, processor
loop, per-line lock): this logger runs for every record of every batch in the default Lambda set-up, so its cost
is most of what batchlens' logging costs there. It is never installed into structlog's configuration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from batchlens._telemetry._log_render import MillisecondTimeStamper, exception_fields, json_serializer

__all__ = ["JsonLinesLogger"]

_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


class JsonLinesLogger:
    """Writes entries as JSON lines to ``stream`` (bytes to its ``buffer`` when it has one), from ``min_level`` up.

    Args:
        stream: The text stream (``sys.stdout``); bytes go to its ``buffer``, so its text layer must not hold
            unflushed output (Lambda's stdout flushes every write).
        min_level: The lowest stdlib level written (``AWS_LAMBDA_LOG_LEVEL``).
        name: The ``logger`` key of every line.
    """

    def __init__(self, stream: Any, min_level: int, name: str) -> None:
        self._min_level = min_level
        self._name = name
        self._timestamp = MillisecondTimeStamper()
        buffer = getattr(stream, "buffer", None)
        self._emit = self._bytes_writer(buffer) if buffer is not None else self._text_writer(stream)

    @staticmethod
    def _bytes_writer(buffer: Any) -> Callable[[dict[str, Any]], None]:
        dumps = json_serializer()
        write = buffer.write
        flush = buffer.flush

        def emit(entry: dict[str, Any]) -> None:
            # one write per line: the buffered writer's own lock keeps lines whole across threads
            write(dumps(entry, default=repr) + b"\n")
            flush()

        return emit

    @staticmethod
    def _text_writer(stream: Any) -> Callable[[dict[str, Any]], None]:  # a text-only stream (a test's StringIO)
        def emit(entry: dict[str, Any]) -> None:
            stream.write(json.dumps(entry, default=repr) + "\n")
            stream.flush()

        return emit

    def method(self, level: int) -> Callable[..., None] | None:
        """The log method of ``level`` (``method(event, **keys)``), or None when that level is filtered out."""
        if level < self._min_level:
            return None
        level_name = _LEVEL_NAMES[level]
        name = self._name
        stamp = self._timestamp
        emit = self._emit

        def log(event: str, **fields: Any) -> None:
            entry: dict[str, Any] = {"logger": name}
            entry.update(fields)
            entry["event"] = event
            entry["level"] = level_name
            stamp(None, level_name, entry)
            exc = entry.pop("exc_info", None)
            if isinstance(exc, BaseException):
                exception_fields(exc, entry)
            emit(entry)

        return log
