"""Tests for batchlens.data_classes: unit tests on AWS sample records and differential tests against Powertools."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import os
import subprocess
import sys
import zlib
from decimal import Decimal
from functools import cached_property
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import dynamo_db_stream_event as pt_dynamodb
from aws_lambda_powertools.utilities.data_classes import kafka_event as pt_kafka
from aws_lambda_powertools.utilities.data_classes import kinesis_stream_event as pt_kinesis
from aws_lambda_powertools.utilities.data_classes import sqs_event as pt_sqs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import batchlens.data_classes as data_classes
from batchlens.data_classes import (
    DictWrapper,
    DynamoDBRecord,
    DynamoDBRecordEventName,
    KafkaEventRecord,
    KafkaEventRecordSchemaMetadata,
    KinesisStreamRecord,
    KinesisStreamRecordPayload,
    SQSMessageAttribute,
    SQSMessageAttributes,
    SQSRecord,
    SQSRecordAttributes,
    StreamRecord,
    StreamViewType,
)

# --------------------------------------------------------------------------------- AWS sample records


def sqs_sample() -> dict[str, Any]:
    return {
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "body": '{"order_id": 7, "items": ["a", "b"]}',
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1545082649183",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1545082649185",
            "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        },
        "messageAttributes": {
            "testAttr": {"stringValue": "100", "binaryValue": "base64Str", "dataType": "Number"},
            "blob": {"binaryValue": "AAEC", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
        },
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
        "awsRegion": "us-east-2",
    }


def sqs_fifo_sample() -> dict[str, Any]:
    record = sqs_sample()
    record["eventSourceARN"] = "arn:aws:sqs:us-east-2:123456789012:my-queue.fifo"
    record["attributes"].update(
        {
            "SequenceNumber": "18849496460467696128",
            "MessageGroupId": "group-1",
            "MessageDeduplicationId": "dedup-1",
            "DeadLetterQueueSourceArn": "arn:aws:sqs:us-east-2:123456789012:source.fifo",
        }
    )
    return record


def kinesis_sample(data: bytes = b"Hello, this is a test.") -> dict[str, Any]:
    sequence = "49590338271490256608559692538361571095921575989136588898"
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "1",
            "sequenceNumber": sequence,
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1545084650.987,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000006:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": "us-east-2",
        "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream",
    }


def dynamodb_modify_sample() -> dict[str, Any]:
    return {
        "eventID": "c81e728d9d4c2f636f067f89cc14862c",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"Id": {"N": "101"}},
            "NewImage": {
                "Message": {"S": "This item has changed"},
                "Id": {"N": "101"},
                "Tags": {"SS": ["x", "y"]},
                "Meta": {"M": {"count": {"N": "2"}, "seen": {"BOOL": True}}},
            },
            "OldImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
            "ApproximateCreationDateTime": 1428537600,
            "SequenceNumber": "4421584500000000017450439092",
            "SizeBytes": 59,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899",
    }


def dynamodb_ttl_remove_sample() -> dict[str, Any]:
    return {
        "eventID": "eccbc87e4b5ce2fe28308fd9f2a7baf3",
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"Id": {"N": "101"}},
            "ApproximateCreationDateTime": 1428537600,
            "SequenceNumber": "4421584500000000017450439093",
            "SizeBytes": 38,
            "StreamViewType": "KEYS_ONLY",
        },
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899",
    }


def kafka_sample() -> dict[str, Any]:
    return {
        "topic": "mytopic",
        "partition": 0,
        "offset": 15,
        "timestamp": 1545084650987,
        "timestampType": "CREATE_TIME",
        "key": "cmVjb3JkS2V5",
        "value": "eyJrZXkiOiJ2YWx1ZSJ9",
        "headers": [
            {"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]},
            {"Signed": [-1, -128, 127]},
        ],
    }


# ----------------------------------------------------------------------------------------- DictWrapper


ALL_CLASSES: list[type[DictWrapper]] = [
    DictWrapper,
    SQSRecord,
    SQSRecordAttributes,
    SQSMessageAttribute,
    KinesisStreamRecord,
    KinesisStreamRecordPayload,
    DynamoDBRecord,
    StreamRecord,
    KafkaEventRecord,
    KafkaEventRecordSchemaMetadata,
]


class CountingDict(dict[str, Any]):
    """A dict that counts every read, to prove construction does not look at the data."""

    reads = 0

    def _count(self) -> None:
        type(self).reads += 1

    def __getitem__(self, key: str) -> Any:
        self._count()
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._count()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._count()
        return super().__contains__(key)

    def __iter__(self) -> Any:
        self._count()
        return super().__iter__()

    def __len__(self) -> int:
        self._count()
        return super().__len__()

    def keys(self) -> Any:
        self._count()
        return super().keys()

    def items(self) -> Any:
        self._count()
        return super().items()

    def values(self) -> Any:
        self._count()
        return super().values()

    def copy(self) -> Any:
        self._count()
        return super().copy()


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_construction_does_not_read_the_data(cls: type[DictWrapper]) -> None:
    """Constructing any data class performs zero reads of the raw dict (O(1), nothing parsed or copied)."""
    CountingDict.reads = 0
    raw = CountingDict(sqs_sample())
    CountingDict.reads = 0
    cls(raw)
    cls(raw, json.loads)
    assert CountingDict.reads == 0


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_instances_have_no_dict(cls: type[DictWrapper]) -> None:
    """Every data class uses __slots__, so per-record instances stay small."""
    assert not hasattr(cls({}), "__dict__")


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_raw_event_is_the_same_object(cls: type[DictWrapper]) -> None:
    """raw_event returns the very dict passed in, so the processor can find a record by identity."""
    raw = sqs_sample()
    assert cls(raw).raw_event is raw


def test_construction_does_not_validate_or_parse() -> None:
    """A record with a non-JSON body and missing fields constructs fine; errors surface on access only."""
    record = SQSRecord({"body": "not json"})
    with pytest.raises(json.JSONDecodeError):
        _ = record.json_body
    with pytest.raises(KeyError):
        _ = record.message_id


def test_wrapper_is_a_read_only_mapping() -> None:
    """Data classes are Mappings over the raw dict: indexing, get, len, iteration, containment."""
    raw = sqs_sample()
    record = SQSRecord(raw)
    assert record["messageId"] == raw["messageId"]
    assert record.get("messageId") == raw["messageId"]
    assert record.get("missing") is None
    assert record.get("missing", "fallback") == "fallback"
    assert len(record) == len(raw)
    assert list(record) == list(raw)
    assert "body" in record
    assert "nope" not in record
    assert dict(record) == raw
    assert dict(record.items()) == raw
    with pytest.raises(KeyError):
        _ = record["missing"]
    with pytest.raises(TypeError):
        record["body"] = "changed"  # type: ignore[index]


def test_equality_with_wrappers_and_dicts() -> None:
    """Wrappers equal other wrappers with equal data and equal plain dicts; nothing else."""
    raw = sqs_sample()
    record = SQSRecord(raw)
    assert record == SQSRecord(copy.deepcopy(raw))
    assert record == DictWrapper(raw)
    assert record == copy.deepcopy(raw)
    assert copy.deepcopy(raw) == record
    assert record != SQSRecord({**raw, "body": "other"})
    assert record != {**raw, "body": "other"}
    assert record != "not a mapping"
    assert record != 42


def test_wrappers_are_unhashable_like_dicts() -> None:
    """Wrappers over mutable dicts are unhashable, so they cannot silently go stale as dict keys."""
    with pytest.raises(TypeError):
        hash(SQSRecord(sqs_sample()))


def test_repr_shows_identifier_but_never_the_body() -> None:
    """repr names the class and id; the body is never included."""
    raw = sqs_sample()
    raw["body"] = "SECRET-PAYLOAD" * 100
    text = repr(SQSRecord(raw))
    assert text == "SQSRecord(messageId='059f36b4-87a3-44ab-83d2-661975830a7d')"
    assert "SECRET" not in str(SQSRecord(raw))


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (KinesisStreamRecord(kinesis_sample()), "KinesisStreamRecord(eventID='shardId-000000000006:"),
        (DynamoDBRecord(dynamodb_modify_sample()), "DynamoDBRecord(eventID='c81e728d9d4c2f636f067f89cc14862c'"),
        (KafkaEventRecord(kafka_sample()), "KafkaEventRecord(topic='mytopic', partition=0, offset=15)"),
        (DictWrapper({"a": 1, "b": 2}), "DictWrapper(<2 keys>)"),
        (SQSRecord({}), "SQSRecord(<0 keys>)"),
    ],
)
def test_repr_of_each_source(record: DictWrapper, expected: str) -> None:
    """Each source's repr shows its identifiers, or only the key count when they are missing."""
    assert repr(record).startswith(expected)


