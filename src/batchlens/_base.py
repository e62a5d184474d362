"""The root of every partial-failure processor: ``BasePartialProcessor`` (batch driving, success/failure
bookkeeping, the telemetry plumbing around each record). The async containment helpers it shares with the async
drivers live in ``_contain``; record sampling in ``_sampling``.

Processing knows nothing about telemetry beyond the ``ObserverChain`` seam (see ``_observer``).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any

from batchlens._config import Telemetry
from batchlens._contain import _Escaped, _gather_contained
from batchlens._observer import (
    _CURRENT,
    FAILURE,
    SUCCESS,
    BatchInfo,
    ObserverChain,
    RecordInfo,
    _fault,
)
from batchlens._sampling import async_run_unsampled, keeps, run_unsampled, threshold
from batchlens._sentry_guard import guard_sentry_events
from batchlens._sources import GENERIC, Source, detect_source
from batchlens.exceptions import (
    ExceptionInfo,
)

if TYPE_CHECKING:
    from types import TracebackType

    from batchlens.types import FailureResponse, SuccessResponse

__all__ = ["BasePartialProcessor"]

_BOOKKEEPING_LOCK = threading.Lock()
_CO_VARARGS = 0x04  # inspect.CO_VARARGS, without importing inspect at cold start
_CO_VARKEYWORDS = 0x08  # inspect.CO_VARKEYWORDS


def _handler_name(handler: Any) -> str:
    return getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None) or repr(handler)


def _accepts_lambda_context(handler: Callable[..., Any]) -> bool:
    import inspect

    try:
        return "lambda_context" in inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False


def _code_parameters(function: Any) -> tuple[str, ...] | None:
    """The parameter names of a plain Python function, read off its code object; ``None`` when its signature
    could differ from them (not a plain function, or one with attributes, such as ``__wrapped__``)."""
    if type(function) is not FunctionType or function.__dict__:
        return None
    code = function.__code__
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & _CO_VARARGS) + bool(code.co_flags & _CO_VARKEYWORDS)
    return code.co_varnames[:count]


def _handler_accepts_lambda_context(handler: Any, cache: weakref.WeakKeyDictionary[Any, bool]) -> bool:
    """Whether ``handler`` takes a ``lambda_context`` parameter.

    Plain functions and methods are answered from their code object, with nothing kept: a handler defined inside
    the Lambda handler is a new closure every invocation, holding that invocation's event. Other callables are
    cached weakly, so the cache never keeps a handler (or what it holds) alive past its invocation.
    """
    if type(handler) is MethodType:
        names = _code_parameters(handler.__func__)
        if names is not None:
            return "lambda_context" in names[1:]
    else:
        names = _code_parameters(handler)
        if names is not None:
            return "lambda_context" in names
    try:
        return cache[handler]
    except (KeyError, TypeError):
        pass
    accepts = _accepts_lambda_context(handler)
    try:
        cache[handler] = accepts
    except TypeError:
        pass  # neither hashable nor weakly referenceable: asked again next time
    return accepts


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
    _sample_bound: int | None = None  # see _sampling.threshold: None records every record

    def __init__(self, logger: logging.Logger | None = None, *, telemetry: Telemetry | None = None) -> None:
        self.success_messages: list[Any] = []
        self.fail_messages: list[Any] = []
        self.exceptions: list[ExceptionInfo] = []
        self.logger = logger
        self._telemetry = Telemetry.from_env() if telemetry is None else telemetry
        self._observer = _build_observer(self._telemetry)
        self._sample_bound = threshold(self._telemetry.record_sampling)
        # weak: never keeps a handler alive (see _handler_accepts_lambda_context)
        self._signature_cache: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

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
        guard_sentry_events()  # a process that has a Sentry client gets batchlens' frames scrubbed (once)
        self.records = records
        self.handler = handler
        self._context = lambda_context
        if lambda_context is None:
            self._handler_accepts_lambda_context = False
        else:
            self.lambda_context = lambda_context
            cache = getattr(self, "_signature_cache", None)
            if cache is None:
                cache = self._signature_cache = weakref.WeakKeyDictionary()
            self._handler_accepts_lambda_context = _handler_accepts_lambda_context(handler, cache)
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
        try:
            entry = ("fail", f"{exception[0]}:{exception[1]}", record)
        except Exception:
            # an exception whose __str__ raises fails its record, not the batch (Powertools raises here); the
            # placeholder is telemetry's, so the tuple and the spans name it alike (imported only on this path)
            from batchlens._telemetry._errors import safe_str

            entry = ("fail", f"{exception[0]}:{safe_str(exception[1])}", record)  # type: ignore[arg-type]
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
        batch.sampling_rate = self.telemetry.record_sampling
        self._batch = batch
        for one in observer._batch_start:  # the chain's batch_start inlined, with its fault isolation
            try:
                one.batch_start(batch)
            except Exception:
                _fault(one, "batch_start")

    def _end_batch(self, error: BaseException | None) -> None:
        batch = self._batch
        observer = self._observer
        if batch is None or observer is None:
            return
        self._batch = None
        batch.end_ns = perf_counter_ns()
        batch.error = error
        batch.tally()
        for one in observer._batch_end:  # the chain's batch_end inlined, with its fault isolation
            try:
                one.batch_end(batch)
            except Exception:
                _fault(one, "batch_end")

    def _start_record(self, batch: BatchInfo, observer: ObserverChain, index: int, raw: Any) -> RecordInfo:
        rec = RecordInfo(index, raw, 0)
        batch.record_infos.append(rec)
        return self._observe_start(batch, observer, rec)

    @staticmethod
    def _observe_start(batch: BatchInfo, observer: ObserverChain, rec: RecordInfo) -> RecordInfo:
        observer.record_start(batch, rec)
        # the clock starts once the observers are done, so durations measure the record, not span set-up
        rec.start_ns = rec.end_ns = perf_counter_ns()
        return rec

    @staticmethod
    def _finish_record(batch: BatchInfo, observer: ObserverChain, rec: RecordInfo, entry: Any) -> None:
        rec.end_ns = perf_counter_ns()
        rec.settle(entry)  # success_handler/failure_handler overridden without calling super(): trust the tuple
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
        # _start_record, _finish_record and the chain's record hooks inlined (with the chain's fault isolation):
        # four calls fewer per record on the common path
        rec = RecordInfo(index, raw, 0)
        batch.record_infos.append(rec)
        bound = self._sample_bound
        if bound is not None and not keeps(rec, batch.source.message_id(raw), bound):
            return run_unsampled(batch, observer, rec, self._process_record)
        for one in observer._record_start:
            try:
                one.record_start(batch, rec)
            except Exception:
                _fault(one, "record_start")
        rec.start_ns = rec.end_ns = perf_counter_ns()  # once the observers are done: see _start_record
        token = _CURRENT.set(rec)
        try:
            entry = self._process_record(raw)
        except BaseException as exc:
            _CURRENT.reset(token)
            self._abort_record(batch, observer, rec, exc)
            raise
        rec.end_ns = perf_counter_ns()
        _CURRENT.reset(token)
        outcome = rec.outcome
        if outcome == SUCCESS:
            for one in observer._record_success:
                try:
                    one.record_success(batch, rec)
                except Exception:
                    _fault(one, "record_success")
        elif outcome is None:
            self._finish_record(batch, observer, rec, entry)  # handlers overridden without super(): see there
        else:
            observer.record_failure(batch, rec)
        return entry

    async def _async_run_one(self, index: int, raw: Any) -> Any:
        observer = self._observer
        batch = self._batch
        if observer is None or batch is None:
            return await self._async_process_record(raw)
        rec = RecordInfo(index, raw, 0)
        batch.record_infos.append(rec)
        bound = self._sample_bound
        if bound is not None and not keeps(rec, batch.source.message_id(raw), bound):
            return await async_run_unsampled(batch, observer, rec, self._async_process_record)
        self._observe_start(batch, observer, rec)
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
        """Put ``success_messages`` and ``fail_messages``/``exceptions`` back in input order after concurrent
        processing (records finish in any order; ``entries`` are in input order)."""
        successes = self.success_messages
        fails = self.fail_messages
        sort_fails = len(fails) > 1 and len(fails) == len(self.exceptions)
        if len(successes) < 2 and not sort_fails:
            return
        position = {id(e[2]): i for i, e in enumerate(entries) if isinstance(e, tuple) and len(e) == 3}
        end = len(entries)
        if len(successes) > 1:
            successes.sort(key=lambda record: position.get(id(record), end))
        if sort_fails:
            paired = sorted(zip(fails, self.exceptions, strict=True), key=lambda p: position.get(id(p[0]), end))
            fails[:] = [p[0] for p in paired]
            self.exceptions[:] = [p[1] for p in paired]

    def flush_telemetry(self, timeout_millis: int = 2000) -> None:
        """Export buffered telemetry now (tracer/meter providers, Sentry), within ``timeout_millis``."""
        observer = self._observer
        if observer is not None:
            observer.flush(max(0, int(timeout_millis)))
