"""The seam between processing and telemetry.

Processors report what happens to a batch and its records to one ``Observer``; tracing, metrics, logging and
Sentry are observers. Processing never depends on what an observer does: ``ObserverChain`` guards every call, so
a fault in telemetry is logged once, counted, and otherwise ignored.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from operator import attrgetter, methodcaller
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from batchlens._sources import Source

__all__ = [
    "FAILURE",
    "NOT_READ",
    "SKIPPED",
    "SUCCESS",
    "BatchInfo",
    "Observer",
    "ObserverChain",
    "RecordInfo",
    "current_record",
    "noop_hook",
    "telemetry_fault_count",
]

SUCCESS = "success"
FAILURE = "failure"
SKIPPED = "skipped"
NOT_READ: Any = object()
"""``RecordInfo.message_id`` before any observer has read the record's message id."""

_log = logging.getLogger("batchlens")
_GET_ARN = methodcaller("get", "eventSourceARN")
_OUTCOME = attrgetter("outcome")


class RecordInfo:
    """What happened to one record. Created by the processor; observers may keep state in ``span``/``token``/``extra``.

    Attributes:
        index: Position of the record in the batch.
        raw: The raw record as Lambda delivered it.
        start_ns / end_ns: ``time.perf_counter_ns()`` around the record's processing.
        outcome: ``"success"``, ``"failure"`` or ``"skipped"`` (not attempted: circuit breaker, deadline).
        result: The handler's return value on success.
        exception: The exception on failure or skip.
        sampled: False when record sampling left the record out: no observer saw it start, and one that
            fails reaches ``record_start`` only after its handler has returned (see ``_sampling``).
    """

    __slots__ = (
        "end_ns",
        "exception",
        "extra",
        "index",
        "message_id",
        "outcome",
        "raw",
        "result",
        "sampled",
        "span",
        "start_ns",
        "token",
    )

    def __init__(self, index: int, raw: Any, start_ns: int) -> None:
        self.index = index
        self.raw = raw
        self.start_ns = start_ns
        self.end_ns = start_ns
        self.outcome: str | None = None
        self.result: Any = None
        self.exception: BaseException | None = None
        self.span: Any = None
        self.token: Any = None
        self.extra: Any = None
        # the record's messaging.message.id once an observer has read it (NOT_READ until then), so the
        # observers after it need not read it again
        self.message_id: Any = NOT_READ
        self.sampled = True

    @property
    def duration_s(self) -> float:
        """Processing time in seconds."""
        return (self.end_ns - self.start_ns) / 1e9

    def settle(self, entry: Any) -> None:
        """Take the outcome from the processed-message tuple when no success/failure handler set it (they were
        overridden without calling ``super()``): a ``("success", result, ...)`` tuple succeeded, anything else
        failed."""
        if self.outcome is None:
            if isinstance(entry, tuple) and entry and entry[0] == "success":
                self.outcome = SUCCESS
                self.result = entry[1] if len(entry) > 1 else None
            else:
                self.outcome = FAILURE


