"""Tests for batchlens.models, mostly differential against the Powertools parser models."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import os
import re
import subprocess
import sys
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import pytest
from aws_lambda_powertools.utilities.parser import models as pt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlens import models as bl

# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------

INVALID = "invalid"


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def ours(model: type[pydantic.BaseModel], raw: Any) -> Any:
    """Validate with a batchlens model; anything but a ValidationError escapes and fails the test."""
    try:
        return model.model_validate(copy.deepcopy(raw)).model_dump()
    except pydantic.ValidationError:
        return INVALID


def theirs(model: type[pydantic.BaseModel], raw: Any) -> Any:
    """Validate with a Powertools model, which sometimes raises raw TypeError/AttributeError instead."""
    try:
        return model.model_validate(copy.deepcopy(raw)).model_dump()
    except Exception:
        return INVALID


def assert_same(our_model: type[pydantic.BaseModel], their_model: type[pydantic.BaseModel], raw: Any) -> Any:
    result = ours(our_model, raw)
    assert result == theirs(their_model, raw)
    return result


# ---------------------------------------------------------------------------------------------------------
# Realistic AWS sample records
# ---------------------------------------------------------------------------------------------------------

SQS_STANDARD = {
    "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
    "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
    "body": "Test message.",
    "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1545082649183",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1545082649185",
        "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    },
    "messageAttributes": {
        "testAttr": {"stringValue": "100", "binaryValue": "YmFzZTY0U3Ry", "dataType": "Number"},
        "tags": {"stringValue": "a,b", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
    },
    "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
    "md5OfMessageAttributes": "00484c68...59e48fb7",
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
    "awsRegion": "us-east-2",
}

SQS_FIFO = {
    "messageId": "11d6ee51-4cc7-4302-9e22-7cd8afdaadf5",
    "receiptHandle": "AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw...",
    "body": '{"item": {"sku": "A-1", "qty": 2}}',
    "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1573251510774",
        "SequenceNumber": "18849496460467696128",
        "MessageGroupId": "1",
        "SenderId": "AIDAIO23YVJENQZJOL4VO",
        "MessageDeduplicationId": "1",
        "ApproximateFirstReceiveTimestamp": "1573251510774",
        "DeadLetterQueueSourceArn": "arn:aws:sqs:us-east-2:123456789012:fifo.fifo",
    },
    "messageAttributes": {},
    "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:fifo.fifo",
    "awsRegion": "us-east-2",
}

CLOUDWATCH_LOGS = {
    "messageType": "DATA_MESSAGE",
    "owner": "123456789012",
    "logGroup": "/aws/lambda/orders",
    "logStream": "2024/01/01/[$LATEST]abc",
    "subscriptionFilters": ["all"],
    "logEvents": [{"id": "1", "timestamp": 1704067200000, "message": "hello"}],
}


def kinesis_record(data: str) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "1",
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": data,
            "approximateArrivalTimestamp": 1545084650.987,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
        "awsRegion": "us-east-2",
        "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream",
    }


KINESIS_JSON = kinesis_record(b64('{"item": {"sku": "A-1", "qty": 2}}'))
KINESIS_CLOUDWATCH = kinesis_record(b64(gzip.compress(json.dumps(CLOUDWATCH_LOGS).encode())))

ORDER_JSON = '{"item": {"sku": "A-1", "qty": 2}}'


def ddb_record(event_name: str, view: str, dynamodb: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "eventID": "c4ca4238a0b923820dcc509a6f75849b",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1479499740,
            "SequenceNumber": "4421584500000000017450439091",
            "SizeBytes": 26,
            "StreamViewType": view,
            **dynamodb,
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2015-06-27T00:48:05.899",
        **extra,
    }


DDB_INSERT = ddb_record(
    "INSERT",
    "NEW_AND_OLD_IMAGES",
    {
        "Keys": {"Id": {"N": "101"}},
        "NewImage": {
            "Id": {"N": "101"},
            "Message": {"S": ORDER_JSON},
            "Price": {"N": "12.50"},
            "Huge": {"N": "1234567890123456789012345678901234567800000"},
            "Active": {"BOOL": True},
            "Nothing": {"NULL": True},
            "Blob": {"B": "aGVsbG8="},
            "Sizes": {"NS": ["1", "2.5"]},
            "Tags": {"SS": ["a", "b"]},
            "Blobs": {"BS": ["aGk=", "eW8="]},
            "Lines": {"L": [{"S": "x"}, {"N": "3"}, {"M": {"deep": {"L": []}}}]},
            "Address": {"M": {"City": {"S": "Lisbon"}, "Zip": {"N": "1000"}}},
        },
    },
)
DDB_MODIFY = ddb_record(
    "MODIFY",
    "NEW_AND_OLD_IMAGES",
    {
        "Keys": {"Id": {"N": "101"}},
        "NewImage": {"Id": {"N": "101"}, "Message": {"S": ORDER_JSON}},
        "OldImage": {"Id": {"N": "101"}, "Message": {"S": '{"item": {"sku": "A-0", "qty": 1}}'}},
    },
)
DDB_TTL_REMOVE = ddb_record(
    "REMOVE",
    "KEYS_ONLY",
    {"Keys": {"Id": {"N": "7"}, "Sort": {"S": "2024"}}},
    userIdentity={"type": "Service", "principalId": "dynamodb.amazonaws.com"},
)

KAFKA_MSK = {
    "topic": "mytopic",
    "partition": 0,
    "offset": 15,
    "timestamp": 1545084650987,
    "timestampType": "CREATE_TIME",
    "key": b64("recordKey"),
    "value": b64(ORDER_JSON),
    "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}],
}
KAFKA_SIGNED_NO_KEY = {
    "topic": "mymessage-with-unsigned",
    "partition": "3",
    "offset": "42",
    "timestamp": 1545084650987,
    "timestampType": "LOG_APPEND_TIME",
    "key": None,
    "value": b64("plain text ✓"),
    "headers": [{"trace": [-1, 0, 127, -128]}, {"a": [], "b": [1, 2]}],
    "keySchemaMetadata": {"dataFormat": "AVRO", "schemaId": "1234"},
    "valueSchemaMetadata": {"dataFormat": "JSON", "schemaId": "5678"},
}


# ---------------------------------------------------------------------------------------------------------
# Field definitions
# ---------------------------------------------------------------------------------------------------------

MODEL_PAIRS = [
    (bl.SqsAttributesModel, pt.SqsAttributesModel),
    (bl.SqsMsgAttributeModel, pt.SqsMsgAttributeModel),
    (bl.SqsRecordModel, pt.SqsRecordModel),
    (bl.KinesisDataStreamRecordPayload, pt.KinesisDataStreamRecordPayload),
    (bl.KinesisDataStreamRecord, pt.KinesisDataStreamRecord),
    (bl.DynamoDBStreamChangedRecordModel, pt.DynamoDBStreamChangedRecordModel),
    (bl.DynamoDBStreamRecordModel, pt.DynamoDBStreamRecordModel),
    (bl.KafkaRecordModel, pt.KafkaRecordModel),
]


def _shape(model: type[pydantic.BaseModel]) -> dict[str, tuple[bool, Any, str]]:
    def annotation(tp: Any) -> str:
        text = re.sub(r"[\w.]+\.(\w+)", r"\1", repr(tp))  # drop module paths so both sides compare
        return text.replace("DynamoDBUserIdentityModel", "UserIdentity")

    return {
        name: (field.is_required(), annotation(field.annotation), repr(field.default))
        for name, field in model.model_fields.items()
    }


@pytest.mark.parametrize(("ours_model", "their_model"), MODEL_PAIRS, ids=lambda m: m.__name__)
def test_field_names_types_and_defaults_match_powertools(
    ours_model: type[pydantic.BaseModel], their_model: type[pydantic.BaseModel]
) -> None:
    """Each model has the same fields, annotations, required-ness and defaults as its Powertools twin."""
    assert _shape(ours_model) == _shape(their_model)


def test_reexports_pydantic_json_and_base_model() -> None:
    """Json and BaseModel are pydantic's own objects, and every __all__ name exists."""
    assert bl.Json is pydantic.Json
    assert bl.BaseModel is pydantic.BaseModel
    assert all(hasattr(bl, name) for name in bl.__all__)


