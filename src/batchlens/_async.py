"""``AsyncBatchProcessor``: async record handlers, records running concurrently on the event loop."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from batchlens._base import _handler_name
from batchlens._config import Telemetry
from batchlens._contain import _contained, _Escaped
from batchlens._env import env_int
from batchlens._partial import BasePartialBatchProcessor, _stop_policy, _validate_workers
from batchlens._sources import EventType

if TYPE_CHECKING:
    from batchlens.types import FailureResponse, SuccessResponse

__all__ = ["AsyncBatchProcessor"]


class AsyncBatchProcessor(BasePartialBatchProcessor):
    """Process a batch with an async record handler, records running concurrently.

    Args:
        event_type: The event source.
        model: Optional pydantic model records are validated into.
        raise_on_entire_batch_failure: Raise ``BatchProcessingError`` when every record failed.
        logger: Optional ``logging.Logger`` for a warning per failed record.
        telemetry: What to emit; defaults to ``Telemetry.from_env()``.
        max_concurrency: At most this many handlers run at once (``BATCHLENS_MAX_CONCURRENCY``; default unlimited).
        deadline_margin_ms: Deadline guard; see ``BasePartialBatchProcessor``.
        stop_on_first_failure: Streams only: process records one at a time and stop at the first failure.
    """

    def __init__(
        self,
        event_type: EventType,
        model: Any = None,
        raise_on_entire_batch_failure: bool = True,
        logger: logging.Logger | None = None,
        *,
        telemetry: Telemetry | None = None,
        max_concurrency: int | None = None,
        deadline_margin_ms: int | None = None,
        stop_on_first_failure: bool | None = None,
    ) -> None:
        super().__init__(
            event_type,
            model,
            raise_on_entire_batch_failure,
            logger,
            telemetry=telemetry,
            deadline_margin_ms=deadline_margin_ms,
        )
        if max_concurrency is None:
            max_concurrency = env_int(os.environ, "BATCHLENS_MAX_CONCURRENCY", None, minimum=1)
        self.max_concurrency: int | None = (
            None if max_concurrency is None else _validate_workers("max_concurrency", max_concurrency)
        )
        self._stop_on_first_failure = _stop_policy(self.event_type, stop_on_first_failure)

    def _process_record(self, record: Any) -> Any:
        raise NotImplementedError("AsyncBatchProcessor runs async handlers; call async_process()")

    async def _async_process_all(self) -> list[Any] | _Escaped:
        import asyncio

        records = self.records
        if self._stop_on_first_failure:
            return await self._async_process_in_order()
        unlimited: Callable[[int, Any], Awaitable[Any]] = (
            self._async_guarded if self._has_short_circuits() else self._async_run_one
        )
        run = unlimited
        if self.max_concurrency is not None and self.max_concurrency < len(records):
            semaphore = asyncio.Semaphore(self.max_concurrency)

            async def limited(index: int, record: Any) -> Any:
                # the deadline guard runs inside the semaphore: a record "starts" when it gets a slot
                async with semaphore:
                    return await unlimited(index, record)

            run = limited
        return await self._async_gather([run(i, record) for i, record in enumerate(records)])

    async def _async_process_in_order(self) -> list[Any] | _Escaped:
        """Await the records one after the other, in input order (stream circuit breaker, FIFO)."""
        entries: list[Any] = []
        for index, record in enumerate(self.records):
            entry = await _contained(self._async_guarded(index, record))
            if isinstance(entry, _Escaped):
                return entry
            entries.append(entry)
        return entries

    async def _async_guarded(self, index: int, raw: Any) -> Any:
        reason = self._skip_reason()
        if reason is not None:
            return self._run_skip(index, raw, reason)
        entry = await self._async_run_one(index, raw)
        if self._stop_on_first_failure and entry[0] == "fail":
            self._stopped = True
        return entry

    async def _async_process_record(self, record: Any) -> SuccessResponse | FailureResponse:
        data = None
        converted = False
        try:
            data = self._wrap(record) if self.model is None else self.model.model_validate(record)
            converted = True
            if self._handler_accepts_lambda_context:
                pending = self.handler(record=data, lambda_context=self.lambda_context)
            else:
                pending = self.handler(record=data)
            if not hasattr(pending, "__await__"):
                raise TypeError(
                    f"record handler {_handler_name(self.handler)!r} is synchronous (it returned "
                    f"{type(pending).__name__}, not an awaitable); {type(self).__name__} needs an async handler — "
                    f"use BatchProcessor and process_partial_response for synchronous ones"
                )
            result = await pending
        except Exception as exc:
            return self._record_failed(record, data, converted, exc)
        return self.success_handler(record, result)