def test_repr_truncates_long_identifiers() -> None:
    """An absurdly long identifier is truncated in repr."""
    text = repr(SQSRecord({"messageId": "x" * 1000}))
    assert len(text) < 100
    assert text.endswith("...)")


def test_user_subclass_with_cached_property_works() -> None:
    """User subclasses (without __slots__) can add cached_property, as they could with Powertools."""

    class OrderRecord(SQSRecord):
        @cached_property
        def order_id(self) -> int:
            return int(self.json_body["order_id"])

    record = OrderRecord(sqs_sample())
    assert record.order_id == 7
    assert record.order_id == 7


def test_package_exports_every_public_class() -> None:
    """batchlens.data_classes.__all__ lists every public class and each name resolves."""
    expected = {
        "DictWrapper",
        "SQSRecord",
        "SQSRecordAttributes",
        "SQSMessageAttribute",
        "SQSMessageAttributes",
        "KinesisStreamRecord",
        "KinesisStreamRecordPayload",
        "DynamoDBRecord",
        "StreamRecord",
        "DynamoDBRecordEventName",
        "StreamViewType",
        "TypeDeserializer",
        "KafkaEventRecord",
        "KafkaEventRecordSchemaMetadata",
    }
    assert set(data_classes.__all__) == expected
    for name in expected:
        assert getattr(data_classes, name).__name__ == name
    assert expected <= set(dir(data_classes))
    with pytest.raises(AttributeError):
        _ = data_classes.NoSuchClass  # type: ignore[attr-defined]


