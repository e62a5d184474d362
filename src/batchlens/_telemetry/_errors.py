"""What telemetry says about an exception: its type name, its message and its stack trace.

One place for the text that leaves the process about a failed record, so spans, log lines, metrics and Sentry
name, sanitise and bound it the same way:

* **Never raises.** An exception whose ``__str__`` or ``__repr__`` raises an ``Exception`` (or returns something
  that is not a string) is described by a placeholder naming its class. A ``__str__`` that raises a
  ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``, a cancellation) is not
  swallowed: like any such exception it leaves the batch, because swallowing it would break interruption and
  task cancellation.
* **No validation input.** A validation error's text quotes the input it rejected (pydantic's
  ``input_value=...``, Powertools' ``SchemaValidationError`` ``Data: ...``, jsonschema's ``On instance: ...``),
  which is the record's body. Telemetry describes such errors by their count, locations and types only
  (``2 validation errors for Order: body (json_invalid); id (missing)``). An exception that wraps one (its
  ``__cause__`` or ``__context__``, even when suppressed with ``from None``) and repeats its text gets the same
  description in place of that text, and any line that still carries pydantic's ``input_value=`` loses what
  follows it. Detection is by class name and module: pydantic is never imported here.
* **Bounded in UTF-8 bytes.** A message is at most ``MAX_MESSAGE_BYTES``, a stack trace at most
  ``MAX_STACKTRACE_BYTES`` (its head and tail, the middle omitted), whatever the text's characters. Every
  exception of a chain gets the bounded, sanitised message in the stack trace too. Lone surrogates become ``?``
  so the text always encodes (an OTLP exporter would otherwise drop the whole export).
"""

from __future__ import annotations

import linecache
import re
import traceback
import weakref
from typing import Any

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_CHARS",
    "MAX_STACKTRACE_BYTES",
    "MAX_STACKTRACE_CHARS",
    "error_type",
    "exception_event",
    "exception_message",
    "exception_stacktrace",
    "format_exception",
    "renders_as_is",
    "safe_str",
]

MAX_MESSAGE_BYTES = 2048
"""Longest exception message telemetry carries, in UTF-8 bytes (span status and event, log line, Sentry event)."""

MAX_STACKTRACE_BYTES = 8192
"""Longest formatted stack trace telemetry carries, in UTF-8 bytes (span event, log line)."""

# The names of the first version, kept for callers; the bounds are in bytes (a character is at least one byte).
MAX_MESSAGE_CHARS = MAX_MESSAGE_BYTES
MAX_STACKTRACE_CHARS = MAX_STACKTRACE_BYTES

_MAX_VALIDATION_ERRORS = 10  # errors a validation description lists; the count covers them all
_MAX_LOCATION_CHARS = 64  # per location part (a dict key of the input can be a location part)
_MAX_TITLE_CHARS = 128
_MAX_SOURCE_LINE_CHARS = 240  # a source line in a stack trace (minified code has very long lines)
_CUT = "..."


def error_type(exc: BaseException) -> str:
    """The exception's class as telemetry names it: ``qualname`` for builtins, ``module.qualname`` otherwise.

    This is the semantic conventions' ``error.type`` for an exception and the span event's ``exception.type``.
    """
    kind = type(exc)
    module = getattr(kind, "__module__", None)
    name = getattr(kind, "__qualname__", None)
    if not isinstance(name, str):
        name = kind.__name__
    if module == "builtins" or not isinstance(module, str):
        return name
    return f"{module}.{name}"


def safe_str(exc: BaseException) -> str:
    """``str(exc)`` as an exact ``str``; a placeholder naming the class when ``__str__`` fails.

    Only ``Exception`` is caught: a ``BaseException`` raised by ``__str__`` propagates (see the module docstring).
    """
    try:
        text = str(exc)
        # a str subclass may override the methods telemetry calls on it: keep its characters only
        return text if type(text) is str else str.__str__(text)
    except Exception:
        return f"<{type(exc).__qualname__}: str() failed>"


def _safe_repr(value: object) -> str:
    try:
        text = repr(value)
        return text if type(text) is str else str.__str__(text)
    except Exception:
        return f"<{type(value).__qualname__}: repr() failed>"


