"""One strategy object per event source: where a record keeps its identifier, destination and trace context.

All per-source knowledge lives in these objects (the base in ``_source_base``, the sources in ``_source_kinds``),
so processors and telemetry never branch on the event type. This module is the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchlens._source_base import CURRENT_EVENT, EventType, MissingField, Source, current_event
from batchlens._source_kinds import _DynamoDBSource, _GenericSource, _KafkaSource, _KinesisSource, _SqsSource

__all__ = [
    "CURRENT_EVENT",
    "DYNAMODB",
    "GENERIC",
    "KAFKA",
    "KINESIS",
    "SQS",
    "EventType",
    "MissingField",
    "Source",
    "current_event",
    "detect_source",
    "source_for",
]

SQS = _SqsSource()
KINESIS = _KinesisSource()
DYNAMODB = _DynamoDBSource()
KAFKA = _KafkaSource()
GENERIC = _GenericSource()

_BY_TYPE: dict[EventType, Source] = {
    EventType.SQS: SQS,
    EventType.KinesisDataStreams: KINESIS,
    EventType.DynamoDBStreams: DYNAMODB,
    EventType.Kafka: KAFKA,
}
_BY_EVENT_SOURCE: dict[str, Source] = {
    "aws:sqs": SQS,
    "aws:kinesis": KINESIS,
    "aws:dynamodb": DYNAMODB,
    "aws:kafka": KAFKA,
    "SelfManagedKafka": KAFKA,
    "aws:SelfManagedKafka": KAFKA,
}


def source_for(event_type: EventType) -> Source:
    """The strategy object of an event type."""
    return _BY_TYPE[event_type]


def detect_source(record: Any) -> Source:
    """Guess a record's source from its ``eventSource`` field (GENERIC when unknown)."""
    if isinstance(record, Mapping):
        value = record.get("eventSource")
        if isinstance(value, str):
            return _BY_EVENT_SOURCE.get(value, GENERIC)
        if "topic" in record and "offset" in record:
            return KAFKA
    return GENERIC


def detect_event_type(event: Any) -> EventType | None:
    """Guess an event's type from its first record; None when it cannot be told."""
    if not isinstance(event, Mapping):
        return None
    records = event.get("Records")
    if isinstance(records, list) and records:
        return detect_source(records[0]).event_type
    grouped = event.get("records")
    if isinstance(grouped, dict) and grouped:
        return EventType.Kafka
    source = event.get("eventSource")
    if isinstance(source, str) and source in _BY_EVENT_SOURCE:
        return _BY_EVENT_SOURCE[source].event_type
    return None
