"""Tests for the per-batch lag metrics: batchlens.batch.oldest_record_age and batchlens.records.redelivered."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.semconv.schemas import Schemas

from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens._sources import DYNAMODB, GENERIC, KAFKA, KINESIS, SQS
from batchlens._telemetry.metrics import RECORD_AGE_BUCKETS, SCHEMA_URL
from batchlens.testing._events import dynamodb_event, kafka_event, kinesis_event, sqs_event

AGE = "batchlens.batch.oldest_record_age"
REDELIVERED = "batchlens.records.redelivered"


def points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
    """Data points of a metric keyed by their attribute set ({} when the metric was not recorded)."""
    data = reader.get_metrics_data()
    out: dict[frozenset[tuple[str, Any]], Any] = {}
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for item in scope_metrics.metrics:
                if item.name == name:
                    out.update({frozenset(p.attributes.items()): p for p in item.data.data_points})
    return out


def sqs_aged(ages_s: list[float], receive_counts: list[int] | None = None, queue: str = "orders") -> dict[str, Any]:
    event = sqs_event(count=len(ages_s), queue=queue, seed=1)
    now_ms = time.time() * 1000
    for i, (record, age) in enumerate(zip(event["Records"], ages_s, strict=True)):
        record["attributes"]["SentTimestamp"] = str(int(now_ms - age * 1000))
        if receive_counts is not None:
            record["attributes"]["ApproximateReceiveCount"] = str(receive_counts[i])
    return event


def test_oldest_record_age_is_one_sample_per_batch_of_the_oldest_record(telemetry, metric_reader):
    """One sample per batch: the age in seconds of its oldest record (SentTimestamp), with the age buckets."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_aged([5, 3600, 60]), lambda record: None, processor)
    process_partial_response(sqs_aged([120, 10]), lambda record: None, processor)

    (point,) = points(metric_reader, AGE).values()
    assert point.count == 2
    assert 3720 <= point.sum < 3720 + 30  # 3600 + 120, plus the test's own run time
    assert tuple(point.explicit_bounds) == RECORD_AGE_BUCKETS
    assert dict(point.attributes) == {"messaging.system": "aws_sqs", "messaging.destination.name": "orders"}


def test_age_buckets_reach_from_subseconds_to_days():
    """The age buckets are increasing and span 100 ms to 14 days."""
    assert list(RECORD_AGE_BUCKETS) == sorted(set(RECORD_AGE_BUCKETS))
    assert RECORD_AGE_BUCKETS[0] <= 0.1
    assert RECORD_AGE_BUCKETS[-1] >= 14 * 86400


def test_age_is_never_negative_when_the_producer_clock_is_ahead(telemetry, metric_reader):
    """A SentTimestamp in the future (clock skew) records an age of 0, not a negative one."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_aged([-30]), lambda record: None, processor)

    (point,) = points(metric_reader, AGE).values()
    assert (point.count, point.sum, point.min) == (1, 0, 0)


def test_redelivered_counts_sqs_records_received_more_than_once(telemetry, metric_reader):
    """Records with ApproximateReceiveCount > 1 are added once per batch to batchlens.records.redelivered."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_aged([1, 1, 1, 1], [1, 2, 5, 1]), lambda record: None, processor)
    process_partial_response(sqs_aged([1], [3]), lambda record: None, processor)

    (point,) = points(metric_reader, REDELIVERED).values()
    assert point.value == 3
    assert dict(point.attributes) == {"messaging.system": "aws_sqs", "messaging.destination.name": "orders"}


