"""Tests for the tracing observer: batch and record spans, producer links, X-Ray parsing, provider resolution."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode

from _tracing_support import by_message_id, failing_handler, spans_by_kind
from batchlens import (
    BatchProcessingError,
    BatchProcessor,
    EventType,
    Telemetry,
    process_partial_response,
)
from batchlens._telemetry import _providers
from batchlens._telemetry.tracing import TracingObserver
from batchlens.testing._events import (
    dynamodb_event,
    kafka_event,
    kinesis_event,
    lambda_context,
    sqs_event,
)


# -- helpers -----------------------------------------------------------------------------------------------
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
        "aws.sqs.queue.url": "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
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
