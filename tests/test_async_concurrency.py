"""AsyncBatchProcessor(max_concurrency=N): never more than N handlers at once, same results as without a cap."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessorAsync,
    Telemetry,
    async_process_partial_response,
)
from batchlens.testing import capture_telemetry, lambda_context, sqs_event, sqs_fifo_event

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUIET = Telemetry.disabled()


class InFlight:
    """Counts handlers awaiting at the same time (one event loop, so no lock is needed)."""

    def __init__(self) -> None:
        self.now = 0
        self.max = 0

    async def __aenter__(self) -> InFlight:
        self.now += 1
        self.max = max(self.max, self.now)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.now -= 1


def counting_handler(in_flight: InFlight, seconds: float = 0.002) -> Any:
    async def handler(record: Any) -> str:
        async with in_flight:
            await asyncio.sleep(seconds)
        if json.loads(record.body).get("fail"):
            raise ValueError(record.message_id)
        return str(record.message_id)

    return handler


@pytest.mark.parametrize(("cap", "records"), [(1, 6), (2, 10), (5, 40), (7, 8)])
def test_cap_is_reached_and_never_exceeded(cap: int, records: int) -> None:
    """With N < records, the peak number of handlers in flight is exactly N."""
    in_flight = InFlight()
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=QUIET, max_concurrency=cap)
    response = async_process_partial_response(sqs_event(count=records, seed=1), counting_handler(in_flight), processor)
    assert response == {"batchItemFailures": []}
    assert in_flight.max == cap
    assert in_flight.now == 0


@pytest.mark.parametrize("cap", [None, 50, 40])
def test_without_a_binding_cap_every_record_runs_at_once(cap: int | None) -> None:
    """Unlimited (the default) or a cap >= the batch size runs all handlers concurrently, as before."""
    in_flight = InFlight()
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=QUIET, max_concurrency=cap)
    async_process_partial_response(sqs_event(count=40, seed=2), counting_handler(in_flight), processor)
    assert in_flight.max == 40


def test_cap_forces_rounds() -> None:
    """20 records of 20 ms with a cap of 5 run in at least four rounds of five (a lower bound on wall time,
    which load cannot break); that the five of a round overlap is the in-flight peak, not a stopwatch."""
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=QUIET, max_concurrency=5)
    in_flight = InFlight()
    started = time.perf_counter()
    async_process_partial_response(sqs_event(count=20, seed=3), counting_handler(in_flight, 0.02), processor)
    elapsed = time.perf_counter() - started
    assert elapsed >= 0.075  # 4 x 20 ms, less a hair for the event loop's clock resolution
    assert in_flight.max == 5


def event_for(plan: list[tuple[int, bool]]) -> dict[str, Any]:
    return sqs_event([{"i": i, "sleep_ms": ms, "fail": fail} for i, (ms, fail) in enumerate(plan)], seed=11)


async def plan_handler(record: Any) -> int:
    body = json.loads(record.body)
    await asyncio.sleep(body["sleep_ms"] / 1000)
    if body["fail"]:
        raise ValueError(f"record {body['i']} failed")
    return int(body["i"])


def sync_plan_handler(record: Any) -> int:
    body = json.loads(record.body)
    if body["fail"]:
        raise ValueError(f"record {body['i']} failed")
    return int(body["i"])


def outcome(processor: Any, event: dict[str, Any], handler: Any, use_async: bool = True) -> dict[str, Any]:
    with processor(event["Records"], handler):
        processed = processor.async_process() if use_async else processor.process()
    return {
        "response": processor.response(),
        "tuples": [(status, detail, getattr(rec, "raw_event", rec)["messageId"]) for status, detail, rec in processed],
        "exceptions": [str(e[1]) for e in processor.exceptions],
    }


@pytest.mark.parametrize("telemetry", [pytest.param(QUIET, id="no-telemetry"), pytest.param(None, id="telemetry")])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=30).filter(
        lambda p: not all(fail for _, fail in p)
    ),
    cap=st.integers(1, 8),
)
def test_capped_run_matches_sequential_reference(
    telemetry: Telemetry | None, plan: list[tuple[int, bool]], cap: int
) -> None:
    """With random delays and failures, a capped async run gives the sequential sync processor's results, in order."""
    event = event_for(plan)
    reference = outcome(BatchProcessor(EventType.SQS, telemetry=QUIET), event, sync_plan_handler, use_async=False)
    capped = outcome(AsyncBatchProcessor(EventType.SQS, telemetry=telemetry, max_concurrency=cap), event, plan_handler)
    assert capped == reference


def test_lambda_context_is_injected_under_the_cap() -> None:
    """Capped handlers that take ``lambda_context`` all receive the invocation's context."""
    context = lambda_context(seed=1)
    seen: list[Any] = []

    async def handler(record: Any, lambda_context: Any) -> None:
        await asyncio.sleep(0.001)
        seen.append(lambda_context)

    processor = AsyncBatchProcessor(EventType.SQS, telemetry=QUIET, max_concurrency=3)
    async_process_partial_response(sqs_event(count=9, seed=1), handler, processor, context)
    assert len(seen) == 9
    assert all(c is context for c in seen)