def test_redelivered_is_not_added_when_nothing_was_redelivered(telemetry, metric_reader):
    """A batch of first deliveries adds nothing: the series does not even exist."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_aged([1, 2], [1, 1]), lambda record: None, processor)

    assert points(metric_reader, REDELIVERED) == {}
    assert points(metric_reader, AGE) != {}


@pytest.mark.parametrize(
    ("event_type", "event", "system", "destination"),
    [
        (EventType.KinesisDataStreams, lambda: kinesis_event(count=3, stream="clicks"), "aws.kinesis", "clicks"),
        (EventType.DynamoDBStreams, lambda: dynamodb_event(count=3, table="users"), "aws.dynamodb", "users"),
        (EventType.Kafka, lambda: kafka_event(count=3, topic="payments"), "kafka", "payments"),
    ],
    ids=["kinesis", "dynamodb", "kafka"],
)
def test_stream_sources_record_their_age(telemetry, metric_reader, event_type, event, system, destination):
    """Kinesis, DynamoDB and Kafka batches (timestamps of now) record a small age under their destination."""
    processor = BatchProcessor(event_type, telemetry=telemetry)

    process_partial_response(event(), lambda record: None, processor)  # built now: its timestamps are "now"

    (point,) = points(metric_reader, AGE).values()
    assert point.count == 1
    assert 0 <= point.sum < 60
    assert dict(point.attributes) == {"messaging.system": system, "messaging.destination.name": destination}
    assert points(metric_reader, REDELIVERED) == {}


def test_enqueue_stats_reads_each_sources_timestamp_field():
    """enqueue_stats returns the oldest enqueue time in Unix seconds from each source's own field and unit."""
    sqs = [{"attributes": {"SentTimestamp": "1700000002000", "ApproximateReceiveCount": "2"}},
           {"attributes": {"SentTimestamp": "1700000001500", "ApproximateReceiveCount": "1"}}]  # fmt: skip
    kinesis = [{"kinesis": {"approximateArrivalTimestamp": 1700000003.25}}, {"kinesis": {}}]
    dynamodb = [{"dynamodb": {"ApproximateCreationDateTime": 1700000004}}]
    kafka = [{"timestamp": 1700000005000}, {"timestamp": 1700000009000}]

    assert SQS.enqueue_stats(sqs) == (1700000001.5, 1)
    assert KINESIS.enqueue_stats(kinesis) == (1700000003.25, 0)
    assert DYNAMODB.enqueue_stats(dynamodb) == (1700000004, 0)
    assert KAFKA.enqueue_stats(kafka) == (1700000005, 0)


def test_enqueue_stats_of_first_deliveries_matches_the_per_record_reading():
    """A batch of first deliveries (the quick path) gives what the per-record reading gives, zero and bad values too."""

    def sqs(*sent: str) -> list[dict[str, Any]]:
        return [{"attributes": {"SentTimestamp": s, "ApproximateReceiveCount": "1"}} for s in sent]

    assert SQS.enqueue_stats(sqs("1700000002000", "1700000001500", "1700000003000")) == (1700000001.5, 0)
    # a zero timestamp is left out, not taken as the oldest; an unreadable one is skipped
    assert SQS.enqueue_stats(sqs("0", "1700000002000")) == (1700000002.0, 0)
    assert SQS.enqueue_stats(sqs("soon", "1700000002000")) == (1700000002.0, 0)
    assert SQS.enqueue_stats(sqs("0")) == (None, 0)


def test_enqueue_stats_ignores_malformed_and_missing_values():
    """Malformed timestamps and receive counts are skipped; sources without a timestamp give None."""
    sqs = [
        {"attributes": {"SentTimestamp": "soon", "ApproximateReceiveCount": "x"}},
        {"attributes": None},
        {},
        "not a record",
        {"attributes": {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "3"}},
    ]

    assert SQS.enqueue_stats(sqs) == (1700000000.0, 1)
    assert SQS.enqueue_stats([{"attributes": {}}]) == (None, 0)
    assert KAFKA.enqueue_stats([{"timestamp": -1}]) == (None, 0)
    assert GENERIC.enqueue_stats([{"timestamp": 1}]) == (None, 0)


def test_meter_carries_the_semantic_conventions_schema_url(telemetry, metric_reader):
    """The batchlens meter names the semconv schema its metric names and attributes follow."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(count=1, seed=2), lambda record: None, processor)

    data = metric_reader.get_metrics_data()
    (scope,) = [s for rm in data.resource_metrics for s in rm.scope_metrics if s.scope.name == "batchlens"]
    assert scope.schema_url == SCHEMA_URL
    assert SCHEMA_URL in {s.value for s in Schemas}