# ----------------------------------------------------------------------------------------------------
# validation errors


# class -> its validation family or None; weak, so a class defined per invocation is not kept alive by it
_KINDS: weakref.WeakKeyDictionary[type, str | None] = weakref.WeakKeyDictionary()
_UNKNOWN = "?"


def _validation_kind(exc: BaseException) -> str | None:
    """Which family of validation error ``exc`` is ("pydantic", "powertools", "jsonschema"), or None."""
    kind = type(exc)
    if kind.__module__ == "builtins":
        return None
    found = _KINDS.get(kind, _UNKNOWN)
    if found is _UNKNOWN:
        found = _KINDS[kind] = _find_validation_kind(kind)
    return found


def _find_validation_kind(cls: type) -> str | None:
    for kind in cls.__mro__:
        name = kind.__name__
        if name == "ValidationError":
            module = kind.__module__
            if module.startswith("pydantic"):  # pydantic, pydantic_core, pydantic.v1
                return "pydantic"
            if module.startswith("jsonschema"):
                return "jsonschema"
        elif name == "SchemaValidationError" and kind.__module__.startswith("aws_lambda_powertools"):
            return "powertools"
    return None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_CUT)] + _CUT


def _location(loc: Any) -> str:
    if not isinstance(loc, list | tuple):
        loc = (loc,)
    if not loc:
        return "<root>"
    parts = []
    for part in loc:
        text = str(part) if type(part) is int else (part if type(part) is str else _safe_repr(part))
        parts.append(_clip(text, _MAX_LOCATION_CHARS))
    return ".".join(parts)


def _pydantic_description(exc: Any) -> str:
    try:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
    except TypeError:  # pydantic v1 has no such arguments; only loc and type are read below anyway
        errors = exc.errors()
    title = getattr(exc, "title", None)
    if not isinstance(title, str):
        model = getattr(exc, "model", None)  # pydantic v1
        title = getattr(model, "__name__", None)
    try:
        count = exc.error_count()
    except Exception:
        count = len(errors)
    described = []
    for error in errors[:_MAX_VALIDATION_ERRORS]:
        kind = error.get("type") if isinstance(error, dict) else None
        kind = kind if isinstance(kind, str) else "?"
        location = _location(error.get("loc", ()) if isinstance(error, dict) else ())
        described.append(f"{location} ({_clip(kind, _MAX_LOCATION_CHARS)})")
    if count > len(described):
        described.append(f"... {count - len(described)} more")
    head = f"{count} validation error{'' if count == 1 else 's'}"
    if isinstance(title, str) and title:
        head = f"{head} for {_clip(title, _MAX_TITLE_CHARS)}"
    return f"{head}: {'; '.join(described)}" if described else head


def _powertools_description(exc: Any) -> str:
    # Powertools' message ends with "Data: {the input}"; its parts are kept apart as attributes
    rule = getattr(exc, "rule", None)
    path = getattr(exc, "path", None)
    text = "Failed schema validation"
    if isinstance(rule, str):
        text += f": rule {_clip(rule, _MAX_LOCATION_CHARS)}"
    if isinstance(path, list | tuple | str):
        text += f" at {_location(path)}"
    return text


def _jsonschema_description(exc: Any) -> str:
    # jsonschema's message quotes the instance ("'x' is not of type 'integer'"); name the rule and where
    validator = getattr(exc, "validator", None)
    path = getattr(exc, "absolute_path", None)
    text = "Failed schema validation"
    if isinstance(validator, str):
        text += f": rule {_clip(validator, _MAX_LOCATION_CHARS)}"
    if path is not None:
        try:
            text += f" at {_location(tuple(path))}"
        except Exception:
            pass
    return text


_DESCRIBERS = {
    "pydantic": _pydantic_description,
    "powertools": _powertools_description,
    "jsonschema": _jsonschema_description,
}


def _validation_description(exc: BaseException, kind: str) -> str:
    try:
        return _DESCRIBERS[kind](exc)
    except Exception:
        return f"{error_type(exc)} (details withheld: they may quote the input)"


