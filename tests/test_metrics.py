"""Tests for the metrics observer: counters, histograms, batch outcomes, aggregation and provider handling."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import metrics
from opentelemetry.metrics import NoOpMeter, NoOpMeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from batchlens import (
    BatchProcessingError,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    Telemetry,
    process_partial_response,
)
from batchlens._observer import BatchInfo
from batchlens._sources import SQS
from batchlens._telemetry.metrics import BATCH_SIZE_BUCKETS, DURATION_BUCKETS, MetricsObserver, _histogram
from batchlens.testing._events import kinesis_event, lambda_context, sqs_event, sqs_fifo_event


# -- helpers -----------------------------------------------------------------------------------------------
def metric(reader: InMemoryMetricReader, name: str) -> Any:
    data = reader.get_metrics_data()
    if data is None:
        return None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for item in scope_metrics.metrics:
                if item.name == name:
                    assert scope_metrics.scope.name == "batchlens"
                    return item
    return None


def points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
    """Data points of a metric keyed by their attribute set."""
    item = metric(reader, name)
    assert item is not None, f"metric {name} was not recorded"
    return {frozenset(p.attributes.items()): p for p in item.data.data_points}


def attrs(**values: Any) -> frozenset[tuple[str, Any]]:
    return frozenset((k.replace("__", "."), v) for k, v in values.items())


SQS_ORDERS = {"messaging.system": "aws_sqs", "messaging.destination.name": "orders"}


def key(extra: dict[str, Any] | None = None, **base: Any) -> frozenset[tuple[str, Any]]:
    values = dict(SQS_ORDERS)
    values.update(base)
    values.update(extra or {})
    return frozenset(values.items())


def handler(record: Any) -> Any:
    if "fail" in record.body:
        raise ValueError("boom")
    if "missing" in record.body:
        raise KeyError("k")
    return record.message_id


class RecordingInstrument:
    def __init__(self, calls: list[tuple[str, float, dict[str, Any]]], name: str) -> None:
        self.calls = calls
        self.name = name

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self.calls.append((self.name, amount, dict(attributes or {})))

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self.calls.append((self.name, amount, dict(attributes or {})))


class RecordingMeter(NoOpMeter):
    def __init__(self, calls: list[tuple[str, float, dict[str, Any]]]) -> None:
        super().__init__("batchlens")
        self.calls = calls

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Any:
        return RecordingInstrument(self.calls, name)

    def create_histogram(self, name: str, unit: str = "", description: str = "", **kwargs: Any) -> Any:
        return RecordingInstrument(self.calls, name)


class RecordingMeterProvider(NoOpMeterProvider):
    """A meter provider (not the no-op type itself) whose instruments remember every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, dict[str, Any]]] = []
        self.meters: list[str] = []
        self.flushes: list[int] = []

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.meters.append(name)
        return RecordingMeter(self.calls)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushes.append(timeout_millis)
        return True


# -- counters ----------------------------------------------------------------------------------------------
def test_record_counters_sum_outcomes_with_error_types(telemetry, metric_reader):
    """succeeded/failed counters count records per destination, failed ones per error.type."""
    event = sqs_event(["ok", "fail", "ok", "missing", "fail", "ok"], queue="orders", seed=1)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, handler, processor)

    succeeded = points(metric_reader, "batchlens.records.succeeded")
    assert {k: p.value for k, p in succeeded.items()} == {key(): 3}
    failed = points(metric_reader, "batchlens.records.failed")
    assert {k: p.value for k, p in failed.items()} == {
        key({"error.type": "ValueError"}): 2,
        key({"error.type": "KeyError"}): 1,
    }
    assert metric(metric_reader, "batchlens.records.succeeded").unit == "{record}"
    assert metric(metric_reader, "batchlens.records.failed").unit == "{record}"


