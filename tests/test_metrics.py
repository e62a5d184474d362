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
CIRCUIT_BREAKER = "batchlens.exceptions.SQSFifoCircuitBreakerError"


def test_failed_counter_counts_records_per_error_type(telemetry, metric_reader):
    """batchlens.records.failed counts failed records per destination and error.type; successes are the rest."""
    event = sqs_event(["ok", "fail", "ok", "missing", "fail", "ok"], queue="orders", seed=1)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, handler, processor)

    failed = points(metric_reader, "batchlens.records.failed")
    assert {k: p.value for k, p in failed.items()} == {
        key({"error.type": "ValueError"}): 2,
        key({"error.type": "KeyError"}): 1,
    }
    assert metric(metric_reader, "batchlens.records.failed").unit == "{record}"
    consumed = sum(p.value for p in points(metric_reader, "messaging.client.consumed.messages").values())
    assert consumed - sum(p.value for p in failed.values()) == 3


def test_dropped_metrics_are_not_emitted(telemetry, metric_reader):
    """batchlens.batches is gone (batch.size's count by outcome)."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], queue="orders", seed=1), handler, processor)

    assert metric(metric_reader, "batchlens.batches") is None
    assert metric(metric_reader, "batchlens.batch.size") is not None


def test_succeeded_counter_counts_returned_records_with_failed_attributes_minus_error_type(telemetry, metric_reader):
    """batchlens.records.succeeded: records whose handler returned, under failed's attributes without error.type."""
    event = sqs_event(["ok", "fail", "ok", "missing", "fail", "ok", "ok"], queue="orders", seed=1)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, handler, processor)

    succeeded = points(metric_reader, "batchlens.records.succeeded")
    assert {k: p.value for k, p in succeeded.items()} == {key(): 4}
    assert metric(metric_reader, "batchlens.records.succeeded").unit == "{record}"
    failed_keys = {
        frozenset((k, v) for k, v in attributes if k != "error.type")
        for attributes in points(metric_reader, "batchlens.records.failed")
    }
    assert failed_keys == set(succeeded)


def test_succeeded_counter_is_not_added_when_every_record_failed():
    """A batch without successes makes no zero add to batchlens.records.succeeded."""
    provider = RecordingMeterProvider()
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(meter_provider=provider, tracing=False, logging=False)
    )

    with pytest.raises(BatchProcessingError):
        process_partial_response(sqs_event(["fail", "missing"], queue="orders", seed=3), handler, processor)

    by_name = calls_by_name(provider)
    assert sum(amount for amount, _ in by_name["batchlens.records.failed"]) == 2
    assert "batchlens.records.succeeded" not in by_name


def test_error_type_is_module_qualified_for_non_builtin_exceptions(telemetry, metric_reader):
    """error.type names a library exception as module.qualname, like spans and log lines (error_type())."""
    event = sqs_fifo_event(["ok", "fail", "ok"], queue="orders.fifo", seed=7)
    processor = SqsFifoPartialProcessor(telemetry=telemetry)

    process_partial_response(event, handler, processor)

    kinds = {dict(k)["error.type"] for k in points(metric_reader, "batchlens.records.failed")}
    assert kinds == {"ValueError", CIRCUIT_BREAKER}


def test_consumed_messages_follow_semantic_conventions(telemetry, metric_reader):
    """messaging.client.consumed.messages counts every delivered record with the operation name, no error.type."""
    event = sqs_event(["ok", "fail", "ok"], queue="orders", seed=2)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, handler, processor)
    process_partial_response(event, handler, processor)

    consumed = points(metric_reader, "messaging.client.consumed.messages")
    assert {k: p.value for k, p in consumed.items()} == {key({"messaging.operation.name": "process"}): 6}
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