# ---------------------------------------------------------------------------------------------------------
# Realistic samples: same values as Powertools
# ---------------------------------------------------------------------------------------------------------

SAMPLES = [
    pytest.param(bl.SqsRecordModel, pt.SqsRecordModel, SQS_STANDARD, id="sqs-standard"),
    pytest.param(bl.SqsRecordModel, pt.SqsRecordModel, SQS_FIFO, id="sqs-fifo"),
    pytest.param(bl.KinesisDataStreamRecord, pt.KinesisDataStreamRecord, KINESIS_JSON, id="kinesis-json"),
    pytest.param(bl.KinesisDataStreamRecord, pt.KinesisDataStreamRecord, KINESIS_CLOUDWATCH, id="kinesis-cwl"),
    pytest.param(bl.DynamoDBStreamRecordModel, pt.DynamoDBStreamRecordModel, DDB_INSERT, id="ddb-insert"),
    pytest.param(bl.DynamoDBStreamRecordModel, pt.DynamoDBStreamRecordModel, DDB_MODIFY, id="ddb-modify"),
    pytest.param(bl.DynamoDBStreamRecordModel, pt.DynamoDBStreamRecordModel, DDB_TTL_REMOVE, id="ddb-ttl"),
    pytest.param(bl.KafkaRecordModel, pt.KafkaRecordModel, KAFKA_MSK, id="kafka-msk"),
    pytest.param(bl.KafkaRecordModel, pt.KafkaRecordModel, KAFKA_SIGNED_NO_KEY, id="kafka-signed"),
]