class BatchInfo:
    """What happened to one batch.

    Attributes:
        source: The event source strategy (identifier, destination, attributes of records).
        records: The raw records.
        size: Number of records in the batch.
        destination: The destination shared by all records, or None when they differ.
        lambda_context: The Lambda context given to the processor, if any.
        success_count / failure_count / skipped_count: Set before ``batch_end``.
        entire_batch_failed: Every record failed (or was skipped).
        error: The exception leaving the batch (e.g. BatchProcessingError), if any.
        sampling_rate: ``Telemetry.record_sampling`` of the processor (1.0: every record is recorded).
        unsampled_count: Records left out by sampling that got no record span (the successful ones); set before
            ``batch_end``.
        unsampled_scope: ``(enter, exit)`` an observer may set in ``batch_start``: ``exit(enter())`` brackets the
            handler of every record left out by sampling (tracing makes an unsampled span current there).
    """

    __slots__ = (
        "destination",
        "end_ns",
        "entire_batch_failed",
        "error",
        "extra",
        "failure_count",
        "lambda_context",
        "record_infos",
        "records",
        "sampling_rate",
        "size",
        "skipped_count",
        "source",
        "span",
        "start_ns",
        "success_count",
        "token",
        "unsampled_count",
        "unsampled_scope",
    )

    def __init__(self, source: Source, records: list[Any], lambda_context: Any, start_ns: int) -> None:
        self.source = source
        self.records = records
        self.size = len(records)
        self.lambda_context = lambda_context
        self.start_ns = start_ns
        self.end_ns = start_ns
        self.destination = _shared_destination(source, records)
        self.success_count = 0
        self.failure_count = 0
        self.skipped_count = 0
        self.entire_batch_failed = False
        self.error: BaseException | None = None
        self.record_infos: list[RecordInfo] = []
        self.span: Any = None
        self.token: Any = None
        self.extra: dict[str, Any] = {}
        self.sampling_rate = 1.0
        self.unsampled_count = 0
        self.unsampled_scope: tuple[Callable[[], Any], Callable[[Any], None]] | None = None

    @property
    def duration_s(self) -> float:
        """Batch processing time in seconds."""
        return (self.end_ns - self.start_ns) / 1e9

    def tally(self) -> None:
        """Count outcomes of the records seen so far (called by the processor before ``batch_end``)."""
        infos = self.record_infos
        # in C loops: every outcome that is neither a success nor a skip (None included) counts as a failure
        outcomes = list(map(_OUTCOME, infos))
        success = outcomes.count(SUCCESS)
        skipped = outcomes.count(SKIPPED)
        self.success_count = success
        self.failure_count = len(outcomes) - success
        self.skipped_count = skipped
        size = self.size
        self.entire_batch_failed = size > 0 and success == 0 and len(infos) == size
        if self.sampling_rate < 1.0:
            self.unsampled_count = sum(1 for info in infos if not info.sampled and info.outcome == SUCCESS)


def _shared_destination(source: Source, records: list[Any]) -> str | None:
    if not records:
        return None
    first = source.destination(records[0])
    if len(records) > 1 and getattr(source, "destination_from_arn", False):
        # the destination follows from the source ARN: records sharing the first one's ARN share its destination
        # (one C-level pass; anything else takes the per-record loop)
        try:
            arns = set(map(_GET_ARN, records))
        except Exception:
            arns = None
        if arns is not None and len(arns) == 1:
            arn = next(iter(arns))
            if type(arn) is str and arn:
                return first
    for raw in records[1:]:
        if source.destination(raw) != first:
            return None
    return first


class Observer(Protocol):
    """Receives batch and record events. Implementations may raise; the chain isolates them."""

    def batch_start(self, batch: BatchInfo) -> None:
        """A batch is about to be processed."""

    def record_start(self, batch: BatchInfo, record: RecordInfo) -> None:
        """A record is about to be processed (called in the thread/task that processes it)."""

    def record_success(self, batch: BatchInfo, record: RecordInfo) -> None:
        """A record's handler returned; ``record.result`` holds its value."""

    def record_failure(self, batch: BatchInfo, record: RecordInfo) -> None:
        """A record failed (``outcome="failure"``) or was skipped (``outcome="skipped"``)."""

    def batch_end(self, batch: BatchInfo) -> None:
        """The batch is done; counts are set; ``batch.error`` holds what is raised, if anything."""

    def flush(self, timeout_millis: int) -> None:
        """Export what is buffered, within ``timeout_millis``."""


_F = TypeVar("_F")
_NOOP_HOOKS: set[Any] = set()


def noop_hook(method: _F) -> _F:
    """Mark an observer method as doing nothing, so ``ObserverChain`` never calls it (saves a call per record)."""
    _NOOP_HOOKS.add(method)
    return method


_fault_count = 0
_reported: set[tuple[str, str]] = set()


