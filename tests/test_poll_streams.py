"""``batchlens poll`` against Kinesis and DynamoDB streams on a moto server: per-shard order and checkpoints."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

import boto3

from _poll_support import moto_server
from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens._poll._args import PollOptions
from batchlens._poll._runner import poll


class TransientError(Exception):
    """Fails the first attempt only."""


class State:
    """What the handler saw, reset by the ``state`` fixture."""

    def __init__(self, fail_once: set[int] | None = None, stop_on_first: bool = False) -> None:
        self.fail_once = fail_once or set()
        self.failed: set[int] = set()
        self.stop_on_first = stop_on_first
        self.poison: set[int] = set()
        self.invocations: list[dict[str, Any]] = []  # shard, sequence numbers, attempted, failed identifiers
        self.done: Counter[tuple[str, str]] = Counter()
        self.attempted: list[tuple[str, str]] = []


STATE = State()


def record_handler(record: Any) -> None:
    """Fail the chosen records on their first attempt (poison ones always); count successes per (shard, seq)."""
    shard = record.event_id.split(":")[0]
    sequence = record.kinesis.sequence_number
    STATE.invocations[-1]["attempted"].append(sequence)
    index = record.kinesis.data_as_json()["i"]
    if index in STATE.poison:
        raise TransientError("poison")
    if index in STATE.fail_once and index not in STATE.failed:
        STATE.failed.add(index)
        raise TransientError("first attempt")
    STATE.done[(shard, sequence)] += 1


def handler(event: dict[str, Any], context: Any) -> Any:
    """A Kinesis Lambda handler with batchlens' BatchProcessor."""
    records = event["Records"]
    STATE.invocations.append(
        {
            "shard": records[0]["eventID"].split(":")[0],
            "sequences": [r["kinesis"]["sequenceNumber"] for r in records],
            "attempted": [],
            "failed": None,
        }
    )
    processor = BatchProcessor(EventType.KinesisDataStreams, stop_on_first_failure=STATE.stop_on_first)
    response = process_partial_response(event, record_handler, processor, context)
    STATE.invocations[-1]["failed"] = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    return response


def whole_batch_handler(event: dict[str, Any], context: Any) -> None:
    """Raise for the whole batch when it holds a poison record; otherwise process every record."""
    STATE.invocations.append({"sequences": [r["kinesis"]["sequenceNumber"] for r in event["Records"]]})
    indexes = [json.loads(__import__("base64").b64decode(r["kinesis"]["data"]))["i"] for r in event["Records"]]
    if STATE.poison & set(indexes):
        raise RuntimeError("poison in the batch")
    for record in event["Records"]:
        STATE.done[("", record["kinesis"]["sequenceNumber"])] += 1


@pytest.fixture(scope="module")
def endpoint() -> Any:
    """One moto server for the module."""
    with moto_server() as url:
        yield url


def _stream(endpoint: str, name: str, shards: int, count: int) -> dict[str, list[str]]:
    """Create the stream and put ``count`` records; return each shard's sequence numbers in order."""
    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    by_shard: dict[str, list[str]] = {}
    for start in range(0, count, 500):
        entries = [
            {"Data": json.dumps({"i": i}).encode(), "PartitionKey": f"customer-{i % 37}"}
            for i in range(start, min(start + 500, count))
        ]
        for result in kinesis.put_records(StreamName=name, Records=entries)["Records"]:
            by_shard.setdefault(result["ShardId"], []).append(result["SequenceNumber"])
    return by_shard


def _run(endpoint: str, source: str, handler: str = "test_poll_streams:handler", **options: Any) -> str:
    err = io.StringIO()
    settings: dict[str, Any] = {"report_batch_item_failures": True, "until_empty": True, **options}
    assert poll(PollOptions(source=source, handler=handler, endpoint_url=endpoint, **settings), err=err) == 0
    return err.getvalue()


