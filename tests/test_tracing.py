"""Tests for the tracing observer: batch and record spans, producer links, X-Ray parsing, provider resolution."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import traceback
import types
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode, TraceFlags

from batchlens import (
    AsyncBatchProcessor,
    BasePartialProcessor,
    BatchProcessingError,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    SqsFifoPartialProcessorAsync,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens._telemetry import _providers
from batchlens._telemetry._xray import parse_xray_header
from batchlens._telemetry.tracing import TracingObserver, format_exception, producer_contexts
from batchlens.testing._events import (
    dynamodb_event,
    kafka_event,
    kinesis_event,
    lambda_context,
    sqs_event,
    sqs_fifo_event,
)

TRACE_HEX = "5759e988bd862e3fe1be46a994272793"
PARENT_HEX = "53995c3f42cd8ad8"
XRAY = f"Root=1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]};Parent={PARENT_HEX};Sampled=1"
W3C_TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
W3C_SPAN_HEX = "b7ad6b7169203331"
TRACEPARENT = f"00-{W3C_TRACE_HEX}-{W3C_SPAN_HEX}-01"


# -- helpers -----------------------------------------------------------------------------------------------
def failing_handler(record: Any) -> Any:
    if "fail" in record.body:
        raise ValueError(f"cannot process {record.message_id}")
    return {"id": record.message_id}


def spans_by_kind(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """Split finished spans into the one batch span (no batchlens parent) and the record spans."""
    spans = exporter.get_finished_spans()
    batch = [s for s in spans if "messaging.batch.message_count" in (s.attributes or {})]
    assert len(batch) == 1, [s.name for s in spans]
    records = [s for s in spans if "messaging.message.id" in (s.attributes or {})]
    return batch[0], records


def by_message_id(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {str(s.attributes["messaging.message.id"]): s for s in spans}  # type: ignore[index]


def with_w3c(event: dict[str, Any], traceparent: str = TRACEPARENT, tracestate: str | None = None) -> dict[str, Any]:
    for record in event["Records"]:
        attributes = {"traceparent": {"stringValue": traceparent, "dataType": "String"}}
        if tracestate is not None:
            attributes["tracestate"] = {"stringValue": tracestate, "dataType": "String"}
        record["messageAttributes"] = attributes
    return event


class RecordingSampler(Sampler):
    """Samples everything and remembers the attributes each span had when it started."""

    def __init__(self) -> None:
        self.seen: dict[str, list[dict[str, Any]]] = {}

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):  # type: ignore[no-untyped-def]
        self.seen.setdefault(name, []).append({"attributes": dict(attributes or {}), "links": list(links or ())})
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RecordingSampler"


# -- span layout -------------------------------------------------------------------------------------------
def test_sqs_batch_emits_one_batch_span_and_one_child_span_per_record(telemetry, span_exporter):
    """A batch yields a CONSUMER batch span named after the queue and one CONSUMER child span per record."""
    event = sqs_event(count=5, queue="orders", seed=1)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    assert len(span_exporter.get_finished_spans()) == 6
    assert batch.name == "process orders"
    assert batch.kind is SpanKind.CONSUMER
    assert batch.parent is None
    assert len(records) == 5
    for span in records:
        assert span.name == "process orders"
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is not None
        assert span.parent.span_id == batch.context.span_id
        assert span.context.trace_id == batch.context.trace_id
    assert [s.attributes["messaging.message.id"] for s in sorted(records, key=lambda s: s.start_time)] == [
        r["messageId"] for r in event["Records"]
    ]


def test_batch_span_attributes_counts_and_unset_status_on_partial_failure(telemetry, span_exporter):
    """The batch span carries the messaging attributes, the message count and the outcome counts."""
    event = sqs_event(count=10, fail_rate=0.3, queue="orders", seed=2)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, _ = spans_by_kind(span_exporter)
    assert dict(batch.attributes) == {
        "messaging.system": "aws_sqs",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "orders",
        "messaging.batch.message_count": 10,
        "batchlens.batch.failure_count": 3,
        "batchlens.batch.success_count": 7,
    }
    assert batch.status.status_code is StatusCode.UNSET


def test_record_span_attributes_for_sqs(telemetry, span_exporter):
    """An SQS record span has the semconv attributes, the message id and the receive count as an int."""
    event = sqs_event(count=1, queue="orders", seed=3)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "4"
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    _, (span,) = spans_by_kind(span_exporter)
    assert span.attributes["messaging.system"] == "aws_sqs"
    assert span.attributes["messaging.operation.name"] == "process"
    assert span.attributes["messaging.operation.type"] == "process"
    assert span.attributes["messaging.destination.name"] == "orders"
    assert span.attributes["messaging.message.id"] == event["Records"][0]["messageId"]
    assert span.attributes["batchlens.sqs.receive_count"] == 4
    assert "messaging.batch.message_count" not in span.attributes
    assert "batchlens.sqs.message_group_id" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


def test_attributes_are_given_to_the_sampler_at_span_start(span_exporter, meter_provider):
    """Samplers see every record and batch attribute when the span starts, not later."""
    sampler = RecordingSampler()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    telemetry = Telemetry(tracer_provider=provider, meter_provider=meter_provider, logging=False)
    event = sqs_event(count=3, queue="orders", seed=4, trace_header=True)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    started = sampler.seen["process orders"]
    assert len(started) == 4
    batch_start = started[0]
    assert batch_start["attributes"]["messaging.batch.message_count"] == 3
    assert batch_start["attributes"]["messaging.destination.name"] == "orders"
    assert len(batch_start["links"]) == 3
    ids = {r["messageId"] for r in event["Records"]}
    record_starts = started[1:]
    assert {s["attributes"]["messaging.message.id"] for s in record_starts} == ids
    for record_start in record_starts:
        assert record_start["attributes"]["messaging.system"] == "aws_sqs"
        assert record_start["attributes"]["batchlens.sqs.receive_count"] == 1
        assert len(record_start["links"]) == 1


def test_failed_record_span_has_error_status_type_and_exception_event(telemetry, span_exporter):
    """A failed record's span has status ERROR with the message, error.type, and an exception event."""
    event = sqs_event(["ok", "fail me"], queue="orders", seed=5)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    _, records = spans_by_kind(span_exporter)
    spans = by_message_id(records)
    failed = spans[event["Records"][1]["messageId"]]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == f"cannot process {event['Records'][1]['messageId']}"
    assert failed.attributes["error.type"] == "ValueError"
    (exception_event,) = [e for e in failed.events if e.name == "exception"]
    assert exception_event.attributes["exception.type"] == "ValueError"
    assert exception_event.attributes["exception.message"] == failed.status.description
    stacktrace = exception_event.attributes["exception.stacktrace"]
    assert stacktrace.startswith("Traceback (most recent call last):\n")
    assert ", in failing_handler\n" in stacktrace
    assert stacktrace.endswith(f"ValueError: {failed.status.description}\n")
    ok = spans[event["Records"][0]["messageId"]]
    assert ok.status.status_code is StatusCode.UNSET
    assert "error.type" not in ok.attributes
    assert not ok.events


