"""The deadline guard (``deadline_margin_ms``): unstarted records are reported, none lost, none run after the deadline."""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import json
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessingError,
    BatchProcessor,
    DeadlineExceededError,
    EventType,
    SqsFifoPartialProcessor,
    SqsFifoPartialProcessorAsync,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens.testing import capture_telemetry, kinesis_event, lambda_context, sqs_event, sqs_fifo_event

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUIET = Telemetry.disabled()

# The remaining time the guard saw just before starting the current record (same thread / task as the handler).
SEEN_BY_GUARD: contextvars.ContextVar[int | None] = contextvars.ContextVar("seen_by_guard", default=None)


class Countdown:
    """A Lambda clock that loses 1 ms on every ``get_remaining_time_in_millis()`` call (never below 0), thread-safe."""

    def __init__(self, budget_ms: int) -> None:
        self.budget_ms = budget_ms
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self.calls += 1
            remaining = max(0, self.budget_ms - self.calls)
        SEEN_BY_GUARD.set(remaining)
        return remaining


class HandlerClock:
    """A Lambda clock that only moves when a handler spends time: ``spend(ms)``."""

    def __init__(self, budget_ms: int) -> None:
        self.budget_ms = budget_ms
        self.elapsed_ms = 0
        self._lock = threading.Lock()

    def spend(self, ms: int) -> None:
        with self._lock:
            self.elapsed_ms += ms

    def __call__(self) -> int:
        remaining = max(0, self.budget_ms - self.elapsed_ms)
        SEEN_BY_GUARD.set(remaining)
        return remaining


def ids_of(event: dict[str, Any]) -> list[str]:
    return [r["messageId"] for r in event["Records"]]


def failures(response: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


MODES = ["sequential", "threads", "async", "async-capped"]


def build(mode: str, margin: int, telemetry: Telemetry | None = QUIET, **kwargs: Any) -> Any:
    common = {"telemetry": telemetry, "deadline_margin_ms": margin, **kwargs}
    if mode == "sequential":
        return BatchProcessor(EventType.SQS, **common)
    if mode == "threads":
        return BatchProcessor(EventType.SQS, max_workers=4, **common)
    if mode == "async":
        return AsyncBatchProcessor(EventType.SQS, **common)
    return AsyncBatchProcessor(EventType.SQS, max_concurrency=3, **common)


def run_mode(mode: str, event: dict[str, Any], processor: Any, context: Any, work: Any) -> dict[str, Any]:
    """Process ``event`` with a handler that calls ``work(record)`` (plus a tiny wait) and returns the response."""
    if mode.startswith("async"):

        async def async_handler(record: Any) -> str:
            work(record)
            await asyncio.sleep(0)
            return str(record.message_id)

        return async_process_partial_response(event, async_handler, processor, context)

    def handler(record: Any) -> str:
        work(record)
        time.sleep(0.0005)
        return str(record.message_id)

    return process_partial_response(event, handler, processor, context)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(1, 25), budget=st.integers(0, 45), margin=st.integers(0, 20))
def test_countdown_unstarted_reported_none_lost_none_late(mode: str, count: int, budget: int, margin: int) -> None:
    """With a clock losing 1 ms per check, exactly the records checked in time run; the rest are reported, once each."""
    clock = Countdown(budget)
    event = sqs_event(count=count, seed=count)
    ran: list[str] = []
    seen_at_start: list[int | None] = []
    lock = threading.Lock()

    def work(record: Any) -> None:
        # an assertion here would only fail the record, so the check happens after processing
        with lock:
            seen_at_start.append(SEEN_BY_GUARD.get())
            ran.append(record.message_id)

    processor = build(mode, margin, raise_on_entire_batch_failure=False)
    response = run_mode(mode, event, processor, lambda_context(remaining_ms=clock), work)

    # the k-th check sees max(0, budget - k); a record starts when that is >= margin (so margin 0 never skips)
    assert all(seen is not None and seen >= margin for seen in seen_at_start), seen_at_start  # none started late
    expected_runs = count if margin == 0 else max(0, min(count, budget - margin))
    assert len(ran) == expected_runs
    reported = failures(response)
    assert len(reported) == len(set(reported))
    assert set(ran).isdisjoint(reported)
    assert sorted(ran + reported) == sorted(ids_of(event))  # none lost
    assert reported == [i for i in ids_of(event) if i in set(reported)]  # input order
    assert all(e[0] is DeadlineExceededError for e in processor.exceptions)
    assert all(isinstance(e[1], DeadlineExceededError) for e in processor.exceptions)
    if mode in ("sequential", "async"):
        assert ran == ids_of(event)[:expected_runs]