@pytest.mark.parametrize("stop_on_first", [False, True])
def test_kinesis_two_shards_keep_order_and_checkpoints(endpoint: str, stop_on_first: bool) -> None:
    """2 shards, 2,000 records, 5% failing once: per-shard order, resume at the lowest failure, nothing skipped."""
    global STATE
    STATE = State(fail_once=set(random.Random(3).sample(range(2000), 100)), stop_on_first=stop_on_first)
    name = f"orders-{int(stop_on_first)}"
    by_shard = _stream(endpoint, name, shards=2, count=2000)
    assert len(by_shard) == 2
    err = _run(endpoint, f"kinesis:{name}")
    assert "stopped (empty)" in err

    # nothing skipped: every record of every shard succeeded
    assert {(shard, seq) for shard, seqs in by_shard.items() for seq in seqs} == set(STATE.done)
    for shard, sequences in by_shard.items():
        position = {seq: i for i, seq in enumerate(sequences)}
        invocations = [inv for inv in STATE.invocations if inv["shard"] == shard]
        # each batch is a run of consecutive records of its shard, in order
        for inv in invocations:
            first = position[inv["sequences"][0]]
            assert inv["sequences"] == sequences[first : first + len(inv["sequences"])]
        # checkpoints: the next batch starts at the lowest reported failure, else right after the batch
        expected = 0
        for inv in invocations:
            assert position[inv["sequences"][0]] == expected
            if inv["failed"]:
                expected = min(position[seq] for seq in inv["failed"])
            else:
                expected = position[inv["sequences"][-1]] + 1
        assert expected == len(sequences)
        if stop_on_first:
            # records succeed for the first time in shard order (without stop_on_first a later record may
            # succeed before an earlier failed one is retried; the checkpoint still covers both)
            # the first success of each record comes in shard order
            first_success: list[int] = []
            seen: set[str] = set()
            for inv in invocations:
                for seq in inv["attempted"]:
                    if seq not in seen and seq not in inv["failed"]:
                        seen.add(seq)
                        first_success.append(position[seq])
            assert first_success == sorted(first_success)
    after_failure = [
        inv["attempted"][inv["attempted"].index(inv["failed"][0]) + 1 :] for inv in STATE.invocations if inv["failed"]
    ]
    if stop_on_first:
        # nothing after the failed record was processed before the retry
        assert all(rest == [] for rest in after_failure)
        assert all(
            len(inv["failed"]) == len(inv["sequences"]) - inv["attempted"].index(inv["failed"][0])
            for inv in STATE.invocations
            if inv["failed"]
        )
    else:
        assert any(rest for rest in after_failure)


def test_bisect_isolates_a_poison_record_and_retries_discard_it(endpoint: str) -> None:
    """--bisect-on-error halves a failing batch down to the poison record, which is discarded after its retries."""
    global STATE
    STATE = State()
    STATE.poison = {25}
    by_shard = _stream(endpoint, "bisect", shards=1, count=40)
    sequences = next(iter(by_shard.values()))
    err = _run(
        endpoint,
        "kinesis:bisect",
        handler="test_poll_streams:whole_batch_handler",
        report_batch_item_failures=False,
        bisect_on_error=True,
        maximum_retry_attempts=2,
    )
    sizes = [len(inv["sequences"]) for inv in STATE.invocations]
    assert sizes[:8] == [40, 20, 20, 10, 5, 5, 3, 2]
    assert [inv["sequences"] for inv in STATE.invocations if inv["sequences"] == [sequences[25]]] == [
        [sequences[25]]
    ] * 3
    assert {seq for _, seq in STATE.done} == set(sequences) - {sequences[25]}
    assert "retries exhausted (--maximum-retry-attempts 2): 1 records discarded" in err
    assert "discarded=1" in err.splitlines()[-1]