def test_importing_sqs_classes_loads_no_other_source() -> None:
    """Using only SQSRecord imports neither decimal nor the other source modules (cold start)."""
    code = (
        "import sys\n"
        "from batchlens.data_classes import SQSRecord\n"
        "SQSRecord({'body': '{}'}).json_body\n"
        "loaded = [m for m in ('decimal', 'batchlens.data_classes.dynamodb',"
        " 'batchlens.data_classes.kafka', 'batchlens.data_classes.kinesis') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------- SQS


def test_sqs_record_properties() -> None:
    """Every SQSRecord property reads the documented field of an AWS sample record."""
    record = SQSRecord(sqs_sample())
    assert record.message_id == "059f36b4-87a3-44ab-83d2-661975830a7d"
    assert record.receipt_handle == "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a..."
    assert record.body == '{"order_id": 7, "items": ["a", "b"]}'
    assert record.json_body == {"order_id": 7, "items": ["a", "b"]}
    assert record.md5_of_body == "e4e68fb7bd0e697a0ae8f1bb342846b3"
    assert record.event_source == "aws:sqs"
    assert record.event_source_arn == "arn:aws:sqs:us-east-2:123456789012:my-queue"
    assert record.aws_region == "us-east-2"
    assert record.queue_url == "https://sqs.us-east-2.amazonaws.com/123456789012/my-queue"


def test_sqs_standard_queue_attributes() -> None:
    """SQSRecordAttributes gives the standard attributes as strings and None for FIFO-only ones."""
    attributes = SQSRecord(sqs_sample()).attributes
    assert isinstance(attributes, SQSRecordAttributes)
    assert attributes.approximate_receive_count == "1"
    assert attributes.sent_timestamp == "1545082649183"
    assert attributes.sender_id == "AIDAIENQZJOLO23YVJ4VO"
    assert attributes.approximate_first_receive_timestamp == "1545082649185"
    assert attributes.aws_trace_header is not None
    assert attributes.aws_trace_header.startswith("Root=1-5759e988")
    assert attributes.sequence_number is None
    assert attributes.message_group_id is None
    assert attributes.message_deduplication_id is None
    assert attributes.dead_letter_queue_source_arn is None


def test_sqs_fifo_attributes() -> None:
    """FIFO records expose sequence number, group, deduplication id and DLQ source."""
    record = SQSRecord(sqs_fifo_sample())
    attributes = record.attributes
    assert attributes.sequence_number == "18849496460467696128"
    assert attributes.message_group_id == "group-1"
    assert attributes.message_deduplication_id == "dedup-1"
    assert attributes.dead_letter_queue_source_arn == "arn:aws:sqs:us-east-2:123456789012:source.fifo"
    assert record.queue_url == "https://sqs.us-east-2.amazonaws.com/123456789012/my-queue.fifo"


def test_sqs_message_attributes() -> None:
    """Message attributes give string/binary values and data type; a missing name gives None."""
    attributes = SQSRecord(sqs_sample()).message_attributes
    assert isinstance(attributes, SQSMessageAttributes)
    test_attr = attributes["testAttr"]
    assert isinstance(test_attr, SQSMessageAttribute)
    assert test_attr.string_value == "100"
    assert test_attr.binary_value == "base64Str"
    assert test_attr.data_type == "Number"
    assert attributes["missing"] is None
    assert attributes.get("missing") is None
    assert attributes.get("missing", "default") == "default"
    assert "testAttr" in attributes
    assert sorted(attributes) == ["blob", "testAttr"]
    assert {name: value.data_type for name, value in attributes.items()} == {
        "testAttr": "Number",
        "blob": "Binary",
    }
    assert sorted(value.data_type for value in attributes.values()) == ["Binary", "Number"]


def test_sqs_message_attribute_get_returns_wrapper_still_indexable() -> None:
    """.get returns an SQSMessageAttribute that still supports raw indexing and equals the raw dict."""
    raw = sqs_sample()
    attribute = SQSRecord(raw).message_attributes.get("testAttr")
    assert isinstance(attribute, SQSMessageAttribute)
    assert attribute.string_value == "100"
    assert attribute["stringValue"] == "100"
    assert attribute == raw["messageAttributes"]["testAttr"]


def test_sqs_binary_attribute_string_value_is_none() -> None:
    """Pitfall fix: an attribute without stringValue gives None where Powertools raises KeyError."""
    raw = sqs_sample()
    assert SQSRecord(raw).message_attributes["blob"].string_value is None  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        _ = pt_sqs.SQSRecord(raw).message_attributes["blob"].string_value  # type: ignore[union-attr]


def test_sqs_attribute_without_binary_value_is_none() -> None:
    """A String attribute without binaryValue gives binary_value None instead of KeyError."""
    attribute = SQSMessageAttribute({"stringValue": "x", "dataType": "String"})
    assert attribute.binary_value is None


def test_sqs_json_body_is_parsed_once() -> None:
    """json_body parses on first access only and returns the same object afterwards."""
    calls: list[str] = []

    def counting_loads(text: str) -> Any:
        calls.append(text)
        return json.loads(text)

    record = SQSRecord(sqs_sample(), json_deserializer=counting_loads)
    first = record.json_body
    assert record.json_body is first
    assert len(calls) == 1


def test_sqs_missing_required_field_raises_key_error() -> None:
    """Required fields missing from the raw record raise KeyError, like Powertools."""
    record = SQSRecord({})
    for name in ("message_id", "body", "attributes", "message_attributes", "queue_url"):
        with pytest.raises(KeyError):
            getattr(record, name)


# ------------------------------------------------------------------------------------------- Kinesis


def test_kinesis_record_properties() -> None:
    """Every KinesisStreamRecord property reads the documented field of an AWS sample record."""
    record = KinesisStreamRecord(kinesis_sample())
    assert record.aws_region == "us-east-2"
    assert record.event_id == "shardId-000000000006:49590338271490256608559692538361571095921575989136588898"
    assert record.event_name == "aws:kinesis:record"
    assert record.event_source == "aws:kinesis"
    assert record.event_source_arn == "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
    assert record.event_version == "1.0"
    assert record.invoke_identity_arn == "arn:aws:iam::123456789012:role/lambda-role"
    payload = record.kinesis
    assert isinstance(payload, KinesisStreamRecordPayload)
    assert payload.approximate_arrival_timestamp == 1545084650.987
    assert payload.data == "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg=="
    assert payload.kinesis_schema_version == "1.0"
    assert payload.partition_key == "1"
    assert payload.sequence_number == "49590338271490256608559692538361571095921575989136588898"
    assert payload.raw_event is record.raw_event["kinesis"]


def test_kinesis_arrival_timestamp_is_float() -> None:
    """approximate_arrival_timestamp is a float even when the raw value is an int."""
    raw = kinesis_sample()
    raw["kinesis"]["approximateArrivalTimestamp"] = 1545084650
    value = KinesisStreamRecord(raw).kinesis.approximate_arrival_timestamp
    assert isinstance(value, float)
    assert value == 1545084650.0


def test_kinesis_data_helpers() -> None:
    """data_as_bytes/text/json decode the base64 blob."""
    payload = KinesisStreamRecord(kinesis_sample(b'{"temp": 21.5}')).kinesis
    assert payload.data_as_bytes() == b'{"temp": 21.5}'
    assert payload.data_as_text() == '{"temp": 21.5}'
    assert payload.data_as_json() == {"temp": 21.5}


def test_kinesis_data_as_json_uses_custom_deserializer() -> None:
    """The record's json_deserializer is used by the payload's data_as_json."""
    record = KinesisStreamRecord(kinesis_sample(b"[1]"), json_deserializer=lambda text: ("custom", text))
    assert record.kinesis.data_as_json() == ("custom", "[1]")


@pytest.mark.parametrize("compress", [zlib.compress, gzip.compress])
def test_kinesis_zlib_and_gzip_compressed_json(compress: Any) -> None:
    """data_zlib_compressed_as_json accepts zlib and gzip (CloudWatch Logs subscription) payloads."""
    document = {"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "message": "hi"}]}
    payload = KinesisStreamRecord(kinesis_sample(compress(json.dumps(document).encode()))).kinesis
    assert payload.data_zlib_compressed_as_json() == document


def test_kinesis_invalid_utf8_raises_on_text() -> None:
    """Non-UTF-8 data decodes to bytes but raises UnicodeDecodeError as text."""
    payload = KinesisStreamRecord(kinesis_sample(b"\xff\xfe")).kinesis
    assert payload.data_as_bytes() == b"\xff\xfe"
    with pytest.raises(UnicodeDecodeError):
        payload.data_as_text()


# ------------------------------------------------------------------------------------------ DynamoDB


def test_dynamodb_record_properties() -> None:
    """Every DynamoDBRecord and StreamRecord property reads the documented field of an AWS sample record."""
    record = DynamoDBRecord(dynamodb_modify_sample())
    assert record.aws_region == "us-east-1"
    assert record.event_id == "c81e728d9d4c2f636f067f89cc14862c"
    assert record.event_name is DynamoDBRecordEventName.MODIFY
    assert record.event_source == "aws:dynamodb"
    assert record.event_source_arn is not None
    assert record.event_source_arn.startswith("arn:aws:dynamodb:us-east-1:123456789012:table/")
    assert record.event_version == "1.1"
    assert record.user_identity == {}
    stream = record.dynamodb
    assert isinstance(stream, StreamRecord)
    assert stream.approximate_creation_date_time == 1428537600
    assert stream.keys == {"Id": Decimal(101)}
    assert stream.new_image == {
        "Message": "This item has changed",
        "Id": Decimal(101),
        "Tags": {"x", "y"},
        "Meta": {"count": Decimal(2), "seen": True},
    }
    assert stream.old_image == {"Message": "New item!", "Id": Decimal(101)}
    assert stream.sequence_number == "4421584500000000017450439092"
    assert stream.size_bytes == 59
    assert stream.stream_view_type is StreamViewType.NEW_AND_OLD_IMAGES


def test_dynamodb_ttl_removal() -> None:
    """A TTL REMOVE record has user_identity, KEYS_ONLY view and empty images."""
    record = DynamoDBRecord(dynamodb_ttl_remove_sample())
    assert record.event_name == DynamoDBRecordEventName.REMOVE
    assert record.user_identity == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert record.dynamodb is not None
    assert record.dynamodb.stream_view_type is StreamViewType.KEYS_ONLY
    assert record.dynamodb.new_image == {}
    assert record.dynamodb.old_image == {}


def test_dynamodb_missing_fields_are_none() -> None:
    """All DynamoDBRecord and StreamRecord fields are optional, as in Powertools."""
    record = DynamoDBRecord({})
    assert record.dynamodb is None
    assert record.event_name is None
    assert record.aws_region is None
    assert record.event_id is None
    assert record.event_source is None
    assert record.event_source_arn is None
    assert record.event_version is None
    stream = StreamRecord({})
    assert stream.approximate_creation_date_time is None
    assert stream.sequence_number is None
    assert stream.size_bytes is None
    assert stream.stream_view_type is None
    assert stream.keys == {}


def test_dynamodb_unknown_event_name_raises_key_error() -> None:
    """An unknown eventName raises KeyError, like Powertools."""
    with pytest.raises(KeyError):
        _ = DynamoDBRecord({"eventName": "UPSERT"}).event_name


def test_dynamodb_images_are_deserialized_once() -> None:
    """record.dynamodb is the same object on each access, and its images are deserialized once."""
    record = DynamoDBRecord(dynamodb_modify_sample())
    stream = record.dynamodb
    assert record.dynamodb is stream
    assert stream is not None
    assert stream.new_image is stream.new_image
    assert stream.old_image is stream.old_image
    assert stream.keys is stream.keys


def test_dynamodb_enums_compare_equal_to_powertools_enums() -> None:
    """Handlers comparing against Powertools' enums keep working with batchlens records."""
    record = DynamoDBRecord(dynamodb_modify_sample())
    assert record.event_name == pt_dynamodb.DynamoDBRecordEventName.MODIFY
    assert record.event_name != pt_dynamodb.DynamoDBRecordEventName.INSERT
    assert pt_dynamodb.DynamoDBRecordEventName.MODIFY == record.event_name  # noqa: SIM300 (reflected __eq__)
    assert record.dynamodb is not None
    assert record.dynamodb.stream_view_type == pt_dynamodb.StreamViewType.NEW_AND_OLD_IMAGES
    assert record.dynamodb.stream_view_type != pt_dynamodb.StreamViewType.KEYS_ONLY
    assert {pt_dynamodb.DynamoDBRecordEventName.MODIFY: "hit"}[DynamoDBRecordEventName.MODIFY] == "hit"
    assert DynamoDBRecordEventName.MODIFY != StreamViewType.NEW_IMAGE
    assert DynamoDBRecordEventName.INSERT != "INSERT"


def test_dynamodb_enum_names_and_values_match_powertools() -> None:
    """Enum member names and values are those of Powertools."""
    for ours, theirs in [
        (DynamoDBRecordEventName, pt_dynamodb.DynamoDBRecordEventName),
        (StreamViewType, pt_dynamodb.StreamViewType),
    ]:
        assert [(m.name, m.value) for m in ours] == [(m.name, m.value) for m in theirs]


# --------------------------------------------------------------------------------------------- Kafka


def test_kafka_record_properties() -> None:
    """Every KafkaEventRecord property reads or decodes the documented field of an AWS sample record."""
    record = KafkaEventRecord(kafka_sample())
    assert record.topic == "mytopic"
    assert record.partition == 0
    assert record.offset == 15
    assert record.timestamp == 1545084650987
    assert record.timestamp_type == "CREATE_TIME"
    assert record.key == "cmVjb3JkS2V5"
    assert record.decoded_key == b"recordKey"
    assert record.value == "eyJrZXkiOiJ2YWx1ZSJ9"
    assert record.decoded_value == b'{"key":"value"}'
    assert record.json_value == {"key": "value"}
    assert record.headers == kafka_sample()["headers"]
    assert record.decoded_headers == {"headerkey": b"headerValue", "signed": b"\xff\x80\x7f"}
    assert record.key_schema_metadata is None
    assert record.value_schema_metadata is None


def test_kafka_record_without_key() -> None:
    """A record produced without a key has key and decoded_key None."""
    raw = kafka_sample()
    del raw["key"]
    record = KafkaEventRecord(raw)
    assert record.key is None
    assert record.decoded_key is None


def test_kafka_decoded_headers_are_case_insensitive() -> None:
    """decoded_headers lookups ignore case, store lower-cased names, and a later duplicate wins."""
    raw = kafka_sample()
    raw["headers"].append({"HEADERKEY": [50]})
    headers = KafkaEventRecord(raw).decoded_headers
    assert headers["HeaderKey"] == b"2"
    assert headers.get("headerkey") == b"2"
    assert headers.get("absent") is None
    assert "HEADERKEY" in headers
    assert sorted(headers) == ["headerkey", "signed"]
    assert headers == {"HeaderKey": b"2", "Signed": b"\xff\x80\x7f"}


def test_kafka_decoded_headers_mutation_is_case_insensitive() -> None:
    """Setting, updating, popping and deleting decoded headers ignore case too."""
    headers = KafkaEventRecord(kafka_sample()).decoded_headers
    headers["X-Trace"] = b"t"
    assert headers["x-trace"] == b"t"
    headers.update({"X-OTHER": b"o"})
    assert headers["x-other"] == b"o"
    assert headers.setdefault("X-TRACE", b"ignored") == b"t"
    assert headers.pop("X-Other") == b"o"
    del headers["SIGNED"]
    assert "signed" not in headers
    assert headers.copy() == headers


def test_kafka_cached_values() -> None:
    """json_value and decoded_headers are computed once and reused."""
    calls: list[str] = []
    record = KafkaEventRecord(kafka_sample(), json_deserializer=lambda text: calls.append(text) or {"n": 1})
    assert record.json_value is record.json_value
    assert calls == ['{"key":"value"}']
    assert record.decoded_headers is record.decoded_headers


def test_kafka_schema_metadata() -> None:
    """Schema registry metadata of key and value is exposed when present."""
    raw = kafka_sample()
    raw["keySchemaMetadata"] = {"dataFormat": "AVRO", "schemaId": "1234"}
    raw["valueSchemaMetadata"] = {"dataFormat": "JSON"}
    record = KafkaEventRecord(raw)
    assert record.key_schema_metadata is not None
    assert record.key_schema_metadata.data_format == "AVRO"
    assert record.key_schema_metadata.schema_id == "1234"
    assert record.value_schema_metadata is not None
    assert record.value_schema_metadata.data_format == "JSON"
    assert record.value_schema_metadata.schema_id is None


# ---------------------------------------------------------------------------------- differential tests


def outcome(function: Any) -> Any:
    """The value of a property access, or the exception type it raised."""
    try:
        return ("ok", function())
    except Exception as error:  # differential: any exception type must match
        return ("error", type(error))


def assert_same_properties(ours: Any, theirs: Any, names: list[str]) -> None:
    for name in names:
        assert outcome(lambda n=name: getattr(ours, n)) == outcome(lambda n=name: getattr(theirs, n)), name


def assert_same_methods(ours: Any, theirs: Any, names: list[str]) -> None:
    for name in names:
        assert outcome(getattr(ours, name)) == outcome(getattr(theirs, name)), name


regions = st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"])
accounts = st.from_regex(r"\A[0-9]{12}\Z")
short_text = st.text(max_size=20)
json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)
bodies = st.one_of(short_text, json_documents.map(json.dumps))

message_attributes = st.fixed_dictionaries(
    {"dataType": st.sampled_from(["String", "Number", "Binary", "Number.float"])},
    optional={
        "stringValue": short_text,
        "binaryValue": st.binary(max_size=10).map(lambda raw: base64.b64encode(raw).decode()),
        "stringListValues": st.just([]),
        "binaryListValues": st.just([]),
    },
)

sqs_attributes = st.fixed_dictionaries(
    {
        "ApproximateReceiveCount": st.integers(1, 50).map(str),
        "SentTimestamp": st.integers(0, 2**42).map(str),
        "SenderId": short_text,
        "ApproximateFirstReceiveTimestamp": st.integers(0, 2**42).map(str),
    },
    optional={
        "AWSTraceHeader": short_text,
        "SequenceNumber": st.integers(0, 2**64).map(str),
        "MessageGroupId": short_text,
        "MessageDeduplicationId": short_text,
        "DeadLetterQueueSourceArn": short_text,
    },
)


@st.composite
def sqs_records(draw: st.DrawFn) -> dict[str, Any]:
    region = draw(regions)
    queue = draw(st.from_regex(r"\A[A-Za-z0-9_-]{1,20}(\.fifo)?\Z"))
    return {
        "messageId": str(draw(st.uuids())),
        "receiptHandle": draw(short_text),
        "body": draw(bodies),
        "attributes": draw(sqs_attributes),
        "messageAttributes": draw(st.dictionaries(st.text(min_size=1, max_size=8), message_attributes, max_size=4)),
        "md5OfBody": draw(short_text),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{region}:{draw(accounts)}:{queue}",
        "awsRegion": region,
    }


SQS_RECORD_PROPERTIES = [
    "message_id",
    "receipt_handle",
    "body",
    "json_body",
    "md5_of_body",
    "event_source",
    "event_source_arn",
    "aws_region",
    "queue_url",
    "raw_event",
]
SQS_ATTRIBUTE_PROPERTIES = [
    "aws_trace_header",
    "approximate_receive_count",
    "sent_timestamp",
    "sender_id",
    "approximate_first_receive_timestamp",
    "sequence_number",
    "message_group_id",
    "message_deduplication_id",
    "dead_letter_queue_source_arn",
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sqs_records())
def test_sqs_matches_powertools(raw: dict[str, Any]) -> None:
    """Every SQSRecord property equals Powertools' on generated records, except the stringValue pitfall fix."""
    ours, theirs = SQSRecord(raw), pt_sqs.SQSRecord(raw)
    assert_same_properties(ours, theirs, SQS_RECORD_PROPERTIES)
    assert_same_properties(ours.attributes, theirs.attributes, SQS_ATTRIBUTE_PROPERTIES)

    our_attributes, their_attributes = ours.message_attributes, theirs.message_attributes
    assert sorted(our_attributes) == sorted(their_attributes)
    assert our_attributes["not-a-real-name"] is their_attributes["not-a-real-name"] is None
    for name, raw_attribute in raw["messageAttributes"].items():
        our_attribute, their_attribute = our_attributes[name], their_attributes[name]
        assert our_attribute is not None
        assert their_attribute is not None
        assert our_attribute.data_type == their_attribute.data_type
        for field, prop in (("stringValue", "string_value"), ("binaryValue", "binary_value")):
            if field in raw_attribute:
                assert getattr(our_attribute, prop) == getattr(their_attribute, prop)
            else:
                assert getattr(our_attribute, prop) is None
                with pytest.raises(KeyError):
                    getattr(their_attribute, prop)
    assert {name: dict(value) for name, value in our_attributes.items()} == {
        name: dict(value) for name, value in their_attributes.items()
    }


@st.composite
def kinesis_records(draw: st.DrawFn) -> dict[str, Any]:
    region = draw(regions)
    kind = draw(st.sampled_from(["bytes", "text", "json", "zlib", "gzip", "not-base64"]))
    if kind == "bytes":
        blob = draw(st.binary(max_size=30))
    elif kind == "text":
        blob = draw(short_text).encode()
    elif kind == "json":
        blob = json.dumps(draw(json_documents)).encode()
    else:
        document = json.dumps(draw(json_documents)).encode()
        blob = zlib.compress(document) if kind == "zlib" else gzip.compress(document)
    data = draw(st.text(max_size=10)) if kind == "not-base64" else base64.b64encode(blob).decode()
    sequence = str(draw(st.integers(0, 10**56)))
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": draw(short_text),
            "sequenceNumber": sequence,
            "data": data,
            "approximateArrivalTimestamp": draw(
                st.floats(min_value=0, max_value=2e9, allow_nan=False) | st.integers(0, 2**31) | st.just("1.5")
            ),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{draw(accounts)}:role/lambda-role",
        "awsRegion": region,
        "eventSourceARN": f"arn:aws:kinesis:{region}:{draw(accounts)}:stream/s",
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinesis_records())
def test_kinesis_matches_powertools(raw: dict[str, Any]) -> None:
    """Every KinesisStreamRecord property and data helper equals Powertools' on generated records."""
    ours, theirs = KinesisStreamRecord(raw), pt_kinesis.KinesisStreamRecord(raw)
    assert_same_properties(
        ours,
        theirs,
        [
            "aws_region",
            "event_id",
            "event_name",
            "event_source",
            "event_source_arn",
            "event_version",
            "invoke_identity_arn",
            "raw_event",
        ],
    )
    assert_same_properties(
        ours.kinesis,
        theirs.kinesis,
        ["approximate_arrival_timestamp", "data", "kinesis_schema_version", "partition_key", "sequence_number"],
    )
    assert_same_methods(
        ours.kinesis,
        theirs.kinesis,
        ["data_as_bytes", "data_as_text", "data_as_json", "data_zlib_compressed_as_json"],
    )


