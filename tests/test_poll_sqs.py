"""``batchlens poll`` against an SQS queue on a moto server: Lambda's delete/retry/redrive semantics end to end."""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

import boto3

from _poll_support import moto_server, seed_queue
from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens._poll._args import PollOptions
from batchlens._poll._runner import poll

# -- the handler under test (imported by `batchlens poll` as test_poll_sqs:handler) -----------------------------


class PoisonError(Exception):
    """A message that can never be processed."""


class TransientError(Exception):
    """A failure that goes away on retry."""


class State:
    """What the handler saw and did, reset by the ``state`` fixture."""

    def __init__(self, fault: str | None = None, seed: int = 16) -> None:
        self.fault = fault
        self.rng = random.Random(seed)
        self.done: Counter[str] = Counter()  # idempotency store: key -> times the effect happened
        self.receives: dict[str, int] = {}  # key -> highest ApproximateReceiveCount seen
        self.invocations = 0
        self.faults = 0
        self.stop_after: int | None = None
        self.stop: Any = None


STATE = State()
FAULT_EVERY = 5
INVALID_RESPONSES = [
    {"batchItemFailures": [{"itemIdentifier": None}]},
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"itemIdentifier": "not-a-message-id"}]},
    {"batchItemFailures": "all of them"},
    ["not", "an", "object"],
]


def record_handler(record: Any) -> str:
    """Process one order: poison always fails, 10% fail at random, the effect is recorded once per key."""
    body = json.loads(record.body)
    key = body["key"]
    if STATE.done[key]:
        return "duplicate"  # the idempotency key is recorded: the effect happened already
    if body["poison"]:
        raise PoisonError("poison message")
    if STATE.rng.random() < 0.10:
        raise TransientError("try again")
    STATE.done[key] += 1
    return "done"


def handler(event: dict[str, Any], context: Any) -> Any:
    """A Lambda handler using batchlens, with the fault under test injected in every fifth invocation."""
    STATE.invocations += 1
    for record in event["Records"]:
        key = json.loads(record["body"])["key"]
        count = int(record["attributes"]["ApproximateReceiveCount"])
        STATE.receives[key] = max(STATE.receives.get(key, 0), count)
    if STATE.stop_after is not None and STATE.invocations == STATE.stop_after:
        STATE.stop.set()  # as a Ctrl-C arriving while this batch is in flight
    fault = STATE.fault if STATE.fault and STATE.invocations % FAULT_EVERY == 0 else None
    if fault:
        STATE.faults += 1
    if fault == "raise":
        raise RuntimeError("the whole batch fails")
    if fault == "timeout":
        while context.get_remaining_time_in_millis() > 0:
            time.sleep(0.02)
        time.sleep(0.1)
        return None  # too late: Lambda has already given up on this invocation
    response = process_partial_response(event, record_handler, BatchProcessor(EventType.SQS), context)
    if fault == "invalid":
        return INVALID_RESPONSES[STATE.faults % len(INVALID_RESPONSES)]
    return response


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint() -> Any:
    """One moto server for the module."""
    with moto_server() as url:
        yield url


@pytest.fixture
def state() -> State:
    """A fresh handler state."""
    global STATE
    STATE = State()
    return STATE


def _queue_with_dlq(endpoint: str, name: str, visibility: int = 0) -> tuple[Any, str, str]:
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    return sqs, url, dlq


def _bodies(count: int) -> tuple[set[str], list[str]]:
    keys = [f"order-{i:05d}" for i in range(count)]
    return set(keys), [json.dumps({"key": key, "poison": i % 100 == 0}) for i, key in enumerate(keys)]


def _send(sqs: Any, url: str, count: int) -> set[str]:
    keys = set()
    for start in range(0, count, 10):
        entries = []
        for i in range(start, min(start + 10, count)):
            key = f"order-{i:05d}"
            keys.add(key)
            entries.append({"Id": str(i - start), "MessageBody": json.dumps({"key": key, "poison": i % 100 == 0})})
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return keys