def test_entirely_failed_batch_marks_batch_span_as_error(telemetry, span_exporter):
    """When every record fails the batch span's status is ERROR (and BatchProcessingError still raises)."""
    event = sqs_event(["fail 1", "fail 2"], queue="orders", seed=6)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with pytest.raises(BatchProcessingError):
        process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    assert len(records) == 2
    assert batch.status.status_code is StatusCode.ERROR
    assert batch.attributes["batchlens.batch.failure_count"] == 2
    assert batch.attributes["batchlens.batch.success_count"] == 0
    assert batch.attributes["error.type"] == "batchlens.exceptions.BatchProcessingError"


def test_entirely_failed_batch_without_raising_is_still_an_error(telemetry, span_exporter):
    """With raise_on_entire_batch_failure=False an all-failed batch span is still ERROR."""
    event = sqs_event(["fail 1", "fail 2"], seed=7)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry, raise_on_entire_batch_failure=False)

    process_partial_response(event, failing_handler, processor)

    batch, _ = spans_by_kind(span_exporter)
    assert batch.status.status_code is StatusCode.ERROR
    assert "error.type" not in batch.attributes


def test_kinesis_spans(telemetry, span_exporter):
    """Kinesis record spans use aws.kinesis, the stream name, the sequence number and the shard id."""
    event = kinesis_event(count=2, stream="clicks", shard_id="shardId-000000000007", seed=8)
    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=telemetry)

    process_partial_response(event, lambda record: None, processor)

    batch, records = spans_by_kind(span_exporter)
    assert batch.name == "process clicks"
    assert batch.attributes["messaging.system"] == "aws.kinesis"
    spans = by_message_id(records)
    for raw in event["Records"]:
        span = spans[raw["kinesis"]["sequenceNumber"]]
        assert span.name == "process clicks"
        assert span.attributes["messaging.destination.name"] == "clicks"
        assert span.attributes["messaging.destination.partition.id"] == "shardId-000000000007"


