"""The text of ``str(BatchProcessingError)``: Powertools' layout, with telemetry's sanitising and bounds.

Powertools' ``str()`` of a batch error is its summary followed by the formatted traceback of every failed record,
each ending with the exception's own text; a pydantic validation error quotes the record's body there
(``input_value=...``). Lambda's runtime client writes ``str()`` of an escaping exception to the function's log,
the Invoke error response and X-Ray's error cause, so batchlens builds that text the way telemetry does
(``_errors``):

* the summary is ``exception_message`` of the error: sanitised, at most ``MAX_MESSAGE_BYTES``;
* each record's traceback is ``exception_stacktrace`` of its exception: validation errors by count, location and
  type, never by input; every message of a chain bounded; at most ``MAX_STACKTRACE_BYTES``; no column carets;
* the whole text is at most ``MAX_BATCH_ERROR_BYTES``: the tracebacks that no longer fit are left out, and a last
  line counts them.

The error's ``msg``, ``child_exceptions`` and ``format_exceptions()`` are not touched: they keep Powertools'
content for code that reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from batchlens._telemetry._errors import exception_message, exception_stacktrace

__all__ = ["MAX_BATCH_ERROR_BYTES", "batch_error_text"]

MAX_BATCH_ERROR_BYTES = 16384
"""Longest ``str()`` of a batch error, in UTF-8 bytes: the summary and the records' tracebacks that fit."""

_RESERVE = 128  # room kept for the line counting the tracebacks left out


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def batch_error_text(error: BaseException, summary: str, children: Iterable[Any]) -> str:
    """``summary``, then the sanitised traceback of each failed record, within ``MAX_BATCH_ERROR_BYTES``.

    The layout is Powertools' (summary, a blank line, the tracebacks one after the other); entries whose
    exception is None are skipped, as ``format_exceptions()`` skips them.

    Args:
        error: The batch error (its ``__cause__``/``__context__`` are consulted by the sanitising).
        summary: Its own summary, ``Exception.__str__`` of it (``str()`` would call back here).
        children: Its ``child_exceptions``: ``(type, exception, traceback)`` triples.
    """
    head = exception_message(error, summary)
    parts = [f"{head}\n"]
    used = _size(head) + 2
    room = MAX_BATCH_ERROR_BYTES - _RESERVE
    omitted = 0
    for child in children:
        exc = child[1]
        if exc is None:
            continue
        if omitted:  # in order: once one does not fit, the rest are only counted
            omitted += 1
            continue
        trace = exception_stacktrace(exc)
        size = _size(trace) + 1
        if used + size > room:
            omitted = 1
            continue
        parts.append(trace)
        used += size
    if omitted:
        parts.append(
            f"... {omitted} more failed record{'' if omitted == 1 else 's'} not shown here "
            "(exc.child_exceptions has them all)\n"
        )
    return "\n".join(parts)