@pytest.mark.parametrize("mode", ["sequential", "async-one-at-a-time"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    costs=st.lists(st.integers(0, 50), min_size=1, max_size=20),
    budget=st.integers(0, 400),
    margin=st.integers(0, 150),
)
def test_time_spent_by_handlers_matches_a_sequential_model(
    mode: str, costs: list[int], budget: int, margin: int
) -> None:
    """When handlers consume the budget, the guard stops exactly where a simple loop model says it should."""
    model_ran: list[int] = []
    elapsed = 0
    for index, cost in enumerate(costs):
        if max(0, budget - elapsed) < margin:  # Lambda never reports negative time
            break
        model_ran.append(index)
        elapsed += cost

    clock = HandlerClock(budget)
    event = sqs_event([{"i": i, "cost": c} for i, c in enumerate(costs)], seed=len(costs))
    ran: list[int] = []

    def work(record: Any) -> None:
        body = json.loads(record.body)
        ran.append(body["i"])
        clock.spend(body["cost"])

    if mode == "sequential":
        processor = BatchProcessor(EventType.SQS, telemetry=QUIET, deadline_margin_ms=margin)
    else:
        processor = AsyncBatchProcessor(EventType.SQS, telemetry=QUIET, deadline_margin_ms=margin, max_concurrency=1)
    processor.raise_on_entire_batch_failure = False
    response = run_mode(mode, event, processor, lambda_context(remaining_ms=clock), work)
    assert ran == model_ran
    ids = ids_of(event)
    assert failures(response) == ids[len(model_ran) :]


def test_threaded_records_already_running_finish() -> None:
    """Threaded: records started before the deadline run to completion and succeed; later ones are not started."""
    context = lambda_context(remaining_ms=120)
    started: list[tuple[str, int]] = []
    finished: list[str] = []
    lock = threading.Lock()

    def handler(record: Any) -> None:
        with lock:
            started.append((record.message_id, context.get_remaining_time_in_millis()))
        time.sleep(0.04)  # keeps running well past the point where the margin is crossed
        with lock:
            finished.append(record.message_id)

    event = sqs_event(count=24, seed=8)
    processor = BatchProcessor(EventType.SQS, telemetry=QUIET, max_workers=4, deadline_margin_ms=60)
    response = process_partial_response(event, handler, processor, context)
    started_ids = [mid for mid, _ in started]
    assert 4 <= len(started_ids) < 24
    assert sorted(finished) == sorted(started_ids)
    assert sorted(failures(response)) == sorted(set(ids_of(event)) - set(started_ids))
    assert all(remaining >= 60 - 5 for _, remaining in started)  # started before the margin (some clock slack)


def test_plenty_of_time_changes_nothing() -> None:
    """With time to spare, the guard reports nothing extra."""
    event = sqs_event([{"fail": i == 1} for i in range(5)], seed=2)

    def handler(record: Any) -> None:
        if json.loads(record.body)["fail"]:
            raise ValueError("no")

    processor = BatchProcessor(EventType.SQS, telemetry=QUIET, deadline_margin_ms=1000)
    response = process_partial_response(event, handler, processor, lambda_context(remaining_ms=60_000))
    assert failures(response) == [ids_of(event)[1]]


def test_every_record_skipped_raises_entire_batch_failure() -> None:
    """When the deadline is already too close, no handler runs and the batch fails as a whole (Lambda retries it)."""
    calls: list[Any] = []
    processor = BatchProcessor(EventType.SQS, telemetry=QUIET, deadline_margin_ms=500)
    with pytest.raises(BatchProcessingError) as raised:
        process_partial_response(sqs_event(count=3, seed=1), calls.append, processor, lambda_context(remaining_ms=100))
    assert calls == []
    assert [type(e[1]) for e in raised.value.child_exceptions] == [DeadlineExceededError] * 3
    assert "below the 500 ms deadline margin" in str(raised.value.child_exceptions[0][1])


def test_guard_latches_once_the_margin_is_crossed() -> None:
    """Once a record is skipped no later record starts, even if the clock reports more time afterwards."""
    readings = iter([1000, 10, 1000, 1000, 1000])
    ran: list[str] = []
    processor = BatchProcessor(EventType.SQS, telemetry=QUIET, deadline_margin_ms=100)
    event = sqs_event(count=5, seed=3)
    response = process_partial_response(
        event,
        lambda record: ran.append(record.message_id),
        processor,
        lambda_context(remaining_ms=lambda: next(readings)),
    )
    assert ran == ids_of(event)[:1]
    assert failures(response) == ids_of(event)[1:]
    # the next batch starts fresh
    second = process_partial_response(event, lambda record: None, processor, lambda_context(remaining_ms=60_000))
    assert second == {"batchItemFailures": []}


@pytest.mark.parametrize(
    "context",
    [
        None,
        object(),
        mock.MagicMock(),
        mock.Mock(get_remaining_time_in_millis=mock.Mock(side_effect=RuntimeError("no clock"))),
    ],
    ids=["no-context", "no-method", "magicmock", "raising"],
)
def test_guard_is_off_without_a_usable_clock(context: Any) -> None:
    """Without a context, or with one whose clock is unusable, every record is processed (the guard never breaks processing)."""
    ran: list[str] = []
    processor = BatchProcessor(EventType.SQS, telemetry=QUIET, deadline_margin_ms=100)
    event = sqs_event(count=4, seed=4)
    response = process_partial_response(event, lambda record: ran.append(record.message_id), processor, context)
    assert response == {"batchItemFailures": []}
    assert ran == ids_of(event)


def test_stream_deadline_reports_sequence_numbers() -> None:
    """On Kinesis, unstarted records are reported by sequence number, in order."""
    clock = Countdown(13)
    event = kinesis_event(count=6, seed=1)
    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=QUIET, deadline_margin_ms=10)
    response = process_partial_response(event, lambda record: None, processor, lambda_context(remaining_ms=clock))
    seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert failures(response) == seqs[3:]  # checks see 12, 11, 10 ms, then 9 < 10