@pytest.mark.parametrize(("event_name", "operation"), [("INSERT", "insert"), ("MODIFY", "edit"), ("REMOVE", "delete")])
def test_dynamodb_spans(telemetry, span_exporter, event_name, operation):
    """DynamoDB record spans use aws.dynamodb, the table name, the sequence number and the document operation."""
    event = dynamodb_event(count=2, table="orders-table", event_name=event_name, seed=9)
    processor = BatchProcessor(EventType.DynamoDBStreams, telemetry=telemetry)

    process_partial_response(event, lambda record: None, processor)

    batch, records = spans_by_kind(span_exporter)
    assert batch.name == "process orders-table"
    spans = by_message_id(records)
    for raw in event["Records"]:
        span = spans[raw["dynamodb"]["SequenceNumber"]]
        assert span.attributes["messaging.system"] == "aws.dynamodb"
        assert span.attributes["messaging.destination.name"] == "orders-table"
        assert span.attributes["faas.document.operation"] == operation


def test_kafka_spans(telemetry, span_exporter):
    """Kafka record spans use kafka, the topic, topic-partition@offset ids and the partition id."""
    event = kafka_event(count=4, topic="payments", partitions=2, seed=10)
    processor = BatchProcessor(EventType.Kafka, telemetry=telemetry)

    process_partial_response(event, lambda record: None, processor)

    batch, records = spans_by_kind(span_exporter)
    assert batch.name == "process payments"
    assert batch.attributes["messaging.system"] == "kafka"
    spans = by_message_id(records)
    for partition_records in event["records"].values():
        for raw in partition_records:
            span = spans[f"payments-{raw['partition']}@{raw['offset']}"]
            assert span.attributes["messaging.destination.partition.id"] == str(raw["partition"])
            assert span.attributes["messaging.destination.name"] == "payments"


def test_mixed_destinations_name_each_record_span_after_its_own_queue(telemetry, span_exporter):
    """When records come from different queues the batch span names the system and omits the destination."""
    event = sqs_event(count=1, queue="queue-a", seed=11)
    other = sqs_event(count=1, queue="queue-b", seed=12)
    event["Records"] += other["Records"]
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    assert batch.name == "process aws_sqs"
    assert "messaging.destination.name" not in batch.attributes
    assert sorted((s.name, s.attributes["messaging.destination.name"]) for s in records) == [
        ("process queue-a", "queue-a"),
        ("process queue-b", "queue-b"),
    ]


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


# -- producer links --------------------------------------------------------------------------------------------
def test_xray_trace_header_links_record_and_batch_spans(telemetry, span_exporter):
    """AWSTraceHeader yields a link on the record span and on the batch span, with messaging.message.id."""
    event = sqs_event(count=2, seed=23)
    event["Records"][0]["attributes"]["AWSTraceHeader"] = XRAY
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    message_id = event["Records"][0]["messageId"]
    (batch_link,) = batch.links
    assert format(batch_link.context.trace_id, "032x") == TRACE_HEX
    assert format(batch_link.context.span_id, "016x") == PARENT_HEX
    assert batch_link.context.is_remote
    assert batch_link.attributes["messaging.message.id"] == message_id
    spans = by_message_id(records)
    (record_link,) = spans[message_id].links
    assert record_link.context.trace_id == int(TRACE_HEX, 16)
    assert not spans[event["Records"][1]["messageId"]].links
    # links do not make the producer the parent
    assert spans[message_id].context.trace_id == batch.context.trace_id != int(TRACE_HEX, 16)


def test_w3c_traceparent_in_message_attributes_links_spans(telemetry, span_exporter):
    """A W3C traceparent message attribute is extracted with the global propagator into links."""
    event = with_w3c(sqs_event(count=2, seed=24), tracestate="vendor=value")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    assert [link.attributes["messaging.message.id"] for link in batch.links] == [
        r["messageId"] for r in event["Records"]
    ]
    for span in records:
        (link,) = span.links
        assert format(link.context.trace_id, "032x") == W3C_TRACE_HEX
        assert format(link.context.span_id, "016x") == W3C_SPAN_HEX
        assert link.context.trace_state.get("vendor") == "value"
        assert not link.attributes  # the record span carries messaging.message.id itself