@pytest.mark.parametrize(("ours_model", "their_model", "raw"), SAMPLES)
def test_sample_record_dumps_like_powertools(
    ours_model: type[pydantic.BaseModel], their_model: type[pydantic.BaseModel], raw: dict[str, Any]
) -> None:
    """A realistic AWS record validates and dumps to exactly what the Powertools model gives."""
    result = assert_same(ours_model, their_model, raw)
    assert result != INVALID


def test_sqs_fields_parsed() -> None:
    """SQS timestamps become aware datetimes and message attributes become sub-models."""
    record = bl.SqsRecordModel.model_validate(SQS_STANDARD)
    assert record.attributes.SentTimestamp.timestamp() == pytest.approx(1545082649.183)
    assert record.attributes.MessageGroupId is None
    assert record.messageAttributes["testAttr"].stringValue == "100"
    assert record.messageAttributes["testAttr"].stringListValues == []


def test_kinesis_data_is_base64_decoded_to_bytes() -> None:
    """Kinesis data arrives as base64 text and is exposed as the decoded bytes."""
    record = bl.KinesisDataStreamRecord.model_validate(KINESIS_JSON)
    assert record.kinesis.data == ORDER_JSON.encode()


def test_kinesis_invalid_base64_is_a_validation_error() -> None:
    """Data with broken padding or non-ASCII text fails validation (Powertools fails too)."""
    for data in ("abc", "é=="):
        raw = kinesis_record(data)
        with pytest.raises(pydantic.ValidationError, match="base64"):
            bl.KinesisDataStreamRecord.model_validate(raw)
        assert theirs(pt.KinesisDataStreamRecord, raw) == INVALID


