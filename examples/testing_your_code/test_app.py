"""Unit tests for app.py: no AWS needed, the processor runs entirely in memory.

Seed section: "Testing your code" (getting_started_with_test.py).

Run them from this directory (or pass the path): ``pytest examples/testing_your_code``.

``batchlens.testing`` provides what the seed's test builds by hand: ``lambda_context()`` (a fake Lambda
context whose remaining time counts down), event factories such as ``sqs_event()`` for generated batches,
and ``capture_telemetry()`` to assert on the spans, metrics and log entries batchlens emitted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from app import lambda_handler, processor

from batchlens.testing import capture_telemetry, lambda_context, sqs_event

EVENTS = Path(__file__).parent / "events"


@pytest.fixture
def context() -> Any:
    return lambda_context(function_name="orders-consumer")


@pytest.fixture
def recorded_event() -> dict[str, Any]:
    """A batch recorded from the queue: the first message is an order, the second is not JSON."""
    return dict(json.loads((EVENTS / "sqs_event.json").read_text()))


def test_partial_failure_is_reported(recorded_event: dict[str, Any], context: Any) -> None:
    """Only the message that could not be processed is returned to the queue."""
    successful, failed = recorded_event["Records"]

    response = lambda_handler(recorded_event, context)

    assert response == {"batchItemFailures": [{"itemIdentifier": failed["messageId"]}]}
    assert len(processor.fail_messages) == 1  # the processor keeps the last batch's outcome
    assert processor.success_messages == [successful]


def test_generated_batch_reports_every_rejected_order(context: Any) -> None:
    """With a generated batch of 20 orders, a quarter rejected upstream, exactly those are reported."""
    event = sqs_event(count=20, fail_rate=0.25, seed=7)
    rejected = [r["messageId"] for r in event["Records"] if '"status":"fail"' in r["body"]]

    response = lambda_handler(event, context)

    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == rejected
    assert len(rejected) == 5


def test_telemetry_records_the_failure(recorded_event: dict[str, Any], context: Any) -> None:
    """The failed message gets an error span and is counted as a failure."""
    failed_id = recorded_event["Records"][1]["messageId"]

    with capture_telemetry() as telemetry:
        lambda_handler(recorded_event, context)

    assert telemetry.failed_record_ids() == [failed_id]
    assert len(telemetry.record_spans()) == 2
    assert telemetry.counter("messaging.client.consumed.messages") == 2