def test_consumed_messages_follow_semantic_conventions(telemetry, metric_reader):
    """messaging.client.consumed.messages counts every record with operation name and error.type on failures."""
    event = sqs_event(["ok", "fail", "ok"], queue="orders", seed=2)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, handler, processor)
    process_partial_response(event, handler, processor)

    consumed = points(metric_reader, "messaging.client.consumed.messages")
    process = {"messaging.operation.name": "process"}
    assert {k: p.value for k, p in consumed.items()} == {
        key(process): 4,
        key({**process, "error.type": "ValueError"}): 2,
    }
    assert metric(metric_reader, "messaging.client.consumed.messages").unit == "{message}"


def test_duration_histogram_per_record_with_semconv_buckets(telemetry, metric_reader):
    """messaging.process.duration records one value (seconds) per record into the semconv buckets."""
    event = sqs_event(["ok", "fail", "ok", "ok"], queue="orders", seed=3)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, handler, processor)

    item = metric(metric_reader, "messaging.process.duration")
    assert item.unit == "s"
    histogram = points(metric_reader, "messaging.process.duration")
    process = {"messaging.operation.name": "process"}
    ok = histogram[key(process)]
    failed = histogram[key({**process, "error.type": "ValueError"})]
    assert (ok.count, failed.count) == (3, 1)
    assert tuple(ok.explicit_bounds) == DURATION_BUCKETS
    assert 0 <= ok.sum < 1  # seconds, not milliseconds


