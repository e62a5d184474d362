"""Exceptions raised by batchlens.

This module imports nothing from the rest of the package, so every other module can import it freely.

Exception tree::

    Exception
    ├── BaseBatchProcessingError          (carries child exception infos)
    │   └── BatchProcessingError          (the entire batch failed)
    │       ├── UnexpectedBatchTypeError  (the event is not a batch of the expected kind)
    │       └── MissingItemIdentifierError (a failed record has no identifier to report)
    ├── SQSFifoCircuitBreakerError        (FIFO: skipped because an earlier record failed)
    ├── SQSFifoMessageGroupCircuitBreakerError (FIFO: skipped because its group failed earlier)
    ├── StreamCircuitBreakerError         (streams, stop_on_first_failure: skipped after a failure)
    └── DeadlineExceededError             (not started: the Lambda deadline was too close)

The first five names and their behaviour match Powertools for AWS Lambda (Python), so code that catches
them keeps working after the import swap; one difference: ``str()`` of a ``BatchProcessingError`` never quotes
record data (see the class).
"""

from __future__ import annotations

import traceback
from types import TracebackType

ExceptionInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
"""The ``sys.exc_info()`` triple kept for each failed record."""

__all__ = [
    "BaseBatchProcessingError",
    "BatchProcessingError",
    "DeadlineExceededError",
    "ExceptionInfo",
    "MissingItemIdentifierError",
    "SQSFifoCircuitBreakerError",
    "SQSFifoMessageGroupCircuitBreakerError",
    "StreamCircuitBreakerError",
    "UnexpectedBatchTypeError",
]


class BaseBatchProcessingError(Exception):
    """Base of batch-level errors; keeps the exception info of every record that failed.

    Args:
        msg: Human-readable summary.
        child_exceptions: ``sys.exc_info()`` triples of the records that failed.
    """

    _otel_trace_id: str | None = None
    """The batch span's trace id, noted by batchlens' Sentry observer for the event that reports this error."""

    def __init__(self, msg: str = "", child_exceptions: list[ExceptionInfo] | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.child_exceptions: list[ExceptionInfo] = child_exceptions or []

    def format_exceptions(self, parent_exception_str: str) -> str:
        """Return the summary followed by the formatted traceback of every child exception."""
        parts = [f"{parent_exception_str}\n"]
        for exc_type, exc, tb in self.child_exceptions:
            if exc is None:
                continue
            parts.append("".join(traceback.format_exception(exc_type, exc, tb)))
        return "\n".join(parts)


class BatchProcessingError(BaseBatchProcessingError):
    """Raised when every record of a batch failed (and ``raise_on_entire_batch_failure`` is on).

    ``str()`` is the summary followed by each failed record's traceback, like Powertools', but sanitised and
    bounded the way telemetry is: a validation error is described by its count, locations and types, never by
    the input it quotes; every message is capped, and the whole text is at most 16 KiB (the tracebacks that do
    not fit are counted on a last line). Lambda's runtime writes this text to the log, the Invoke error response
    and X-Ray. ``msg``, ``child_exceptions`` and ``format_exceptions()`` keep Powertools' full content.
    """

    def __str__(self) -> str:
        try:
            # imported here: this module imports nothing from the package at import time (see the docstring)
            from batchlens._telemetry._batch_error import batch_error_text

            return batch_error_text(self, super().__str__(), self.child_exceptions)
        except Exception:
            return f"<{type(self).__qualname__}: str() failed>"


class UnexpectedBatchTypeError(BatchProcessingError):
    """Raised when the event does not hold a non-empty batch of records of the processor's kind."""


class MissingItemIdentifierError(BatchProcessingError):
    """A failed record cannot be reported because its identifier field is missing or malformed.

    Reporting the other failures without it would silently drop the record, so the whole batch fails
    instead and Lambda retries it.

    Attributes:
        index: Position of the record in the batch.
        field: Dotted path of the identifier field that is missing (e.g. ``"messageId"``).
    """

    def __init__(self, index: int, field: str, child_exceptions: list[ExceptionInfo] | None = None) -> None:
        self.index = index
        self.field = field
        super().__init__(
            f"Record {index} of the batch failed and has no usable {field!r}, so it cannot be reported as a "
            f"partial failure; failing the whole batch so that it is retried.",
            child_exceptions,
        )


class SQSFifoCircuitBreakerError(Exception):
    """A FIFO record was not processed because an earlier record of the batch failed."""


class SQSFifoMessageGroupCircuitBreakerError(Exception):
    """A FIFO record was not processed because an earlier record of its message group failed."""


class StreamCircuitBreakerError(Exception):
    """A stream record was not processed because an earlier record failed (``stop_on_first_failure``)."""


class DeadlineExceededError(Exception):
    """A record was not started because the Lambda invocation was too close to its deadline."""