@pytest.mark.parametrize("use_async", [False, True])
def test_fifo_deadline_skips_unstarted_records(use_async: bool) -> None:
    """FIFO processors apply the guard too; with skip_group_on_error, other groups are cut off by the deadline as well."""
    clock = Countdown(13)
    event = sqs_fifo_event([{"i": i} for i in range(6)], groups=2, seed=1)
    ran: list[int] = []
    if use_async:

        async def handler(record: Any) -> None:
            ran.append(json.loads(record.body)["i"])

        processor: Any = SqsFifoPartialProcessorAsync(skip_group_on_error=True, telemetry=QUIET, deadline_margin_ms=10)
        response = async_process_partial_response(event, handler, processor, lambda_context(remaining_ms=clock))
    else:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True, telemetry=QUIET, deadline_margin_ms=10)
        response = process_partial_response(
            event,
            lambda record: ran.append(json.loads(record.body)["i"]),
            processor,
            lambda_context(remaining_ms=clock),
        )
    assert ran == [0, 1, 2]  # checks see 12, 11, 10 ms (>= the 10 ms margin), then 9
    assert failures(response) == ids_of(event)[3:]
    assert all(e[0] is DeadlineExceededError for e in processor.exceptions)


# -- configuration --------------------------------------------------------------------------------------------