# -- configuration --------------------------------------------------------------------------------------------


def test_max_concurrency_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHLENS_MAX_CONCURRENCY sets the cap; an explicit argument wins; unset means unlimited."""
    assert AsyncBatchProcessor(EventType.SQS).max_concurrency is None
    monkeypatch.setenv("BATCHLENS_MAX_CONCURRENCY", "3")
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=QUIET)
    assert processor.max_concurrency == 3
    assert AsyncBatchProcessor(EventType.SQS, max_concurrency=9).max_concurrency == 9
    in_flight = InFlight()
    async_process_partial_response(sqs_event(count=12, seed=4), counting_handler(in_flight), processor)
    assert in_flight.max == 3


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", "yes"])
def test_invalid_max_concurrency_variable_is_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """An invalid BATCHLENS_MAX_CONCURRENCY fails construction with a message naming the variable."""
    monkeypatch.setenv("BATCHLENS_MAX_CONCURRENCY", value)
    with pytest.raises(ValueError, match="BATCHLENS_MAX_CONCURRENCY"):
        AsyncBatchProcessor(EventType.SQS)


@pytest.mark.parametrize("value", [0, -3, False, True, 2.5, "2"])
def test_invalid_max_concurrency_argument_is_rejected(value: Any) -> None:
    """max_concurrency must be a whole number >= 1 (or None for unlimited)."""
    with pytest.raises(ValueError, match="max_concurrency"):
        AsyncBatchProcessor(EventType.SQS, max_concurrency=value)


def test_max_concurrency_variable_does_not_affect_sync_or_fifo(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHLENS_MAX_CONCURRENCY applies to AsyncBatchProcessor only; the async FIFO processor stays one at a time."""
    monkeypatch.setenv("BATCHLENS_MAX_CONCURRENCY", "8")
    assert BatchProcessor(EventType.SQS).max_workers == 1
    in_flight = InFlight()
    order: list[int] = []

    async def handler(record: Any) -> None:
        async with in_flight:
            await asyncio.sleep(0.001)
        order.append(json.loads(record.body)["i"])

    processor = SqsFifoPartialProcessorAsync(telemetry=QUIET)
    async_process_partial_response(sqs_fifo_event([{"i": i} for i in range(8)], seed=1), handler, processor)
    assert order == list(range(8))
    assert in_flight.max == 1


# -- telemetry ------------------------------------------------------------------------------------------------


def test_capped_run_has_one_span_per_record_under_the_batch_span() -> None:
    """Under a cap, each record still gets one span, a child of the batch span, current while its handler runs."""
    from opentelemetry import trace

    current: dict[str, int] = {}

    async def handler(record: Any) -> None:
        current[record.message_id] = trace.get_current_span().get_span_context().span_id
        await asyncio.sleep(0.001)
        if json.loads(record.body)["fail"]:
            raise ValueError("boom")

    event = sqs_event([{"fail": i % 4 == 0} for i in range(12)], seed=5)
    with capture_telemetry() as captured:
        processor = AsyncBatchProcessor(EventType.SQS, max_concurrency=3)
        response = async_process_partial_response(event, handler, processor, lambda_context(seed=1))
        ids = [r["messageId"] for r in event["Records"]]
        assert response == {"batchItemFailures": [{"itemIdentifier": ids[i]} for i in (0, 4, 8)]}
        (batch,) = captured.batch_spans()
        spans = captured.record_spans()
        assert sorted(s.attributes["messaging.message.id"] for s in spans) == sorted(ids)
        for span in spans:
            assert span.parent is not None
            assert span.parent.span_id == batch.context.span_id
            assert current[span.attributes["messaging.message.id"]] == span.context.span_id
        entries = [e for e in captured.logs if e.get("event") in ("record processed", "record failed")]
        assert sorted(e["record_id"] for e in entries) == sorted(ids)
        assert captured.counter("batchlens.records.failed", error__type="ValueError") == 3


# -- the example ----------------------------------------------------------------------------------------------


def test_async_max_concurrency_example() -> None:
    """examples/async_max_concurrency/app.py never exceeds its cap of 3 and reports the failing record."""
    spec = importlib.util.spec_from_file_location(
        "example_async_max_concurrency", EXAMPLES / "async_max_concurrency" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    event = sqs_event([{"order_id": f"order-{i}", "status": "fail" if i == 2 else "ok"} for i in range(20)], seed=1)
    response = example.lambda_handler(event, lambda_context(seed=1))
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][2]["messageId"]}]}
    assert example.in_flight.peak == example.MAX_CONCURRENCY == 3
