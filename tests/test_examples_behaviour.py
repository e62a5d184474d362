"""Tests for examples/: what individual examples demonstrate beyond their documented response."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from _examples_support import EXAMPLES, event_of, read_json

# pytest fixtures, used by name: the example loader and the autouse environment cleaner
from _examples_support import load_fixture as load_fixture
from _examples_support import no_batchlens_env as no_batchlens_env
from batchlens import BatchProcessingError, BatchProcessor, EventType, Telemetry
from batchlens.data_classes import SQSRecord
from batchlens.exceptions import DeadlineExceededError, StreamCircuitBreakerError
from batchlens.testing import capture_telemetry, lambda_context

# ---------------------------------------------------------------------------------------------------------
# what individual examples demonstrate beyond their response


def test_fifo_default_stops_at_first_failure_while_skip_group_continues(load: Callable[..., ModuleType]) -> None:
    """Without skip_group_on_error every record after bob's failure returns; with it, only bob's group."""
    event = event_of("sqs_fifo")
    groups = [r["attributes"]["MessageGroupId"] for r in event["Records"]]
    default = load("sqs_fifo", "app.py").lambda_handler(copy.deepcopy(event), None)
    skipping = load("sqs_fifo", "app_skip_group_on_error.py").lambda_handler(copy.deepcopy(event), None)
    ids = [r["messageId"] for r in event["Records"]]
    assert [f["itemIdentifier"] for f in default["batchItemFailures"]] == ids[1:]
    assert [f["itemIdentifier"] for f in skipping["batchItemFailures"]] == [
        i for i, g in zip(ids, groups, strict=True) if g == "customer-bob"
    ]


def test_error_handling_records_the_custom_exception(load: Callable[..., ModuleType]) -> None:
    """The custom exception class is what the processor keeps for the failed record."""
    app = load("error_handling")
    app.lambda_handler(event_of("error_handling"), None)
    assert [info[0] for info in app.processor.exceptions] == [app.InvalidPayloadError]


def test_entire_batch_failure_would_raise_by_default(load: Callable[..., ModuleType]) -> None:
    """The same all-failing batch raises BatchProcessingError with the default processor settings."""
    app = load("entire_batch_failure")
    from batchlens import process_partial_response

    with pytest.raises(BatchProcessingError, match="All records failed processing"):
        process_partial_response(event_of("entire_batch_failure"), app.record_handler, BatchProcessor(EventType.SQS))
    assert len(app.lambda_handler(event_of("entire_batch_failure"), None)["batchItemFailures"]) == 2


def test_processed_messages_have_the_documented_tuple_shapes(load: Callable[..., ModuleType]) -> None:
    """Success tuples hold the result and raw record; failure tuples the error text and the data class."""
    app = load("accessing_processed_messages")
    records = event_of("accessing_processed_messages")["Records"]
    (ok_status, ok_result, ok_record), (bad_status, bad_error, bad_record) = app.process(records)
    assert (ok_status, ok_result, ok_record) == ("success", "stored A-1", records[0])
    assert bad_status == "fail"
    assert bad_error == "<class 'RuntimeError'>:the message asked to fail"
    assert isinstance(bad_record, SQSRecord)
    assert bad_record.message_id == records[1]["messageId"]


@pytest.mark.parametrize("module", ["app.py", "app_context_manager.py"])
def test_record_handler_receives_the_lambda_context(module: str, load: Callable[..., ModuleType]) -> None:
    """The record handler gets the invocation's context through its lambda_context parameter."""
    app = load("accessing_lambda_context", module)
    seen: list[Any] = []
    original = app.record_handler

    def spy(record: Any, lambda_context: Any = None) -> Any:
        result = original(record, lambda_context)
        seen.append(result)
        return result

    app.record_handler = spy
    app.lambda_handler(event_of("accessing_lambda_context"), lambda_context(remaining_ms=4_321, frozen=True))
    assert seen == [4_321, 4_321]


def test_extending_processor_counts_successes_and_failures_by_type(load: Callable[..., ModuleType]) -> None:
    """The subclass's hooks run once per record and the response is still built."""
    app = load("extending_processor")
    response = app.lambda_handler(event_of("extending_processor"), None)
    assert dict(app.processor.counts) == {"success": 2, "failure.JSONDecodeError": 1}
    assert len(response["batchItemFailures"]) == 1


class FakeTable:
    """In-memory stand-in for a boto3 DynamoDB Table: records one list of items per batch_writer block."""

    def __init__(self) -> None:
        self.writes: list[list[dict[str, Any]]] = []

    def batch_writer(self) -> FakeTable:
        self.writes.append([])
        return self

    def __enter__(self) -> FakeTable:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def put_item(self, Item: dict[str, Any]) -> None:  # boto3 spells it this way
        self.writes[-1].append(Item)


