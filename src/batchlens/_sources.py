"""One strategy object per event source: where a record keeps its identifier, destination and trace context.

All per-source knowledge lives here, so processors and telemetry never branch on the event type.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from contextvars import ContextVar
from operator import itemgetter, methodcaller
from typing import Any

from batchlens._source_attributes import (
    CACHE_SIZE,
    document_name,
    iso_time,
    kafka_carrier,
    kafka_key,
    server_attributes,
    sqs_queue_url,
)

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


class EventType(enum.Enum):
    """The event sources a batch processor can read."""

    SQS = "SQS"
    KinesisDataStreams = "KinesisDataStreams"
    DynamoDBStreams = "DynamoDBStreams"
    Kafka = "Kafka"


class MissingField(Exception):
    """A record lacks the field that identifies it; ``field`` is its dotted path."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


_BATCH_TYPE_ERROR = "Unexpected batch event type. Possible values are: SQS, KinesisDataStreams, DynamoDBStreams, Kafka"
_KAFKA_TYPE_ERROR = (
    "Invalid Kafka event structure. Expected 'records' to be a non-empty dict with topic-partition keys."
)


# The Lambda event being processed by ``process_partial_response``: event-level fields (Kafka's
# ``bootstrapServers``) are not in the records the processor is given.
CURRENT_EVENT: ContextVar[Any] = ContextVar("batchlens_event", default=None)


def current_event() -> Any:
    """The Lambda event ``process_partial_response`` is processing in this context, or None."""
    return CURRENT_EVENT.get()


