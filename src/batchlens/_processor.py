"""Partial-failure batch processors: the Powertools-compatible bases, and the sync and async processors.

Processing knows nothing about telemetry beyond the ``ObserverChain`` seam (see ``_observer``); per-source
knowledge comes from the ``Source`` strategy objects (see ``_sources``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from batchlens._config import Telemetry
from batchlens._env import env_bool, env_int
from batchlens._observer import (
    _CURRENT,
    FAILURE,
    SKIPPED,
    SUCCESS,
    BatchInfo,
    ObserverChain,
    RecordInfo,
)
from batchlens._sources import GENERIC, EventType, MissingField, Source, detect_source, source_for
from batchlens.exceptions import (
    BatchProcessingError,
    DeadlineExceededError,
    ExceptionInfo,
    MissingItemIdentifierError,
    StreamCircuitBreakerError,
)

if TYPE_CHECKING:
    from types import TracebackType

    from batchlens.types import FailureResponse, PartialItemFailureResponse, PartialItemFailures, SuccessResponse

__all__ = ["AsyncBatchProcessor", "BasePartialBatchProcessor", "BasePartialProcessor", "BatchProcessor"]

_STREAM_TYPES = (EventType.KinesisDataStreams, EventType.DynamoDBStreams, EventType.Kafka)
_BOOKKEEPING_LOCK = threading.Lock()


class _Escaped:
    """A BaseException (KeyboardInterrupt, SystemExit, ...) that left a record, carried out of the event loop.

    asyncio re-raises such an exception straight out of ``run_until_complete`` from inside the task that raised
    it, leaving that task (and the batch's) with an exception nobody retrieves: the event loop then reports
    "Task exception was never retrieved" whenever the garbage collector finds it (on CPython 3.11 possibly
    in the middle of an unrelated ``ast.parse``). The async drivers therefore catch it inside the record's task,
    cancel the records still running, and return this marker; ``async_process`` raises the exception itself,
    outside the loop, once every task has finished.
    """

    __slots__ = ("exception",)

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


def _escapes(exc: BaseException) -> bool:
    """Whether ``exc`` must be carried out of the event loop: neither an ``Exception`` nor a cancellation."""
    return not isinstance(exc, (Exception, sys.modules["asyncio"].CancelledError))


async def _contained(awaitable: Awaitable[Any]) -> Any:
    """Await one record; a BaseException that ``_escapes`` comes back as ``_Escaped``."""
    try:
        return await awaitable
    except BaseException as exc:
        if not _escapes(exc):
            raise
        return _Escaped(exc)


async def _gather_contained(awaitables: list[Awaitable[Any]]) -> list[Any] | _Escaped:
    """``asyncio.gather`` of the records, except that a BaseException leaving one of them cancels the others
    and comes back as ``_Escaped`` (after they have all finished) instead of escaping the event loop."""
    import asyncio

    escaped: list[_Escaped] = []
    tasks: list[asyncio.Future[Any]] = []

    async def one(awaitable: Awaitable[Any]) -> Any:
        # _contained() inlined (one coroutine frame per record instead of two), plus cancelling the others
        try:
            return await awaitable
        except BaseException as exc:
            if not _escapes(exc):
                raise
            escape = _Escaped(exc)
            if not escaped:
                escaped.append(escape)
                current = asyncio.current_task()
                for task in tasks:
                    if task is not current:
                        task.cancel()
            return escape

    create_task = asyncio.get_running_loop().create_task
    tasks.extend(create_task(one(awaitable)) for awaitable in awaitables)
    # return_exceptions: wait for every task, the cancelled ones included, before anything leaves this batch
    results = await asyncio.gather(*tasks, return_exceptions=True)
    if escaped:
        for awaitable in awaitables:
            if isinstance(awaitable, CoroutineType):
                awaitable.close()  # never started when its task was cancelled first: no "never awaited" warning
        return escaped[0]
    for result in results:
        if isinstance(result, BaseException):
            raise result  # an exception a custom _async_process_record let through
    return results


def _handler_name(handler: Any) -> str:
    return getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None) or repr(handler)


def _accepts_lambda_context(handler: Callable[..., Any]) -> bool:
    import inspect

    try:
        return "lambda_context" in inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False


def _build_observer(telemetry: Telemetry) -> ObserverChain | None:
    if not telemetry.enabled:
        return None
    from batchlens._telemetry import build_observers

    observers = build_observers(telemetry)
    return ObserverChain(observers) if observers else None


class BasePartialProcessor(ABC):
    """Base of every partial-failure processor, including custom ones.

    Subclasses implement ``_prepare`` (reset state before a batch), ``_clean`` (after it: build the response or
    raise), ``_process_record`` and ``_async_process_record`` (handle one raw record, returning the result of
    ``success_handler`` or ``failure_handler``). Per-record telemetry wraps ``_process_record`` calls, so custom
    processors get spans, logs and metrics without extra code.

    Args:
        logger: Optional ``logging.Logger``; each failed record is logged as a warning with its traceback.
        telemetry: What to emit; defaults to ``Telemetry.from_env()``.
    """

    lambda_context: Any
    records: list[Any]
    handler: Callable[..., Any]
    _observer: ObserverChain | None = None
    _telemetry: Telemetry | None = None
    _source: Source = GENERIC
    _batch: BatchInfo | None = None
    _context: Any = None
    _handler_accepts_lambda_context = False

    def __init__(self, logger: logging.Logger | None = None, *, telemetry: Telemetry | None = None) -> None:
        self.success_messages: list[Any] = []
        self.fail_messages: list[Any] = []
        self.exceptions: list[ExceptionInfo] = []
        self.logger = logger
        self._telemetry = Telemetry.from_env() if telemetry is None else telemetry
        self._observer = _build_observer(self._telemetry)
        self._signature_cache: dict[Any, bool] = {}

    @property
    def telemetry(self) -> Telemetry:
        """The telemetry configuration in use."""
        if self._telemetry is None:
            self._telemetry = Telemetry.from_env()
        return self._telemetry

    # -- the abstract parts ---------------------------------------------------------------------------------
    @abstractmethod
    def _prepare(self) -> None:
        """Reset state before a batch."""

    @abstractmethod
    def _clean(self) -> None:
        """Finish a batch: build the response or raise."""

    @abstractmethod
    def _process_record(self, record: Any) -> Any:
        """Process one raw record; return ``success_handler(...)`` or ``failure_handler(...)``."""

    @abstractmethod
    async def _async_process_record(self, record: Any) -> Any:
        """Process one raw record asynchronously."""

    # -- driving a batch ---------------------------------------------------------------------------------------
    def __call__(
        self, records: list[Any], handler: Callable[..., Any], lambda_context: Any = None
    ) -> BasePartialProcessor:
        """Set the records, the record handler and (optionally) the Lambda context for the next batch."""
        self.records = records
        self.handler = handler
        self._context = lambda_context
        if lambda_context is None:
            self._handler_accepts_lambda_context = False
        else:
            self.lambda_context = lambda_context
            cache = getattr(self, "_signature_cache", None)
            if cache is None:
                cache = self._signature_cache = {}
            try:
                accepts = cache[handler]
            except (KeyError, TypeError):
                accepts = _accepts_lambda_context(handler)
                try:
                    cache[handler] = accepts
                except TypeError:
                    pass
            self._handler_accepts_lambda_context = accepts
        return self

    def __enter__(self) -> BasePartialProcessor:
        self._prepare()
        self._begin_batch()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._clean()
        except BaseException as error:
            self._end_batch(error)
            raise
        self._end_batch(exc_value)

    def process(self) -> list[Any]:
        """Run the handler on every record, in order; return the processed-message tuples in input order."""
        if self._observer is None or self._batch is None:
            process_record = self._process_record
            return [process_record(record) for record in self.records]
        run = self._run_one
        return [run(index, record) for index, record in enumerate(self.records)]

    def async_process(self) -> list[Any]:
        """Run the async handler on every record; return the processed-message tuples in input order.

        The method itself is synchronous so the Lambda handler need not be async. In Lambda the thread's event
        loop is reused across warm invocations (objects bound to it at init keep working).
        """
        import asyncio  # imported on first use: it costs ~60 ms of cold start that sync users need not pay

        coro = self._async_process_all()
        if os.getenv("LAMBDA_TASK_ROOT"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    loop = asyncio.get_event_loop()
                except RuntimeError:
                    loop = asyncio.new_event_loop()
                    asyncio.set_event_loop(loop)
            if loop.is_closed():
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
            entries = loop.run_until_complete(loop.create_task(coro))
        else:
            entries = asyncio.run(coro)
        if isinstance(entries, _Escaped):
            # raised here, outside the event loop, once every record's task has finished (see _Escaped)
            raise entries.exception
        return entries

    async def _async_process_all(self) -> list[Any] | _Escaped:
        run = self._async_run_one
        return await self._async_gather([run(i, record) for i, record in enumerate(self.records)])

    async def _async_gather(self, awaitables: list[Awaitable[Any]]) -> list[Any] | _Escaped:
        """Run the records concurrently (see ``_gather_contained``); the entries come back in input order."""
        entries = await _gather_contained(awaitables)
        if not isinstance(entries, _Escaped):
            self._restore_input_order(entries)
        return entries

    # -- success and failure -------------------------------------------------------------------------------------
    def success_handler(self, record: Any, result: Any) -> SuccessResponse:
        """Keep track of a record that was processed; return ``("success", result, record)``."""
        entry = ("success", result, record)
        self.success_messages.append(record)
        # only while this processor's telemetry tracks the record (a nested processor must not touch the
        # record of an outer one)
        if self._batch is not None:
            current = _CURRENT.get()
            if current is not None and current.outcome is None:
                current.outcome = SUCCESS
                current.result = result
        return entry

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        """Keep track of a record that failed; return ``("fail", "<class 'X'>:message", record)``."""
        entry = ("fail", f"{exception[0]}:{exception[1]}", record)
        if self.logger is not None and exception[0] is not None and exception[1] is not None and exception[2]:
            self.logger.warning("Record processing exception; skipping this record", exc_info=exception[1])
        # one lock for the pair: worker threads (max_workers > 1) must not interleave them, or the
        # exception infos would no longer line up with the failed records
        with _BOOKKEEPING_LOCK:
            self.exceptions.append(exception)
            self.fail_messages.append(record)
        if self._batch is not None:
            current = _CURRENT.get()
            if current is not None:
                if current.outcome is None:
                    current.outcome = FAILURE
                current.exception = exception[1]
        return entry

    # -- telemetry plumbing ------------------------------------------------------------------------------------
    def _begin_batch(self) -> None:
        observer = self._observer
        if observer is None:
            return
        records = getattr(self, "records", None) or []
        source = self._source
        if source is GENERIC and records:
            source = detect_source(records[0])
        batch = BatchInfo(source, records, self._context, perf_counter_ns())
        self._batch = batch
        observer.batch_start(batch)

    def _end_batch(self, error: BaseException | None) -> None:
        batch = self._batch
        observer = self._observer
        if batch is None or observer is None:
            return
        self._batch = None
        batch.end_ns = perf_counter_ns()
        batch.error = error
        batch.tally()
        observer.batch_end(batch)

    def _start_record(self, batch: BatchInfo, observer: ObserverChain, index: int, raw: Any) -> RecordInfo:
        rec = RecordInfo(index, raw, 0)
        batch.record_infos.append(rec)
        observer.record_start(batch, rec)
        # the clock starts once the observers are done, so durations measure the record, not span set-up
        rec.start_ns = rec.end_ns = perf_counter_ns()
        return rec

    @staticmethod
    def _finish_record(batch: BatchInfo, observer: ObserverChain, rec: RecordInfo, entry: Any) -> None:
        rec.end_ns = perf_counter_ns()
        if rec.outcome is None:
            # success_handler/failure_handler were overridden without calling super(): trust the tuple
            if isinstance(entry, tuple) and entry and entry[0] == "success":
                rec.outcome = SUCCESS
                rec.result = entry[1] if len(entry) > 1 else None
            else:
                rec.outcome = FAILURE
        if rec.outcome == SUCCESS:
            observer.record_success(batch, rec)
        else:
            observer.record_failure(batch, rec)

    @staticmethod
    def _abort_record(batch: BatchInfo, observer: ObserverChain, rec: RecordInfo, exc: BaseException) -> None:
        rec.end_ns = perf_counter_ns()
        rec.outcome = FAILURE
        rec.exception = exc
        observer.record_failure(batch, rec)

    def _run_one(self, index: int, raw: Any) -> Any:
        """Process one record through ``_process_record``, reporting it to the observers."""
        observer = self._observer
        batch = self._batch
        if observer is None or batch is None:
            return self._process_record(raw)
        rec = self._start_record(batch, observer, index, raw)
        token = _CURRENT.set(rec)
        try:
            entry = self._process_record(raw)
        except BaseException as exc:
            _CURRENT.reset(token)
            self._abort_record(batch, observer, rec, exc)
            raise
        _CURRENT.reset(token)
        self._finish_record(batch, observer, rec, entry)
        return entry

    async def _async_run_one(self, index: int, raw: Any) -> Any:
        observer = self._observer
        batch = self._batch
        if observer is None or batch is None:
            return await self._async_process_record(raw)
        rec = self._start_record(batch, observer, index, raw)
        token = _CURRENT.set(rec)
        try:
            entry = await self._async_process_record(raw)
        except BaseException as exc:
            _CURRENT.reset(token)
            self._abort_record(batch, observer, rec, exc)
            raise
        _CURRENT.reset(token)
        self._finish_record(batch, observer, rec, entry)
        return entry

    def _restore_input_order(self, entries: list[Any]) -> None:
        """Put ``fail_messages``/``exceptions`` back in input order after concurrent processing."""
        fails = self.fail_messages
        if len(fails) < 2 or len(fails) != len(self.exceptions):
            return
        position = {id(e[2]): i for i, e in enumerate(entries) if isinstance(e, tuple) and len(e) == 3}
        end = len(entries)
        paired = sorted(zip(fails, self.exceptions, strict=True), key=lambda p: position.get(id(p[0]), end))
        self.fail_messages[:] = [p[0] for p in paired]
        self.exceptions[:] = [p[1] for p in paired]

    def flush_telemetry(self, timeout_millis: int = 2000) -> None:
        """Export buffered telemetry now (tracer/meter providers, Sentry), within ``timeout_millis``."""
        observer = self._observer
        if observer is not None:
            observer.flush(max(0, int(timeout_millis)))


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
        if margin is None or self._context is None:
            return None
        if self._deadline_remaining is None:
            try:
                value = self._context.get_remaining_time_in_millis()
            except Exception:
                value = None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                # a context without a usable clock (a test double, say) disables the guard, never processing
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
