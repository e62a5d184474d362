"""``batchlens poll`` builds the event Lambda builds: checked against a moto server and batchlens' own parsers."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

import boto3

from _poll_support import moto_server
from batchlens import testing
from batchlens._poll._args import PollOptions
from batchlens._poll._context import invoke, make_context
from batchlens._poll._response import InvalidResponse, failed_identifiers
from batchlens._poll._runner import poll
from batchlens.data_classes import DynamoDBRecord, KinesisStreamRecord, SQSRecord

EVENTS: list[dict[str, Any]] = []


def capture(event: dict[str, Any], context: Any) -> None:
    """The handler of these tests: keep the event, report success."""
    EVENTS.append(json.loads(json.dumps(event)))


@pytest.fixture(scope="module")
def endpoint() -> Any:
    """One moto server for the module."""
    with moto_server() as url:
        yield url


def _poll_one(source: str, endpoint: str, **options: Any) -> dict[str, Any]:
    EVENTS.clear()
    err = io.StringIO()
    rc = poll(
        PollOptions(source=source, handler="test_poll_events:capture", endpoint_url=endpoint, max_batches=1, **options),
        err=err,
    )
    assert rc == 0, err.getvalue()
    assert len(EVENTS) == 1, err.getvalue()
    return EVENTS[0]


def _key_order(record: dict[str, Any]) -> list[str]:
    return list(record)


def test_sqs_standard_event_matches_lambda_shape(endpoint: str) -> None:
    """A standard-queue record has the sample event's keys and order, Lambda's attribute shapes and a true MD5."""
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName="shape-std")["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"order": 1}',
        MessageAttributes={
            "colour": {"DataType": "String", "StringValue": "blue"},
            "count": {"DataType": "Number", "StringValue": "3"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
        MessageSystemAttributes={
            "AWSTraceHeader": {
                "DataType": "String",
                "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            }
        },
    )
    record = _poll_one(url, endpoint)["Records"][0]
    sample = testing.sqs_event(count=1, seed=1)["Records"][0]
    assert [k for k in _key_order(record) if k != "md5OfMessageAttributes"] == _key_order(sample)
    assert list(record["attributes"])[:4] == list(sample["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["AWSTraceHeader"].startswith("Root=1-5759e988-")
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:shape-std"
    assert record["awsRegion"] == "us-east-1"
    assert record["messageAttributes"] == {
        "colour": {"stringValue": "blue", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "count": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\x01").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    wrapped = SQSRecord(record)
    assert wrapped.json_body == {"order": 1}
    assert wrapped.attributes.aws_trace_header == record["attributes"]["AWSTraceHeader"]
    assert wrapped.message_attributes["colour"].string_value == "blue"
    assert wrapped.message_attributes["blob"].binary_value == base64.b64encode(b"\x00\x01").decode()
    models = pytest.importorskip("batchlens.models")
    model = models.SqsRecordModel.model_validate(record)
    assert model.messageAttributes["count"].stringValue == "3"
    assert model.attributes.ApproximateReceiveCount == "1"


def test_sqs_fifo_event_carries_fifo_attributes(endpoint: str) -> None:
    """A FIFO record carries SequenceNumber, MessageGroupId and MessageDeduplicationId, as in the FIFO sample."""
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName="shape.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one", MessageGroupId="g1", MessageDeduplicationId="d1")
    record = _poll_one(url, endpoint)["Records"][0]
    sample = testing.sqs_fifo_event(count=1, seed=1)["Records"][0]
    assert _key_order(record) == _key_order(sample)
    assert set(sample["attributes"]) <= set(record["attributes"])
    assert record["attributes"]["MessageGroupId"] == "g1"
    assert record["attributes"]["MessageDeduplicationId"] == "d1"
    assert SQSRecord(record).attributes.sequence_number == record["attributes"]["SequenceNumber"]
    models = pytest.importorskip("batchlens.models")
    assert models.SqsRecordModel.model_validate(record).attributes.MessageGroupId == "g1"


def test_kinesis_event_matches_lambda_shape(endpoint: str) -> None:
    """A Kinesis record has the sample's keys, base64 data, epoch-seconds arrival and eventID shard:sequence."""
    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    kinesis.create_stream(StreamName="shape-stream", ShardCount=1)
    kinesis.put_record(StreamName="shape-stream", Data=b'{"n": 7}', PartitionKey="pk")
    event = _poll_one("kinesis:shape-stream", endpoint)
    record = event["Records"][0]
    sample = testing.kinesis_event(count=1, seed=1)["Records"][0]
    assert _key_order(record) == _key_order(sample)
    assert _key_order(record["kinesis"]) == _key_order(sample["kinesis"])
    assert record["eventID"] == f"shardId-000000000000:{record['kinesis']['sequenceNumber']}"
    assert abs(record["kinesis"]["approximateArrivalTimestamp"] - time.time()) < 120
    wrapped = KinesisStreamRecord(record)
    assert wrapped.kinesis.data_as_json() == {"n": 7}
    assert wrapped.kinesis.partition_key == "pk"
    models = pytest.importorskip("batchlens.models")
    assert models.KinesisDataStreamRecord.model_validate(record).kinesis.data == b'{"n": 7}'