def test_kinesis_decompresses_cloudwatch_logs_like_powertools() -> None:
    """decompress_zlib_record_data_as_json inflates gzip/zlib data to the same JSON as Powertools."""
    ours_json = bl.KinesisDataStreamRecord.model_validate(KINESIS_CLOUDWATCH).decompress_zlib_record_data_as_json()
    theirs_json = pt.KinesisDataStreamRecord.model_validate(KINESIS_CLOUDWATCH).decompress_zlib_record_data_as_json()
    assert ours_json == theirs_json == CLOUDWATCH_LOGS
    zlib_record = kinesis_record(b64(zlib.compress(b'{"a": 1}')))
    assert bl.KinesisDataStreamRecord.model_validate(zlib_record).decompress_zlib_record_data_as_json() == {"a": 1}


def test_dynamodb_images_are_deserialized() -> None:
    """Keys and images hold plain Python values: Decimal, bool, None, sets, lists, dicts, base64 text."""
    change = bl.DynamoDBStreamRecordModel.model_validate(DDB_INSERT).dynamodb
    assert change.Keys == {"Id": Decimal("101")}
    image = change.NewImage
    assert isinstance(image, dict)
    assert image["Price"] == Decimal("12.50")
    assert image["Huge"] == Decimal("1234567890123456789012345678901234567800000")
    assert image["Active"] is True
    assert image["Nothing"] is None
    assert image["Blob"] == "aGVsbG8="
    assert image["Sizes"] == {Decimal(1), Decimal("2.5")}
    assert image["Tags"] == {"a", "b"}
    assert image["Blobs"] == {"aGk=", "eW8="}
    assert image["Lines"] == ["x", Decimal(3), {"deep": []}]
    assert image["Address"] == {"City": "Lisbon", "Zip": Decimal(1000)}
    assert change.OldImage is None


def test_dynamodb_number_precision_is_enforced() -> None:
    """A number with more than 38 significant digits is rejected; "" and "." read as zero."""
    raw = copy.deepcopy(DDB_TTL_REMOVE)
    raw["dynamodb"]["Keys"] = {"Id": {"N": "1" * 39}}
    with pytest.raises(pydantic.ValidationError, match="DynamoDB"):
        bl.DynamoDBStreamRecordModel.model_validate(raw)
    raw["dynamodb"]["Keys"] = {"A": {"N": ""}, "B": {"N": "."}}
    assert bl.DynamoDBStreamRecordModel.model_validate(raw).dynamodb.Keys == {"A": 0, "B": 0}


@pytest.mark.parametrize(
    "image",
    [None, [], {"Id": {}}, {"Id": {"X": "1"}}, {"Id": {"N": "abc"}}, {"Id": {"L": 5}}, {"Id": {"SS": [[1]]}}],
)
def test_dynamodb_malformed_image_is_a_validation_error(image: Any) -> None:
    """Malformed DynamoDB JSON is a ValidationError here, where Powertools raises assorted errors."""
    raw = copy.deepcopy(DDB_MODIFY)
    raw["dynamodb"]["NewImage"] = image
    with pytest.raises(pydantic.ValidationError):
        bl.DynamoDBStreamRecordModel.model_validate(raw)
    assert theirs(pt.DynamoDBStreamRecordModel, raw) == INVALID


def test_kafka_key_value_and_headers_are_decoded() -> None:
    """Kafka key becomes bytes, value UTF-8 text, and signed header byte arrays become bytes."""
    record = bl.KafkaRecordModel.model_validate(KAFKA_MSK)
    assert record.key == b"recordKey"
    assert record.value == ORDER_JSON
    assert record.headers == [{"headerKey": b"headerValue"}]
    signed = bl.KafkaRecordModel.model_validate(KAFKA_SIGNED_NO_KEY)
    assert signed.key is None
    assert signed.value == "plain text ✓"
    assert signed.headers == [{"trace": b"\xff\x00\x7f\x80"}, {"a": b"", "b": b"\x01\x02"}]
    assert signed.partition == 3


def test_kafka_does_not_modify_the_raw_event() -> None:
    """Header decoding builds new objects instead of rewriting the caller's event in place."""
    raw = copy.deepcopy(KAFKA_MSK)
    bl.KafkaRecordModel.model_validate(raw)
    assert raw == KAFKA_MSK