def test_batch_size_histogram_and_batch_outcomes(telemetry, metric_reader):
    """Each batch records its size into batchlens.batch.size and adds one batchlens.batches by outcome."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "ok"], queue="orders", seed=4), handler, processor)
    process_partial_response(sqs_event(["ok", "fail", "ok"], queue="orders", seed=5), handler, processor)
    with pytest.raises(BatchProcessingError):
        process_partial_response(sqs_event(["fail"] * 5, queue="orders", seed=6), handler, processor)

    size = points(metric_reader, "batchlens.batch.size")
    (point,) = size.values()
    assert set(size) == {key()}
    assert (point.count, point.sum) == (3, 10)
    assert tuple(point.explicit_bounds) == BATCH_SIZE_BUCKETS
    assert metric(metric_reader, "batchlens.batch.size").unit == "{record}"
    batches = points(metric_reader, "batchlens.batches")
    assert {k: p.value for k, p in batches.items()} == {
        key({"batchlens.batch.outcome": "success"}): 1,
        key({"batchlens.batch.outcome": "partial_failure"}): 1,
        key({"batchlens.batch.outcome": "failure"}): 1,
    }
    assert metric(metric_reader, "batchlens.batches").unit == "{batch}"


def test_fifo_skipped_records_count_as_failed_but_record_no_duration(telemetry, metric_reader):
    """Short-circuited FIFO records count as failed (circuit-breaker error.type) with no duration sample."""
    event = sqs_fifo_event(["ok", "fail", "ok", "ok"], queue="orders.fifo", seed=7)
    processor = SqsFifoPartialProcessor(telemetry=telemetry)

    process_partial_response(event, handler, processor)

    orders = {"messaging.destination.name": "orders.fifo"}
    failed = {k: p.value for k, p in points(metric_reader, "batchlens.records.failed").items()}
    assert failed == {
        key({**orders, "error.type": "ValueError"}): 1,
        key({**orders, "error.type": "SQSFifoCircuitBreakerError"}): 2,
    }
    durations = points(metric_reader, "messaging.process.duration")
    assert sum(p.count for p in durations.values()) == 2
    consumed = points(metric_reader, "messaging.client.consumed.messages")
    assert sum(p.value for p in consumed.values()) == 4


def test_kinesis_metrics_name_the_stream_and_system(telemetry, metric_reader):
    """Stream records are attributed to aws.kinesis and the stream name."""
    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=telemetry)

    process_partial_response(kinesis_event(count=3, stream="clicks", seed=8), lambda record: None, processor)

    succeeded = points(metric_reader, "batchlens.records.succeeded")
    assert {k: p.value for k, p in succeeded.items()} == {
        attrs(messaging__system="aws.kinesis", messaging__destination__name="clicks"): 3
    }


def test_mixed_destinations_are_counted_per_queue(telemetry, metric_reader):
    """Records from different queues in one batch are counted under their own destination."""
    event = sqs_event(["ok", "fail"], queue="queue-a", seed=9)
    event["Records"] += sqs_event(["ok"], queue="queue-b", seed=10)["Records"]
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, handler, processor)

    succeeded = {k: p.value for k, p in points(metric_reader, "batchlens.records.succeeded").items()}
    assert succeeded == {
        attrs(messaging__system="aws_sqs", messaging__destination__name="queue-a"): 1,
        attrs(messaging__system="aws_sqs", messaging__destination__name="queue-b"): 1,
    }
    size = points(metric_reader, "batchlens.batch.size")
    assert set(size) == {attrs(messaging__system="aws_sqs")}
    durations = points(metric_reader, "messaging.process.duration")
    assert {dict(k).get("messaging.destination.name") for k in durations} == {"queue-a", "queue-b"}


# -- cost and providers ------------------------------------------------------------------------------------------
def test_counters_are_added_once_per_batch_and_attribute_set():
    """A 200-record batch costs one add per attribute set and counter, and one duration sample per record."""
    provider = RecordingMeterProvider()
    telemetry = Telemetry(meter_provider=provider, tracing=False, logging=False)
    bodies = ["fail" if i % 10 == 0 else "ok" for i in range(200)]
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(bodies, queue="orders", seed=11), handler, processor)

    by_name: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for name, amount, attributes in provider.calls:
        by_name.setdefault(name, []).append((amount, attributes))
    assert len(by_name["messaging.process.duration"]) == 200
    assert sorted(a for a, _ in by_name["batchlens.records.succeeded"]) == [180]
    assert sorted(a for a, _ in by_name["batchlens.records.failed"]) == [20]
    assert sorted(a for a, _ in by_name["messaging.client.consumed.messages"]) == [20, 180]
    assert by_name["batchlens.batches"] == [
        (1, {**SQS_ORDERS, "batchlens.batch.outcome": "partial_failure"}),
    ]
    assert by_name["batchlens.batch.size"] == [(200, SQS_ORDERS)]


def test_instruments_are_created_once_per_provider():
    """The observer asks a meter provider for its meter once, however many batches run."""
    provider = RecordingMeterProvider()
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(meter_provider=provider, tracing=False, logging=False)
    )

    for seed in range(3):
        process_partial_response(sqs_event(count=2, seed=seed), handler, processor)

    assert provider.meters == ["batchlens"]


def test_flush_forces_the_meter_provider():
    """With a Lambda context the meter provider is flushed within the remaining time."""
    provider = RecordingMeterProvider()
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(meter_provider=provider, tracing=False, logging=False)
    )

    process_partial_response(
        sqs_event(count=1, seed=12), handler, processor, lambda_context(remaining_ms=1300, frozen=True)
    )

    assert provider.flushes == [1000]


def test_without_an_sdk_nothing_is_measured():
    """With the no-op meter provider the observer keeps no batch state and measures nothing."""
    observer = MetricsObserver(Telemetry(meter_provider=metrics.NoOpMeterProvider()))
    batch = BatchInfo(SQS, sqs_event(count=2, seed=13)["Records"], None, 0)

    observer.batch_start(batch)
    observer.batch_end(batch)

    assert batch.extra == {}


def test_histogram_falls_back_when_the_api_has_no_bucket_advisory():
    """On an API without explicit_bucket_boundaries_advisory the histogram is created without it."""
    created: list[dict[str, Any]] = []

    class OldMeter(NoOpMeter):
        def create_histogram(self, name: str, unit: str = "", description: str = "") -> Any:  # type: ignore[override]
            created.append({"name": name, "unit": unit})
            return super().create_histogram(name, unit, description)

    _histogram(OldMeter("old"), "messaging.process.duration", "s", "d", DURATION_BUCKETS)

    assert created == [{"name": "messaging.process.duration", "unit": "s"}]