def telemetry_fault_count() -> int:
    """How many telemetry faults have been caught in this process."""
    return _fault_count


def _fault(observer: object, hook: str) -> None:
    global _fault_count
    _fault_count += 1
    key = (type(observer).__qualname__, hook)
    if key not in _reported:
        _reported.add(key)
        _log.warning(
            "batchlens telemetry fault in %s.%s; processing continues (reported once)",
            key[0],
            hook,
            exc_info=True,
        )


class ObserverChain:
    """Calls each observer in turn; an exception from one is reported and never reaches the processor.

    For each hook the observers to call are picked once, leaving out those whose method is marked with
    :func:`noop_hook`, so a record costs one call per observer that has something to do. The processor's hot
    path (``BasePartialProcessor._run_one``, ``_begin_batch``, ``_end_batch``) walks these per-hook tuples itself,
    with the same isolation, to save a call per hook.
    """

    __slots__ = (
        "_batch_end",
        "_batch_start",
        "_flush",
        "_record_failure",
        "_record_start",
        "_record_success",
        "observers",
    )

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers: tuple[Observer, ...] = tuple(observers)
        forward = self.observers
        backward = tuple(reversed(forward))
        self._batch_start = _calling(forward, "batch_start")
        self._record_start = _calling(forward, "record_start")
        # reverse order, so the observer that opened a span first closes it last
        self._record_success = _calling(backward, "record_success")
        self._record_failure = _calling(backward, "record_failure")
        self._batch_end = _calling(backward, "batch_end")
        self._flush = _calling(forward, "flush")

    def batch_start(self, batch: BatchInfo) -> None:
        for observer in self._batch_start:
            try:
                observer.batch_start(batch)
            except Exception:
                _fault(observer, "batch_start")

    def record_start(self, batch: BatchInfo, record: RecordInfo) -> None:
        for observer in self._record_start:
            try:
                observer.record_start(batch, record)
            except Exception:
                _fault(observer, "record_start")

    def record_success(self, batch: BatchInfo, record: RecordInfo) -> None:
        for observer in self._record_success:
            try:
                observer.record_success(batch, record)
            except Exception:
                _fault(observer, "record_success")

    def record_failure(self, batch: BatchInfo, record: RecordInfo) -> None:
        for observer in self._record_failure:
            try:
                observer.record_failure(batch, record)
            except Exception:
                _fault(observer, "record_failure")

    def batch_end(self, batch: BatchInfo) -> None:
        for observer in self._batch_end:
            try:
                observer.batch_end(batch)
            except Exception:
                _fault(observer, "batch_end")

    def flush(self, timeout_millis: int) -> list[str]:
        """Flush every observer at once, all within one wall-clock deadline ``timeout_millis`` from now.

        Each flush runs on a daemon worker and the caller waits no longer than the deadline, even when an
        exporter never returns (see ``batchlens._telemetry._flush``). A flush that raises is a telemetry fault.

        Returns:
            The names of the flushes cut at the deadline (``tracer_provider``, ``meter_provider``, ``sentry``).
        """
        if not self._flush:
            return []
        from batchlens._telemetry._flush import flush_within, observer_task

        observers = self._flush
        tasks = [observer_task(observer) for observer in observers]

        def fault(index: int, exc: BaseException) -> None:
            try:
                raise exc
            except Exception:
                _fault(observers[index], "flush")

        return flush_within(tasks, int(timeout_millis), on_error=fault)


def _calling(observers: tuple[Observer, ...], hook: str) -> tuple[Observer, ...]:
    """The observers whose ``hook`` does something (its method, looked up on the class, is not a no-op)."""
    return tuple(o for o in observers if getattr(type(o), hook, None) not in _NOOP_HOOKS)


_CURRENT: ContextVar[RecordInfo | None] = ContextVar("batchlens_current_record", default=None)


def current_record() -> RecordInfo | None:
    """The record being processed in this thread/task, when telemetry is on."""
    return _CURRENT.get()