def test_kafka_non_utf8_value_is_a_validation_error() -> None:
    """A value that is not UTF-8 after decoding fails validation, as in Powertools."""
    raw = {**KAFKA_MSK, "value": b64(b"\xff\xfe")}
    with pytest.raises(pydantic.ValidationError, match="UTF-8"):
        bl.KafkaRecordModel.model_validate(raw)
    assert theirs(pt.KafkaRecordModel, raw) == INVALID


# ---------------------------------------------------------------------------------------------------------
# User subclasses
# ---------------------------------------------------------------------------------------------------------


class Item(pydantic.BaseModel):
    sku: str
    qty: int


class Order(pydantic.BaseModel):
    item: Item


class OurSqsOrder(bl.SqsRecordModel):
    body: bl.Json[Order]  # type: ignore[assignment]


class TheirSqsOrder(pt.SqsRecordModel):
    body: pydantic.Json[Order]  # type: ignore[assignment]


class OurKinesisOrderPayload(bl.KinesisDataStreamRecordPayload):
    data: bl.Json[Order]  # type: ignore[assignment]


class OurKinesisOrder(bl.KinesisDataStreamRecord):
    kinesis: OurKinesisOrderPayload


class TheirKinesisOrderPayload(pt.KinesisDataStreamRecordPayload):
    data: pydantic.Json[Order]  # type: ignore[assignment]


class TheirKinesisOrder(pt.KinesisDataStreamRecord):
    kinesis: TheirKinesisOrderPayload


class OrderImage(pydantic.BaseModel):
    Id: Decimal
    Message: pydantic.Json[Order]


class OurDdbOrderChange(bl.DynamoDBStreamChangedRecordModel):
    NewImage: OrderImage | None = None  # type: ignore[assignment]
    OldImage: OrderImage | None = None  # type: ignore[assignment]


class OurDdbOrder(bl.DynamoDBStreamRecordModel):
    dynamodb: OurDdbOrderChange


class TheirDdbOrderChange(pt.DynamoDBStreamChangedRecordModel):
    NewImage: OrderImage | None = None  # type: ignore[assignment]
    OldImage: OrderImage | None = None  # type: ignore[assignment]


class TheirDdbOrder(pt.DynamoDBStreamRecordModel):
    dynamodb: TheirDdbOrderChange


class OurKafkaOrder(bl.KafkaRecordModel):
    value: bl.Json[Order]  # type: ignore[assignment]


class TheirKafkaOrder(pt.KafkaRecordModel):
    value: pydantic.Json[Order]  # type: ignore[assignment]


def test_sqs_subclass_parses_json_body_into_nested_models() -> None:
    """Overriding body with Json[Order] yields an Order with a nested Item, as in Powertools."""
    record = OurSqsOrder.model_validate(SQS_FIFO)
    assert record.body == Order(item=Item(sku="A-1", qty=2))
    assert assert_same(OurSqsOrder, TheirSqsOrder, SQS_FIFO) != INVALID


def test_sqs_subclass_rejects_bad_json_body_like_powertools() -> None:
    """Plain text, or JSON not matching Order, fails the Json[Order] subclass in both libraries."""
    for body in ("Test message.", '{"item": {"sku": "A-1"}}', '{"item": 3}'):
        raw = {**SQS_FIFO, "body": body}
        assert ours(OurSqsOrder, raw) == INVALID
        assert theirs(TheirSqsOrder, raw) == INVALID


def test_kinesis_subclass_parses_decoded_data_as_json() -> None:
    """Json[Order] on the payload parses the base64-decoded bytes."""
    record = OurKinesisOrder.model_validate(KINESIS_JSON)
    assert record.kinesis.data.item.qty == 2
    assert assert_same(OurKinesisOrder, TheirKinesisOrder, KINESIS_JSON) != INVALID