def test_both_header_kinds_give_two_links_and_identical_contexts_one(telemetry, span_exporter):
    """A record with both an X-Ray header and a different traceparent gets two links; the same context once."""
    event = with_w3c(sqs_event(count=2, seed=25))
    event["Records"][0]["attributes"]["AWSTraceHeader"] = XRAY
    same = f"Root=1-{W3C_TRACE_HEX[:8]}-{W3C_TRACE_HEX[8:]};Parent={W3C_SPAN_HEX};Sampled=1"
    event["Records"][1]["attributes"]["AWSTraceHeader"] = same
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    spans = by_message_id(records)
    first = spans[event["Records"][0]["messageId"]]
    assert {format(link.context.trace_id, "032x") for link in first.links} == {TRACE_HEX, W3C_TRACE_HEX}
    assert len(spans[event["Records"][1]["messageId"]].links) == 1
    assert len(batch.links) == 3


def test_batch_links_are_capped_at_the_link_limit(span_exporter, tracer_provider, monkeypatch):
    """The batch span gets at most OTEL_SPAN_LINK_COUNT_LIMIT links; record spans keep theirs."""
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "3")
    telemetry = Telemetry(tracer_provider=tracer_provider, metrics=False, logging=False)
    event = sqs_event(count=6, seed=26, trace_header=True)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    assert len(batch.links) == 3
    assert [link.attributes["messaging.message.id"] for link in batch.links] == [
        r["messageId"] for r in event["Records"][:3]
    ]
    assert all(len(s.links) == 1 for s in records)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8;Sampled=1",  # 23 hex digits
        "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",  # unknown version
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",  # no parent
        "Parent=53995c3f42cd8ad8;Sampled=1",  # no root
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad;Sampled=1",  # short parent
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0x995c3f42cd8ad8;Sampled=1",  # 0x prefix
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f_2cd8ad8;Sampled=1",  # underscore
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=zz995c3f42cd8ad8;Sampled=1",
        "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8;Sampled=1",  # zero trace id
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000;Sampled=1",  # zero span id
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Root=x",  # later bad root
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=" + "a" * 3000,
    ],
)
def test_malformed_xray_headers_are_ignored(header):
    """Malformed X-Ray headers parse to None instead of raising."""
    assert parse_xray_header(header) is None


@pytest.mark.parametrize(
    ("header", "sampled"),
    [
        (XRAY, True),
        (f"Sampled=0;Parent={PARENT_HEX};Root=1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]}", False),
        (
            f" Root = 1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]} ; Parent={PARENT_HEX} ;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
            True,
        ),
        (f"Root=1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]};Parent={PARENT_HEX.upper()}", False),
        (
            f"Self=1-67891234-abcdef012345678912345678;Root=1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]};Parent={PARENT_HEX};Sampled=?",
            False,
        ),
    ],
)
def test_valid_xray_headers_parse_in_any_field_order(header, sampled):
    """Valid headers parse regardless of field order, spaces, case of hex digits and extra fields."""
    context = parse_xray_header(header)
    assert context is not None
    assert format(context.trace_id, "032x") == TRACE_HEX
    assert format(context.span_id, "016x") == PARENT_HEX
    assert context.is_remote
    assert context.trace_flags.sampled is sampled
    assert context.trace_flags == (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=50), st.integers(), st.none()))
def test_xray_parser_never_raises(header):
    """Arbitrary input never makes the X-Ray parser raise."""
    result = parse_xray_header(header)
    assert result is None or result.is_valid


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Root", "Parent", "Sampled", "Lineage", "Self", "root", ""]).flatmap(
            lambda key: st.tuples(st.just(key), st.text(alphabet="0123456789abcdef-=; x", max_size=40))
        ),
        max_size=6,
    )
)
def test_xray_parser_never_raises_on_header_like_input(fields):
    """Header-shaped input with arbitrary field values never makes the parser raise."""
    header = ";".join(f"{k}={v}" for k, v in fields)
    result = parse_xray_header(header)
    assert result is None or result.is_valid


