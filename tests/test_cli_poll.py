"""``batchlens poll`` guides: a local queue URL is its own endpoint, a record handler runs, waits are announced,
DLQ moves are counted, and ``--traces tree`` prints each batch. Drives ``batchlens.cli.main`` against moto on
127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto.server")

import boto3

from _cli_support import handler_module, invoke, otel_globals_restored
from _poll_support import moto_server
from batchlens._poll._args import PollOptions
from batchlens._poll._runner import endpoint_for

HANDLERS = """
def record_handler(record):
    if "poison" in record.body:
        raise ValueError("poison message")
"""


@pytest.fixture(autouse=True)
def _otel_globals() -> Iterator[None]:
    with otel_globals_restored():
        yield


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def handlers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return handler_module(tmp_path, monkeypatch, "poll_guide_handlers", HANDLERS)


def _queue(endpoint: str, name: str, bodies: list[str], max_receive: int | None = None) -> tuple[Any, str]:
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    attributes = {"VisibilityTimeout": "1"}
    if max_receive is not None:
        dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive)})
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    return sqs, url


def test_endpoint_rule() -> None:
    """A queue URL outside amazonaws.com is its own endpoint; AWS URLs and explicit endpoints are left alone."""

    def endpoint_of(source: str, endpoint_url: str | None = None) -> str | None:
        return endpoint_for(PollOptions(source=source, handler="m:f", endpoint_url=endpoint_url))

    assert endpoint_of("http://localhost:4566/000000000000/q") == "http://localhost:4566"
    assert endpoint_of("http://127.0.0.1:9324/queue/q") == "http://127.0.0.1:9324"
    assert endpoint_of("https://sqs.eu-west-1.amazonaws.com/123456789012/q") is None
    assert endpoint_of("http://127.0.0.1:9324/queue/q", "http://127.0.0.1:1") == "http://127.0.0.1:1"
    assert endpoint_of("kinesis:orders") is None


def test_a_local_queue_url_needs_no_endpoint_and_a_record_handler_runs(
    endpoint: str, handlers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No --endpoint-url, no AWS_ENDPOINT_URL: the calls go to the queue URL's host (moto), never to AWS."""
    _, url = _queue(endpoint, "guide-local", ["ok-1", "ok-2", "poison-3"])
    assert url.startswith("http://127.0.0.1:")
    argv = ["poll", url, "--record-handler", "poll_guide_handlers:record_handler", "--max-batches", "1"]
    code, _, err = invoke(capsys, *argv)
    assert code == 0, err
    assert f"at {endpoint}" in err
    assert "(record handler; report-batch-item-failures on)" in err
    closing = err.strip().splitlines()[-1]
    assert "records=3 failed=1 deleted=2 retried=1" in closing, err


def test_until_empty_announces_the_wait_and_counts_dlq_moves(
    endpoint: str, handlers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, url = _queue(endpoint, "guide-dlq", ["ok-1", "poison-2"], max_receive=1)
    argv = ["poll", url, "--record-handler", "poll_guide_handlers:record_handler", "--until-empty"]
    code, _, err = invoke(capsys, *argv)
    assert code == 0, err
    waiting = [line for line in err.splitlines() if "waiting for" in line]
    assert waiting, err
    assert waiting[0] == (
        "batchlens poll: waiting for 1 in-flight message(s) to come back, visibility timeout 1 s "
        "before the queue counts as empty"
    )
    closing = err.strip().splitlines()[-1]
    assert closing.startswith("batchlens poll: stopped (empty)")
    assert " dlq=1 " in closing, err
    dlq = sqs.get_queue_url(QueueName="guide-dlq-dlq")["QueueUrl"]
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages") or []
    assert [m["Body"] for m in moved] == ["poison-2"]


def test_poll_traces_tree_prints_each_batch_before_its_line(
    endpoint: str, handlers: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = _queue(endpoint, "guide-tree", ["ok-1", "poison-2"])
    argv = ["poll", url, "--record-handler", "poll_guide_handlers:record_handler", "--max-batches", "1"]
    code, _, err = invoke(capsys, *argv, "--traces", "tree")
    assert code == 0, err
    lines = err.splitlines()
    batch_line = next(i for i, line in enumerate(lines) if line.startswith("batchlens poll: batch 1 "))
    tree_top = next(i for i, line in enumerate(lines) if line.startswith("process guide-tree (2 records)"))
    assert lines[tree_top - 1].startswith("trace ")
    assert tree_top < batch_line
    rows = [line for line in lines[tree_top + 1 : batch_line] if line.startswith(("├─ ", "└─ "))]
    assert len(rows) == 2
    assert sum("ERROR ValueError" in row for row in rows) == 1
