"""SQS FIFO processors: stop at the first failure (or at the first failure of a message group)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from batchlens._config import Telemetry
from batchlens._contain import _Escaped
from batchlens._processor import AsyncBatchProcessor, BasePartialBatchProcessor, BatchProcessor
from batchlens._sources import EventType
from batchlens.exceptions import ExceptionInfo, SQSFifoCircuitBreakerError, SQSFifoMessageGroupCircuitBreakerError

__all__ = ["SqsFifoPartialProcessor", "SqsFifoPartialProcessorAsync"]


def _refuse_workers(max_workers: int | None) -> None:
    if max_workers is not None and max_workers != 1:
        raise ValueError(
            f"max_workers={max_workers!r}: SQS FIFO processors process records one at a time to keep their order; "
            f"use BatchProcessor(EventType.SQS, max_workers=...) for standard queues"
        )


class _FifoRules(BasePartialBatchProcessor):
    """The FIFO short-circuit rules, shared by the sync and async FIFO processors.

    Mixed in before ``BatchProcessor`` / ``AsyncBatchProcessor``, so ``super()`` here reaches those.
    """

    circuit_breaker_exc: ExceptionInfo = (
        SQSFifoCircuitBreakerError,
        SQSFifoCircuitBreakerError("A previous record failed processing"),
        None,
    )
    group_circuit_breaker_exc: ExceptionInfo = (
        SQSFifoMessageGroupCircuitBreakerError,
        SQSFifoMessageGroupCircuitBreakerError("A previous record from this message group failed processing"),
        None,
    )
    _skip_group_on_error: bool = False
    _current_group_id: str | None = None

    def _init_fifo(self, skip_group_on_error: bool) -> None:
        self._skip_group_on_error = skip_group_on_error
        self._current_group_id = None
        self._failed_group_ids: set[str] = set()

    def _enter_record(self, record: Any) -> ExceptionInfo | None:
        """Remember the record's group; return the circuit-breaker error when it must be skipped."""
        attributes = record.get("attributes") if isinstance(record, Mapping) else None
        group = attributes.get("MessageGroupId") if isinstance(attributes, Mapping) else None
        self._current_group_id = group
        if self._skip_group_on_error:
            if group is not None and group in self._failed_group_ids:
                return self.group_circuit_breaker_exc
            return None
        return self.circuit_breaker_exc if self.fail_messages else None

    def _note_failure(self) -> None:
        if self._skip_group_on_error and self._current_group_id:
            self._failed_group_ids.add(self._current_group_id)

    def _skip_record(self, raw: Any, reason: ExceptionInfo) -> Any:
        if reason[0] not in (SQSFifoCircuitBreakerError, SQSFifoMessageGroupCircuitBreakerError):
            self._enter_record(raw)  # a deadline skip: attribute the failure to this record's group
        return super()._skip_record(raw, reason)

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> Any:
        """Track the failure, remembering its message group when ``skip_group_on_error`` is on."""
        self._note_failure()
        return super().failure_handler(record, exception)

    def _clean(self) -> None:
        self._failed_group_ids.clear()
        self._current_group_id = None
        super()._clean()


class SqsFifoPartialProcessor(_FifoRules, BatchProcessor):
    """Process SQS FIFO batches in order; after a failure, report the remaining records as failed unprocessed.

    Args:
        model: Optional pydantic model records are validated into.
        skip_group_on_error: Only skip later records of the message group that failed; other groups go on.
        logger: Optional ``logging.Logger`` for a warning per failed record.
        raise_on_entire_batch_failure: Raise ``BatchProcessingError`` when every record failed.
        telemetry: What to emit; defaults to ``Telemetry.from_env()``.
        max_workers: Must be 1 (or unset): FIFO order rules out parallel processing.
        deadline_margin_ms: Deadline guard; see ``BasePartialBatchProcessor``.
    """

    def __init__(
        self,
        model: Any = None,
        skip_group_on_error: bool = False,
        logger: logging.Logger | None = None,
        *,
        raise_on_entire_batch_failure: bool = True,
        telemetry: Telemetry | None = None,
        max_workers: int | None = None,
        deadline_margin_ms: int | None = None,
    ) -> None:
        _refuse_workers(max_workers)
        self._init_fifo(skip_group_on_error)
        super().__init__(
            EventType.SQS,
            model,
            raise_on_entire_batch_failure,
            logger,
            telemetry=telemetry,
            max_workers=1,
            deadline_margin_ms=deadline_margin_ms,
            stop_on_first_failure=False,
        )

    def _process_record(self, record: Any) -> Any:
        reason = self._enter_record(record)
        if reason is not None:
            return self._skip_record(record, reason)
        return super()._process_record(record)


class SqsFifoPartialProcessorAsync(_FifoRules, AsyncBatchProcessor):
    """Async SQS FIFO processor: awaits the handler for one record at a time, in order, with the FIFO rules.

    Args:
        model: Optional pydantic model records are validated into.
        skip_group_on_error: Only skip later records of the message group that failed.
        logger: Optional ``logging.Logger`` for a warning per failed record.
        raise_on_entire_batch_failure: Raise ``BatchProcessingError`` when every record failed.
        telemetry: What to emit; defaults to ``Telemetry.from_env()``.
        deadline_margin_ms: Deadline guard; see ``BasePartialBatchProcessor``.
    """

    def __init__(
        self,
        model: Any = None,
        skip_group_on_error: bool = False,
        logger: logging.Logger | None = None,
        *,
        raise_on_entire_batch_failure: bool = True,
        telemetry: Telemetry | None = None,
        deadline_margin_ms: int | None = None,
    ) -> None:
        self._init_fifo(skip_group_on_error)
        super().__init__(
            EventType.SQS,
            model,
            raise_on_entire_batch_failure,
            logger,
            telemetry=telemetry,
            max_concurrency=1,
            deadline_margin_ms=deadline_margin_ms,
            stop_on_first_failure=False,
        )

    async def _async_process_all(self) -> list[Any] | _Escaped:
        return await self._async_process_in_order()

    async def _async_process_record(self, record: Any) -> Any:
        reason = self._enter_record(record)
        if reason is not None:
            return self._skip_record(record, reason)
        return await super()._async_process_record(record)