number_texts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.integers(-(10**40), 10**40).map(str),
)
scalar_attribute_values = st.one_of(
    st.just({"NULL": True}),
    st.booleans().map(lambda flag: {"BOOL": flag}),
    number_texts.map(lambda text: {"N": text}),
    short_text.map(lambda text: {"S": text}),
    st.binary(max_size=8).map(lambda raw: {"B": base64.b64encode(raw).decode()}),
    st.lists(number_texts, min_size=1, max_size=3).map(lambda texts: {"NS": texts}),
    st.lists(short_text, min_size=1, max_size=3).map(lambda texts: {"SS": texts}),
)
attribute_values = st.recursive(
    scalar_attribute_values,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: {"L": items}),
        st.dictionaries(st.text(max_size=5), children, max_size=3).map(lambda entries: {"M": entries}),
    ),
    max_leaves=8,
)
items = st.dictionaries(st.text(min_size=1, max_size=6), attribute_values, max_size=4)


@st.composite
def dynamodb_records(draw: st.DrawFn) -> dict[str, Any]:
    stream = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "Keys": items,
                "NewImage": items,
                "OldImage": items,
                "ApproximateCreationDateTime": st.integers(0, 2**32) | st.just(1.7e9),
                "SequenceNumber": st.integers(0, 10**30).map(str),
                "SizeBytes": st.integers(1, 400_000),
                "StreamViewType": st.sampled_from(["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"]),
            },
        )
    )
    return draw(
        st.fixed_dictionaries(
            {},
            optional={
                "eventID": short_text,
                "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
                "eventVersion": st.just("1.1"),
                "eventSource": st.just("aws:dynamodb"),
                "awsRegion": regions,
                "dynamodb": st.just(stream),
                "eventSourceARN": short_text,
                "userIdentity": st.just({"type": "Service", "principalId": "dynamodb.amazonaws.com"}),
            },
        )
    )