def test_dynamodb_subclass_validates_deserialized_image() -> None:
    """An image model sees deserialized values, so a string attribute can be Json[Order]."""
    record = OurDdbOrder.model_validate(DDB_MODIFY)
    assert record.dynamodb.NewImage == OrderImage(Id=Decimal(101), Message=ORDER_JSON)
    assert record.dynamodb.OldImage is not None
    assert record.dynamodb.OldImage.Message.item.sku == "A-0"
    assert assert_same(OurDdbOrder, TheirDdbOrder, DDB_MODIFY) != INVALID


def test_kafka_subclass_parses_decoded_value_as_json() -> None:
    """Json[Order] on value parses the base64-decoded text."""
    record = OurKafkaOrder.model_validate(KAFKA_MSK)
    assert record.value.item.sku == "A-1"
    assert assert_same(OurKafkaOrder, TheirKafkaOrder, KAFKA_MSK) != INVALID


def test_overriding_a_decoder_by_name_replaces_it_like_powertools() -> None:
    """A subclass redefining data_base64_decode takes over decoding, as with the Powertools model."""

    class OurPlain(bl.KinesisDataStreamRecordPayload):
        @pydantic.field_validator("data", mode="before")
        @classmethod
        def data_base64_decode(cls, value: Any) -> Any:
            return value.encode()

    class TheirPlain(pt.KinesisDataStreamRecordPayload):
        @pydantic.field_validator("data", mode="before")
        @classmethod
        def data_base64_decode(cls, value: Any) -> Any:
            return value.encode()

    raw = {**KINESIS_JSON["kinesis"], "data": "not base64 at all!"}
    assert assert_same(OurPlain, TheirPlain, raw)["data"] == b"not base64 at all!"


# ---------------------------------------------------------------------------------------------------------
# Property-based differential tests
# ---------------------------------------------------------------------------------------------------------

text = st.text(max_size=12)
ms_timestamps = st.integers(0, 4_102_444_800_000)
b64_text = st.binary(max_size=24).map(b64)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
    text,
    st.sampled_from(["abc", "é", "not base64!", "=", "1545082649183", "aws:sqs", "aws:kinesis", "INSERT"]),
    st.lists(st.integers(-300, 300), max_size=4),
    st.lists(text, max_size=2),
    st.dictionaries(text, text, min_size=1, max_size=2),
)


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON-like tree, so a mutation can target any field at any depth."""
    found: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, child in node.items():
            found.append((node, key))
            found.extend(_slots(child))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.append((node, index))
            found.extend(_slots(child))
    return found


@st.composite
def mutated(draw: st.DrawFn, records: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A valid record with up to three fields deleted or replaced by wrong-typed values."""
    # a copy: st.just() and st.sampled_from() hand out the same dict objects every time, and mutating those in
    # place would change what later examples (and Hypothesis' replays) generate
    record = copy.deepcopy(draw(records))
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(record)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        if isinstance(container, dict) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(junk)
    return record


def maybe(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda value: {key: value}))


