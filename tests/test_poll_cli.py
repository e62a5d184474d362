"""The ``batchlens poll`` command line: install hint, argument checks, Ctrl-C and the Prometheus endpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import batchlens
from batchlens.cli import main


def test_without_boto3_it_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No boto3: exit 2 and the pip command of the ``local`` extra."""
    monkeypatch.setitem(sys.modules, "boto3", None)
    assert main(["poll", "https://sqs.us-east-1.amazonaws.com/123456789012/q", "--handler", "m:f"]) == 2
    assert "pip install 'batchlens[local]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--batch-size", "0"], "--batch-size 0 is out of range"),
        (["--batching-window", "301"], "--batching-window 301.0 is out of range"),
        (["--function-timeout", "0"], "--function-timeout 0.0 is out of range"),
        (["--maximum-retry-attempts", "-2"], "--maximum-retry-attempts -2"),
        (["--maximum-record-age", "30"], "--maximum-record-age 30"),
        (["--starting-position", "AT_TIMESTAMP"], "needs --starting-position-timestamp"),
        (["--starting-position-timestamp", "1700000000"], "goes with --starting-position AT_TIMESTAMP"),
        (["--max-batches", "0"], "--max-batches must be at least 1"),
    ],
)
def test_lambda_ranges_are_checked_before_anything_starts(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Out-of-range options exit 2 with a one-line error naming the option."""
    assert main(["poll", "kinesis:s", "--handler", "m:f", *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_unknown_source_and_sqs_batch_rules(capsys: pytest.CaptureFixture[str]) -> None:
    """A SOURCE of no known form, or an SQS batch above 10 without a window, is bad input."""
    pytest.importorskip("boto3")
    assert main(["poll", "redis://x", "--handler", "json:dumps", "--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert "is not an SQS queue URL, kinesis:STREAM or dynamodb:TABLE" in capsys.readouterr().err
    queue = "http://127.0.0.1:9/123456789012/q"
    assert main(["poll", queue, "--handler", "json:dumps", "--batch-size", "20"]) == 2
    assert "needs a --batching-window of at least 1 s" in capsys.readouterr().err
    fifo = "http://127.0.0.1:9/123456789012/q.fifo"
    assert main(["poll", fifo, "--handler", "json:dumps", "--batch-size", "20", "--batching-window", "1"]) == 2
    assert "a FIFO queue takes --batch-size 1-10" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


HANDLER = textwrap.dedent(
    """
    import os, signal, time, urllib.request
    from batchlens import BatchProcessor, EventType, process_partial_response

    CALLS = 0

    def handler(event, context):
        global CALLS
        CALLS += 1
        response = process_partial_response(event, lambda record: None, BatchProcessor(EventType.SQS), context)
        if CALLS == 2:
            port = os.environ["POLL_TEST_METRICS_PORT"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                open("metrics.txt", "w").write(page.read().decode())
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while this batch is in flight
            time.sleep(0.3)
        return response
    """
)


@pytest.mark.slow
def test_ctrl_c_finishes_the_batch_and_metrics_are_served(tmp_path: Path) -> None:
    """A real process: Prometheus metrics on --metrics-port, and Ctrl-C ends it cleanly after the batch in flight."""
    pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    pytest.importorskip("opentelemetry.exporter.prometheus")
    import boto3

    from _poll_support import moto_server

    (tmp_path / "sigint_handler.py").write_text(HANDLER)
    port = _free_port()
    src = str(Path(batchlens.__file__).resolve().parents[1])
    with moto_server() as endpoint:
        sqs = boto3.client("sqs", endpoint_url=endpoint)
        url = sqs.create_queue(QueueName="cli-sigint", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        for start in range(0, 50, 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps({"n": start + i})} for i in range(10)]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        env: dict[str, Any] = {
            **os.environ,
            "PYTHONPATH": src,
            "POLL_TEST_METRICS_PORT": str(port),
            "OTEL_SERVICE_NAME": "poll-test",
        }
        command = [sys.executable, "-m", "batchlens", "poll", url, "--handler", "sigint_handler:handler"]
        command += ["--endpoint-url", endpoint, "--metrics-port", str(port), "--report-batch-item-failures"]
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert time.monotonic() - started < 30
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "30"  # two batches deleted, no more
    assert "stopping after the batch in flight" in done.stderr
    assert "stopped (interrupted) batches=2 records=20 failed=0 deleted=20" in done.stderr
    assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics" in done.stderr
    metrics = (tmp_path / "metrics.txt").read_text()
    assert "messaging_client_consumed_messages_total" in metrics
    assert 'messaging_destination_name="cli-sigint"' in metrics
