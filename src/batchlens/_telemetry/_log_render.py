"""The pieces of every structlog pipeline batchlens chooses itself: the private Lambda logger, ``configure(logs=)``
and the CLI.

Each piece is there for privacy or for speed:

- ``render_exception`` turns ``exc_info`` into bounded text without frame locals (structlog's ``dict_tracebacks``
  and Rich tracebacks can print locals, so a handler's ``body = record.body`` would reach the log);
- ``MillisecondTimeStamper`` formats the timestamp once per millisecond instead of once per line;
- ``json_serializer`` is orjson when installed (bytes, for ``BytesLogger``), else stdlib ``json`` encoded to bytes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from batchlens._telemetry._errors import exception_message, exception_stacktrace

__all__ = ["MillisecondTimeStamper", "json_serializer", "render_exception"]

EXCEPTION_KEY = "exception"
ERROR_MESSAGE_KEY = "error_message"


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        value = exc_info[1] if len(exc_info) > 1 else None
        return value if isinstance(value, BaseException) else None
    if exc_info:  # True: the exception being handled, as structlog and logging read it
        return sys.exc_info()[1]
    return None


def exception_fields(exc: BaseException, fields: MutableMapping[str, Any]) -> None:
    """Add the bounded, locals-free ``exception`` text and ``error_message`` of ``exc`` to ``fields``."""
    fields[EXCEPTION_KEY] = exception_stacktrace(exc)
    if ERROR_MESSAGE_KEY not in fields:
        fields[ERROR_MESSAGE_KEY] = exception_message(exc)


def render_exception(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Replace ``exc_info`` by the exception's bounded stack trace (``exception``) and message (``error_message``).

    The text comes from ``batchlens._telemetry._errors``: no frame locals, capped in size, the same text spans
    and Sentry carry.
    """
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is not None:
        exc = _exception_of(exc_info)
        if exc is not None:
            exception_fields(exc, event_dict)
    return event_dict


class MillisecondTimeStamper:
    """Add ``timestamp`` as ISO 8601 UTC with milliseconds, formatted at most once per millisecond."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
        millis = time.time_ns() // 1_000_000
        cached = self._cached
        if cached[0] != millis:
            seconds, fraction = divmod(millis, 1000)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:03d}Z"
            # one tuple, so threads swap the pair whole
            cached = self._cached = (millis, text)
        event_dict["timestamp"] = cached[1]
        return event_dict


def _stdlib_json_bytes(obj: Any, **kwargs: Any) -> bytes:
    return json.dumps(obj, **kwargs).encode("utf-8")


def json_serializer() -> Callable[..., bytes]:
    """``orjson.dumps`` when orjson is installed (the ``sdk`` extra), else stdlib ``json`` encoded to UTF-8."""
    try:
        import orjson
    except ImportError:
        return _stdlib_json_bytes
    dumps: Callable[..., bytes] = orjson.dumps
    return dumps