def enum_name(value: Any) -> Any:
    return value.name if value is not None else None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dynamodb_records())
def test_dynamodb_matches_powertools(raw: dict[str, Any]) -> None:
    """Every DynamoDBRecord and StreamRecord property equals Powertools' on generated records."""
    ours, theirs = DynamoDBRecord(raw), pt_dynamodb.DynamoDBRecord(raw)
    assert_same_properties(
        ours,
        theirs,
        ["aws_region", "event_id", "event_source", "event_source_arn", "event_version", "user_identity", "raw_event"],
    )
    assert enum_name(ours.event_name) == enum_name(theirs.event_name)
    assert ours.event_name == theirs.event_name
    if theirs.dynamodb is None:
        assert ours.dynamodb is None
        return
    our_stream, their_stream = ours.dynamodb, theirs.dynamodb
    assert our_stream is not None
    assert_same_properties(
        our_stream,
        their_stream,
        ["approximate_creation_date_time", "keys", "new_image", "old_image", "sequence_number", "size_bytes"],
    )
    assert enum_name(our_stream.stream_view_type) == enum_name(their_stream.stream_view_type)


headers = st.lists(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.lists(st.integers(-128, 255), max_size=8),
        min_size=1,
        max_size=1,
    ),
    max_size=4,
)