def test_retry_limit_without_bisect_discards_the_failed_batch_tail(endpoint: str) -> None:
    """Without bisection a record that keeps failing is retried N times, then it and the rest of its batch go."""
    global STATE
    STATE = State()
    STATE.poison = {5}
    by_shard = _stream(endpoint, "retries", shards=1, count=12)
    sequences = next(iter(by_shard.values()))
    err = _run(endpoint, "kinesis:retries", batch_size=10, maximum_retry_attempts=1)
    # the first batch 0-9 fails at 5; the retry reads from the checkpoint (5-11) and fails at 5 again, so that
    # retried batch is discarded and the checkpoint moves past it
    assert [inv["sequences"] for inv in STATE.invocations] == [sequences[:10], sequences[5:]]
    assert f"7 records discarded, sequence numbers {sequences[5]}..{sequences[11]}" in err
    done = {seq for _, seq in STATE.done}
    assert set(sequences[:5]) <= done
    assert sequences[5] not in done


def test_dynamodb_table_stream_in_order(endpoint: str) -> None:
    """dynamodb:TABLE finds the table's stream and delivers its changes in order, retrying a reported failure."""
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    dynamodb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    for i in range(30):
        dynamodb.put_item(TableName="orders", Item={"id": {"S": f"order-{i:02d}"}, "n": {"N": str(i)}})
    STATE_DDB.clear()
    err = _run(endpoint, "dynamodb:orders", handler="test_poll_streams:dynamodb_handler", batch_size=8)
    firsts = [n for n, attempt in STATE_DDB if attempt == "ok"]
    assert firsts == list(range(30))
    assert ("7", "fail") in [(str(n), a) for n, a in STATE_DDB]
    assert "outcome=partial" in err


STATE_DDB: list[tuple[int, str]] = []


def dynamodb_handler(event: dict[str, Any], context: Any) -> Any:
    """Fail item 7 once (reported as a batch item failure), process the rest."""

    def one(record: Any) -> None:
        n = int(record.dynamodb.new_image["n"])
        if n == 7 and (7, "fail") not in STATE_DDB:
            STATE_DDB.append((7, "fail"))
            raise TransientError("once")
        if (n, "ok") not in STATE_DDB:
            STATE_DDB.append((n, "ok"))

    processor = BatchProcessor(EventType.DynamoDBStreams, stop_on_first_failure=True)
    return process_partial_response(event, one, processor, context)


class FakeKinesis:
    """An in-memory stream of one shard, for what a moto server cannot stage (records of a given age)."""

    kind = "kinesis"
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/fake"
    label = "fake"
    max_limit = 10_000

    def __init__(self, arrivals: list[float]) -> None:
        self.records = [
            {"SequenceNumber": str(i + 1), "Data": b"{}", "PartitionKey": "p", "ApproximateArrivalTimestamp": t}
            for i, t in enumerate(arrivals)
        ]

    def shards(self) -> list[str]:
        return ["shardId-000000000000"]

    def iterator(self, shard_id: str, position: str, timestamp: Any) -> str:
        return "0"

    def get(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str, int]:
        start = int(iterator)
        page = self.records[start : start + limit]
        return page, str(start + len(page)), 0

    def build(self, record: dict[str, Any], shard_id: str) -> dict[str, Any]:
        from batchlens._poll._events import kinesis_record

        return kinesis_record(record, shard_id, self.arn)

    def sequence(self, record: dict[str, Any]) -> str:
        return str(record["SequenceNumber"])

    def arrival(self, record: dict[str, Any]) -> float:
        return float(record["ApproximateArrivalTimestamp"])