def test_margin_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHLENS_DEADLINE_MARGIN_MS turns the guard on for every built-in processor; an argument wins; default off."""
    assert BatchProcessor(EventType.SQS).deadline_margin_ms is None
    monkeypatch.setenv("BATCHLENS_DEADLINE_MARGIN_MS", "1500")
    assert BatchProcessor(EventType.SQS).deadline_margin_ms == 1500
    assert AsyncBatchProcessor(EventType.SQS).deadline_margin_ms == 1500
    assert SqsFifoPartialProcessor().deadline_margin_ms == 1500
    assert SqsFifoPartialProcessorAsync().deadline_margin_ms == 1500
    assert BatchProcessor(EventType.SQS, deadline_margin_ms=0).deadline_margin_ms == 0
    monkeypatch.setenv("BATCHLENS_DEADLINE_MARGIN_MS", "0")
    assert BatchProcessor(EventType.SQS).deadline_margin_ms == 0


@pytest.mark.parametrize("value", ["-1", "soon", "1.5", "2s"])
def test_invalid_margin_variable_is_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """An invalid BATCHLENS_DEADLINE_MARGIN_MS fails construction with a message naming the variable."""
    monkeypatch.setenv("BATCHLENS_DEADLINE_MARGIN_MS", value)
    with pytest.raises(ValueError, match="BATCHLENS_DEADLINE_MARGIN_MS"):
        BatchProcessor(EventType.SQS)


@pytest.mark.parametrize("value", [-1, True, 1.5, "100"])
def test_invalid_margin_argument_is_rejected(value: Any) -> None:
    """deadline_margin_ms must be a whole number >= 0."""
    with pytest.raises(ValueError, match="deadline_margin_ms"):
        AsyncBatchProcessor(EventType.SQS, deadline_margin_ms=value)


# -- telemetry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_skipped_records_are_logged_traced_and_counted(mode: str) -> None:
    """Unstarted records get a span, a ``record failed`` entry with outcome ``skipped`` and a failed-record count
    with error.type DeadlineExceededError."""
    from opentelemetry.trace import StatusCode

    clock = HandlerClock(100)
    event = sqs_event(count=10, seed=12, queue="jobs")
    ids = ids_of(event)
    ran: list[str] = []
    lock = threading.Lock()

    def work(record: Any) -> None:
        with lock:
            ran.append(record.message_id)
        clock.spend(20)

    with capture_telemetry() as captured:
        # the capped async mode starts 3 records before any of them spends time; the others go one by one
        processor = build(mode, 50, telemetry=None)
        response = run_mode(mode, event, processor, lambda_context(remaining_ms=clock), work)
        skipped = failures(response)
        assert skipped
        if mode != "async":
            assert ran
        assert sorted(ran + skipped) == sorted(ids)

        entries = {e["record_id"]: e for e in captured.logs if e.get("event") in ("record processed", "record failed")}
        assert sorted(entries) == sorted(ids)
        for mid in skipped:
            assert entries[mid]["event"] == "record failed"
            assert entries[mid]["outcome"] == "skipped"
            assert entries[mid]["error_type"] == "batchlens.exceptions.DeadlineExceededError"
        for mid in ran:
            assert entries[mid]["outcome"] == "success"

        spans = {s.attributes["messaging.message.id"]: s for s in captured.record_spans()}
        assert sorted(spans) == sorted(ids)
        for mid in skipped:
            assert spans[mid].status.status_code is StatusCode.ERROR
            assert spans[mid].attributes["error.type"] == "batchlens.exceptions.DeadlineExceededError"
            assert spans[mid].name == "process jobs"

        assert captured.counter(
            "batchlens.records.failed", error__type="batchlens.exceptions.DeadlineExceededError"
        ) == len(skipped)
        assert captured.counter("messaging.client.consumed.messages") - captured.counter(
            "batchlens.records.failed"
        ) == len(ran)


def test_async_unlimited_starts_everything_at_once() -> None:
    """Without a cap all async records start together, so a deadline reached later skips nothing."""
    clock = HandlerClock(100)

    async def handler(record: Any) -> None:
        await asyncio.sleep(0)
        clock.spend(30)

    processor = AsyncBatchProcessor(EventType.SQS, telemetry=QUIET, deadline_margin_ms=50)
    response = async_process_partial_response(
        sqs_event(count=8, seed=1), handler, processor, lambda_context(remaining_ms=clock)
    )
    assert response == {"batchItemFailures": []}


# -- the example ----------------------------------------------------------------------------------------------


def test_deadline_guard_example() -> None:
    """examples/deadline_guard/app.py returns before its budget runs out and reports the unstarted records."""
    spec = importlib.util.spec_from_file_location("example_deadline_guard", EXAMPLES / "deadline_guard" / "app.py")
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.processor.deadline_margin_ms == example.DEADLINE_MARGIN_MS == 450
    clock = HandlerClock(2_000)
    event = sqs_event(count=20, seed=1)

    def export_order(order: dict[str, Any]) -> None:
        clock.spend(300)  # the example's export sleeps 300 ms; charge it to the fake clock instead

    example.export_order = export_order
    response = example.lambda_handler(event, lambda_context(remaining_ms=clock))
    # records start while 2000, 1700, ..., 500 ms remain: 6 run, 14 are reported
    assert failures(response) == ids_of(event)[6:]
    assert clock.elapsed_ms == 1_800 < clock.budget_ms
