"""Hypothesis strategies for Lambda batch events of every type, shaped like what Lambda delivers.

Every record payload is a JSON document whose text decides what the differential handlers do with it
(see ``tests.differential.decide``): ``"fail"`` in it raises ``RecordFailed``, ``"oops"`` raises ``KeyError``,
anything else succeeds. Identifiers are unique within a batch, as they are in real events.

What matters to the outcome (batch size, each record's verdict, FIFO message groups, which records are
poison pills and how) is drawn through hypothesis, so failing examples shrink to a readable batch. Filler
that only has to be realistic (unicode notes, message attributes, DynamoDB attribute values, Kafka
headers and keys) comes from a ``random.Random`` seeded by one drawn integer: drawing every such value
through hypothesis made generation, not processing, dominate the suite's run time.

``poison=True`` makes some records invalid for the pydantic record models (their identifier kept intact),
so the model tests see poison pills.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "EVENT_TYPES",
    "batches",
    "dynamodb_events",
    "events",
    "fifo_events",
    "kafka_events",
    "kinesis_events",
    "sqs_events",
]

EVENT_TYPES = ("SQS", "KinesisDataStreams", "DynamoDBStreams", "Kafka")

MAX_RECORDS = 10

# Weighted so that small batches often fail entirely and larger ones mostly partially.
VERDICTS = st.sampled_from(["ok", "ok", "ok", "fail", "fail", "oops"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _text(rng: random.Random, max_size: int) -> str:
    """Arbitrary text: ASCII, BMP and astral code points (never surrogates, which UTF-8 cannot carry)."""
    chars = []
    for _ in range(rng.randint(0, max_size)):
        band = rng.random()
        if band < 0.6:
            chars.append(chr(rng.randint(0x20, 0x7E)))
        elif band < 0.9:
            chars.append(chr(rng.randint(0xA0, 0xD7FF)))
        else:
            chars.append(chr(rng.randint(0xE000, 0x10FFFF)))
    return "".join(chars)


def _payload(verdict: str, rng: random.Random) -> str:
    return json.dumps({"verdict": verdict, "note": _text(rng, 12), "n": rng.randint(0, 10**6)})


@st.composite
def _plan(draw: st.DrawFn, poison: bool, min_size: int = 1) -> tuple[list[str], list[bool], random.Random]:
    """Verdicts (one per record), poison flags, and the seeded filler generator."""
    verdicts = draw(st.lists(VERDICTS, min_size=min_size, max_size=MAX_RECORDS))
    if poison:
        flags = draw(st.lists(st.booleans(), min_size=len(verdicts), max_size=len(verdicts)))
    else:
        flags = [False] * len(verdicts)
    rng = random.Random(draw(st.integers(0, 2**64)))
    return verdicts, flags, rng


# -- SQS ------------------------------------------------------------------------------------------------------


def _message_attributes(rng: random.Random) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name in rng.sample(["traceparent", "tenant", "kind", "blob", "count"], rng.randint(0, 3)):
        data_type = rng.choice(["String", "Number", "Binary"])
        if data_type == "String":
            value: dict[str, Any] = {"stringValue": _text(rng, 8)}
        elif data_type == "Number":
            value = {"stringValue": str(rng.randint(-1000, 1000))}
        else:
            value = {"binaryValue": _b64(rng.randbytes(rng.randint(0, 8)))}
        attributes[name] = {**value, "stringListValues": [], "binaryListValues": [], "dataType": data_type}
    return attributes


SQS_POISONS = ("md5", "source", "timestamp", "region", "sender")


def _poison_sqs(how: str, record: dict[str, Any]) -> None:
    if how == "md5":
        del record["md5OfBody"]
    elif how == "source":
        record["eventSource"] = "aws:sns"
    elif how == "timestamp":
        record["attributes"]["SentTimestamp"] = "yesterday"
    elif how == "region":
        record["awsRegion"] = 42
    else:
        del record["attributes"]["SenderId"]


@st.composite
def sqs_records(
    draw: st.DrawFn,
    *,
    groups: list[str | None] | None = None,
    poison: bool = False,
    min_size: int = 1,
) -> list[dict[str, Any]]:
    """SQS records; with ``groups``, FIFO records whose MessageGroupId is drawn from it (None: no group)."""
    verdicts, flags, rng = draw(_plan(poison, min_size))
    count = len(verdicts)
    record_groups = (
        draw(st.lists(st.sampled_from(groups), min_size=count, max_size=count)) if groups is not None else None
    )
    poisons = [draw(st.sampled_from(SQS_POISONS)) if flag else None for flag in flags]
    base = rng.getrandbits(120)
    queue = rng.choice(["orders", "orders.fifo", "q-1"])
    records = []
    for index, verdict in enumerate(verdicts):
        sent = 1_700_000_000_000 + rng.randint(0, 10**6)
        attributes: dict[str, Any] = {
            "ApproximateReceiveCount": str(rng.randint(1, 5)),
            "SentTimestamp": str(sent),
            "SenderId": "AROAEXAMPLE:sender",
            "ApproximateFirstReceiveTimestamp": str(sent + 3),
        }
        if record_groups is not None and record_groups[index] is not None:
            attributes["MessageGroupId"] = record_groups[index]
            attributes["MessageDeduplicationId"] = f"dedup-{index}"
            attributes["SequenceNumber"] = str(18_800_000_000_000_000_000 + index)
        if rng.random() < 0.3:
            attributes["AWSTraceHeader"] = "Root=1-65a1b2c3-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1"
        record = {
            "messageId": f"{base + index:032x}",
            "receiptHandle": f"AQEB{base:x}{index}",
            "body": _payload(verdict, rng),
            "attributes": attributes,
            "messageAttributes": _message_attributes(rng),
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
            "awsRegion": "us-east-1",
        }
        if poisons[index] is not None:
            _poison_sqs(poisons[index], record)
        records.append(record)
    return records


def sqs_events(*, poison: bool = False, min_size: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    """SQS standard-queue events."""
    return sqs_records(poison=poison, min_size=min_size).map(lambda records: {"Records": records})


# Group pools: a single group, several groups, and records without a group (standard queue events fed
# to the FIFO processor, or FIFO events missing the attribute) mixed in.
_GROUP_POOLS = st.sampled_from(
    [
        ["g1"],
        ["g1", "g2"],
        ["g1", "g2", "g3"],
        ["g1", None],
        ["g1", "g2", None],
        [None],
        ["g1", ""],
    ]
)


@st.composite
def fifo_events(draw: st.DrawFn, *, poison: bool = False) -> dict[str, Any]:
    """SQS FIFO events with random message groups, some records without MessageGroupId."""
    groups = draw(_GROUP_POOLS)
    return {"Records": draw(sqs_records(groups=groups, poison=poison))}


# -- Kinesis --------------------------------------------------------------------------------------------------

KINESIS_POISONS = ("name", "arrival", "region", "source")


def _poison_kinesis(how: str, record: dict[str, Any]) -> None:
    if how == "name":
        record["eventName"] = "aws:kinesis:bogus"
    elif how == "arrival":
        record["kinesis"]["approximateArrivalTimestamp"] = "soon"
    elif how == "region":
        del record["awsRegion"]
    else:
        record["eventSource"] = "aws:sqs"


@st.composite
def kinesis_events(draw: st.DrawFn, *, poison: bool = False, min_size: int = 1) -> dict[str, Any]:
    """Kinesis Data Streams events (base64 ``data`` of UTF-8 JSON text)."""
    verdicts, flags, rng = draw(_plan(poison, min_size))
    poisons = [draw(st.sampled_from(KINESIS_POISONS)) if flag else None for flag in flags]
    sequence = 49_500_000_000 * 10**45 + rng.randint(0, 10**40)
    shard = rng.choice(["shardId-000000000000", "shardId-000000000007"])
    records = []
    for index, verdict in enumerate(verdicts):
        sequence += rng.randint(1, 10**20)
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": f"pk-{rng.randint(0, 3)}",
                "sequenceNumber": str(sequence),
                "data": _b64(_payload(verdict, rng).encode()),
                "approximateArrivalTimestamp": 1_700_000_000.0 + index,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard}:{sequence}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
            "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream",
        }
        if poisons[index] is not None:
            _poison_kinesis(poisons[index], record)
        records.append(record)
    return {"Records": records}


# -- DynamoDB Streams -----------------------------------------------------------------------------------------


def _ddb_value(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A random DynamoDB attribute value of any type (nested up to two levels)."""
    kinds = ["S", "N", "Nd", "BOOL", "NULL", "B", "SS", "NS", "BS"] + (["L", "M"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": _text(rng, 8)}
    if kind == "N":
        return {"N": str(rng.randint(-(10**12), 10**12))}
    if kind == "Nd":
        return {"N": f"{rng.randint(-(10**6), 10**6)}.{rng.randint(0, 999):03d}"}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "B":
        return {"B": _b64(rng.randbytes(rng.randint(0, 6)))}
    if kind == "SS":
        return {"SS": sorted({_text(rng, 5) for _ in range(rng.randint(1, 3))})}
    if kind == "NS":
        return {"NS": [str(n) for n in sorted({rng.randint(-999, 999) for _ in range(rng.randint(1, 3))})]}
    if kind == "BS":
        return {"BS": [_b64(b) for b in sorted({rng.randbytes(rng.randint(1, 4)) for _ in range(rng.randint(1, 3))})]}
    if kind == "L":
        return {"L": [_ddb_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]}
    return {"M": {_text(rng, 5): _ddb_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}}


DYNAMODB_POISONS = ("name", "size", "view", "source")


def _poison_dynamodb(how: str, record: dict[str, Any]) -> None:
    if how == "name":
        record["eventName"] = "UPSERT"
    elif how == "size":
        record["dynamodb"]["SizeBytes"] = "large"
    elif how == "view":
        record["dynamodb"]["StreamViewType"] = "EVERYTHING"
    else:
        record["eventSource"] = "aws:kinesis"


@st.composite
def dynamodb_events(draw: st.DrawFn, *, poison: bool = False, min_size: int = 1) -> dict[str, Any]:
    """DynamoDB Streams events; the verdict payload sits in the ``payload`` attribute of the images.

    Records with neither image (KEYS_ONLY, or a view without the image the event name carries) have
    an empty payload and succeed.
    """
    verdicts, flags, rng = draw(_plan(poison, min_size))
    poisons = [draw(st.sampled_from(DYNAMODB_POISONS)) if flag else None for flag in flags]
    shapes = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
                st.sampled_from(["NEW_AND_OLD_IMAGES", "NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY"]),
            ),
            min_size=len(verdicts),
            max_size=len(verdicts),
        )
    )
    sequence = 10**20 + rng.randint(0, 10**18)
    records = []
    for index, (verdict, (name, view)) in enumerate(zip(verdicts, shapes, strict=True)):
        sequence += rng.randint(1, 10**6)
        keys = {"pk": {"S": f"item-{index}"}}
        image = {"pk": {"S": f"item-{index}"}, "payload": {"S": _payload(verdict, rng)}}
        for attribute in rng.sample(["a", "b", "c"], rng.randint(0, 2)):
            image[attribute] = _ddb_value(rng)
        change: dict[str, Any] = {
            "ApproximateCreationDateTime": 1_700_000_000 + index,
            "Keys": keys,
            "SequenceNumber": str(sequence),
            "SizeBytes": rng.randint(1, 4000),
            "StreamViewType": view,
        }
        if name != "REMOVE" and view in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE"):
            change["NewImage"] = image
        if name != "INSERT" and view in ("NEW_AND_OLD_IMAGES", "OLD_IMAGE"):
            change["OldImage"] = copy.deepcopy(image)
        record = {
            "eventID": f"{sequence:x}",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": change,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000",
        }
        if poisons[index] is not None:
            _poison_dynamodb(poisons[index], record)
        records.append(record)
    return {"Records": records}