def test_batch_size_histogram_by_batch_outcome(telemetry, metric_reader):
    """Each batch records its size into batchlens.batch.size under its batchlens.batch.outcome."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "ok"], queue="orders", seed=4), handler, processor)
    process_partial_response(sqs_event(["ok", "fail", "ok"], queue="orders", seed=5), handler, processor)
    process_partial_response(sqs_event(["ok"] * 4, queue="orders", seed=14), handler, processor)
    with pytest.raises(BatchProcessingError):
        process_partial_response(sqs_event(["fail"] * 5, queue="orders", seed=6), handler, processor)

    size = points(metric_reader, "batchlens.batch.size")
    outcome = "batchlens.batch.outcome"
    assert {k: (p.count, p.sum) for k, p in size.items()} == {
        key({outcome: "success"}): (2, 6),
        key({outcome: "partial_failure"}): (1, 3),
        key({outcome: "failure"}): (1, 5),
    }
    assert all(tuple(p.explicit_bounds) == BATCH_SIZE_BUCKETS for p in size.values())
    assert metric(metric_reader, "batchlens.batch.size").unit == "{record}"


def test_fifo_skipped_records_count_as_failed_but_record_no_duration(telemetry, metric_reader):
    """Short-circuited FIFO records count as failed (circuit-breaker error.type) with no duration sample."""
    event = sqs_fifo_event(["ok", "fail", "ok", "ok"], queue="orders.fifo", seed=7)
    processor = SqsFifoPartialProcessor(telemetry=telemetry)

    process_partial_response(event, handler, processor)

    orders = {"messaging.destination.name": "orders.fifo"}
    failed = {k: p.value for k, p in points(metric_reader, "batchlens.records.failed").items()}
    assert failed == {
        key({**orders, "error.type": "ValueError"}): 1,
        key({**orders, "error.type": CIRCUIT_BREAKER}): 2,
    }
    durations = points(metric_reader, "messaging.process.duration")
    assert sum(p.count for p in durations.values()) == 2
    consumed = points(metric_reader, "messaging.client.consumed.messages")
    assert sum(p.value for p in consumed.values()) == 4


def test_kinesis_metrics_name_the_stream_and_system(telemetry, metric_reader):
    """Stream records are attributed to aws.kinesis and the stream name."""
    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=telemetry)

    process_partial_response(kinesis_event(count=3, stream="clicks", seed=8), lambda record: None, processor)

    consumed = points(metric_reader, "messaging.client.consumed.messages")
    assert {k: p.value for k, p in consumed.items()} == {
        attrs(
            messaging__system="aws.kinesis", messaging__destination__name="clicks", messaging__operation__name="process"
        ): 3
    }


def test_mixed_destinations_are_counted_per_queue(telemetry, metric_reader):
    """Records from different queues in one batch are counted under their own destination."""
    event = sqs_event(["ok", "fail"], queue="queue-a", seed=9)
    event["Records"] += sqs_event(["ok"], queue="queue-b", seed=10)["Records"]
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, handler, processor)

    process = {"messaging.system": "aws_sqs", "messaging.operation.name": "process"}
    consumed = {k: p.value for k, p in points(metric_reader, "messaging.client.consumed.messages").items()}
    assert consumed == {
        frozenset({**process, "messaging.destination.name": "queue-a"}.items()): 2,
        frozenset({**process, "messaging.destination.name": "queue-b"}.items()): 1,
    }
    failed = {k: p.value for k, p in points(metric_reader, "batchlens.records.failed").items()}
    assert failed == {
        attrs(messaging__system="aws_sqs", messaging__destination__name="queue-a", error__type="ValueError"): 1
    }
    succeeded = {k: p.value for k, p in points(metric_reader, "batchlens.records.succeeded").items()}
    assert succeeded == {
        attrs(messaging__system="aws_sqs", messaging__destination__name="queue-a"): 1,
        attrs(messaging__system="aws_sqs", messaging__destination__name="queue-b"): 1,
    }
    size = points(metric_reader, "batchlens.batch.size")
    assert set(size) == {attrs(messaging__system="aws_sqs", batchlens__batch__outcome="partial_failure")}
    durations = points(metric_reader, "messaging.process.duration")
    assert {dict(k).get("messaging.destination.name") for k in durations} == {"queue-a", "queue-b"}


# -- cost and providers ------------------------------------------------------------------------------------------
def calls_by_name(provider: RecordingMeterProvider) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    by_name: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for name, amount, attributes in provider.calls:
        by_name.setdefault(name, []).append((amount, attributes))
    return by_name


def test_counters_are_added_once_per_batch_and_attribute_set():
    """A 200-record batch costs one add per attribute set and counter, and one duration sample per record."""
    provider = RecordingMeterProvider()
    telemetry = Telemetry(meter_provider=provider, tracing=False, logging=False)
    bodies = ["fail" if i % 10 == 0 else "ok" for i in range(200)]
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(bodies, queue="orders", seed=11), handler, processor)

    by_name = calls_by_name(provider)
    assert len(by_name["messaging.process.duration"]) == 200
    assert by_name["batchlens.records.failed"] == [(20, {**SQS_ORDERS, "error.type": "ValueError"})]
    assert by_name["batchlens.records.succeeded"] == [(180, SQS_ORDERS)]
    assert by_name["messaging.client.consumed.messages"] == [
        (200, {**SQS_ORDERS, "messaging.operation.name": "process"})
    ]
    assert by_name["batchlens.batch.size"] == [(200, {**SQS_ORDERS, "batchlens.batch.outcome": "partial_failure"})]
    assert len(by_name["batchlens.batch.oldest_record_age"]) == 1
    assert set(by_name) == {
        "messaging.process.duration",
        "batchlens.records.failed",
        "batchlens.records.succeeded",
        "messaging.client.consumed.messages",
        "batchlens.batch.size",
        "batchlens.batch.oldest_record_age",
    }


def test_a_successful_batch_makes_no_zero_valued_adds():
    """Without failures or redeliveries, nothing is added to batchlens.records.failed or records.redelivered."""
    provider = RecordingMeterProvider()
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(meter_provider=provider, tracing=False, logging=False)
    )

    process_partial_response(sqs_event(count=3, queue="orders", seed=15), handler, processor)

    by_name = calls_by_name(provider)
    assert set(by_name) == {
        "messaging.process.duration",
        "messaging.client.consumed.messages",
        "batchlens.records.succeeded",
        "batchlens.batch.size",
        "batchlens.batch.oldest_record_age",
    }
    assert by_name["messaging.client.consumed.messages"] == [(3, {**SQS_ORDERS, "messaging.operation.name": "process"})]
    assert by_name["batchlens.records.succeeded"] == [(3, SQS_ORDERS)]


def test_attribute_sets_are_built_once_per_destination_and_outcome():
    """Two batches of the same queue and outcome pass the very same attribute dicts to the instruments."""
    provider = RecordingMeterProvider()
    seen: list[int] = []

    class IdentityInstrument(RecordingInstrument):
        def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
            seen.append(id(attributes))

        def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
            seen.append(id(attributes))

    class IdentityMeter(RecordingMeter):
        def create_counter(self, name: str, unit: str = "", description: str = "") -> Any:
            return IdentityInstrument(self.calls, name)

        def create_histogram(self, name: str, unit: str = "", description: str = "", **kwargs: Any) -> Any:
            return IdentityInstrument(self.calls, name)

    provider.get_meter = lambda *a, **k: IdentityMeter(provider.calls)  # type: ignore[method-assign]
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(meter_provider=provider, tracing=False, logging=False)
    )

    process_partial_response(sqs_event(["ok", "fail"], queue="orders", seed=16), handler, processor)
    first = list(seen)
    seen.clear()
    process_partial_response(sqs_event(["fail", "ok"], queue="orders", seed=17), handler, processor)

    assert sorted(seen) == sorted(first)


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