def _drain_keys(sqs: Any, url: str) -> list[str]:
    keys: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return keys
        keys.extend(json.loads(m["Body"])["key"] for m in messages)
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        )


def _run(endpoint: str, url: str, **options: Any) -> str:
    err = io.StringIO()
    settings: dict[str, Any] = {"report_batch_item_failures": True, "until_empty": True, **options}
    rc = poll(PollOptions(source=url, handler="test_poll_sqs:handler", endpoint_url=endpoint, **settings), err=err)
    assert rc == 0, err.getvalue()[-2000:]
    # one line per batch: only summary lines and the handler's JSON log lines, even for multi-line errors
    assert all(line.startswith(("batchlens poll: ", "{")) for line in err.getvalue().splitlines())
    return err.getvalue()


def _assert_nothing_lost(keys: set[str], dlq_keys: list[str], state: State) -> None:
    poison = {key for key in keys if int(key.split("-")[1]) % 100 == 0}
    assert len(dlq_keys) == len(set(dlq_keys)), "a message reached the DLQ twice"
    assert max(state.done.values()) == 1, "an effect happened twice"
    lost = keys - set(state.done) - set(dlq_keys)
    assert not lost, f"{len(lost)} messages neither processed nor in the DLQ"
    assert poison <= set(dlq_keys)
    assert not poison & set(state.done)
    assert {state.receives[key] for key in poison} == {3}, "poison messages reach the DLQ after exactly 3 receives"
    assert max(state.receives.values()) <= 3
    # whatever did not succeed ended in the DLQ after its third receive
    assert all(state.receives[key] == 3 for key in set(dlq_keys))


# -- tests ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_5000_messages_each_processed_once_or_in_the_dlq(endpoint: str, state: State) -> None:
    """5,000 messages, 10% transient and 1% poison failures: every one processed once or redriven, none lost."""
    sqs, url, dlq = _queue_with_dlq(endpoint, "e2e-5000")
    keys, bodies = _bodies(5000)
    seed_queue(url, bodies)
    started = time.monotonic()
    err = _run(endpoint, url)
    wall = time.monotonic() - started
    dlq_keys = _drain_keys(sqs, dlq)
    _assert_nothing_lost(keys, dlq_keys, state)
    assert len(state.done) + len(set(dlq_keys) - set(state.done)) == 5000
    assert "stopped (empty)" in err
    assert "go to the DLQ on their next receive (maxReceiveCount=3)" in err
    print(
        f"\npoll e2e: messages=5000 processed={len(state.done)} dlq={len(dlq_keys)} "
        f"lost={len(keys - set(state.done) - set(dlq_keys))} invocations={state.invocations} wall={wall:.1f}s"
    )


@pytest.mark.parametrize("fault", ["raise", "timeout", "invalid"])
def test_whole_batch_faults_lose_nothing(endpoint: str, state: State, fault: str) -> None:
    """Every fifth invocation raises, times out or answers malformed: its whole batch comes back, nothing is lost."""
    state.fault = fault
    sqs, url, dlq = _queue_with_dlq(endpoint, f"fault-{fault}")
    keys = _send(sqs, url, 200)
    err = _run(endpoint, url, function_timeout=0.5 if fault == "timeout" else 3.0)
    dlq_keys = _drain_keys(sqs, dlq)
    _assert_nothing_lost(keys, dlq_keys, state)
    assert state.faults >= 4
    expected = {"raise": "outcome=error", "timeout": "outcome=timeout", "invalid": "outcome=invalid-response"}[fault]
    lines = [line for line in err.splitlines() if expected in line]
    assert len(lines) == state.faults
    assert all(" deleted=0 " in line and "retried=" in line for line in lines)
    if fault == "raise":
        assert "the handler raised RuntimeError: the whole batch fails" in lines[0]


