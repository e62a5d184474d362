"""What telemetry says about an exception: its type name, its message and its stack trace.

One place for the text that leaves the process about a failed record, so spans, log lines, metrics and Sentry
name and bound it the same way.
"""

from __future__ import annotations

import linecache
import traceback
from typing import Any

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_STACKTRACE_CHARS",
    "error_type",
    "exception_event",
    "exception_message",
    "exception_stacktrace",
    "format_exception",
    "safe_str",
]

MAX_MESSAGE_CHARS = 2048
"""Longest exception message telemetry carries (span status and event, log line, Sentry event)."""

MAX_STACKTRACE_CHARS = 8192
"""Longest formatted stack trace telemetry carries (span event, log line)."""


def error_type(exc: BaseException) -> str:
    """The exception's class as telemetry names it: ``qualname`` for builtins, ``module.qualname`` otherwise.

    This is the semantic conventions' ``error.type`` for an exception and the span event's ``exception.type``.
    """
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_MAX_FRAMES = 100  # per exception, most recent kept (a RecursionError has ~1000)
_MAX_CHAIN = 10


def format_exception(exc: BaseException) -> str:
    """Format ``exc`` with its causes like the interpreter does, minus the column carets.

    ``traceback.format_exception`` on CPython 3.11+ re-parses every source line to place carets, costing
    ~0.3 ms per failed record (what the SDK's ``record_exception`` pays); this costs a few microseconds.

    Args:
        exc: The exception, with its ``__traceback__``, ``__cause__`` and ``__context__``.

    Returns:
        ``Traceback (most recent call last): ...`` text ending with the ``Type: message`` line(s).
    """
    # walk from the raised exception to its root cause, remembering how each links to the next
    chain: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < _MAX_CHAIN:
        seen.add(id(current))
        if current.__cause__ is not None:
            following, relation = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            following, relation = current.__context__, _CONTEXT
        else:
            following, relation = None, None
        chain.append((current, relation))
        current = following
    out: list[str] = []
    last = len(chain) - 1
    for position in range(last, -1, -1):
        item, relation = chain[position]
        if position < last and relation is not None:
            out.append(relation)
        _format_single(item, out)
    return "".join(out)


def _format_single(exc: BaseException, out: list[str]) -> None:
    frames = list(traceback.walk_tb(exc.__traceback__))
    if frames:
        out.append("Traceback (most recent call last):\n")
        if len(frames) > _MAX_FRAMES:
            out.append(f"  ... {len(frames) - _MAX_FRAMES} earlier frames omitted ...\n")
            del frames[: len(frames) - _MAX_FRAMES]
        for frame, lineno in frames:
            code = frame.f_code
            filename = code.co_filename
            out.append(f'  File "{filename}", line {lineno}, in {code.co_name}\n')
            if lineno is not None:
                line = linecache.getline(filename, lineno, frame.f_globals).strip()
                if line:
                    out.append(f"    {line}\n")
    # traceback.format_exception_only() would build a TracebackException, walking everything again
    kind = type(exc)
    name = kind.__qualname__
    module = kind.__module__
    if module not in ("__main__", "builtins"):
        name = f"{module}.{name}"
    message = safe_str(exc)
    out.append(f"{name}: {message}\n" if message else f"{name}\n")
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list | tuple):
        for note in notes:
            out.extend(f"{part}\n" for part in (note if isinstance(note, str) else repr(note)).split("\n"))


def exception_event(exc: BaseException, message: str) -> dict[str, Any]:
    return {
        "exception.type": error_type(exc),
        "exception.message": message,
        "exception.stacktrace": format_exception(exc),
    }


def safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__qualname__}: str() failed>"


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exception_message(exc: BaseException) -> str:
    """The exception's message as telemetry may carry it: never raises, bounded in size.

    This is the one function spans, log lines and Sentry events take an exception's message from.
    """
    return _bounded(safe_str(exc), MAX_MESSAGE_CHARS)


def exception_stacktrace(exc: BaseException) -> str:
    """The exception's formatted stack trace (see ``format_exception``), bounded in size."""
    return _bounded(format_exception(exc), MAX_STACKTRACE_CHARS)
