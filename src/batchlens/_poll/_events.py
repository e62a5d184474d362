"""Build the event Lambda builds from what the AWS APIs return: SQS messages, Kinesis and DynamoDB stream records.

Each builder takes one record as boto3 returns it (``ReceiveMessage`` with every attribute asked for, ``GetRecords``)
and returns the record dict of the Lambda event, with the same keys, value types and encodings Lambda uses
(base64 for binary data, epoch seconds for stream timestamps, strings for SQS system attributes).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

__all__ = [
    "SQS_SYSTEM_ATTRIBUTES",
    "dynamodb_record",
    "kinesis_record",
    "region_and_account",
    "sqs_record",
]

SQS_SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
)
"""The system attributes Lambda passes on in ``attributes``, in its order; the last five only when SQS sets them."""


def region_and_account(arn: str) -> tuple[str, str]:
    """The region and account id fields of an ARN (``arn:partition:service:region:account:resource``)."""
    parts = arn.split(":")
    if len(parts) < 6:
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[3], parts[4]


def _b64(data: bytes | bytearray | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return base64.b64encode(raw).decode("ascii")


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """One SQS message attribute in Lambda's shape (camelCase keys, binary base64, both lists always present)."""
    shaped: dict[str, Any] = {}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = _b64(value["BinaryValue"])
    shaped["stringListValues"] = list(value.get("StringListValues") or [])
    shaped["binaryListValues"] = [_b64(item) for item in value.get("BinaryListValues") or []]
    shaped["dataType"] = value.get("DataType", "String")
    return shaped


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """The SQS record of a Lambda event for one message of a ``ReceiveMessage`` response."""
    system = message.get("Attributes") or {}
    region, _ = region_and_account(queue_arn)
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {name: str(system[name]) for name in SQS_SYSTEM_ATTRIBUTES if name in system},
        "messageAttributes": {
            name: _message_attribute(value) for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = region
    return record


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def kinesis_record(record: dict[str, Any], shard_id: str, stream_arn: str) -> dict[str, Any]:
    """The Kinesis record of a Lambda event for one record of a ``GetRecords`` response."""
    region, account = region_and_account(stream_arn)
    sequence = record["SequenceNumber"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": sequence,
            "data": _b64(record["Data"]),
            "approximateArrivalTimestamp": _epoch_seconds(record["ApproximateArrivalTimestamp"]),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{account}:role/batchlens-poll",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def _wire(value: Any) -> Any:
    """A DynamoDB attribute value as the stream's JSON carries it: boto3 decodes binary, Lambda keeps base64."""
    if isinstance(value, (bytes, bytearray)):
        return _b64(value)
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value


def _creation_time(value: Any) -> int | float:
    seconds = _epoch_seconds(value)
    return int(seconds) if seconds == int(seconds) else seconds


def dynamodb_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """The DynamoDB Streams record of a Lambda event for one record of a ``GetRecords`` response."""
    change = dict(record.get("dynamodb") or {})
    shaped_change: dict[str, Any] = {}
    if "ApproximateCreationDateTime" in change:
        shaped_change["ApproximateCreationDateTime"] = _creation_time(change["ApproximateCreationDateTime"])
    for key in ("Keys", "NewImage", "OldImage"):
        if key in change:
            shaped_change[key] = _wire(change[key])
    for key in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if key in change:
            shaped_change[key] = change[key]
    region, _ = region_and_account(stream_arn)
    shaped: dict[str, Any] = {
        "eventID": record.get("eventID", ""),
        "eventName": record.get("eventName", ""),
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": shaped_change,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:  # TTL deletions carry the service principal
        shaped["userIdentity"] = record["userIdentity"]
    return shaped