def test_without_report_batch_item_failures_failed_messages_are_deleted(endpoint: str, state: State) -> None:
    """As in Lambda, a partial response is ignored without ReportBatchItemFailures: the batch is deleted, said so."""
    sqs, url, dlq = _queue_with_dlq(endpoint, "no-report")
    keys = _send(sqs, url, 100)  # key 0 is poison; no batch fails entirely (that would raise: an invocation error)
    err = _run(endpoint, url, report_batch_item_failures=False)
    assert _drain_keys(sqs, dlq) == []
    assert state.receives["order-00000"] == 1
    assert "batchItemFailures ignored: --report-batch-item-failures is off" in err
    assert len(keys - set(state.done)) >= 2  # the poison message and the transient failures are gone


def test_stop_finishes_the_batch_in_flight(endpoint: str, state: State) -> None:
    """A stop request (Ctrl-C) during an invocation lets that batch settle, then the poll ends."""
    sqs, url, _ = _queue_with_dlq(endpoint, "graceful", visibility=30)
    _send(sqs, url, 50)
    state.stop = __import__("threading").Event()
    state.stop_after = 2
    err = io.StringIO()
    options = PollOptions(
        source=url, handler="test_poll_sqs:handler", endpoint_url=endpoint, report_batch_item_failures=True
    )
    assert poll(options, err=err, stop=state.stop) == 0
    assert state.invocations == 2
    text = err.getvalue()
    assert text.count("batchlens poll: batch ") == 2
    assert "stopped (interrupted) batches=2" in text
    remaining = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    deleted = sum(
        int(line.split(" deleted=")[1].split()[0])
        for line in text.splitlines()
        if line.startswith("batchlens poll: batch ")
    )
    assert int(remaining["Attributes"]["ApproximateNumberOfMessages"]) == 50 - 20  # both batches left the queue
    assert deleted == len(state.done)


def test_max_batches_stops_after_n(endpoint: str, state: State) -> None:
    """--max-batches N invokes exactly N times."""
    sqs, url, _ = _queue_with_dlq(endpoint, "max-batches")
    _send(sqs, url, 60)
    err = _run(endpoint, url, until_empty=False, max_batches=3)
    assert state.invocations == 3
    assert "stopped (max-batches) batches=3 records=30" in err


def test_batching_window_gathers_more_than_ten(endpoint: str, state: State) -> None:
    """--batch-size 25 with a batching window delivers 25 messages in one invocation, as Lambda does."""
    _, url, _ = _queue_with_dlq(endpoint, "window", visibility=30)
    seed_queue(url, [json.dumps({"key": f"order-{i + 1:05d}", "poison": False}) for i in range(25)])
    state.rng.random = lambda: 1.0  # type: ignore[method-assign]  # nothing fails at random
    err = _run(endpoint, url, until_empty=False, max_batches=1, batch_size=25, batching_window=1.0)
    assert "records=25 failed=0 deleted=25" in err
    assert state.invocations == 1


SERVER: list[Any] = []


def stopping_handler(event: dict[str, Any], context: Any) -> None:
    """Stop the moto server while the batch is in flight."""
    SERVER[0].stop()


def test_a_vanished_endpoint_ends_the_run_with_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the endpoint goes away mid-batch the run ends with exit code 1 and the AWS error in the last line."""
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # a server of its own, so stopping it leaves the module's server alone
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    SERVER[:] = [server]
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for name, value in {
            "AWS_ACCESS_KEY_ID": "t",
            "AWS_SECRET_ACCESS_KEY": "t",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        sqs = boto3.client("sqs", endpoint_url=endpoint)
        url = sqs.create_queue(QueueName="vanishing")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        err = io.StringIO()
        options = PollOptions(source=url, handler="test_poll_sqs:stopping_handler", endpoint_url=endpoint)
        assert poll(options, err=err) == 1
    finally:
        SERVER.clear()
    last = err.getvalue().splitlines()[-1]
    assert last.startswith("batchlens poll: stopped (AWS error: ")
    assert "batches=0" in last
