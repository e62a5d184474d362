"""``BatchProcessor``: synchronous record handlers, sequential or on a thread pool (``max_workers``)."""

from __future__ import annotations

import logging
import os
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from batchlens._base import BasePartialProcessor, _handler_name
from batchlens._config import Telemetry
from batchlens._env import env_int
from batchlens._partial import BasePartialBatchProcessor, _stop_policy, _validate_workers
from batchlens._sources import EventType

if TYPE_CHECKING:
    from batchlens.types import FailureResponse, SuccessResponse

__all__ = ["BatchProcessor"]


class BatchProcessor(BasePartialBatchProcessor):
    """Process a batch with a synchronous record handler and report partial failures.

    Args:
        event_type: The event source.
        model: Optional pydantic model records are validated into.
        raise_on_entire_batch_failure: Raise ``BatchProcessingError`` when every record failed.
        logger: Optional ``logging.Logger`` for a warning per failed record.
        telemetry: What to emit; defaults to ``Telemetry.from_env()``.
        max_workers: Run records on a thread pool of this size (``BATCHLENS_MAX_WORKERS``; default 1, sequential).
            Results and reported failures stay in input order.
        deadline_margin_ms: Deadline guard; see ``BasePartialBatchProcessor``.
        stop_on_first_failure: Streams only: stop at the first failed record and report it and every later
            record, preserving the stream checkpoint (``BATCHLENS_STOP_ON_FIRST_FAILURE``).
    """

    def __init__(
        self,
        event_type: EventType,
        model: Any = None,
        raise_on_entire_batch_failure: bool = True,
        logger: logging.Logger | None = None,
        *,
        telemetry: Telemetry | None = None,
        max_workers: int | None = None,
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
        if max_workers is None:
            max_workers = env_int(os.environ, "BATCHLENS_MAX_WORKERS", 1, minimum=1) or 1
        self.max_workers = _validate_workers("max_workers", max_workers)
        self._stop_on_first_failure = _stop_policy(self.event_type, stop_on_first_failure)
        if self._stop_on_first_failure and self.max_workers > 1:
            raise ValueError(
                f"stop_on_first_failure needs ordered processing; it cannot be combined with "
                f"max_workers={self.max_workers} (check BATCHLENS_STOP_ON_FIRST_FAILURE and BATCHLENS_MAX_WORKERS)"
            )

    def process(self) -> list[Any]:
        """Run the handler on every record; return the processed-message tuples in input order."""
        if self.max_workers > 1 and len(self.records) > 1:
            return self._process_threaded()
        if self._has_short_circuits():
            guarded = self._guarded
            return [guarded(index, record) for index, record in enumerate(self.records)]
        if self._observer is None and self._plain():
            return self._process_plain()
        return super().process()

    def _plain(self) -> bool:
        """No model, no context injection, and no overridden per-record hooks: the fast loop applies."""
        cls = type(self)
        return (
            self.model is None
            and not self._handler_accepts_lambda_context
            and cls._process_record is BatchProcessor._process_record
            and cls.success_handler is BasePartialProcessor.success_handler
        )

    def _process_plain(self) -> list[Any]:
        # The common case, telemetry off: the same steps as _process_record with the lookups hoisted out of
        # the loop. Failures take the general path.
        wrap = self._wrap
        handler = self.handler
        succeeded = self.success_messages.append
        entries: list[Any] = []
        add = entries.append
        for record in self.records:
            data = None
            try:
                data = wrap(record)
                result = handler(record=data)
                if type(result) is CoroutineType:
                    self._refuse_coroutine(result)
            except Exception as exc:
                add(self._record_failed(record, data, data is not None, exc))
                continue
            succeeded(record)
            add(("success", result, record))
        return entries

    def _process_threaded(self) -> list[Any]:
        import contextvars
        from concurrent.futures import ThreadPoolExecutor

        records = self.records
        run = self._guarded if self._has_short_circuits() else self._run_one
        pool = ThreadPoolExecutor(max_workers=min(self.max_workers, len(records)), thread_name_prefix="batchlens")
        try:
            futures = [
                pool.submit(contextvars.copy_context().run, run, index, record) for index, record in enumerate(records)
            ]
            entries = [future.result() for future in futures]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        self._restore_input_order(entries)
        return entries

    async def _async_process_record(self, record: Any) -> Any:
        raise NotImplementedError("BatchProcessor runs synchronous handlers; use AsyncBatchProcessor for async ones")

    def _process_record(self, record: Any) -> SuccessResponse | FailureResponse:
        data = None
        converted = False
        try:
            data = self._wrap(record) if self.model is None else self.model.model_validate(record)
            converted = True
            if self._handler_accepts_lambda_context:
                result = self.handler(record=data, lambda_context=self.lambda_context)
            else:
                result = self.handler(record=data)
            if type(result) is CoroutineType:
                self._refuse_coroutine(result)
        except Exception as exc:
            return self._record_failed(record, data, converted, exc)
        return self.success_handler(record, result)

    def _refuse_coroutine(self, result: Any) -> None:
        result.close()  # never awaited: close it so Python does not warn about it later
        raise TypeError(
            f"record handler {_handler_name(self.handler)!r} is a coroutine function; the synchronous "
            f"{type(self).__name__} cannot await it — use AsyncBatchProcessor and async_process_partial_response"
        )