_MAX_CHAIN = 10
_INPUT_VALUE = re.compile(r"input_value=.*")


def _linked(exc: BaseException) -> list[BaseException]:
    """The exceptions ``exc`` was raised from or while handling, suppressed contexts included (bounded).

    Follows the ``__context__`` chain (a ``raise ... from`` inside ``except`` sets both links to the same
    exception) and adds a ``__cause__`` that differs from the context without following it further.
    """
    found: list[BaseException] = []
    current = exc
    for _ in range(_MAX_CHAIN):
        cause, context = current.__cause__, current.__context__
        if cause is not None and cause is not context:
            found.append(cause)
        if context is None or context is exc:
            break
        found.append(context)
        current = context
    return found


def _sanitised(exc: BaseException, text: str | None = None) -> str:
    """The exception's message (``text`` when given) without validation input; not yet bounded."""
    kind = _validation_kind(exc)
    if kind is not None:
        return _validation_description(exc, kind)
    if text is None:
        summary = _batch_summary(exc)
        text = safe_str(exc) if summary is None else summary
    if not text:
        return text
    for linked in _linked(exc):
        linked_kind = _validation_kind(linked)
        if linked_kind is not None:
            # a wrapper that repeats the validation error's text: describe it instead
            quoted = safe_str(linked)
            if quoted and quoted in text:
                text = text.replace(quoted, _validation_description(linked, linked_kind))
    if "input_value=" in text:
        text = _INPUT_VALUE.sub("input_value=<withheld>", text)
    return text