def merged(*parts: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(*parts).map(lambda dicts: {k: v for d in dicts for k, v in d.items()})


sqs_message_attribute = st.one_of(
    st.fixed_dictionaries({"stringValue": text, "dataType": st.sampled_from(["String", "Number", "String.x"])}),
    st.fixed_dictionaries(
        {"binaryValue": b64_text, "dataType": st.just("Binary")},
        optional={"stringListValues": st.lists(text, max_size=2), "binaryListValues": st.lists(b64_text, max_size=2)},
    ),
)
sqs_records = merged(
    st.fixed_dictionaries(
        {
            "messageId": st.uuids().map(str),
            "receiptHandle": text,
            "body": st.one_of(text, st.just(ORDER_JSON)),
            "attributes": merged(
                st.fixed_dictionaries(
                    {
                        "ApproximateReceiveCount": st.integers(1, 9).map(str),
                        "SentTimestamp": ms_timestamps.map(str),
                        "SenderId": text,
                        "ApproximateFirstReceiveTimestamp": st.one_of(ms_timestamps, ms_timestamps.map(str)),
                    }
                ),
                maybe("MessageGroupId", text),
                maybe("MessageDeduplicationId", text),
                maybe("SequenceNumber", st.integers(0, 10**20).map(str)),
                maybe("AWSTraceHeader", text),
                maybe("DeadLetterQueueSourceArn", text),
            ),
            "messageAttributes": st.dictionaries(text, sqs_message_attribute, max_size=2),
            "md5OfBody": text,
            "eventSource": st.just("aws:sqs"),
            "eventSourceARN": text,
            "awsRegion": st.sampled_from(["us-east-1", "eu-west-1"]),
        }
    ),
    maybe("md5OfMessageAttributes", text),
)

kinesis_records = st.fixed_dictionaries(
    {
        "kinesis": st.fixed_dictionaries(
            {
                "kinesisSchemaVersion": st.just("1.0"),
                "partitionKey": text,
                "sequenceNumber": st.integers(0, 10**56).map(str),
                "data": st.one_of(b64_text, st.just(b64(ORDER_JSON))),
                "approximateArrivalTimestamp": st.floats(0, 2e9),
            }
        ),
        "eventSource": st.just("aws:kinesis"),
        "eventVersion": st.just("1.0"),
        "eventID": text,
        "eventName": st.just("aws:kinesis:record"),
        "invokeIdentityArn": text,
        "awsRegion": text,
        "eventSourceARN": text,
    }
)

ddb_numbers = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.decimals(allow_nan=False).map(str),
    st.sampled_from(["", ".", "abc", "1e400", "1E-140", " 7 ", "-0", "1_000", "1" * 39, "1" * 38 + "000"]),
)
ddb_scalars = st.one_of(
    st.fixed_dictionaries({"NULL": st.just(True)}),
    st.fixed_dictionaries({"BOOL": st.booleans()}),
    st.fixed_dictionaries({"N": ddb_numbers}),
    st.fixed_dictionaries({"S": text}),
    st.fixed_dictionaries({"B": b64_text}),
    st.fixed_dictionaries({"NS": st.lists(ddb_numbers, max_size=3)}),
    st.fixed_dictionaries({"SS": st.lists(text, max_size=3)}),
    st.fixed_dictionaries({"BS": st.lists(b64_text, max_size=3)}),
    # Malformed or unusual attribute values: both libraries must agree on them too.
    st.sampled_from([{}, {"X": "1"}, {"s": "lower-case tag"}, {"S": "a", "N": "1"}, {"NS": None}, {"SS": [[1]]}]),
)
ddb_values = st.recursive(
    ddb_scalars,
    lambda children: st.one_of(
        st.fixed_dictionaries({"L": st.lists(children, max_size=3)}),
        st.fixed_dictionaries({"M": st.dictionaries(text, children, max_size=3)}),
    ),
    max_leaves=8,
)
ddb_images = st.dictionaries(text, ddb_values, max_size=4)
ddb_records = merged(
    st.fixed_dictionaries(
        {
            "eventID": text,
            "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
            "eventVersion": st.sampled_from(["1.0", "1.1", 1.1]),
            "eventSource": st.just("aws:dynamodb"),
            "awsRegion": text,
            "eventSourceARN": text,
            "dynamodb": merged(
                st.fixed_dictionaries(
                    {
                        "Keys": ddb_images,
                        "SequenceNumber": st.integers(0, 10**28).map(str),
                        "SizeBytes": st.integers(0, 400_000),
                        "StreamViewType": st.sampled_from(
                            ["NEW_AND_OLD_IMAGES", "KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE"]
                        ),
                    }
                ),
                maybe("ApproximateCreationDateTime", st.integers(0, 2_000_000_000)),
                maybe("NewImage", ddb_images),
                maybe("OldImage", ddb_images),
            ),
        }
    ),
    maybe("userIdentity", st.just({"type": "Service", "principalId": "dynamodb.amazonaws.com"})),
)

