"""The output end of ``configure(logs=...)``'s structlog pipeline: lines to ``sys.stdout`` as it is at each write.

structlog's ``BytesLoggerFactory`` and ``PrintLoggerFactory`` bind the stream when a logger is created, and loggers
are cached: a stream swapped afterwards (``contextlib.redirect_stdout``, a test harness, a notebook) never gets a
line, and a ``BytesLogger`` created while ``sys.stdout`` has no ``buffer`` cannot be created at all. These loggers
look ``sys.stdout`` up at every write instead and keep the writer of the last stream they saw, so a
write to an unchanged stream costs one identity comparison more than ``BytesLogger``'s.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["StdoutLogger", "StdoutLoggerFactory"]


def _drop(_message: Any) -> None:
    """The writer without a stdout at all (pythonw, a daemon that closed it): nothing to write to."""


def _text_writer(stream: Any) -> Callable[[Any], None]:
    """One rendered line's writer for ``stream`` as text: the console renderer's lines (shown in order with
    print()'s), or the JSON renderer's bytes decoded for a stream without a binary buffer (``io.StringIO``)."""
    if stream is None:
        return _drop
    write_text = stream.write
    flush_text = stream.flush

    def to_text(message: Any) -> None:
        text = message.decode("utf-8") if isinstance(message, bytes) else str(message)
        write_text(text + "\n")
        flush_text()

    return to_text


def _bytes_writer(stream: Any) -> Callable[[Any], None]:
    """One rendered line's writer for ``stream``: bytes to its ``buffer`` when it has one, else decoded text."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return _text_writer(stream)
    write_bytes = buffer.write
    flush_bytes = buffer.flush

    def to_buffer(message: Any) -> None:
        try:
            line = message + b"\n"
        except TypeError:  # text from a renderer the application configured in place of the JSON one
            line = str(message).encode("utf-8", "backslashreplace") + b"\n"
        # one write per line: the buffered writer's own lock keeps lines whole across threads
        write_bytes(line)
        flush_bytes()

    return to_buffer


class _Current:
    """The stream last written to and its writer, swapped whole (one tuple) so threads never see half a pair."""

    __slots__ = ("pair", "writer")

    def __init__(self, writer: Callable[[Any], Callable[[Any], None]]) -> None:
        self.writer = writer
        self.pair: tuple[Any, Callable[[Any], None]] = (_Current, writer(None))


_BYTES = _Current(_bytes_writer)
_TEXT = _Current(_text_writer)


class StdoutLogger:
    """Writes each rendered line to the current ``sys.stdout``.

    Args:
        name: The logger's name (``structlog.get_logger("name")``), the ``logger`` key of ``configure()``'s lines.
        current: How lines are written, with the last stream written to: ``_BYTES`` (the JSON renderer's bytes,
            to the stream's buffer when it has one) or ``_TEXT``.
    """

    __slots__ = ("_current", "name")

    def __init__(self, name: str | None, current: _Current) -> None:
        self.name = name
        self._current = current

    def msg(self, message: Any) -> None:
        """Write ``message`` and a newline."""
        stream = sys.stdout
        current = self._current
        pair = current.pair
        if pair[0] is not stream:
            pair = current.pair = (stream, current.writer(stream))
        pair[1](message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class StdoutLoggerFactory:
    """structlog logger factory of :class:`StdoutLogger`.

    Args:
        text: Write text (the console renderer's lines) instead of the JSON renderer's bytes.
    """

    __slots__ = ("_current",)

    def __init__(self, text: bool = False) -> None:
        self._current = _TEXT if text else _BYTES

    def __call__(self, *args: Any) -> StdoutLogger:
        name = args[0] if args else None
        return StdoutLogger(name if isinstance(name, str) else None, self._current)
