"""The Powertools-compatible ``BasePartialBatchProcessor`` (responses, record conversion, the short circuits) and
the policy helpers its sync and async drivers share.

The drivers live apart, the way httpx keeps sync and async apart: ``BatchProcessor`` in ``_sync``,
``AsyncBatchProcessor`` in ``_async``; both import this module and ``_processor`` gathers all three, so the
imports run one way. Per-source knowledge comes from the ``Source`` strategy objects (see ``_sources``).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batchlens._base import BasePartialProcessor
from batchlens._config import Telemetry
from batchlens._env import env_bool, env_int
from batchlens._observer import (
    _CURRENT,
    SKIPPED,
)
from batchlens._sources import EventType, MissingField, source_for
from batchlens.exceptions import (
    BatchProcessingError,
    DeadlineExceededError,
    ExceptionInfo,
    MissingItemIdentifierError,
    StreamCircuitBreakerError,
)

if TYPE_CHECKING:
    from batchlens.types import FailureResponse, PartialItemFailureResponse, PartialItemFailures

__all__ = ["BasePartialBatchProcessor", "BasePartialProcessor"]

_STREAM_TYPES = (EventType.KinesisDataStreams, EventType.DynamoDBStreams, EventType.Kafka)


class BasePartialBatchProcessor(BasePartialProcessor):
    """Base of the built-in processors: builds the ``batchItemFailures`` response for an event type.

    Args:
        event_type: The event source (``EventType.SQS``, ``KinesisDataStreams``, ``DynamoDBStreams``, ``Kafka``).
        model: Optional pydantic model each record is validated into before the handler sees it.
        raise_on_entire_batch_failure: Raise ``BatchProcessingError`` when every record failed.
        logger: Optional ``logging.Logger`` for a warning (with traceback) per failed record.
        telemetry: What to emit; defaults to ``Telemetry.from_env()``.
        deadline_margin_ms: With a Lambda context, stop starting records once fewer than this many
            milliseconds remain, reporting the rest as failed (``BATCHLENS_DEADLINE_MARGIN_MS``; default off).
    """

    DEFAULT_RESPONSE: PartialItemFailureResponse = {"batchItemFailures": []}

    def __init__(
        self,
        event_type: EventType,
        model: Any = None,
        raise_on_entire_batch_failure: bool = True,
        logger: logging.Logger | None = None,
        *,
        telemetry: Telemetry | None = None,
        deadline_margin_ms: int | None = None,
    ) -> None:
        if not isinstance(event_type, EventType):
            try:
                event_type = EventType(event_type)
            except ValueError:
                names = ", ".join(EventType.__members__)
                raise ValueError(f"event_type={event_type!r} is not an EventType; expected one of {names}") from None
        self.event_type = event_type
        self.model = model
        self.raise_on_entire_batch_failure = raise_on_entire_batch_failure
        self.batch_response: PartialItemFailureResponse = {"batchItemFailures": []}
        self._source = source_for(event_type)
        self._wrap: Callable[[Any], Any] = self._source.data_class
        if deadline_margin_ms is None:
            deadline_margin_ms = env_int(os.environ, "BATCHLENS_DEADLINE_MARGIN_MS", None, minimum=0)
        elif isinstance(deadline_margin_ms, bool) or not isinstance(deadline_margin_ms, int) or deadline_margin_ms < 0:
            raise ValueError(f"deadline_margin_ms={deadline_margin_ms!r} is not valid; expected a whole number >= 0")
        self.deadline_margin_ms: int | None = deadline_margin_ms
        self._stop_on_first_failure = False
        self._stopped = False
        self._deadline_remaining: int | None = None
        self._deadline_off = False
        super().__init__(logger=logger, telemetry=telemetry)

    def response(self) -> PartialItemFailureResponse:
        """The partial-failure response of the last batch: ``{"batchItemFailures": [...]}``."""
        return self.batch_response

    def _prepare(self) -> None:
        self.success_messages.clear()
        self.fail_messages.clear()
        self.exceptions.clear()
        self.batch_response = {"batchItemFailures": []}
        self._stopped = False
        self._deadline_remaining = None
        self._deadline_off = False

    def _clean(self) -> None:
        if not self.fail_messages:
            return
        if self._entire_batch_failed() and self.raise_on_entire_batch_failure:
            raise BatchProcessingError(
                msg=f"All records failed processing. {len(self.exceptions)} individual errors logged separately below.",
                child_exceptions=list(self.exceptions),
            )
        self.batch_response = {"batchItemFailures": self._get_messages_to_report()}

    def _entire_batch_failed(self) -> bool:
        return len(self.exceptions) == len(self.records)

    def _get_messages_to_report(self) -> list[PartialItemFailures]:
        source = self._source
        failures: list[PartialItemFailures] = []
        for message in self.fail_messages:
            try:
                identifier = source.identifier_of(message)
            except MissingField as missing:
                raise MissingItemIdentifierError(
                    self._index_of(message), missing.field, list(self.exceptions)
                ) from None
            failures.append({"itemIdentifier": identifier})
        return failures

    def _index_of(self, message: Any) -> int:
        raw = getattr(message, "raw_event", message)
        for index, record in enumerate(self.records):
            if record is raw:
                return index
        return -1

    # -- turning raw records into what the handler receives -------------------------------------------------
    def _to_batch_type(self, record: Any, event_type: EventType | None = None, model: Any = None) -> Any:
        """Validate ``record`` into ``model`` when given, else wrap it in the event type's data class."""
        if model is not None:
            return model.model_validate(record)
        if event_type is None or event_type is self.event_type:
            return self._wrap(record)
        return source_for(event_type).wrap(record)

    def _is_model_error(self, exc: BaseException) -> bool:
        model = self.model
        if model is None:
            return False
        origin = getattr(exc, "model", None) or getattr(exc, "title", None)
        return origin is not None and origin in (model, getattr(model, "__name__", None))

    def _record_failed(self, record: Any, data: Any, converted: bool, exc: BaseException) -> FailureResponse:
        """Report a failed record; call from inside the ``except`` block (it reads ``sys.exc_info()``)."""
        if not converted or self._is_model_error(exc):
            # the handler must see, and the failure must report, something with the record's identifier
            data = self._wrap(record)
        return self.failure_handler(record=data, exception=sys.exc_info())

    # -- short circuits (deadline guard, stop-on-first-failure) -------------------------------------------------
    def _skip_reason(self) -> ExceptionInfo | None:
        if self._stopped:
            return (StreamCircuitBreakerError, StreamCircuitBreakerError("A previous record failed processing"), None)
        margin = self.deadline_margin_ms
        if margin is None or self._context is None or self._deadline_off:
            return None
        if self._deadline_remaining is None:
            try:
                value = self._context.get_remaining_time_in_millis()
            except Exception:
                value = None
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (isinstance(value, float) and not math.isfinite(value))
            ):
                # a context without a usable clock (a test double, say, or one answering NaN or an infinity)
                # turns the guard off for this batch; it never stops processing
                self._deadline_off = True
                return None
            remaining = int(value)
            if remaining >= margin:
                return None
            # latched: once the margin is crossed no later record starts, whatever the clock says next
            self._deadline_remaining = remaining
        error = DeadlineExceededError(
            f"Not started: {self._deadline_remaining} ms left in the invocation, below the {margin} ms deadline margin"
        )
        return (DeadlineExceededError, error, None)

    def _skip_record(self, raw: Any, reason: ExceptionInfo) -> Any:
        """Report ``raw`` as failed without running the handler."""
        if self._batch is not None:
            current = _CURRENT.get()
            if current is not None:
                current.outcome = SKIPPED
        return self.failure_handler(record=self._safe_data(raw), exception=reason)

    def _safe_data(self, raw: Any) -> Any:
        """The record as the handler would see it; the data class when the model rejects it."""
        if self.model is None:
            return self._wrap(raw)
        try:
            return self.model.model_validate(raw)
        except Exception:
            return self._wrap(raw)

    def _guarded(self, index: int, raw: Any) -> Any:
        reason = self._skip_reason()
        if reason is not None:
            return self._run_skip(index, raw, reason)
        entry = self._run_one(index, raw)
        if self._stop_on_first_failure and entry[0] == "fail":
            self._stopped = True
        return entry

    def _run_skip(self, index: int, raw: Any, reason: ExceptionInfo) -> Any:
        observer = self._observer
        batch = self._batch
        if observer is None or batch is None:
            return self._skip_record(raw, reason)
        rec = self._start_record(batch, observer, index, raw)
        rec.outcome = SKIPPED
        token = _CURRENT.set(rec)
        try:
            entry = self._skip_record(raw, reason)
        finally:
            _CURRENT.reset(token)
        self._finish_record(batch, observer, rec, entry)
        return entry

    def _has_short_circuits(self) -> bool:
        return self.deadline_margin_ms is not None or self._stop_on_first_failure


def _validate_workers(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid; expected a whole number >= 1")
    return value


def _stop_policy(event_type: EventType, stop_on_first_failure: bool | None) -> bool:
    if stop_on_first_failure is None:
        # parsed for every processor, so a typo fails everywhere; applied to stream processors only, since
        # ordered SQS is the FIFO processors' job
        from_env = env_bool(os.environ, "BATCHLENS_STOP_ON_FIRST_FAILURE", False)
        return from_env and event_type in _STREAM_TYPES
    if stop_on_first_failure and event_type not in _STREAM_TYPES:
        raise ValueError(
            f"stop_on_first_failure is for stream event types (KinesisDataStreams, DynamoDBStreams, Kafka), not "
            f"{event_type.name}; for ordered SQS use SqsFifoPartialProcessor"
        )
    return bool(stop_on_first_failure)
