"""Record sampling (``Telemetry.record_sampling``): which records get a span, a success log line and capture.

The decision is made per record before its handler runs, from the record's ``messaging.message.id`` alone, so
every process, and every retry of the same message, decides alike:

    sampled  <=>  zlib.crc32(message_id.encode("utf-8", "surrogatepass")) < floor(rate * 2**32)

(CRC-32 as ``zlib`` computes it, an unsigned 32-bit number; it does not depend on ``PYTHONHASHSEED``.) A record
without a message id is always sampled. A record left out runs with no observer told that it started. While its
handler runs, the batch's ``unsampled_scope`` is entered: tracing makes a non-recording, unsampled span current
there, so the spans the handler starts are not recorded either (under the SDK's default, parent-based sampler). If
it succeeds, no observer hears of it at all (metrics count it at batch end from ``BatchInfo.record_infos``). If it
fails, the observers hear of it afterwards, ``record_start`` then ``record_failure``, and tracing gives it a span
with its real start time and duration and no children (``RecordInfo.sampled`` is False for them to tell).
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import TYPE_CHECKING, Any
from zlib import crc32

from batchlens._observer import _CURRENT, FAILURE, SUCCESS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from batchlens._observer import BatchInfo, ObserverChain, RecordInfo

__all__ = ["async_run_unsampled", "keeps", "run_unsampled", "threshold"]

_SCALE = 1 << 32


def threshold(rate: float) -> int | None:
    """The CRC-32 bound below which a record is sampled at ``rate``; None when every record is (``rate`` 1)."""
    if rate >= 1.0:
        return None
    return int(rate * _SCALE)


def keeps(record: RecordInfo, message_id: Any, bound: int) -> bool:
    """Whether the record with ``message_id`` is sampled under ``bound`` (see ``threshold``); notes the answer
    and the message id on ``record``."""
    record.message_id = message_id
    if message_id is None:
        return True
    if type(message_id) is not str:
        message_id = str(message_id)
    if crc32(message_id.encode("utf-8", "surrogatepass")) < bound:
        return True
    record.sampled = False
    return False


def _enter(batch: BatchInfo, record: RecordInfo) -> tuple[Any, Any]:
    """Start the clock and make ``record`` current; enter the batch's scope for left-out records, if any."""
    scope = batch.unsampled_scope
    inner = scope[0]() if scope is not None else None
    record.start_ns = record.end_ns = perf_counter_ns()
    return _CURRENT.set(record), inner


def _leave(batch: BatchInfo, record: RecordInfo, tokens: tuple[Any, Any]) -> None:
    record.end_ns = perf_counter_ns()
    _CURRENT.reset(tokens[0])
    scope = batch.unsampled_scope
    if scope is not None:
        scope[1](tokens[1])


def _aborted(batch: BatchInfo, observer: ObserverChain, record: RecordInfo, tokens: Any, exc: BaseException) -> None:
    """A BaseException left the record's processing (it is re-raised by the caller)."""
    _leave(batch, record, tokens)
    record.outcome = FAILURE
    record.exception = exc
    _report_late(batch, observer, record)


def _done(batch: BatchInfo, observer: ObserverChain, record: RecordInfo, tokens: Any, entry: Any) -> Any:
    _leave(batch, record, tokens)
    if record.outcome != SUCCESS:
        record.settle(entry)
        if record.outcome != SUCCESS:
            _report_late(batch, observer, record)
    return entry


def _report_late(batch: BatchInfo, observer: ObserverChain, record: RecordInfo) -> None:
    """Tell the observers about a left-out record that did not succeed: its start, then its failure."""
    observer.record_start(batch, record)
    observer.record_failure(batch, record)


def run_unsampled(batch: BatchInfo, observer: ObserverChain, record: RecordInfo, process: Callable[[Any], Any]) -> Any:
    """Process a left-out record with ``process`` (the processor's ``_process_record``): no observer runs unless
    it fails. ``_enter``, ``_leave`` and ``_done`` written out: this runs for nearly every record of a sampled
    stream, where each call saved is a share of the per-record cost."""
    scope = batch.unsampled_scope
    inner = scope[0]() if scope is not None else None
    record.start_ns = record.end_ns = perf_counter_ns()
    token = _CURRENT.set(record)
    try:
        entry = process(record.raw)
    except BaseException as exc:
        _aborted(batch, observer, record, (token, inner), exc)
        raise
    record.end_ns = perf_counter_ns()
    _CURRENT.reset(token)
    if scope is not None:
        scope[1](inner)
    if record.outcome != SUCCESS:
        record.settle(entry)
        if record.outcome != SUCCESS:
            _report_late(batch, observer, record)
    return entry


async def async_run_unsampled(
    batch: BatchInfo, observer: ObserverChain, record: RecordInfo, process: Callable[[Any], Awaitable[Any]]
) -> Any:
    """``run_unsampled`` for the async processors (``process`` is ``_async_process_record``)."""
    tokens = _enter(batch, record)
    try:
        entry = await process(record.raw)
    except BaseException as exc:
        _aborted(batch, observer, record, tokens, exc)
        raise
    return _done(batch, observer, record, tokens, entry)
