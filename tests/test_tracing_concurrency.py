"""Tests for record spans under skips (FIFO, stream stop), threads, asyncio, nesting and custom processors."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from _tracing_support import by_message_id, failing_handler, spans_by_kind
from batchlens import (
    AsyncBatchProcessor,
    BasePartialProcessor,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    SqsFifoPartialProcessorAsync,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens.testing._events import (
    kinesis_event,
    sqs_event,
    sqs_fifo_event,
)


# -- helpers -----------------------------------------------------------------------------------------------
# -- FIFO ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("processor_cls", [SqsFifoPartialProcessor, SqsFifoPartialProcessorAsync])
def test_fifo_short_circuited_records_get_error_spans_named_after_the_circuit_breaker(
    telemetry, span_exporter, processor_cls
):
    """After a FIFO failure every later record still gets a span, with error.type the circuit breaker class."""
    event = sqs_fifo_event(["ok", "fail", "ok", "ok"], queue="orders.fifo", groups=1, seed=13)
    processor = processor_cls(telemetry=telemetry)
    if processor_cls is SqsFifoPartialProcessorAsync:

        async def handler(record: Any) -> Any:
            return failing_handler(record)

        async_process_partial_response(event, handler, processor)
    else:
        process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    assert len(records) == 4
    spans = [by_message_id(records)[r["messageId"]] for r in event["Records"]]
    assert spans[0].status.status_code is StatusCode.UNSET
    assert spans[1].attributes["error.type"] == "ValueError"
    for skipped in spans[2:]:
        assert skipped.attributes["error.type"] == "batchlens.exceptions.SQSFifoCircuitBreakerError"
        assert skipped.status.status_code is StatusCode.ERROR
        assert skipped.status.description == "A previous record failed processing"
        assert not [e for e in skipped.events if e.name == "exception"]
        assert skipped.parent.span_id == batch.context.span_id
    for span in spans:
        assert span.attributes["batchlens.sqs.message_group_id"] == "group-0"
    assert batch.attributes["batchlens.batch.failure_count"] == 3


def test_fifo_group_skip_uses_the_group_circuit_breaker_name(telemetry, span_exporter):
    """With skip_group_on_error, skipped records of the failed group name the group circuit breaker."""
    event = sqs_fifo_event(["fail", "ok", "ok", "ok"], queue="orders.fifo", groups=2, seed=14)
    processor = SqsFifoPartialProcessor(telemetry=telemetry, skip_group_on_error=True)

    process_partial_response(event, failing_handler, processor)

    _, records = spans_by_kind(span_exporter)
    spans = [by_message_id(records)[r["messageId"]] for r in event["Records"]]
    assert [s.attributes.get("error.type") for s in spans] == [
        "ValueError",
        None,
        "batchlens.exceptions.SQSFifoMessageGroupCircuitBreakerError",
        None,
    ]


def test_stream_stop_policy_skipped_records_get_spans(telemetry, span_exporter):
    """Records skipped by stop_on_first_failure get spans with error.type StreamCircuitBreakerError."""
    event = kinesis_event([{"n": 1}, "fail", {"n": 3}], seed=15)
    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=telemetry, stop_on_first_failure=True)

    def handler(record: Any) -> None:
        if b"fail" in record.kinesis.data_as_bytes():
            raise RuntimeError("bad")

    process_partial_response(event, handler, processor)

    _, records = spans_by_kind(span_exporter)
    spans = [by_message_id(records)[r["kinesis"]["sequenceNumber"]] for r in event["Records"]]
    assert [s.attributes.get("error.type") for s in spans] == [
        None,
        "RuntimeError",
        "batchlens.exceptions.StreamCircuitBreakerError",
    ]


# -- concurrency ---------------------------------------------------------------------------------------------
async def test_async_concurrent_records_each_get_their_own_current_span(telemetry, span_exporter, tracer_provider):
    """With 48 concurrent async records, spans the handler creates nest under that record's own span."""
    app_tracer = tracer_provider.get_tracer("app")
    event = sqs_event(count=48, fail_rate=0.25, queue="orders", seed=16)
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=telemetry)
    in_flight = 0
    peak = 0

    async def handler(record: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        with app_tracer.start_as_current_span(f"work {record.message_id}"):
            await asyncio.sleep(0.005)
            assert trace.get_current_span().is_recording()
        in_flight -= 1
        return failing_handler(record)

    # run the sync entry point in a thread: it starts its own event loop
    await asyncio.to_thread(async_process_partial_response, event, handler, processor)

    assert peak > 1
    batch, records = spans_by_kind(span_exporter)
    assert len(records) == 48
    spans = by_message_id(records)
    work = [s for s in span_exporter.get_finished_spans() if s.name.startswith("work ")]
    assert len(work) == 48
    for inner in work:
        owner = spans[inner.name.removeprefix("work ")]
        assert inner.parent.span_id == owner.context.span_id
    for span in records:
        assert span.parent.span_id == batch.context.span_id
    assert sum(1 for s in records if s.status.status_code is StatusCode.ERROR) == 12


def test_threaded_records_nest_under_the_batch_and_handler_spans_under_the_record(
    telemetry, span_exporter, tracer_provider
):
    """With max_workers=4, record spans are children of the batch span and handler spans of the record span."""
    app_tracer = tracer_provider.get_tracer("app")
    event = sqs_event(count=24, fail_rate=0.25, queue="orders", seed=17)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry, max_workers=4)
    threads: set[int] = set()
    barrier = threading.Barrier(4, timeout=5)

    def handler(record: Any) -> Any:
        threads.add(threading.get_ident())
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        with app_tracer.start_as_current_span(f"work {record.message_id}"):
            pass
        return failing_handler(record)

    process_partial_response(event, handler, processor)

    assert len(threads) > 1
    batch, records = spans_by_kind(span_exporter)
    assert len(records) == 24
    spans = by_message_id(records)
    for inner in (s for s in span_exporter.get_finished_spans() if s.name.startswith("work ")):
        assert inner.parent.span_id == spans[inner.name.removeprefix("work ")].context.span_id
    for span in records:
        assert span.parent.span_id == batch.context.span_id