kafka_records = merged(
    st.fixed_dictionaries(
        {
            "topic": text,
            "partition": st.integers(0, 100),
            "offset": st.integers(0, 10**12),
            "timestamp": ms_timestamps,
            "timestampType": st.sampled_from(["CREATE_TIME", "LOG_APPEND_TIME"]),
            "key": st.one_of(st.none(), b64_text),
            "value": st.one_of(st.text(max_size=20).map(b64), st.just(b64(ORDER_JSON)), b64_text),
            "headers": st.lists(
                st.dictionaries(text, st.lists(st.integers(-128, 255), max_size=6), max_size=2), max_size=3
            ),
        }
    ),
    maybe("keySchemaMetadata", st.fixed_dictionaries({"dataFormat": text, "schemaId": text})),
    maybe("valueSchemaMetadata", st.fixed_dictionaries({"dataFormat": text, "schemaId": text})),
)

DIFFERENTIAL = [
    pytest.param(bl.SqsRecordModel, pt.SqsRecordModel, sqs_records, id="sqs"),
    pytest.param(OurSqsOrder, TheirSqsOrder, sqs_records, id="sqs-json-order"),
    pytest.param(bl.KinesisDataStreamRecord, pt.KinesisDataStreamRecord, kinesis_records, id="kinesis"),
    pytest.param(OurKinesisOrder, TheirKinesisOrder, kinesis_records, id="kinesis-json-order"),
    pytest.param(bl.DynamoDBStreamRecordModel, pt.DynamoDBStreamRecordModel, ddb_records, id="dynamodb"),
    pytest.param(bl.KafkaRecordModel, pt.KafkaRecordModel, kafka_records, id="kafka"),
    pytest.param(OurKafkaOrder, TheirKafkaOrder, kafka_records, id="kafka-json-order"),
]
HYPOTHESIS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(("ours_model", "their_model", "records"), DIFFERENTIAL)
@HYPOTHESIS
@given(data=st.data())
def test_generated_records_validate_like_powertools(
    ours_model: type[pydantic.BaseModel],
    their_model: type[pydantic.BaseModel],
    records: st.SearchStrategy[dict[str, Any]],
    data: st.DataObject,
) -> None:
    """Generated well-formed records are valid or invalid in both libraries alike, with equal dumps."""
    assert_same(ours_model, their_model, data.draw(records))


@pytest.mark.parametrize(("ours_model", "their_model", "records"), DIFFERENTIAL)
@HYPOTHESIS
@given(data=st.data())
def test_mutated_records_validate_like_powertools(
    ours_model: type[pydantic.BaseModel],
    their_model: type[pydantic.BaseModel],
    records: st.SearchStrategy[dict[str, Any]],
    data: st.DataObject,
) -> None:
    """Records with missing or wrong-typed fields are rejected (always as ValidationError) exactly when Powertools rejects them."""
    assert_same(ours_model, their_model, data.draw(mutated(records)))


@HYPOTHESIS
@given(image=ddb_images)
def test_generated_images_deserialize_like_powertools(image: dict[str, Any]) -> None:
    """Any generated DynamoDB image deserializes to the same values as Powertools, or fails in both."""
    raw = {"Keys": {"Id": {"S": "1"}}, "NewImage": image, "SequenceNumber": "1", "SizeBytes": 1}
    raw["StreamViewType"] = "NEW_IMAGE"
    assert_same(bl.DynamoDBStreamChangedRecordModel, pt.DynamoDBStreamChangedRecordModel, raw)


# ---------------------------------------------------------------------------------------------------------
# Missing pydantic
# ---------------------------------------------------------------------------------------------------------


def test_import_without_pydantic_names_the_extra() -> None:
    """Importing batchlens.models without pydantic raises ImportError naming the pydantic extra."""
    package_root = str(Path(bl.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    script = (
        "import sys\n"
        "sys.modules['pydantic'] = None\n"
        "try:\n"
        "    import batchlens.models\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc, sep='|')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "ImportError|batchlens.models needs pydantic: pip install 'batchlens[pydantic]'"