def renders_as_is(exc: BaseException) -> bool:
    """Whether ``exc`` and the exceptions it was raised from can be shown by their own ``str()`` and traceback.

    False when telemetry would carry something else: a validation error (its text quotes the input), a batch
    error (its text holds every record's traceback), a message over ``MAX_MESSAGE_BYTES``, pydantic's
    ``input_value=`` anywhere, a message that cannot be rendered, or a traceback deeper than the frames a stack
    trace keeps. A log line then carries ``exception_message``/``exception_stacktrace`` instead of the exception.
    """
    frames = 0
    tb = exc.__traceback__
    while tb is not None:
        frames += 1
        tb = tb.tb_next
    if frames > _MAX_FRAMES:
        return False
    for item in (exc, *_linked(exc)):
        if _validation_kind(item) is not None or _batch_summary(item) is not None:
            return False
        try:
            text = str(item)
        except Exception:
            return False
        if type(text) is not str or "input_value=" in text:
            return False
        if len(text) * 4 > MAX_MESSAGE_BYTES and len(text.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
            return False
    return True


def _batch_summary(exc: BaseException) -> str | None:
    """A batch error's own summary: its ``str()`` appends every failed record's traceback (Powertools' format)."""
    msg = getattr(exc, "msg", None)
    if type(msg) is str and isinstance(getattr(exc, "child_exceptions", None), list):
        return msg
    return None


# ----------------------------------------------------------------------------------------------------
# bounds


def _cut_utf8(text: str, limit: int) -> str:
    """``text`` as valid UTF-8 of at most ``limit`` bytes, ending with ``...`` when cut."""
    if text.isascii():
        return text if len(text) <= limit else text[: limit - len(_CUT)] + _CUT
    # a character is at least one byte: the first ``limit + 1`` characters tell whether it fits
    data = text[: limit + 1].encode("utf-8", "replace")
    if len(data) <= limit:  # then those characters were the whole text ("replace" only changed lone surrogates)
        return data.decode("utf-8")
    return _head_bytes(data, limit - len(_CUT)) + _CUT


def _head_bytes(data: bytes, limit: int) -> str:
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:  # a continuation byte: inside a character
        end -= 1
    return data[:end].decode("utf-8")


def _tail_bytes(data: bytes, limit: int) -> str:
    start = len(data) - limit
    while start < len(data) and (data[start] & 0xC0) == 0x80:
        start += 1
    return data[start:].decode("utf-8")


def _cut_middle_utf8(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-8 bytes, keeping its first quarter and last three quarters."""
    if len(text) <= limit and text.isascii():
        return text
    data = text.encode("utf-8", "replace")
    size = len(data)
    if size <= limit:
        return text if text.isascii() else data.decode("utf-8")
    marker = f"\n  ... {size} bytes in all, the middle omitted ...\n"
    room = limit - len(marker)
    head = room // 4
    return _head_bytes(data, head) + marker + _tail_bytes(data, room - head)


def exception_message(exc: BaseException, text: str | None = None) -> str:
    """The exception's message as telemetry may carry it: sanitised, bounded in bytes, never raising.

    This is the one function spans, log lines and Sentry events take an exception's message from. A batch
    error (``BatchProcessingError``) is described by its summary, without its records' tracebacks.

    Args:
        exc: The exception.
        text: The words to sanitise instead of ``str(exc)`` (a batch error's ``__str__`` passes its summary).
    """
    try:
        text = _sanitised(exc, text)
    except Exception:
        text = f"<{type(exc).__qualname__}: str() failed>"
    return _cut_utf8(text, MAX_MESSAGE_BYTES)


# ----------------------------------------------------------------------------------------------------
# stack traces

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_MAX_FRAMES = 100  # per exception, most recent kept (a RecursionError has ~1000)


def format_exception(exc: BaseException) -> str:
    """Format ``exc`` with its causes like the interpreter does, minus the column carets.

    Each exception's message line is its ``exception_message``: sanitised and bounded. The whole text is not
    bounded; ``exception_stacktrace`` is. ``traceback.format_exception`` on CPython 3.11+ re-parses every source
    line to place carets, costing ~0.3 ms per failed record (what the SDK's ``record_exception`` pays); this
    costs a few microseconds.

    Args:
        exc: The exception, with its ``__traceback__``, ``__cause__`` and ``__context__``.

    Returns:
        ``Traceback (most recent call last): ...`` text ending with the ``Type: message`` line(s).
    """
    try:
        return _format_chain(exc, None)
    except Exception:  # an exception object that defeats introspection still gets a line
        return f"{error_type(exc)}: {exception_message(exc)}\n"


def _format_chain(exc: BaseException, message: str | None) -> str:
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
        _format_single(item, out, message if item is exc else None)
    return "".join(out)


def _format_single(exc: BaseException, out: list[str], message: str | None) -> None:
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
                    out.append(f"    {_clip(line, _MAX_SOURCE_LINE_CHARS)}\n")
    # traceback.format_exception_only() would build a TracebackException, walking everything again
    kind = type(exc)
    name = kind.__qualname__
    module = kind.__module__
    if module not in ("__main__", "builtins"):
        name = f"{module}.{name}"
    if message is None:
        message = exception_message(exc)
    out.append(f"{name}: {message}\n" if message else f"{name}\n")
    try:
        notes = getattr(exc, "__notes__", None)
    except Exception:
        notes = None
    if isinstance(notes, list | tuple):
        for note in notes[:_MAX_CHAIN]:
            text = note if type(note) is str else _safe_repr(note)
            out.extend(f"{part}\n" for part in _cut_utf8(text, MAX_MESSAGE_BYTES).split("\n"))


def exception_stacktrace(exc: BaseException, message: str | None = None) -> str:
    """The exception's formatted stack trace (see ``format_exception``), at most ``MAX_STACKTRACE_BYTES``.

    A longer trace keeps its beginning and, larger, its end (the innermost frames and the raised exception).

    Args:
        exc: The exception.
        message: Its ``exception_message``, when the caller has it already.
    """
    try:
        text = _format_chain(exc, message)
    except Exception:
        text = format_exception(exc)
    return _cut_middle_utf8(text, MAX_STACKTRACE_BYTES)


def exception_event(exc: BaseException, message: str | None = None) -> dict[str, Any]:
    """The attributes of the semantic conventions' ``exception`` span event, sanitised and bounded.

    Args:
        exc: The exception.
        message: Its ``exception_message``, when the caller has it already.
    """
    if message is None:
        message = exception_message(exc)
    return {
        "exception.type": error_type(exc),
        "exception.message": message,
        "exception.stacktrace": exception_stacktrace(exc, message),
    }
