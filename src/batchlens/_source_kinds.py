"""The concrete event sources: SQS (standard and FIFO), Kinesis Data Streams, DynamoDB Streams, Kafka, and a
generic one for records of unknown shape."""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter, methodcaller
from typing import Any

from batchlens._source_attributes import (
    document_name,
    iso_time,
    kafka_carrier,
    kafka_key,
    server_attributes,
    sqs_queue_url,
)
from batchlens._source_base import (
    _KAFKA_TYPE_ERROR,
    EventType,
    MissingField,
    Source,
    _nonempty_str,
)

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

    def enqueue_stats(self, records: list[Any]) -> tuple[float | None, int]:
        """See ``Source.enqueue_stats``; a batch of first deliveries is read in C-level passes."""
        quick = _sqs_enqueue_stats(records) if records else None
        return quick if quick is not None else super().enqueue_stats(records)

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