def test_records_older_than_the_maximum_age_are_discarded_unsent() -> None:
    """--maximum-record-age drops expired records before the invocation and moves the checkpoint past them."""
    import threading
    import time

    from batchlens._poll._context import Invocation
    from batchlens._poll._streams import StreamSource

    now = time.time()
    api = FakeKinesis([now - 7200] * 5 + [now] * 5)
    sent: list[list[str]] = []

    def invoke(event: dict[str, Any], arn: str) -> Invocation:
        sent.append([r["kinesis"]["sequenceNumber"] for r in event["Records"]])
        return Invocation("ok", response=None)

    source = StreamSource(
        api,
        batch_size=100,
        batching_window_s=0,
        report_batch_item_failures=True,
        starting_position="TRIM_HORIZON",
        starting_timestamp=None,
        bisect_on_error=False,
        maximum_retry_attempts=-1,
        maximum_record_age_s=3600,
        invoke=invoke,
    )
    summary = source.poll_once(1, threading.Event())
    assert summary is not None
    assert sent == [["6", "7", "8", "9", "10"]]
    assert (summary.records, summary.discarded, summary.settled) == (5, 5, 5)
    assert "5 records older than --maximum-record-age discarded" in summary.line()
    assert source.checkpoints == {"shardId-000000000000": "10"}
    assert source.poll_once(2, threading.Event()) is None
    assert source.drained()


SEEN_DATA: list[int] = []


def collect_handler(event: dict[str, Any], context: Any) -> None:
    """Keep the ``i`` of every record delivered."""
    import base64

    SEEN_DATA.extend(json.loads(base64.b64decode(r["kinesis"]["data"]))["i"] for r in event["Records"])


def test_starting_positions(endpoint: str) -> None:
    """TRIM_HORIZON reads everything, LATEST only what comes after the start, AT_TIMESTAMP from that instant on."""
    import time
    from datetime import datetime, timezone

    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    kinesis.create_stream(StreamName="positions", ShardCount=1)
    for i in range(5):
        kinesis.put_record(StreamName="positions", Data=json.dumps({"i": i}).encode(), PartitionKey="p")
    time.sleep(1.1)
    middle = datetime.now(timezone.utc)
    time.sleep(0.1)
    for i in range(5, 8):
        kinesis.put_record(StreamName="positions", Data=json.dumps({"i": i}).encode(), PartitionKey="p")
    runs = {
        "TRIM_HORIZON": {},
        "LATEST": {},
        "AT_TIMESTAMP": {"starting_position_timestamp": middle},
    }
    seen = {}
    for position, extra in runs.items():
        SEEN_DATA.clear()
        _run(
            endpoint,
            "kinesis:positions",
            handler="test_poll_streams:collect_handler",
            starting_position=position,
            **extra,
        )
        seen[position] = list(SEEN_DATA)
    assert seen == {"TRIM_HORIZON": list(range(8)), "LATEST": [], "AT_TIMESTAMP": [5, 6, 7]}


FAULTY: dict[str, Any] = {"fault": None, "calls": []}


def faulty_handler(event: dict[str, Any], context: Any) -> Any:
    """The first invocation fails as configured (raise, timeout, invalid response); later ones succeed."""
    import time

    FAULTY["calls"].append([r["kinesis"]["sequenceNumber"] for r in event["Records"]])
    if len(FAULTY["calls"]) > 1:
        return {"batchItemFailures": []}
    if FAULTY["fault"] == "raise":
        raise RuntimeError("whole batch")
    if FAULTY["fault"] == "timeout":
        time.sleep(0.6)
        return None
    return {"batchItemFailures": [{"itemIdentifier": "12345"}]}  # names no record of the batch


@pytest.mark.parametrize(
    ("fault", "outcome"), [("raise", "error"), ("timeout", "timeout"), ("invalid", "invalid-response")]
)
def test_stream_batch_faults_retry_the_whole_batch(endpoint: str, fault: str, outcome: str) -> None:
    """An error, a timeout or a malformed response keeps the checkpoint: the same batch is delivered again."""
    FAULTY.update(fault=fault, calls=[])
    name = f"faults-{fault}"
    sequences = next(iter(_stream(endpoint, name, shards=1, count=15).values()))
    err = _run(
        endpoint, f"kinesis:{name}", handler="test_poll_streams:faulty_handler", batch_size=10, function_timeout=0.3
    )
    assert FAULTY["calls"] == [sequences[:10], sequences[:10], sequences[10:]]
    assert "records=10 failed=10 checkpointed=0 retried=10 wall=" in err
    assert f"outcome={outcome}" in err