def test_dynamodb_event_matches_lambda_shape(endpoint: str) -> None:
    """A DynamoDB Streams record (found from the table name) has the sample's keys and wire-format images."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    dynamodb.create_table(
        TableName="shape-table",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    dynamodb.put_item(TableName="shape-table", Item={"id": {"S": "a"}, "blob": {"B": b"\x01\x02"}, "n": {"N": "5"}})
    record = _poll_one("dynamodb:shape-table", endpoint)["Records"][0]
    sample = testing.dynamodb_event(count=1, seed=1)["Records"][0]
    assert set(record) == set(sample)
    assert set(sample["dynamodb"]) - {"OldImage"} <= set(record["dynamodb"])
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], (int, float))
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": base64.b64encode(b"\x01\x02").decode()}
    assert "/stream/" in record["eventSourceARN"]
    wrapped = DynamoDBRecord(record)
    assert wrapped.dynamodb.new_image["id"] == "a"
    assert wrapped.dynamodb.keys == {"id": "a"}
    models = pytest.importorskip("batchlens.models")
    parsed = models.DynamoDBStreamRecordModel.model_validate(record)
    assert parsed.dynamodb.NewImage["id"] == "a"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, []),
        ({}, []),
        ({"batchItemFailures": None}, []),
        ({"batchItemFailures": []}, []),
        ({"statusCode": 200}, []),
        (
            {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "a"}, {"itemIdentifier": "b"}]},
            ["b", "a"],
        ),
    ],
)
def test_valid_responses_read_as_lambda_reads_them(response: Any, expected: list[str]) -> None:
    """Null, empty and absent lists mean success; named identifiers are the failures, in order, once each."""
    assert failed_identifiers(response, {"a", "b"}) == expected


@pytest.mark.parametrize(
    "response",
    [
        [],
        "ok",
        {"batchItemFailures": "a"},
        {"batchItemFailures": ["a"]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"id": "a"}]},
        {"batchItemFailures": [{"itemIdentifier": 1}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
    ],
)
def test_malformed_responses_fail_the_whole_batch(response: Any) -> None:
    """Every malformed shape Lambda rejects raises InvalidResponse."""
    with pytest.raises(InvalidResponse):
        failed_identifiers(response, {"a", "b"})


def test_context_counts_down_from_the_function_timeout() -> None:
    """The context's remaining time starts at the timeout and falls; each context has a fresh request id."""
    first = make_context(2.0, "eu-west-1", "111122223333")
    second = make_context(2.0, "eu-west-1", "111122223333")
    assert 1900 <= first.get_remaining_time_in_millis() <= 2000
    time.sleep(0.05)
    assert first.get_remaining_time_in_millis() <= 1960
    assert first.aws_request_id != second.aws_request_id
    assert first.invoked_function_arn == "arn:aws:lambda:eu-west-1:111122223333:function:batchlens-poll"


def test_invoke_reports_timeout_error_and_unserializable_responses() -> None:
    """A handler past its deadline is a timeout; a raise or a non-JSON response is an error; else the response."""
    release = threading.Event()
    context = make_context(0.2, "us-east-1", "123456789012")
    started = time.monotonic()
    slow = invoke(lambda e, c: release.wait(5), {}, context, 0.2)
    assert slow.outcome == "timeout"
    assert time.monotonic() - started < 2
    release.set()
    assert invoke(lambda e, c: 1 / 0, {}, context, 1).outcome == "error"
    assert invoke(lambda e, c: {"x": object()}, {}, context, 1).outcome == "error"
    ok = invoke(lambda e, c: {"batchItemFailures": ()}, {}, context, 1)
    assert (ok.outcome, ok.response) == ("ok", {"batchItemFailures": []})
