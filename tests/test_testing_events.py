"""Tests for the event factories and fake Lambda context in batchlens.testing._events."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import (
    DynamoDBStreamEvent,
    KafkaEvent,
    KinesisStreamEvent,
    SQSEvent,
)
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamModel,
    KafkaMskEventModel,
    KinesisDataStreamModel,
    SqsModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from hypothesis import given
from hypothesis import strategies as st

from batchlens.testing._events import (
    FakeLambdaContext,
    dynamodb_event,
    kafka_event,
    kinesis_event,
    lambda_context,
    sqs_event,
    sqs_fifo_event,
    to_dynamodb_json,
)

FACTORIES = [sqs_event, sqs_fifo_event, kinesis_event, dynamodb_event, kafka_event]


def kafka_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [record for partition in event["records"].values() for record in partition]


def payload_of(kind: str, record: dict[str, Any]) -> str:
    """The record's payload as text, the way a sample handler looks for "fail"."""
    if kind in ("sqs", "fifo"):
        return str(record["body"])
    if kind == "kinesis":
        return base64.b64decode(record["kinesis"]["data"]).decode()
    if kind == "dynamodb":
        return json.dumps(record["dynamodb"].get("NewImage", {}))
    return base64.b64decode(record["value"]).decode()


def records_of(kind: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    return kafka_records(event) if kind == "kafka" else list(event["Records"])


KINDS = {
    "sqs": sqs_event,
    "fifo": sqs_fifo_event,
    "kinesis": kinesis_event,
    "dynamodb": dynamodb_event,
    "kafka": kafka_event,
}


# ---------------------------------------------------------------------------------------------------------
# common behaviour


@pytest.mark.parametrize("factory", FACTORIES)
def test_same_seed_gives_identical_events(factory: Any) -> None:
    """Two calls with the same seed produce byte-for-byte identical events."""
    first = factory(count=7, fail_rate=0.3, seed=42)
    second = factory(count=7, fail_rate=0.3, seed=42)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


@pytest.mark.parametrize("factory", FACTORIES)
def test_without_seed_events_differ(factory: Any) -> None:
    """Without a seed, ids differ from call to call."""
    assert factory(count=3) != factory(count=3)


@pytest.mark.parametrize("factory", FACTORIES)
def test_default_count_is_ten(factory: Any) -> None:
    """With neither payloads nor count, ten records are generated (the SQS default batch size)."""
    event = factory(seed=1)
    records = kafka_records(event) if "records" in event else event["Records"]
    assert len(records) == 10


@pytest.mark.parametrize("factory", FACTORIES)
def test_zero_count_gives_empty_batch(factory: Any) -> None:
    """count=0 gives an empty batch rather than an error, for testing empty-batch handling."""
    event = factory(count=0, seed=1)
    records = kafka_records(event) if "records" in event else event["Records"]
    assert records == []


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(("count", "fail_rate"), [(10, 0.0), (10, 0.3), (7, 0.5), (4, 1.0), (1, 0.4)])
def test_fail_rate_marks_exactly_the_rounded_share(kind: str, count: int, fail_rate: float) -> None:
    """round(count * fail_rate) generated payloads contain "fail" and no other record does."""
    event = KINDS[kind](count=count, fail_rate=fail_rate, seed=3)
    failing = [r for r in records_of(kind, event) if "fail" in payload_of(kind, r)]
    assert len(failing) == round(count * fail_rate)
    # The raw record must not contain "fail" elsewhere (ids, handles) or naive handlers would misfire.
    for record in records_of(kind, event):
        if "fail" not in payload_of(kind, record):
            raw = json.dumps(record)
            encoded = record.get("kinesis", {}).get("data") or record.get("value")
            assert "fail" not in raw.replace(encoded or "\0", "")


def test_seed_chooses_which_records_fail() -> None:
    """Different seeds pick different failing positions; the same seed always picks the same ones."""

    def positions(seed: int) -> tuple[int, ...]:
        records = sqs_event(count=20, fail_rate=0.25, seed=seed)["Records"]
        return tuple(i for i, r in enumerate(records) if "fail" in r["body"])

    assert positions(1) == positions(1)
    assert len({positions(seed) for seed in range(8)}) > 1


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5"])
def test_fail_rate_out_of_range_is_rejected(bad: Any) -> None:
    """fail_rate outside 0..1 (or not a number) raises ValueError."""
    with pytest.raises(ValueError, match="fail_rate"):
        sqs_event(count=2, fail_rate=bad)


def test_explicit_payloads_and_count_must_agree() -> None:
    """Giving payloads and a different count is an error; a matching count is accepted."""
    with pytest.raises(ValueError, match="count=3"):
        sqs_event(["a", "b"], count=3)
    assert len(sqs_event(["a", "b"], count=2)["Records"]) == 2


def test_fail_rate_with_explicit_payloads_is_rejected() -> None:
    """fail_rate only applies to generated payloads, so combining it with explicit ones raises."""
    with pytest.raises(ValueError, match="fail_rate"):
        kinesis_event(["x"], fail_rate=0.5)


def test_single_string_instead_of_sequence_is_rejected() -> None:
    """A lone string is not silently split into one record per character."""
    with pytest.raises(TypeError):
        sqs_event("hello")  # type: ignore[arg-type]


def test_negative_count_is_rejected() -> None:
    """A negative count raises ValueError."""
    with pytest.raises(ValueError, match="negative"):
        kafka_event(count=-1)


# ---------------------------------------------------------------------------------------------------------
# SQS


def test_sqs_records_have_the_lambda_shape() -> None:
    """SQS records carry uuid message ids, a matching md5, attributes and the queue ARN."""
    event = sqs_event(count=5, queue="orders", region="eu-west-1", account_id="111122223333", seed=9)
    ids = [r["messageId"] for r in event["Records"]]
    assert len(set(ids)) == 5
    for record in event["Records"]:
        assert str(uuid.UUID(record["messageId"])) == record["messageId"]
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == "arn:aws:sqs:eu-west-1:111122223333:orders"
        assert record["awsRegion"] == "eu-west-1"
        assert record["receiptHandle"].startswith("AQEB")
        attributes = record["attributes"]
        assert attributes["ApproximateReceiveCount"] == "1"
        assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= int(attributes["SentTimestamp"])
        assert "MessageGroupId" not in attributes
        json.loads(record["body"])


def test_sqs_bodies_are_encoded_by_type() -> None:
    """Mappings become JSON, bytes are decoded, strings are kept as they are."""
    event = sqs_event([{"a": 1}, b"raw", "text"], seed=1)
    assert [r["body"] for r in event["Records"]] == ['{"a":1}', "raw", "text"]


def test_sqs_trace_header_has_xray_format() -> None:
    """trace_header=True adds an X-Ray AWSTraceHeader attribute to every record."""
    event = sqs_event(count=3, trace_header=True, seed=5)
    pattern = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1$")
    assert all(pattern.match(r["attributes"]["AWSTraceHeader"]) for r in event["Records"])
    assert "AWSTraceHeader" not in sqs_event(count=1)["Records"][0]["attributes"]


def test_fifo_records_spread_over_groups_with_increasing_sequence_numbers() -> None:
    """FIFO records get round-robin group ids, dedup ids and strictly increasing sequence numbers."""
    event = sqs_fifo_event(count=7, groups=3, seed=2)
    records = event["Records"]
    assert [r["attributes"]["MessageGroupId"] for r in records] == [f"group-{i % 3}" for i in range(7)]
    sequence = [int(r["attributes"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(sequence)
    assert len(set(sequence)) == 7
    assert all(len(str(s)) == 20 for s in sequence)
    assert len({r["attributes"]["MessageDeduplicationId"] for r in records}) == 7
    assert all(r["eventSourceARN"].endswith(":my-queue.fifo") for r in records)


def test_fifo_rejects_bad_groups_and_queue_names() -> None:
    """groups below 1 and queue names without .fifo are rejected."""
    with pytest.raises(ValueError, match="groups"):
        sqs_fifo_event(count=1, groups=0)
    with pytest.raises(ValueError, match=r"\.fifo"):
        sqs_fifo_event(count=1, queue="plain")


# ---------------------------------------------------------------------------------------------------------
# Kinesis


def test_kinesis_records_have_the_lambda_shape() -> None:
    """Kinesis records carry base64 data, 56-digit increasing sequence numbers and shard-prefixed ids."""
    event = kinesis_event([{"n": 1}, "two", b"\x00\x01"], stream="clicks", shard_id="shardId-000000000003", seed=4)
    records = event["Records"]
    decoded = [base64.b64decode(r["kinesis"]["data"]) for r in records]
    assert decoded == [b'{"n":1}', b"two", b"\x00\x01"]
    sequence = [int(r["kinesis"]["sequenceNumber"]) for r in records]
    assert sequence == sorted(sequence)
    assert len(set(sequence)) == 3
    for record in records:
        seq = record["kinesis"]["sequenceNumber"]
        assert len(seq) == 56
        assert record["eventID"] == f"shardId-000000000003:{seq}"
        assert record["eventSourceARN"] == "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
        assert record["eventSource"] == "aws:kinesis"
        assert record["eventName"] == "aws:kinesis:record"


# ---------------------------------------------------------------------------------------------------------
# DynamoDB Streams


def test_dynamodb_records_have_the_lambda_shape() -> None:
    """DynamoDB records carry the table stream ARN, increasing sequence numbers and DynamoDB-JSON images."""
    event = dynamodb_event(count=4, table="orders", seed=8)
    arn = re.compile(r"^arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/\d{4}-\d\d-\d\dT[\d:]{8}\.\d{3}$")
    sequence = []
    for record in event["Records"]:
        assert arn.match(record["eventSourceARN"])
        change = record["dynamodb"]
        sequence.append(int(change["SequenceNumber"]))
        assert change["Keys"] == {"id": change["NewImage"]["id"]}
        assert change["NewImage"]["id"]["S"].startswith("order-")
        assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert "OldImage" not in change  # INSERT has no previous version
        assert record["eventName"] == "INSERT"
        assert change["SizeBytes"] > 0
    assert sequence == sorted(sequence)
    assert len(set(sequence)) == 4


@pytest.mark.parametrize(
    ("event_name", "view", "new", "old"),
    [
        ("INSERT", "NEW_AND_OLD_IMAGES", True, False),
        ("MODIFY", "NEW_AND_OLD_IMAGES", True, True),
        ("REMOVE", "NEW_AND_OLD_IMAGES", False, True),
        ("MODIFY", "NEW_IMAGE", True, False),
        ("MODIFY", "OLD_IMAGE", False, True),
        ("MODIFY", "KEYS_ONLY", False, False),
    ],
)
def test_dynamodb_images_follow_event_name_and_view_type(event_name: str, view: str, new: bool, old: bool) -> None:
    """NewImage/OldImage are present exactly when the event name and stream view type call for them."""
    change = dynamodb_event(count=1, event_name=event_name, stream_view_type=view, seed=1)["Records"][0]["dynamodb"]
    assert ("NewImage" in change) is new
    assert ("OldImage" in change) is old
    assert "Keys" in change


def test_dynamodb_items_round_trip_through_powertools_deserializer() -> None:
    """Explicit items come back unchanged (numbers as Decimal) through Powertools' deserializer."""
    item = {"pk": "user#1", "age": 42, "score": Decimal("1.5"), "tags": {"a", "b"}, "extra": None, "ok": True}
    event = dynamodb_event([item], key="pk", seed=1)
    image = event["Records"][0]["dynamodb"]["NewImage"]
    deserializer = TypeDeserializer()
    assert {k: deserializer.deserialize(v) for k, v in image.items()} == {**item, "age": Decimal(42)}


def test_dynamodb_rejects_bad_arguments() -> None:
    """Unknown event names, view types, items without the key and non-mapping items are rejected."""
    with pytest.raises(ValueError, match="event_name"):
        dynamodb_event(count=1, event_name="UPSERT")
    with pytest.raises(ValueError, match="stream_view_type"):
        dynamodb_event(count=1, stream_view_type="ALL")
    with pytest.raises(ValueError, match="key attribute"):
        dynamodb_event([{"name": "x"}])
    with pytest.raises(TypeError):
        dynamodb_event(["not a mapping"])  # type: ignore[list-item]


def test_to_dynamodb_json_serializes_every_type() -> None:
    """Each Python type maps to its DynamoDB attribute-value type."""
    assert to_dynamodb_json(None) == {"NULL": True}
    assert to_dynamodb_json(True) == {"BOOL": True}
    assert to_dynamodb_json(7) == {"N": "7"}
    assert to_dynamodb_json(Decimal("0.1")) == {"N": "0.1"}
    assert to_dynamodb_json("s") == {"S": "s"}
    assert to_dynamodb_json(b"\x01") == {"B": "AQ=="}
    assert to_dynamodb_json([1, "a"]) == {"L": [{"N": "1"}, {"S": "a"}]}
    assert to_dynamodb_json({"k": {"n": 1}}) == {"M": {"k": {"M": {"n": {"N": "1"}}}}}
    assert to_dynamodb_json({"b", "a"}) == {"SS": ["a", "b"]}
    assert to_dynamodb_json({2, 1}) == {"NS": ["1", "2"]}
    assert to_dynamodb_json({b"b", b"a"}) == {"BS": ["YQ==", "Yg=="]}


@pytest.mark.parametrize("bad", [object(), set(), {1, "a"}, complex(1, 2)])
def test_to_dynamodb_json_rejects_unstorable_values(bad: Any) -> None:
    """Values DynamoDB cannot store (including empty and mixed sets) raise TypeError."""
    with pytest.raises(TypeError):
        to_dynamodb_json(bad)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=15,
)


def _numbers_as_decimal(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, list):
        return [_numbers_as_decimal(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers_as_decimal(v) for k, v in value.items()}
    return value


@given(json_like)
def test_to_dynamodb_json_round_trips_with_powertools(value: Any) -> None:
    """Any JSON-like value survives serialization and Powertools' deserialization (ints as Decimal)."""
    assert TypeDeserializer().deserialize(to_dynamodb_json(value)) == _numbers_as_decimal(value)


# ---------------------------------------------------------------------------------------------------------
# Kafka


def test_kafka_records_are_keyed_by_topic_partition_with_growing_offsets() -> None:
    """Kafka records are grouped under "<topic>-<partition>" with consecutive offsets per partition."""
    event = kafka_event(count=7, topic="payments", partitions=3, seed=6)
    assert event["eventSource"] == "aws:kafka"
    assert event["eventSourceArn"].startswith("arn:aws:kafka:us-east-1:123456789012:cluster/my-cluster/")
    assert sorted(event["records"]) == ["payments-0", "payments-1", "payments-2"]
    assert [len(v) for v in event["records"].values()] == [3, 2, 2]
    for name, records in event["records"].items():
        partition = int(name.rsplit("-", 1)[1])
        offsets = [r["offset"] for r in records]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
        for record in records:
            assert record["topic"] == "payments"
            assert record["partition"] == partition
            assert base64.b64decode(record["key"]).startswith(b"key-")
            json.loads(base64.b64decode(record["value"]))
    assert all(server.endswith(":9092") for server in event["bootstrapServers"].split(","))


def test_kafka_rejects_zero_partitions() -> None:
    """partitions below 1 is rejected."""
    with pytest.raises(ValueError, match="partitions"):
        kafka_event(count=1, partitions=0)


# ---------------------------------------------------------------------------------------------------------
# compatibility with Powertools (the reference implementation)


def test_powertools_data_classes_read_generated_events() -> None:
    """Powertools' event source data classes read every field of the generated events."""
    for record in SQSEvent(sqs_fifo_event(count=2, groups=2, seed=1, trace_header=True)).records:
        assert record.attributes.message_group_id in {"group-0", "group-1"}
        assert record.attributes.sequence_number
        assert record.attributes.aws_trace_header
        assert record.attributes.approximate_receive_count == "1"
        assert record.json_body["order_id"].startswith("order-")
        assert record.queue_url == "https://sqs.us-east-1.amazonaws.com/123456789012/my-queue.fifo"
    for record in KinesisStreamEvent(kinesis_event(count=2, seed=1)).records:
        assert record.kinesis.data_as_json()["status"] == "ok"
        assert record.kinesis.partition_key.startswith("partition-")
    for record in DynamoDBStreamEvent(dynamodb_event(count=2, event_name="MODIFY", seed=1)).records:
        assert record.event_name is not None
        assert record.event_name.name == "MODIFY"
        assert record.dynamodb is not None
        assert record.dynamodb.new_image["quantity"] in (Decimal(1), Decimal(2))
        assert record.dynamodb.old_image["status"] == "pending"
        assert record.dynamodb.stream_view_type is not None
    kafka = KafkaEvent(kafka_event(count=2, seed=1))
    assert kafka.decoded_bootstrap_servers[0].startswith("b-1.my-cluster.")
    for record in kafka.records:
        assert record.json_value["status"] == "ok"
        assert record.decoded_key is not None
        assert record.decoded_key.startswith(b"key-")
        assert record.decoded_headers["source"] == b"batchlens"


def test_powertools_parser_models_validate_generated_events() -> None:
    """Powertools' pydantic envelopes validate the generated events."""
    assert len(SqsModel.model_validate(sqs_event(count=3, seed=1)).Records) == 3
    assert len(SqsModel.model_validate(sqs_fifo_event(count=3, groups=2, seed=1)).Records) == 3
    kinesis = KinesisDataStreamModel.model_validate(kinesis_event(count=3, seed=1))
    assert json.loads(kinesis.Records[0].kinesis.data)["order_id"] == "order-0001"  # type: ignore[arg-type]
    for name in ("INSERT", "MODIFY", "REMOVE"):
        assert len(DynamoDBStreamModel.model_validate(dynamodb_event(count=2, event_name=name, seed=1)).Records) == 2
    msk = KafkaMskEventModel.model_validate(kafka_event(count=3, partitions=2, seed=1))
    assert sum(len(v) for v in msk.records.values()) == 3


def _fails_on_marker(kind: str) -> Any:
    def handler(record: Any) -> str:
        if kind in ("sqs", "fifo"):
            text = record.body
        elif kind == "kinesis":
            text = record.kinesis.data_as_text()
        elif kind == "dynamodb":
            text = str(record.dynamodb.new_image)
        else:
            text = record.decoded_value.decode()
        if "fail" in text:
            raise ValueError("record asked to fail")
        return "ok"

    return handler


def _identifier(kind: str, record: dict[str, Any]) -> Any:
    if kind in ("sqs", "fifo"):
        return record["messageId"]
    if kind == "kinesis":
        return record["kinesis"]["sequenceNumber"]
    if kind == "dynamodb":
        return record["dynamodb"]["SequenceNumber"]
    return {"partition": f"{record['topic']}-{record['partition']}", "offset": record["offset"]}


@pytest.mark.parametrize(
    ("kind", "event_type"),
    [
        ("sqs", EventType.SQS),
        ("kinesis", EventType.KinesisDataStreams),
        ("dynamodb", EventType.DynamoDBStreams),
        ("kafka", EventType.Kafka),
    ],
)
def test_powertools_reports_exactly_the_records_marked_to_fail(kind: str, event_type: EventType) -> None:
    """Powertools' process_partial_response reports exactly the records whose payload contains "fail"."""
    event = KINDS[kind](count=12, fail_rate=0.25, seed=11, **({"partitions": 2} if kind == "kafka" else {}))
    expected = [_identifier(kind, r) for r in records_of(kind, event) if "fail" in payload_of(kind, r)]
    response = process_partial_response(
        event=event,
        record_handler=_fails_on_marker(kind),
        processor=BatchProcessor(event_type=event_type),
        context=lambda_context(seed=1),
    )
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == expected
    assert len(expected) == 3


def test_powertools_fifo_processor_skips_only_the_failed_group() -> None:
    """With skip_group_on_error, Powertools fails the marked record's whole group and nothing else."""
    event = sqs_fifo_event(count=9, groups=3, fail_rate=1 / 9, seed=2)
    records = event["Records"]
    bad_group = next(r["attributes"]["MessageGroupId"] for r in records if "fail" in r["body"])
    first_bad = next(i for i, r in enumerate(records) if "fail" in r["body"])
    expected = [
        r["messageId"]
        for i, r in enumerate(records)
        if r["attributes"]["MessageGroupId"] == bad_group and i >= first_bad
    ]
    response = process_partial_response(
        event=event,
        record_handler=_fails_on_marker("fifo"),
        processor=SqsFifoPartialProcessor(skip_group_on_error=True),
    )
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == expected


# ---------------------------------------------------------------------------------------------------------
# lambda_context


def test_lambda_context_has_every_attribute_of_the_real_one() -> None:
    """The fake has every public attribute and method of Powertools' LambdaContext type."""
    context = lambda_context(seed=1)
    public = [name for name, _ in inspect.getmembers(LambdaContext) if not name.startswith("_")]
    assert public  # guards against the reference type changing shape silently
    for name in public:
        assert hasattr(context, name), name


def test_lambda_context_fields_are_consistent() -> None:
    """ARN, log group and log stream are derived from the function name, version, region and account."""
    context = lambda_context(function_name="orders", region="eu-central-1", account_id="999988887777", seed=3)
    assert isinstance(context, FakeLambdaContext)
    assert context.invoked_function_arn == "arn:aws:lambda:eu-central-1:999988887777:function:orders"
    assert context.log_group_name == "/aws/lambda/orders"
    assert re.match(r"^\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}$", context.log_stream_name)
    assert context.function_version == "$LATEST"
    assert context.memory_limit_in_mb == 512
    assert str(uuid.UUID(context.aws_request_id)) == context.aws_request_id
    assert lambda_context(seed=3).aws_request_id == context.aws_request_id
    assert lambda_context(aws_request_id="req-1").aws_request_id == "req-1"
    assert "orders" in repr(context)


def test_remaining_time_counts_down_with_the_clock() -> None:
    """get_remaining_time_in_millis decreases as the clock advances and stops at zero."""
    now = [100.0]
    context = lambda_context(remaining_ms=5_000, clock=lambda: now[0])
    assert context.get_remaining_time_in_millis() == 5_000
    now[0] += 1.25
    assert context.get_remaining_time_in_millis() == 3_750
    now[0] += 10
    assert context.get_remaining_time_in_millis() == 0


def test_remaining_time_counts_down_in_real_time_by_default() -> None:
    """With the default clock the remaining time is at most the budget and does not increase."""
    context = lambda_context(remaining_ms=2_000)
    first = context.get_remaining_time_in_millis()
    second = context.get_remaining_time_in_millis()
    assert 1_900 < first <= 2_000
    assert second <= first


def test_remaining_time_frozen_or_callable() -> None:
    """frozen=True keeps the budget fixed; a callable is asked on every call."""
    now = [0.0]
    frozen = lambda_context(remaining_ms=700, frozen=True, clock=lambda: now[0])
    now[0] += 100
    assert frozen.get_remaining_time_in_millis() == 700
    answers = iter([900, 50])
    scripted = lambda_context(remaining_ms=lambda: next(answers))
    assert scripted.get_remaining_time_in_millis() == 900
    assert scripted.get_remaining_time_in_millis() == 50


def test_powertools_injects_the_fake_context_into_record_handlers() -> None:
    """Powertools passes the fake context to a record handler that asks for lambda_context."""
    seen: list[int] = []

    def handler(record: Any, lambda_context: Any) -> None:
        seen.append(lambda_context.get_remaining_time_in_millis())

    process_partial_response(
        event=sqs_event(count=2, seed=1),
        record_handler=handler,
        processor=BatchProcessor(event_type=EventType.SQS),
        context=lambda_context(remaining_ms=1_234, frozen=True),
    )
    assert seen == [1_234, 1_234]