# -- Kafka ----------------------------------------------------------------------------------------------------

KAFKA_POISONS = ("type", "timestamp", "headers")


def _poison_kafka(how: str, record: dict[str, Any]) -> None:
    if how == "type":
        del record["timestampType"]
    elif how == "timestamp":
        record["timestamp"] = "noon"
    else:
        del record["headers"]


@st.composite
def kafka_events(draw: st.DrawFn, *, poison: bool = False, min_size: int = 1) -> dict[str, Any]:
    """MSK events: ``records`` keyed ``"<topic>-<partition>"``, each partition with increasing offsets.

    The verdicts are dealt out over one to three topic-partitions (some possibly empty lists, which
    Lambda never sends but the flattening must tolerate).
    """
    verdicts, flags, rng = draw(_plan(poison, min_size))
    poisons = [draw(st.sampled_from(KAFKA_POISONS)) if flag else None for flag in flags]
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(["orders", "payments", "my-topic"]), st.integers(0, 3)),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    placement = draw(st.lists(st.integers(0, len(keys) - 1), min_size=len(verdicts), max_size=len(verdicts)))
    grouped: dict[str, list[dict[str, Any]]] = {f"{topic}-{partition}": [] for topic, partition in keys}
    offsets = {key: rng.randint(0, 10**9) for key in grouped}
    for index, verdict in enumerate(verdicts):
        topic, partition = keys[placement[index]]
        key = f"{topic}-{partition}"
        offsets[key] += rng.randint(1, 50)
        headers = [
            {rng.choice(["traceparent", "tenant", "content-type"]): list(rng.randbytes(rng.randint(0, 6)))}
            for _ in range(rng.randint(0, 2))
        ]
        record: dict[str, Any] = {
            "topic": topic,
            "partition": partition,
            "offset": offsets[key],
            "timestamp": 1_700_000_000_000 + offsets[key],
            "timestampType": "CREATE_TIME",
            "value": _b64(_payload(verdict, rng).encode()),
            "headers": headers,
        }
        if rng.random() < 0.6:
            record["key"] = _b64(rng.randbytes(rng.randint(0, 8)))
        if poisons[index] is not None:
            _poison_kafka(poisons[index], record)
        grouped[key].append(record)
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/demo/6b1a6d5e-1b2c-4d3e-9f00-0123456789ab-1",
        "bootstrapServers": "b-1.demo.kafka.us-east-1.amazonaws.com:9092,b-2.demo.kafka.us-east-1.amazonaws.com:9092",
        "records": grouped,
    }


def events(event_type: str, *, poison: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Events of ``event_type`` (an ``EventType`` member name)."""
    if event_type == "SQS":
        return sqs_events(poison=poison)
    if event_type == "KinesisDataStreams":
        return kinesis_events(poison=poison)
    if event_type == "DynamoDBStreams":
        return dynamodb_events(poison=poison)
    if event_type == "Kafka":
        return kafka_events(poison=poison)
    raise ValueError(event_type)


def batches(event_type: str, *, min_size: int = 2, max_size: int = 4) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Several events of one type, for processor-reuse tests."""
    return st.lists(events(event_type), min_size=min_size, max_size=max_size)