def test_malformed_headers_in_a_batch_do_not_change_processing(telemetry, span_exporter):
    """Records with malformed X-Ray and W3C headers are processed normally, with no links."""
    event = with_w3c(sqs_event(count=3, seed=27), traceparent="00-zz-not-a-context")
    for record in event["Records"]:
        record["attributes"]["AWSTraceHeader"] = "Root=broken;Parent=;Sampled=yes"
    event["Records"][2]["messageAttributes"] = {"traceparent": "not a mapping"}
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    response = process_partial_response(event, failing_handler, processor)

    assert response == {"batchItemFailures": []}
    batch, records = spans_by_kind(span_exporter)
    assert len(records) == 3
    assert not batch.links
    assert all(not s.links for s in records)


def test_producer_contexts_dedupes_identical_contexts():
    """producer_contexts returns one context when the X-Ray and W3C headers name the same span."""
    same = f"Root=1-{W3C_TRACE_HEX[:8]}-{W3C_TRACE_HEX[8:]};Parent={W3C_SPAN_HEX};Sampled=1"
    assert len(producer_contexts(same, {"traceparent": TRACEPARENT})) == 1
    assert len(producer_contexts(XRAY, {"traceparent": TRACEPARENT})) == 2
    assert producer_contexts(None, {"tracestate": "a=b"}) == []
    assert producer_contexts(None, None) == []


def test_w3c_extraction_ignores_the_current_span(telemetry, tracer_provider):
    """A carrier without traceparent yields no context even while a span is current."""
    with tracer_provider.get_tracer("app").start_as_current_span("current"):
        assert producer_contexts(None, {"tracestate": "a=b"}) == []


# -- exception formatting ---------------------------------------------------------------------------------------
def _raise_plain() -> None:
    raise ValueError("plain failure")


def _raise_from() -> None:
    try:
        _raise_plain()
    except ValueError as exc:
        raise KeyError("wrapped") from exc


def _raise_during() -> None:
    try:
        _raise_plain()
    except ValueError:
        {}["missing"]


def _raise_from_none() -> None:
    try:
        _raise_plain()
    except ValueError:
        raise RuntimeError("context hidden") from None


def _raise_with_note() -> None:
    error = TypeError("noted")
    error.add_note("first note\nsecond line")
    raise error


class _CustomError(Exception):
    pass


def _raise_custom() -> None:
    raise _CustomError()


@pytest.mark.parametrize(
    "raiser", [_raise_plain, _raise_from, _raise_during, _raise_from_none, _raise_with_note, _raise_custom]
)
def test_format_exception_matches_the_interpreter_without_carets(raiser):
    """The cheap formatter prints what traceback.format_exception prints, minus the column caret lines."""
    try:
        raiser()
    except Exception as exc:
        caught = exc

    expected = "".join(traceback.format_exception(type(caught), caught, caught.__traceback__))
    expected = "".join(line for line in expected.splitlines(True) if not re.fullmatch(r"\s*[\^~]+\s*", line))
    assert format_exception(caught) == expected