def test_handler_spans_nest_under_the_record_span(telemetry, span_exporter, tracer_provider):
    """A span started by a synchronous handler is a child of that record's span."""
    app_tracer = tracer_provider.get_tracer("app")
    event = sqs_event(count=2, seed=18)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    def handler(record: Any) -> None:
        with app_tracer.start_as_current_span(f"work {record.message_id}"):
            pass

    process_partial_response(event, handler, processor)

    _, records = spans_by_kind(span_exporter)
    spans = by_message_id(records)
    work = [s for s in span_exporter.get_finished_spans() if s.name.startswith("work ")]
    assert len(work) == 2
    for inner in work:
        assert inner.parent.span_id == spans[inner.name.removeprefix("work ")].context.span_id


def test_batch_span_is_a_child_of_the_current_span_and_the_context_is_restored(
    telemetry, span_exporter, tracer_provider
):
    """The batch span nests under the caller's current span (e.g. the invocation), which is current again after."""
    app_tracer = tracer_provider.get_tracer("app")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with app_tracer.start_as_current_span("invocation") as invocation:
        process_partial_response(sqs_event(count=2, fail_rate=0.5, seed=19), failing_handler, processor)
        assert trace.get_current_span() is invocation

    assert trace.get_current_span() is trace.INVALID_SPAN
    batch, _ = spans_by_kind(span_exporter)
    assert batch.parent.span_id == invocation.get_span_context().span_id


class _CustomProcessor(BasePartialProcessor):
    """A processor written against the base class, the way the Powertools docs show."""

    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__(telemetry=telemetry)
        self.stored: list[Any] = []

    def _prepare(self) -> None:
        self.success_messages.clear()
        self.fail_messages.clear()
        self.exceptions.clear()

    def _clean(self) -> None:
        pass

    def _process_record(self, record: Any) -> Any:
        try:
            result = self.handler(record)
        except Exception as exc:
            return self.failure_handler(record, (type(exc), exc, exc.__traceback__))
        self.stored.append(result)
        return self.success_handler(record, result)

    async def _async_process_record(self, record: Any) -> Any:
        raise NotImplementedError


def test_custom_processor_gets_spans_without_code(telemetry, span_exporter):
    """A processor built on BasePartialProcessor emits the batch span and record spans too."""
    event = sqs_event(["ok", "fail", "ok"], queue="orders", seed=20)
    processor = _CustomProcessor(telemetry)

    def handler(raw: dict[str, Any]) -> str:
        if "fail" in raw["body"]:
            raise KeyError("missing")
        return raw["messageId"]

    with processor(event["Records"], handler):
        processed = processor.process()

    assert [entry[0] for entry in processed] == ["success", "fail", "success"]
    batch, records = spans_by_kind(span_exporter)
    assert batch.name == "process orders"
    assert batch.attributes["batchlens.batch.failure_count"] == 1
    spans = [by_message_id(records)[r["messageId"]] for r in event["Records"]]
    assert [s.attributes.get("error.type") for s in spans] == [None, "KeyError", None]
    assert all(s.parent.span_id == batch.context.span_id for s in spans)


def test_base_exception_from_the_handler_propagates_and_every_started_span_ends(telemetry, span_exporter):
    """A KeyboardInterrupt in the handler propagates, yet the batch span and started record spans are ended."""
    event = sqs_event(count=4, seed=21)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    calls = 0

    def handler(record: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_partial_response(event, handler, processor)

    assert trace.get_current_span() is trace.INVALID_SPAN
    batch, records = spans_by_kind(span_exporter)
    assert len(records) == 2
    interrupted = by_message_id(records)[event["Records"][1]["messageId"]]
    assert interrupted.attributes["error.type"] == "KeyboardInterrupt"
    assert interrupted.status.status_code is StatusCode.ERROR
    assert batch.end_time is not None
    assert batch.attributes["error.type"] == "KeyboardInterrupt"


async def test_base_exception_in_async_handler_ends_every_span(telemetry, span_exporter):
    """A BaseException in one async record cancels the others; every span that started still ends.

    Records whose task had not started yet are cancelled before their handler runs (as a sync batch stops at
    the interrupted record), so they get no span.
    """
    event = sqs_event(count=5, seed=22)
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=telemetry)
    ran: list[str] = []

    class Stop(BaseException):
        pass

    async def handler(record: Any) -> None:
        ran.append(record.message_id)
        if record.message_id == event["Records"][2]["messageId"]:
            raise Stop
        await asyncio.sleep(1)

    with pytest.raises(Stop):
        await asyncio.to_thread(async_process_partial_response, event, handler, processor)

    started = [r["messageId"] for r in event["Records"][:3]]
    assert ran == started
    _, records = spans_by_kind(span_exporter)
    assert sorted(str(s.attributes["messaging.message.id"]) for s in records) == sorted(started)
    assert all(s.end_time is not None for s in records)
    error_types = sorted(str(s.attributes["error.type"]) for s in records)
    assert error_types == ["asyncio.exceptions.CancelledError"] * 2 + [f"{__name__}.{Stop.__qualname__}"]