def test_custom_processor_stores_successes_in_one_batch_write(load: Callable[..., ModuleType]) -> None:
    """Successful results are written once per batch, keyed by messageId with a future expiration."""
    app = load("custom_partial_processor")
    table = FakeTable()
    app.processor = app.ResultsTableProcessor(table_name="results", table=table)
    event = event_of("custom_partial_processor")
    now = int(time.time())

    response = app.lambda_handler(event, lambda_context())

    assert response == read_json(EXAMPLES / "custom_partial_processor" / "response.json")
    (items,) = table.writes
    records = event["Records"]
    assert [item["messageId"] for item in items] == [records[0]["messageId"], records[2]["messageId"]]
    assert [item["result"]["output"] for item in items] == ["cat-256.png", "dog-256.png"]
    assert all(
        now + app.RESULT_TTL_SECONDS <= item["expiration"] <= now + app.RESULT_TTL_SECONDS + 60 for item in items
    )


def test_custom_processor_starts_each_warm_invocation_clean(load: Callable[..., ModuleType]) -> None:
    """A second batch writes only its own results and reports only its own failures."""
    app = load("custom_partial_processor")
    table = FakeTable()
    app.processor = app.ResultsTableProcessor(table=table)
    event = event_of("custom_partial_processor")
    app.lambda_handler(copy.deepcopy(event), None)
    second = {"Records": [event["Records"][0]]}

    response = app.lambda_handler(second, None)

    assert response == {"batchItemFailures": []}
    assert [len(batch) for batch in table.writes] == [2, 1]
    assert app.processor.table_name == "batch_results"


def test_disabled_response_capture_keeps_results_off_spans(load: Callable[..., ModuleType]) -> None:
    """With capture_response=False record spans carry no captured result; with the default they do."""
    app = load("disable_response_capture")
    event = event_of("disable_response_capture")

    def captured_keys(processor: Any) -> list[set[str]]:
        app.processor = processor
        with capture_telemetry() as telemetry:
            app.lambda_handler(copy.deepcopy(event), lambda_context())
        spans = telemetry.record_spans()
        assert len(spans) == 3
        return [{k for k in (s.attributes or {}) if k.startswith("batchlens.record.response")} for s in spans]

    assert captured_keys(app.processor) == [set(), set(), set()]
    default = BatchProcessor(event_type=EventType.SQS, telemetry=Telemetry(capture_response=True))
    assert all(keys for keys in captured_keys(default))


def test_parallel_processing_uses_several_threads_and_keeps_order(
    load: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_workers=4 runs the 8 jobs four at a time on several threads; results come back in input order.

    The jobs' sleep is replaced by a 4-party barrier: it only opens when four jobs wait at once, so a pool
    running fewer than four at a time fails the records (BrokenBarrierError after the timeout) instead of
    passing slowly. No stopwatch involved.
    """
    app = load("parallel_processing")
    barrier = threading.Barrier(app.MAX_WORKERS, timeout=10)
    monkeypatch.setattr(app, "time", SimpleNamespace(sleep=lambda _seconds: barrier.wait()))
    records = event_of("parallel_processing")["Records"]
    assert len(records) % app.MAX_WORKERS == 0
    with app.processor(records=records, handler=app.record_handler):
        processed = app.processor.process()
    bodies = [json.loads(r["body"]) for r in records]
    failures = [entry[1] for entry in processed if entry[0] == "fail"]
    assert all("could not render" in text for text in failures), failures
    successes = [entry[1] for entry in processed if entry[0] == "success"]
    assert len({result["thread"] for result in successes}) > 1
    assert [r["order_id"] for r in successes] == [b["order_id"] for b in bodies if b["status"] != "fail"]


# The async_max_concurrency cap (peak in flight == MAX_CONCURRENCY) is checked, on a larger batch, by
# tests/test_async_concurrency.py::test_async_max_concurrency_example.


def test_deadline_guard_stops_starting_records_below_the_margin(load: Callable[..., ModuleType]) -> None:
    """With 1000 ms left, 300 ms per record and a 450 ms margin, two records run and three are handed back."""
    app = load("deadline_guard")
    now = [0.0]
    exported: list[str] = []

    def export_order(order: dict[str, Any]) -> None:
        exported.append(order["order_id"])
        now[0] += 0.3

    app.export_order = export_order
    context = lambda_context(remaining_ms=1_000, clock=lambda: now[0])

    response = app.lambda_handler(event_of("deadline_guard"), context)

    assert response == read_json(EXAMPLES / "deadline_guard" / "response.json")
    assert exported == ["order-0001", "order-0002"]
    assert [info[0] for info in app.processor.exceptions] == [DeadlineExceededError] * 3


def test_stream_stop_on_first_failure_applies_nothing_after_the_failure(load: Callable[..., ModuleType]) -> None:
    """Only the first ledger entry is applied; later entries are skipped with StreamCircuitBreakerError."""
    app = load("stream_stop_on_first_failure")
    app.lambda_handler(event_of("stream_stop_on_first_failure"), None)
    balances = app.BALANCES
    assert balances == {"acc-1": Decimal(50)}
    assert [info[0] for info in app.processor.exceptions] == [
        ValueError,
        StreamCircuitBreakerError,
        StreamCircuitBreakerError,
    ]