@st.composite
def kafka_records(draw: st.DrawFn) -> dict[str, Any]:
    value = json.dumps(draw(json_documents)).encode() if draw(st.booleans()) else draw(st.binary(max_size=20))
    record = {
        "topic": draw(st.text(min_size=1, max_size=10)),
        "partition": draw(st.integers(0, 100)),
        "offset": draw(st.integers(0, 2**40)),
        "timestamp": draw(st.integers(0, 2**42)),
        "timestampType": draw(st.sampled_from(["CREATE_TIME", "LOG_APPEND_TIME"])),
        "value": base64.b64encode(value).decode(),
        "headers": draw(headers),
    }
    key = draw(st.none() | st.binary(max_size=10).map(lambda raw: base64.b64encode(raw).decode()))
    if key is not None or draw(st.booleans()):
        record["key"] = key
    return record


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kafka_records())
def test_kafka_matches_powertools(raw: dict[str, Any]) -> None:
    """Every KafkaEventRecord property equals Powertools' on generated records, incl. header decoding."""
    ours, theirs = KafkaEventRecord(raw), pt_kafka.KafkaEventRecord(raw)
    assert_same_properties(
        ours,
        theirs,
        [
            "topic",
            "partition",
            "offset",
            "timestamp",
            "timestamp_type",
            "key",
            "decoded_key",
            "value",
            "decoded_value",
            "json_value",
            "headers",
            "raw_event",
        ],
    )
    our_headers, their_headers = ours.decoded_headers, theirs.decoded_headers
    assert dict(our_headers.items()) == dict(their_headers.items())
    for header in raw["headers"]:
        for name in header:
            for variant in (name, name.upper(), name.lower()):
                assert outcome(lambda v=variant: our_headers[v]) == outcome(lambda v=variant: their_headers[v])
                assert (variant in our_headers) == (variant in their_headers)
