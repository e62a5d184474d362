"""Factories for realistic Lambda batch events and a fake Lambda context, for tests and demos.

Every factory returns a plain ``dict`` shaped like the event AWS Lambda delivers for that source, so it can be
fed to ``process_partial_response`` (of batchlens or of Powertools) or dumped to a JSON file. With ``seed``
the output is fully deterministic (ids, sequence numbers and timestamps); without it ids are random and
timestamps are taken from the current time.

Generated payloads follow one convention, shared with the CLI's sample handler: a record whose payload
(SQS body, decoded Kinesis data, DynamoDB ``NewImage``, decoded Kafka value) contains the word ``"fail"``
is meant to fail. ``fail_rate`` decides how many generated records carry it (``round(count * fail_rate)``)
and the seeded random generator decides which ones.

Only the standard library is used, so importing this module costs nothing measurable at cold start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from batchlens.testing._common import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    Payload,
    _b64,
    _Generator,
    _resolve_payloads,
    _sample_click,
    _sample_order,
    _sample_payment,
    _to_bytes,
    _to_text,
)
from batchlens.testing._context import FakeLambdaContext, lambda_context

__all__ = [
    "FakeLambdaContext",
    "dynamodb_event",
    "kafka_event",
    "kinesis_event",
    "lambda_context",
    "sqs_event",
    "sqs_fifo_event",
    "to_dynamodb_json",
]

# ----------------------------------------------------------------------------------------------------
# SQS


def _sqs_records(
    bodies: list[Payload],
    *,
    queue: str,
    region: str,
    account_id: str,
    gen: _Generator,
    groups: int | None,
    trace_header: bool,
) -> list[dict[str, Any]]:
    sender_id = "AROA" + gen.token(17).upper()
    arn = f"arn:aws:sqs:{region}:{account_id}:{queue}"
    # FIFO sequence numbers are 20-digit decimals that grow within a queue.
    sequence = 18_800_000_000_000_000_000 + gen.rng.randrange(10**15)
    records = []
    for i, payload in enumerate(bodies):
        body = _to_text(payload)
        sent = gen.now_ms - (len(bodies) - i) * 7
        attributes: dict[str, str] = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent),
            "SenderId": f"{sender_id}:sender",
            "ApproximateFirstReceiveTimestamp": str(sent + 3),
        }
        if groups is not None:
            sequence += gen.rng.randrange(1, 10**6)
            attributes["SequenceNumber"] = str(sequence)
            attributes["MessageGroupId"] = f"group-{i % groups}"
            attributes["MessageDeduplicationId"] = hashlib.sha256(body.encode()).hexdigest()[:32] + f"-{i}"
        if trace_header:
            attributes["AWSTraceHeader"] = f"Root=1-{sent // 1000:08x}-{gen.hex(24)};Parent={gen.hex(16)};Sampled=1"
        records.append(
            {
                "messageId": gen.uuid4(),
                "receiptHandle": "AQEB" + gen.token(60),
                "body": body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": region,
            }
        )
    return records


def sqs_event(
    bodies: Sequence[Payload] | None = None,
    *,
    count: int | None = None,
    queue: str = "my-queue",
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    fail_rate: float = 0.0,
    seed: int | None = None,
    timestamp_ms: int | None = None,
    trace_header: bool = False,
) -> dict[str, Any]:
    """Build an SQS standard-queue event.

    Args:
        bodies: Message bodies; mappings are JSON-encoded, bytes decoded as UTF-8. When omitted, ``count``
            JSON order bodies are generated.
        count: Number of records to generate (default 10); must match ``len(bodies)`` if both are given.
        queue: Queue name, used in ``eventSourceARN``.
        region: AWS region of the queue.
        account_id: AWS account id of the queue.
        fail_rate: Share of generated bodies that contain ``"fail"`` (0.0 to 1.0).
        seed: Makes ids, timestamps and the choice of failing records deterministic.
        timestamp_ms: The clock of generated timestamps (epoch milliseconds); default: now, or a fixed
            instant when ``seed`` is given.
        trace_header: Add an X-Ray ``AWSTraceHeader`` system attribute to every record, as SQS does when
            the producer was traced.

    Returns:
        ``{"Records": [...]}`` with the fields Lambda sends (``messageId``, ``receiptHandle``, ``body``,
        ``attributes``, ``md5OfBody``, ``eventSourceARN``, ...).
    """
    gen = _Generator(seed, timestamp_ms)
    payloads = _resolve_payloads(bodies, count, fail_rate, gen, _sample_order, "bodies")
    records = _sqs_records(
        payloads,
        queue=queue,
        region=region,
        account_id=account_id,
        gen=gen,
        groups=None,
        trace_header=trace_header,
    )
    return {"Records": records}


def sqs_fifo_event(
    bodies: Sequence[Payload] | None = None,
    *,
    count: int | None = None,
    groups: int = 1,
    queue: str = "my-queue.fifo",
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    fail_rate: float = 0.0,
    seed: int | None = None,
    timestamp_ms: int | None = None,
    trace_header: bool = False,
) -> dict[str, Any]:
    """Build an SQS FIFO event.

    Records are spread over ``groups`` message groups round-robin (``group-0``, ``group-1``, ...), so groups
    interleave in the batch the way Lambda may deliver them; every record also gets the FIFO attributes
    ``SequenceNumber`` (increasing), ``MessageGroupId`` and ``MessageDeduplicationId``.

    Args:
        bodies: Message bodies, as for :func:`sqs_event`.
        count: Number of records to generate (default 10).
        groups: Number of message groups, at least 1.
        queue: Queue name; FIFO queue names end in ``.fifo``.
        region: AWS region of the queue.
        account_id: AWS account id of the queue.
        fail_rate: Share of generated bodies that contain ``"fail"``.
        seed: Makes the event deterministic.
        timestamp_ms: The clock of generated timestamps (epoch milliseconds); default: now, or a fixed
            instant when ``seed`` is given.
        trace_header: Add an ``AWSTraceHeader`` attribute to every record.

    Returns:
        ``{"Records": [...]}``.
    """
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    if not queue.endswith(".fifo"):
        raise ValueError(f"FIFO queue names end in '.fifo', got {queue!r}")
    gen = _Generator(seed, timestamp_ms)
    payloads = _resolve_payloads(bodies, count, fail_rate, gen, _sample_order, "bodies")
    records = _sqs_records(
        payloads,
        queue=queue,
        region=region,
        account_id=account_id,
        gen=gen,
        groups=groups,
        trace_header=trace_header,
    )
    return {"Records": records}


# ----------------------------------------------------------------------------------------------------
# Kinesis


def kinesis_event(
    data: Sequence[Payload] | None = None,
    *,
    count: int | None = None,
    stream: str = "my-stream",
    shard_id: str = "shardId-000000000000",
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    fail_rate: float = 0.0,
    seed: int | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """Build a Kinesis Data Streams event.

    Args:
        data: Record payloads; they are base64-encoded into ``kinesis.data`` (mappings JSON-encoded first).
            When omitted, ``count`` JSON order payloads are generated.
        count: Number of records to generate (default 10).
        stream: Stream name, used in ``eventSourceARN``.
        shard_id: Shard the records come from; prefixes every ``eventID``.
        region: AWS region of the stream.
        account_id: AWS account id of the stream.
        fail_rate: Share of generated payloads whose decoded data contains ``"fail"``.
        seed: Makes the event deterministic.
        timestamp_ms: The clock of generated timestamps (epoch milliseconds); default: now, or a fixed
            instant when ``seed`` is given.

    Returns:
        ``{"Records": [...]}`` with increasing 56-digit sequence numbers and
        ``eventID == "<shard_id>:<sequenceNumber>"``.
    """
    gen = _Generator(seed, timestamp_ms)
    payloads = _resolve_payloads(data, count, fail_rate, gen, _sample_click, "data")
    arn = f"arn:aws:kinesis:{region}:{account_id}:stream/{stream}"
    # Real sequence numbers are 56-digit decimals that grow along the shard.
    sequence = 495 * 10**53 + gen.rng.randrange(10**50)
    records = []
    for i, payload in enumerate(payloads):
        sequence += gen.rng.randrange(10**20, 10**22)
        arrival_ms = gen.now_ms - (len(payloads) - i) * 11
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"partition-{i % 4}",
                    "sequenceNumber": str(sequence),
                    "data": _b64(_to_bytes(payload)),
                    "approximateArrivalTimestamp": arrival_ms / 1000,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{account_id}:role/lambda-role",
                "awsRegion": region,
                "eventSourceARN": arn,
            }
        )
    return {"Records": records}


# ----------------------------------------------------------------------------------------------------
# DynamoDB Streams


def to_dynamodb_json(value: Any) -> dict[str, Any]:
    """Serialize a Python value to a DynamoDB attribute value (``{"S": ...}``, ``{"N": ...}``, ...).

    Args:
        value: ``None``, ``bool``, ``int``/``float``/``Decimal``, ``str``, ``bytes``, a list/tuple, a mapping
            with string keys, or a non-empty set of strings, numbers or bytes.

    Returns:
        The attribute value in the wire format of DynamoDB Streams (numbers as strings, bytes as base64).

    Raises:
        TypeError: For values DynamoDB cannot store.
    """
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):  # before int: bool is an int subclass
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": _b64(bytes(value))}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_dynamodb_json(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_dynamodb_json(v) for v in value]}
    if isinstance(value, set | frozenset) and value:
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        if all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in value):
            return {"NS": [str(v) for v in sorted(value)]}
        if all(isinstance(v, bytes) for v in value):
            return {"BS": [_b64(v) for v in sorted(value)]}
    raise TypeError(f"cannot serialize {type(value).__name__} value {value!r} to DynamoDB JSON")


def _image(item: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): to_dynamodb_json(v) for k, v in item.items()}


_VIEW_TYPES = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY")
_EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")


def dynamodb_event(
    items: Sequence[Mapping[str, Any]] | None = None,
    *,
    count: int | None = None,
    table: str = "my-table",
    key: str = "id",
    event_name: str = "INSERT",
    stream_view_type: str = "NEW_AND_OLD_IMAGES",
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    fail_rate: float = 0.0,
    seed: int | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """Build a DynamoDB Streams event.

    Args:
        items: Items as plain Python mappings; they become ``NewImage`` (and ``OldImage`` for ``MODIFY`` /
            ``REMOVE``) in DynamoDB JSON. Each item must contain the ``key`` attribute. When omitted,
            ``count`` order items are generated.
        count: Number of records to generate (default 10).
        table: Table name, used in ``eventSourceARN``.
        key: Name of the partition key attribute, copied into ``Keys``.
        event_name: ``"INSERT"``, ``"MODIFY"`` or ``"REMOVE"``, for every record.
        stream_view_type: The table's stream view type; decides which images are present.
        region: AWS region of the table.
        account_id: AWS account id of the table.
        fail_rate: Share of generated items whose ``NewImage`` contains ``"fail"``.
        seed: Makes the event deterministic.
        timestamp_ms: The clock of generated timestamps (epoch milliseconds); default: now, or a fixed
            instant when ``seed`` is given.

    Returns:
        ``{"Records": [...]}`` with increasing ``dynamodb.SequenceNumber`` values.
    """
    if event_name not in _EVENT_NAMES:
        raise ValueError(f"event_name must be one of {_EVENT_NAMES}, got {event_name!r}")
    if stream_view_type not in _VIEW_TYPES:
        raise ValueError(f"stream_view_type must be one of {_VIEW_TYPES}, got {stream_view_type!r}")
    gen = _Generator(seed, timestamp_ms)

    def make(index: int, fails: bool) -> dict[str, Any]:
        order = _sample_order(index, fails)
        message = {"order_id": order["order_id"], "item": order["item"]}
        return {key: order.pop("order_id"), **order, "Message": json.dumps(message, separators=(",", ":"))}

    payloads = _resolve_payloads(items, count, fail_rate, gen, make, "items")
    # The stream label is the stream's creation time, which precedes its records.
    created = datetime.fromtimestamp(gen.now_ms / 1000 - 86_400, tz=timezone.utc)
    label = created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    arn = f"arn:aws:dynamodb:{region}:{account_id}:table/{table}/stream/{label}"
    sequence = 100_000_000_000_000_000_000 + gen.rng.randrange(10**18)
    with_new = stream_view_type in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE") and event_name != "REMOVE"
    with_old = stream_view_type in ("NEW_AND_OLD_IMAGES", "OLD_IMAGE") and event_name != "INSERT"
    records = []
    for i, payload in enumerate(payloads):
        if not isinstance(payload, Mapping):
            raise TypeError(f"items must be mappings, item {i} is a {type(payload).__name__}")
        if key not in payload:
            raise ValueError(f"item {i} has no key attribute {key!r}")
        sequence += gen.rng.randrange(10**6, 10**8)
        change: dict[str, Any] = {
            "ApproximateCreationDateTime": (gen.now_ms - (len(payloads) - i) * 13) // 1000,
            "Keys": {key: to_dynamodb_json(payload[key])},
        }
        if with_new:
            change["NewImage"] = _image(payload)
        if with_old:
            # REMOVE carries the deleted item; MODIFY a plausible earlier version of it.
            old = payload if event_name == "REMOVE" else {key: payload[key], "status": "pending"}
            change["OldImage"] = _image(old)
        change["SequenceNumber"] = str(sequence)
        change["SizeBytes"] = len(json.dumps({k: v for k, v in change.items() if k.endswith(("Image", "Keys"))}))
        change["StreamViewType"] = stream_view_type
        records.append(
            {
                "eventID": gen.hex(32),
                "eventName": event_name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": region,
                "dynamodb": change,
                "eventSourceARN": arn,
            }
        )
    return {"Records": records}


# ----------------------------------------------------------------------------------------------------
# Kafka (Amazon MSK)


def kafka_event(
    values: Sequence[Payload] | None = None,
    *,
    count: int | None = None,
    topic: str = "my-topic",
    partitions: int = 1,
    cluster: str = "my-cluster",
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    fail_rate: float = 0.0,
    seed: int | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """Build an Amazon MSK (Kafka) event.

    Records are spread over ``partitions`` round-robin; ``records`` is keyed ``"<topic>-<partition>"``
    and offsets grow within each partition. Keys and values are base64-encoded, headers are lists of byte
    values, as Lambda delivers them. Note that processors flatten ``records`` partition by partition, so
    with several partitions the processing order differs from the order of ``values``.

    Args:
        values: Record values (mappings JSON-encoded). When omitted, ``count`` JSON orders are generated.
        count: Number of records to generate (default 10).
        topic: Topic name.
        partitions: Number of partitions, at least 1.
        cluster: MSK cluster name, used in ``eventSourceArn`` and ``bootstrapServers``.
        region: AWS region of the cluster.
        account_id: AWS account id of the cluster.
        fail_rate: Share of generated values whose decoded value contains ``"fail"``.
        seed: Makes the event deterministic.
        timestamp_ms: The clock of generated timestamps (epoch milliseconds); default: now, or a fixed
            instant when ``seed`` is given.

    Returns:
        ``{"eventSource": "aws:kafka", "eventSourceArn": ..., "bootstrapServers": ..., "records": {...}}``.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    gen = _Generator(seed, timestamp_ms)
    payloads = _resolve_payloads(values, count, fail_rate, gen, _sample_payment, "values")
    cluster_id = gen.uuid4()
    host = f"{cluster}.{gen.token(6).lower()}.c2.kafka.{region}.amazonaws.com"
    offsets = {p: gen.rng.randrange(10_000) for p in range(partitions)}
    records: dict[str, list[dict[str, Any]]] = {}
    for i, payload in enumerate(payloads):
        partition = i % partitions
        offset = offsets[partition]
        offsets[partition] += 1
        records.setdefault(f"{topic}-{partition}", []).append(
            {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "timestamp": gen.now_ms - (len(payloads) - i) * 5,
                "timestampType": "CREATE_TIME",
                "key": _b64(f"key-{i}".encode()),
                "value": _b64(_to_bytes(payload)),
                "headers": [{"source": list(b"batchlens")}],
            }
        )
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": f"arn:aws:kafka:{region}:{account_id}:cluster/{cluster}/{cluster_id}-1",
        "bootstrapServers": f"b-1.{host}:9092,b-2.{host}:9092",
        "records": records,
    }