def test_format_exception_survives_cycles_and_unprintable_exceptions():
    """Cyclic exception chains terminate and an exception whose str() raises is still formatted."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    first, second = ValueError("a"), Unprintable()
    first.__context__, second.__context__ = second, first

    text = format_exception(second)

    assert "ValueError: a" in text
    last_line = text.splitlines()[-1]
    assert last_line.startswith("test_tracing.")
    assert "Unprintable: <" in last_line
    assert last_line.endswith("Unprintable: str() failed>")


# -- response capture hook ---------------------------------------------------------------------------------------
def test_captured_response_attributes_go_on_successful_record_spans(span_exporter, tracer_provider, monkeypatch):
    """The observer asks the capture module for attributes of each successful result, sharing one batch budget."""
    calls: list[tuple[Any, Any]] = []
    budgets: list[object] = []

    class FakeCapture:
        def __init__(self, telemetry: Telemetry) -> None:
            self.telemetry = telemetry

        def new_budget(self) -> object:
            budget = object()
            budgets.append(budget)
            return budget

        def attributes(self, value: Any, budget: object) -> dict[str, Any]:
            calls.append((value, budget))
            return {"test.captured": repr(value)} if value is not None else {}

    module = types.ModuleType("batchlens._telemetry.capture")
    module.ResponseCapture = FakeCapture  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "batchlens._telemetry.capture", module)
    telemetry = Telemetry(tracer_provider=tracer_provider, metrics=False, logging=False, capture_response=True)
    event = sqs_event(["a", "fail", "b"], seed=28)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    assert len(budgets) == 1
    assert [value for value, _ in calls] == [
        {"id": event["Records"][0]["messageId"]},
        {"id": event["Records"][2]["messageId"]},
    ]
    assert all(budget is budgets[0] for _, budget in calls)
    _, records = spans_by_kind(span_exporter)
    spans = by_message_id(records)
    assert spans[event["Records"][0]["messageId"]].attributes["test.captured"] == repr(calls[0][0])
    assert "test.captured" not in spans[event["Records"][1]["messageId"]].attributes


def test_capture_off_never_loads_the_capture_module(tracer_provider, monkeypatch):
    """With capture_response off the observer has no capture step."""
    observer = TracingObserver(Telemetry(tracer_provider=tracer_provider, capture_response=False))
    assert observer._capture is None


# -- providers -----------------------------------------------------------------------------------------------------
def test_without_an_sdk_no_span_work_is_done(span_exporter):
    """With a no-op tracer provider the observer keeps no per-batch state and processing is unchanged."""
    telemetry = Telemetry(tracer_provider=trace.NoOpTracerProvider(), metrics=False, logging=False)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    seen: list[object] = []

    def handler(record: Any) -> Any:
        seen.append(trace.get_current_span())
        return failing_handler(record)

    response = process_partial_response(sqs_event(count=3, fail_rate=0.34, seed=29), handler, processor)

    assert len(response["batchItemFailures"]) == 1
    assert seen == [trace.INVALID_SPAN] * 3
    assert not span_exporter.get_finished_spans()


def test_override_supplies_providers_resolved_at_batch_start(span_exporter, tracer_provider):
    """A processor built before override() uses the overriding provider for batches run inside it."""
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry(metrics=False, logging=False))

    with _providers.override(tracer_provider=tracer_provider):
        process_partial_response(sqs_event(count=2, seed=30), failing_handler, processor)
    assert len(span_exporter.get_finished_spans()) == 3


def test_injected_provider_wins_over_override_and_overrides_nest(tracer_provider, span_exporter):
    """Telemetry's provider beats override(); nested overrides restore the outer one on exit."""
    other_exporter = InMemorySpanExporter()
    other = TracerProvider()
    other.add_span_processor(SimpleSpanProcessor(other_exporter))
    injected = Telemetry(tracer_provider=tracer_provider)
    plain = Telemetry()

    with _providers.override(tracer_provider=other):
        assert _providers.tracer_provider(injected) is tracer_provider
        assert _providers.tracer_provider(plain) is other
        with _providers.override(tracer_provider=tracer_provider):
            assert _providers.tracer_provider(plain) is tracer_provider
        assert _providers.tracer_provider(plain) is other
    assert _providers.tracer_provider(plain) is trace.get_tracer_provider()


def test_link_limit_reads_the_environment(monkeypatch):
    """span_link_limit follows OTEL_SPAN_LINK_COUNT_LIMIT and falls back to 128 for unusable values."""
    assert _providers.span_link_limit() == 128
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "7")
    assert _providers.span_link_limit() == 7
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "lots")
    assert _providers.span_link_limit() == 128


class _FlushRecorder(SpanProcessor):
    def __init__(self) -> None:
        self.timeouts: list[int] = []

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.timeouts.append(timeout_millis)
        return True


def test_flush_forces_the_tracer_provider_within_the_timeout(tracer_provider):
    """With a Lambda context the processor flushes the tracer provider, bounded by the remaining time."""
    recorder = _FlushRecorder()
    tracer_provider.add_span_processor(recorder)
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry(tracer_provider=tracer_provider, metrics=False))

    process_partial_response(
        sqs_event(count=1, seed=31), failing_handler, processor, lambda_context(remaining_ms=2300, frozen=True)
    )

    # 2300 ms left minus the 300 ms safety margin; the SDK deducts time already spent flushing
    (timeout,) = recorder.timeouts
    assert 1900 <= timeout <= 2000


def test_tracer_is_cached_per_provider(tracer_provider):
    """The observer asks a provider for its tracer once, not per batch."""
    calls: list[str] = []

    class CountingProvider(TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(args[0])
            return super().get_tracer(*args, **kwargs)

    provider = CountingProvider()
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(tracer_provider=provider, metrics=False, logging=False)
    )
    for seed in range(3):
        process_partial_response(sqs_event(count=2, seed=seed), failing_handler, processor)
    assert calls == ["batchlens"]