def _nonempty_str(value: Any, field: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise MissingField(field)


class Source:
    """Behaviour shared by all sources; subclasses fill in what differs."""

    event_type: EventType | None = None
    messaging_system = "unknown"
    event_source = "unknown"
    faas_trigger = "pubsub"  # semconv faas.trigger of a Lambda invoked by this source
    id_field = "id"
    data_class_path = ""

    def __init__(self) -> None:
        self._data_class: type[Any] | None = None
        self._destinations: dict[str, str | None] = {}
        self._destination_attributes: dict[str, dict[str, Any]] = {}
        # whether ``destination`` is a function of the record's source ARN alone (not overridden)
        self.destination_from_arn = type(self).destination is Source.destination

    # -- records -----------------------------------------------------------------------------------------
    def records_from_event(self, event: Any) -> list[Any]:
        """Return the batch's records; AttributeError when ``event`` is not a mapping."""
        records = event.get("Records", [])
        if not records or not isinstance(records, list):
            from batchlens.exceptions import UnexpectedBatchTypeError

            raise UnexpectedBatchTypeError(_BATCH_TYPE_ERROR)
        return records

    @property
    def data_class(self) -> type[Any]:
        """The event source data class wrapping a raw record (imported on first use)."""
        cls = self._data_class
        if cls is None:
            import importlib

            module_name, _, name = self.data_class_path.rpartition(".")
            cls = getattr(importlib.import_module(module_name), name)
            self._data_class = cls
        return cls

    def wrap(self, raw: Any) -> Any:
        """Wrap a raw record in its data class."""
        return self.data_class(raw)

    def enqueue_stats(self, records: list[Any]) -> tuple[float | None, int]:
        """The records' oldest enqueue time (Unix seconds; None when none has one) and SQS redeliveries.

        Enqueue times: SQS ``SentTimestamp`` (ms), Kinesis ``approximateArrivalTimestamp`` (s), DynamoDB
        ``ApproximateCreationDateTime`` (s), Kafka ``timestamp`` (ms). Redeliveries: SQS records whose
        ``ApproximateReceiveCount`` is above 1. Malformed or missing values are left out.
        """
        system = self.messaging_system
        if system == "aws_sqs" and records:
            quick = _sqs_enqueue_stats(records)
            if quick is not None:
                return quick
        oldest: float | None = None
        redelivered = 0
        for raw in records:
            try:
                if system == "aws_sqs":
                    attributes = raw["attributes"]
                    count = attributes.get("ApproximateReceiveCount")
                    if count is not None and count != "1" and int(count) > 1:
                        redelivered += 1
                    sent = int(attributes["SentTimestamp"]) / 1000
                elif system == "aws.kinesis":
                    sent = float(raw["kinesis"]["approximateArrivalTimestamp"])
                elif system == "aws.dynamodb":
                    sent = float(raw["dynamodb"]["ApproximateCreationDateTime"])
                elif system == "kafka":
                    sent = int(raw["timestamp"]) / 1000
                else:
                    return None, 0
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                continue
            if sent > 0 and (oldest is None or sent < oldest):
                oldest = sent
        return oldest, redelivered

    # -- identity ----------------------------------------------------------------------------------------
    def identifier(self, raw: Any) -> Any:
        """The ``itemIdentifier`` reported for a failed raw record. Raises MissingField."""
        try:
            return _nonempty_str(raw[self.id_field], self.id_field)
        except (KeyError, TypeError, IndexError):
            raise MissingField(self.id_field) from None

    def identifier_of_model(self, model: Any) -> Any:
        """The ``itemIdentifier`` of a record parsed into a pydantic model."""
        return getattr(model, self.id_field)

    def identifier_of(self, obj: Any) -> Any:
        """The ``itemIdentifier`` of a failed record as handed to ``failure_handler``. Raises MissingField."""
        raw = getattr(obj, "raw_event", None)
        if raw is not None or obj is None or isinstance(obj, Mapping):
            return self.identifier(obj if raw is None else raw)
        try:
            return self.identifier_of_model(obj)
        except AttributeError:
            raise MissingField(self.id_field) from None

    def message_id(self, raw: Any) -> str | None:
        """The ``messaging.message.id`` of a raw record, or None when it has none."""
        try:
            return self.identifier(raw)  # type: ignore[no-any-return]
        except MissingField:
            return None

    # -- destination and attributes ------------------------------------------------------------------------
    def _name_from_arn(self, arn: str) -> str | None:
        return None

    def destination(self, raw: Any) -> str | None:
        """The queue, stream, table or topic the record came from."""
        try:
            arn = raw.get("eventSourceARN") or raw.get("eventSourceArn")
        except AttributeError:
            return None
        if not isinstance(arn, str):
            return None
        cache = self._destinations
        try:
            return cache[arn]
        except KeyError:
            name = self._name_from_arn(arn)
            if len(cache) < 1024:
                cache[arn] = name
            return name

    def _attributes_from_arn(self, arn: str) -> dict[str, Any]:
        return {}

    def destination_attributes(self, raw: Any) -> dict[str, Any]:
        """Span attributes that follow from the record's source ARN (queue URL, stream, table). Shared: read only."""
        try:
            arn = raw.get("eventSourceARN") or raw.get("eventSourceArn")
        except AttributeError:
            return {}
        if not isinstance(arn, str):
            return {}
        cache = self._destination_attributes
        try:
            return cache[arn]
        except KeyError:
            attributes = self._attributes_from_arn(arn)
            if len(cache) < CACHE_SIZE:
                cache[arn] = attributes
            return attributes

    def event_attributes(self, event: Any) -> dict[str, Any]:
        """Span attributes from event-level fields (outside the records), e.g. Kafka's ``server.address``."""
        return {}

    def may_carry_producer_context(self, records: list[Any]) -> bool:
        """False only when no record can carry producer trace context; checked once per batch, in C loops."""
        return type(self).producer_headers is not Source.producer_headers

    def record_attributes(self, raw: Any) -> dict[str, Any]:
        """Source-specific span attributes of one record (set at span start)."""
        out: dict[str, Any] = {}
        self.add_record_attributes(raw, out)
        return out

    def add_record_attributes(self, raw: Any, into: dict[str, Any]) -> None:
        """Write the source-specific span attributes of one record into ``into`` (no dict of its own per record)."""

    def add_document_name(self, raw: Any, into: dict[str, Any]) -> None:
        """Write ``faas.document.name`` (DynamoDB Streams only; opt-in, see ``Telemetry.document_keys``)."""

    def producer_headers(self, raw: Any) -> tuple[str | None, Mapping[str, str] | None]:
        """The producer's trace context: (X-Ray trace header, W3C carrier) — None where absent."""
        return None, None


_ATTRIBUTES = itemgetter("attributes")
_GET_XRAY_HEADER = methodcaller("get", "AWSTraceHeader")
_SENT_TIMESTAMP = itemgetter("SentTimestamp")
_GET_RECEIVE_COUNT = methodcaller("get", "ApproximateReceiveCount")


def _sqs_enqueue_stats(records: list[Any]) -> tuple[float | None, int] | None:
    """``enqueue_stats`` of well-formed SQS records never delivered before, in C-level loops; None otherwise.

    The common batch: every record has a positive ``SentTimestamp`` and a receive count of "1". Anything else
    (a malformed, missing or zero value, a redelivery) returns None, and the per-record loop decides.
    """
    try:
        attributes = list(map(_ATTRIBUTES, records))
        if list(map(_GET_RECEIVE_COUNT, attributes)).count("1") != len(attributes):
            return None
        oldest_ms = min(map(int, map(_SENT_TIMESTAMP, attributes)))
    except Exception:
        return None
    return (oldest_ms / 1000, 0) if oldest_ms > 0 else None


_GET_MESSAGE_ATTRIBUTES = methodcaller("get", "messageAttributes")
_GET_HEADERS = methodcaller("get", "headers")


class _SqsSource(Source):
    event_type = EventType.SQS
    messaging_system = "aws_sqs"
    event_source = "aws:sqs"
    id_field = "messageId"
    data_class_path = "batchlens.data_classes.sqs.SQSRecord"

    def identifier_of_model(self, model: Any) -> Any:
        return model.messageId

    def message_id(self, raw: Any) -> str | None:
        # per record on the telemetry path: one lookup, no exception unless the record is malformed
        try:
            value = raw["messageId"]
        except (KeyError, TypeError, IndexError):
            return None
        return value if isinstance(value, str) and value else None

    def _name_from_arn(self, arn: str) -> str | None:
        name = arn.rsplit(":", 1)[-1]
        return name or None

    def _attributes_from_arn(self, arn: str) -> dict[str, Any]:
        url = sqs_queue_url(arn)
        return {"aws.sqs.queue.url": url} if url is not None else {}

    def may_carry_producer_context(self, records: list[Any]) -> bool:
        # the common case, no header on any record, in C-level loops: one AWSTraceHeader lookup and one
        # truthiness test per record instead of a Python call each
        try:
            if any(map(_GET_XRAY_HEADER, map(_ATTRIBUTES, records))):
                return True
            return any(map(_GET_MESSAGE_ATTRIBUTES, records))
        except Exception:  # a record of another shape: let the per-record parse sort it out
            return True

    def add_record_attributes(self, raw: Any, into: dict[str, Any]) -> None:
        attrs = raw.get("attributes")
        # ``type(...) is dict`` first: an isinstance check against the Mapping ABC costs far more
        if type(attrs) is dict or isinstance(attrs, Mapping):
            count = attrs.get("ApproximateReceiveCount")
            if count is not None:
                try:
                    into["batchlens.sqs.receive_count"] = int(count)
                except (TypeError, ValueError):
                    pass
            group = attrs.get("MessageGroupId")
            if isinstance(group, str):
                into["batchlens.sqs.message_group_id"] = group

    def producer_headers(self, raw: Any) -> tuple[str | None, Mapping[str, str] | None]:
        xray: str | None = None
        attrs = raw.get("attributes")
        if type(attrs) is dict or isinstance(attrs, Mapping):
            header = attrs.get("AWSTraceHeader")
            if isinstance(header, str):
                xray = header
        carrier: dict[str, str] | None = None
        message_attributes = raw.get("messageAttributes")
        if not message_attributes:
            return xray, None
        if type(message_attributes) is dict or isinstance(message_attributes, Mapping):
            for key in ("traceparent", "tracestate"):
                attr = message_attributes.get(key)
                if type(attr) is dict or isinstance(attr, Mapping):
                    value = attr.get("stringValue")
                    if isinstance(value, str):
                        if carrier is None:
                            carrier = {}
                        carrier[key] = value
        return xray, carrier


class _KinesisSource(Source):
    event_type = EventType.KinesisDataStreams
    messaging_system = "aws.kinesis"
    event_source = "aws:kinesis"
    id_field = "kinesis.sequenceNumber"
    data_class_path = "batchlens.data_classes.kinesis.KinesisStreamRecord"

    def identifier(self, raw: Any) -> Any:
        try:
            return _nonempty_str(raw["kinesis"]["sequenceNumber"], self.id_field)
        except (KeyError, TypeError, IndexError):
            raise MissingField(self.id_field) from None

    def identifier_of_model(self, model: Any) -> Any:
        return model.kinesis.sequenceNumber

    def _name_from_arn(self, arn: str) -> str | None:
        _, sep, rest = arn.partition(":stream/")
        return rest.split("/", 1)[0] or None if sep else None

    def _attributes_from_arn(self, arn: str) -> dict[str, Any]:
        name = self._name_from_arn(arn)
        return {"aws.kinesis.stream_name": name} if name else {}

    def add_record_attributes(self, raw: Any, into: dict[str, Any]) -> None:
        event_id = raw.get("eventID")
        if isinstance(event_id, str) and ":" in event_id:
            into["messaging.destination.partition.id"] = event_id.split(":", 1)[0]


_DDB_OPERATIONS = {"INSERT": "insert", "MODIFY": "edit", "REMOVE": "delete"}


class _DynamoDBSource(Source):
    event_type = EventType.DynamoDBStreams
    messaging_system = "aws.dynamodb"
    event_source = "aws:dynamodb"
    faas_trigger = "datasource"
    id_field = "dynamodb.SequenceNumber"
    data_class_path = "batchlens.data_classes.dynamodb.DynamoDBRecord"

    def identifier(self, raw: Any) -> Any:
        try:
            return _nonempty_str(raw["dynamodb"]["SequenceNumber"], self.id_field)
        except (KeyError, TypeError, IndexError):
            raise MissingField(self.id_field) from None

    def identifier_of_model(self, model: Any) -> Any:
        return model.dynamodb.SequenceNumber

    def _name_from_arn(self, arn: str) -> str | None:
        _, sep, rest = arn.partition(":table/")
        return rest.split("/", 1)[0] or None if sep else None

    def _attributes_from_arn(self, arn: str) -> dict[str, Any]:
        name = self._name_from_arn(arn)
        return {"faas.document.collection": name} if name else {}

    def add_record_attributes(self, raw: Any, into: dict[str, Any]) -> None:
        operation = _DDB_OPERATIONS.get(raw.get("eventName"))
        if operation:
            into["faas.document.operation"] = operation
        change = raw.get("dynamodb")
        if type(change) is dict or isinstance(change, Mapping):
            created = change.get("ApproximateCreationDateTime")
            if created is not None:
                text = iso_time(created)
                if text is not None:
                    into["faas.document.time"] = text

    def add_document_name(self, raw: Any, into: dict[str, Any]) -> None:
        """Write ``faas.document.name``: the item's keys as ``name=value,...``."""
        change = raw.get("dynamodb")
        keys = change.get("Keys") if type(change) is dict or isinstance(change, Mapping) else None
        if type(keys) is dict or isinstance(keys, Mapping):
            name = document_name(keys)
            if name:
                into["faas.document.name"] = name


class _KafkaSource(Source):
    event_type = EventType.Kafka
    messaging_system = "kafka"
    event_source = "aws:kafka"
    id_field = "topic/partition/offset"
    data_class_path = "batchlens.data_classes.kafka.KafkaEventRecord"

    def records_from_event(self, event: Any) -> list[Any]:
        grouped = event.get("records", {})
        if not grouped or not isinstance(grouped, dict):
            from batchlens.exceptions import UnexpectedBatchTypeError

            raise UnexpectedBatchTypeError(_KAFKA_TYPE_ERROR)
        for partition, records in grouped.items():
            if not isinstance(records, list):
                # iterated, a mapping would yield its keys as "records": bogus successes, the real record never
                # run. Raising before any record runs lets Lambda retry the whole batch: nothing is lost.
                from batchlens.exceptions import UnexpectedBatchTypeError

                raise UnexpectedBatchTypeError(
                    f"Invalid Kafka event structure: partition {str(partition)[:200]!r} holds "
                    f"{type(records).__name__}, not a list of records."
                )
        return [record for records in grouped.values() for record in records]

    def identifier(self, raw: Any) -> Any:
        try:
            topic, partition, offset = raw["topic"], raw["partition"], raw["offset"]
        except (KeyError, TypeError, IndexError) as exc:
            raise MissingField(str(exc.args[0]) if exc.args and isinstance(exc, KeyError) else "topic") from None
        return {"partition": f"{topic}-{partition}", "offset": offset}

    def identifier_of_model(self, model: Any) -> Any:
        return {"partition": f"{model.topic}-{model.partition}", "offset": model.offset}

    def message_id(self, raw: Any) -> str | None:
        try:
            return f"{raw['topic']}-{raw['partition']}@{raw['offset']}"
        except (KeyError, TypeError, IndexError):
            return None

    def destination(self, raw: Any) -> str | None:
        try:
            topic = raw.get("topic")
        except AttributeError:
            return None
        return topic if isinstance(topic, str) else None

    def add_record_attributes(self, raw: Any, into: dict[str, Any]) -> None:
        partition = raw.get("partition")
        if partition is not None:
            into["messaging.destination.partition.id"] = str(partition)
        offset = raw.get("offset")
        if type(offset) is int:
            into["messaging.kafka.offset"] = offset
        key = raw.get("key")
        if key:
            text = kafka_key(key)
            if text is not None:
                into["messaging.kafka.message.key"] = text
        if "value" in raw and raw["value"] is None:
            into["messaging.kafka.message.tombstone"] = True

    def event_attributes(self, event: Any) -> dict[str, Any]:
        try:
            servers = event.get("bootstrapServers")
        except AttributeError:
            return {}
        return server_attributes(servers) if isinstance(servers, str) else {}

    def may_carry_producer_context(self, records: list[Any]) -> bool:
        try:
            return any(map(_GET_HEADERS, records))
        except Exception:
            return True

    def producer_headers(self, raw: Any) -> tuple[str | None, Mapping[str, str] | None]:
        headers = raw.get("headers")
        return None, kafka_carrier(headers) if headers else None


class _GenericSource(Source):
    """Records of unknown origin (custom processors fed other events): best-effort identifiers."""

    def message_id(self, raw: Any) -> str | None:
        if isinstance(raw, Mapping):
            for key in ("messageId", "eventID", "id"):
                value = raw.get(key)
                if isinstance(value, str):
                    return value
        return None


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
