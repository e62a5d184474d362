"""BatchProcessor(max_workers=N): records on a thread pool, with the sequential processor's results and telemetry."""

from __future__ import annotations

import contextvars
import importlib.util
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlens import (
    BatchProcessingError,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    Telemetry,
    process_partial_response,
)
from batchlens.testing import capture_telemetry, kinesis_event, lambda_context, sqs_event, sqs_fifo_event

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> Any:
    """Import examples/<name>/app.py as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / name / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class InFlight:
    """Counts handlers running at the same time, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.max = 0

    def __enter__(self) -> InFlight:
        with self._lock:
            self.now += 1
            self.max = max(self.max, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def plan_event(plan: list[tuple[int, bool]]) -> dict[str, Any]:
    """An SQS event whose bodies say how long each record sleeps (ms) and whether it fails."""
    return sqs_event([{"i": i, "sleep_ms": ms, "fail": fail} for i, (ms, fail) in enumerate(plan)], seed=7)


def plan_handler(record: Any) -> Any:
    body = json.loads(record.body)
    time.sleep(body["sleep_ms"] / 1000)
    if body["fail"]:
        raise ValueError(f"record {body['i']} failed")
    return body["i"]


def message_id(obj: Any) -> str:
    raw = getattr(obj, "raw_event", obj)
    return str(raw["messageId"])


def run(processor: BatchProcessor, event: dict[str, Any], handler: Any, context: Any = None) -> dict[str, Any]:
    """Process ``event`` with the context-manager API and return everything observable about the outcome."""
    with processor(event["Records"], handler, context):
        processed = processor.process()
    return {
        "response": processor.response(),
        "tuples": [(status, detail, message_id(rec)) for status, detail, rec in processed],
        "fail_ids": [message_id(m) for m in processor.fail_messages],
        "exceptions": [str(e[1]) for e in processor.exceptions],
        "success_ids": sorted(message_id(m) for m in processor.success_messages),
    }


TELEMETRY = [pytest.param(Telemetry.disabled(), id="no-telemetry"), pytest.param(None, id="telemetry")]


@pytest.mark.parametrize("telemetry", TELEMETRY)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=24).filter(
        lambda p: not all(fail for _, fail in p)
    ),
    workers=st.integers(2, 8),
)
def test_threaded_matches_sequential(telemetry: Telemetry | None, plan: list[tuple[int, bool]], workers: int) -> None:
    """With random sleeps and failures, a threaded run reports the same failures, tuples and exceptions, in input order."""
    event = plan_event(plan)
    sequential = run(BatchProcessor(EventType.SQS, telemetry=telemetry), event, plan_handler)
    threaded = run(BatchProcessor(EventType.SQS, telemetry=telemetry, max_workers=workers), event, plan_handler)
    assert threaded == sequential
    ids = [r["messageId"] for r in event["Records"]]
    expected_failures = [ids[i] for i, (_, fail) in enumerate(plan) if fail]
    assert threaded["response"] == {"batchItemFailures": [{"itemIdentifier": i} for i in expected_failures]}
    assert threaded["tuples"][0][2] == ids[0]
    assert [t[2] for t in threaded["tuples"]] == ids


@settings(max_examples=15, deadline=None)
@given(
    plan=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=2, max_size=16).filter(
        lambda p: not all(fail for _, fail in p)
    ),
    workers=st.integers(2, 6),
)
def test_threaded_telemetry_one_span_and_one_entry_per_record(plan: list[tuple[int, bool]], workers: int) -> None:
    """With random timing, every record gets exactly one span (child of the batch span) and one correlated log entry."""
    event = plan_event(plan)
    ids = [r["messageId"] for r in event["Records"]]
    with capture_telemetry() as captured:
        process_partial_response(event, plan_handler, BatchProcessor(EventType.SQS, max_workers=workers))
        (batch,) = captured.batch_spans()
        spans = captured.record_spans()
        assert sorted(str(s.attributes["messaging.message.id"]) for s in spans) == sorted(ids)
        for span in spans:
            assert span.parent is not None
            assert span.parent.span_id == batch.context.span_id
        by_id = {s.attributes["messaging.message.id"]: s for s in spans}
        entries = [e for e in captured.logs if e.get("event") in ("record processed", "record failed")]
        assert sorted(e["record_id"] for e in entries) == sorted(ids)
        for entry in entries:
            span = by_id[entry["record_id"]]
            assert entry["span_id"] == format(span.context.span_id, "016x")
            assert entry["outcome"] == ("failure" if plan[ids.index(entry["record_id"])][1] else "success")


def test_exception_infos_stay_paired_with_their_records() -> None:
    """Under heavy thread interleaving, ``exceptions[i]`` is still the error of ``fail_messages[i]``."""
    event = sqs_event([{"i": i, "sleep_ms": 0, "fail": i % 2 == 0} for i in range(400)], seed=3)
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=8)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make the threads switch as often as possible
    try:
        result = run(processor, event, plan_handler)
    finally:
        sys.setswitchinterval(switch)
    bodies = {r["messageId"]: json.loads(r["body"])["i"] for r in event["Records"]}
    assert result["exceptions"] == [f"record {bodies[i]} failed" for i in result["fail_ids"]]
    assert len(result["fail_ids"]) == 200


def test_records_actually_run_in_parallel_up_to_max_workers() -> None:
    """With max_workers=4 and 20 slow records, exactly 4 handlers are in flight at the peak."""
    in_flight = InFlight()
    barrier = threading.Barrier(4, timeout=5)

    def handler(record: Any) -> None:
        with in_flight:
            if json.loads(record.body)["i"] < 4:
                barrier.wait()  # fails the record (BrokenBarrierError) unless 4 records really run at once
            time.sleep(0.005)

    event = sqs_event([{"i": i} for i in range(20)], seed=1)
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=4)
    assert process_partial_response(event, handler, processor) == {"batchItemFailures": []}
    assert in_flight.max == 4


def test_eight_workers_overlap_every_wait_of_an_io_bound_batch() -> None:
    """With max_workers=8, eight 10 ms waits overlap completely: all eight handlers are blocked at once.

    Proven with a barrier, not a stopwatch (a timed assertion is flaky on a busy machine); the speed-up itself is
    measured by tests/benchmarks/bench_parallel.py.
    """
    barrier = threading.Barrier(8, timeout=5)

    def handler(record: Any) -> None:
        barrier.wait()  # BrokenBarrierError fails the record unless all 8 wait at the same time
        time.sleep(0.01)

    event = sqs_event(count=8, seed=2)
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=8)
    assert process_partial_response(event, handler, processor) == {"batchItemFailures": []}


def test_lambda_context_is_injected_in_worker_threads() -> None:
    """Handlers taking ``lambda_context`` get the invocation's context in every worker thread."""
    seen: list[tuple[Any, str]] = []

    def handler(record: Any, lambda_context: Any) -> None:
        time.sleep(0.002)
        seen.append((lambda_context, threading.current_thread().name))

    context = lambda_context(seed=1)
    event = sqs_event(count=12, seed=1)
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=3)
    assert process_partial_response(event, handler, processor, context) == {"batchItemFailures": []}
    assert len(seen) == 12
    assert all(ctx is context for ctx, _ in seen)
    assert {name for _, name in seen} != {threading.current_thread().name}
    assert all(name.startswith("batchlens") for _, name in seen)


REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="unset")


def test_context_variables_reach_workers_and_do_not_leak_between_records() -> None:
    """Each record sees the caller's context variables, and what a handler sets stays with that record."""
    seen: list[str] = []

    def handler(record: Any) -> None:
        seen.append(REQUEST.get())
        REQUEST.set(record.message_id)
        time.sleep(0.001)

    token = REQUEST.set("outer")
    try:
        event = sqs_event(count=16, seed=4)
        processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=2)
        process_partial_response(event, handler, processor)
        assert REQUEST.get() == "outer"
    finally:
        REQUEST.reset(token)
    assert seen == ["outer"] * 16


class Abort(BaseException):
    """A BaseException raised by a handler (like SystemExit), which must escape processing."""


def test_base_exception_in_a_worker_propagates_and_stops_the_pool() -> None:
    """A BaseException from one record propagates to the caller, and no worker thread is left behind."""

    def handler(record: Any) -> None:
        if json.loads(record.body)["i"] == 3:
            raise Abort("stop")
        time.sleep(0.002)

    event = sqs_event([{"i": i} for i in range(30)], seed=5)
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=4)
    with pytest.raises(Abort):
        process_partial_response(event, handler, processor)
    assert not [t for t in threading.enumerate() if t.name.startswith("batchlens")]


def test_entire_batch_failure_still_raises_with_threads() -> None:
    """When every record fails on the thread pool, BatchProcessingError carries every record's error."""

    def handler(record: Any) -> None:
        raise RuntimeError(record.message_id)

    event = sqs_event(count=6, seed=6)
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=3)
    with pytest.raises(BatchProcessingError) as raised:
        process_partial_response(event, handler, processor)
    assert [str(e[1]) for e in raised.value.child_exceptions] == [r["messageId"] for r in event["Records"]]


def test_single_record_and_more_workers_than_records() -> None:
    """A one-record batch and a pool larger than the batch both give the normal response."""
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=16)
    single = plan_event([(0, False)])
    assert process_partial_response(single, plan_handler, processor) == {"batchItemFailures": []}
    small = plan_event([(0, True), (1, False), (0, False)])
    assert process_partial_response(small, plan_handler, processor) == {
        "batchItemFailures": [{"itemIdentifier": small["Records"][0]["messageId"]}]
    }


def test_processor_is_reusable_across_threaded_batches() -> None:
    """A module-level processor gives independent responses for consecutive threaded batches."""
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), max_workers=4)
    first = plan_event([(0, False), (1, True), (0, False)])
    second = plan_event([(1, False), (0, False), (0, True), (0, True)])
    assert process_partial_response(first, plan_handler, processor) == {
        "batchItemFailures": [{"itemIdentifier": first["Records"][1]["messageId"]}]
    }
    assert process_partial_response(second, plan_handler, processor) == {
        "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in second["Records"][2:]]
    }


# -- configuration --------------------------------------------------------------------------------------------


def test_default_is_sequential_in_the_calling_thread() -> None:
    """Without max_workers every record runs in the caller's thread, one after another."""
    names: set[str] = set()
    in_flight = InFlight()

    def handler(record: Any) -> None:
        with in_flight:
            names.add(threading.current_thread().name)

    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled())
    assert processor.max_workers == 1
    process_partial_response(sqs_event(count=5, seed=1), handler, processor)
    assert names == {threading.current_thread().name}
    assert in_flight.max == 1


def test_max_workers_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHLENS_MAX_WORKERS sets the pool size; an explicit argument wins over it."""
    monkeypatch.setenv("BATCHLENS_MAX_WORKERS", " 6 ")
    assert BatchProcessor(EventType.SQS).max_workers == 6
    assert BatchProcessor(EventType.SQS, max_workers=2).max_workers == 2
    monkeypatch.setenv("BATCHLENS_MAX_WORKERS", "")
    assert BatchProcessor(EventType.SQS).max_workers == 1


@pytest.mark.parametrize("value", ["0", "-2", "eight", "2.5", "true"])
def test_invalid_max_workers_variable_is_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """An invalid BATCHLENS_MAX_WORKERS fails construction with a message naming the variable."""
    monkeypatch.setenv("BATCHLENS_MAX_WORKERS", value)
    with pytest.raises(ValueError, match="BATCHLENS_MAX_WORKERS"):
        BatchProcessor(EventType.SQS)


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "4"])
def test_invalid_max_workers_argument_is_rejected(value: Any) -> None:
    """max_workers must be a whole number >= 1 (not a bool, float or string)."""
    with pytest.raises(ValueError, match="max_workers"):
        BatchProcessor(EventType.SQS, max_workers=value)


def test_fifo_refuses_max_workers() -> None:
    """SQS FIFO processors refuse max_workers > 1 with an error that says why and what to use instead."""
    with pytest.raises(ValueError) as raised:
        SqsFifoPartialProcessor(max_workers=4)
    message = str(raised.value)
    assert "max_workers=4" in message
    assert "FIFO" in message
    assert "order" in message
    assert "BatchProcessor(EventType.SQS, max_workers=" in message
    assert SqsFifoPartialProcessor(max_workers=1).max_workers == 1


def test_fifo_ignores_max_workers_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHLENS_MAX_WORKERS does not make a FIFO processor parallel: it stays one record at a time, in order."""
    monkeypatch.setenv("BATCHLENS_MAX_WORKERS", "8")
    in_flight = InFlight()
    order: list[int] = []

    def handler(record: Any) -> None:
        with in_flight:
            time.sleep(0.001)
            order.append(json.loads(record.body)["i"])

    processor = SqsFifoPartialProcessor(telemetry=Telemetry.disabled())
    assert processor.max_workers == 1
    process_partial_response(sqs_fifo_event([{"i": i} for i in range(10)], seed=1), handler, processor)
    assert order == list(range(10))
    assert in_flight.max == 1


def test_stop_on_first_failure_cannot_be_combined_with_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream stop policy needs ordered processing, so max_workers > 1 with it is refused."""
    with pytest.raises(ValueError, match="max_workers"):
        BatchProcessor(EventType.KinesisDataStreams, stop_on_first_failure=True, max_workers=2)
    monkeypatch.setenv("BATCHLENS_STOP_ON_FIRST_FAILURE", "true")
    monkeypatch.setenv("BATCHLENS_MAX_WORKERS", "4")
    with pytest.raises(ValueError, match="BATCHLENS_MAX_WORKERS"):
        BatchProcessor(EventType.KinesisDataStreams)
    # the variable only applies to streams, so SQS keeps its workers
    assert BatchProcessor(EventType.SQS).max_workers == 4


def test_threaded_kinesis_batch_reports_sequence_numbers() -> None:
    """Threaded stream processing reports failed sequence numbers in input order."""
    event = kinesis_event([{"i": i, "fail": i in (1, 4)} for i in range(6)], seed=1)

    def handler(record: Any) -> None:
        body = record.kinesis.data_as_json()
        time.sleep(0.002 * (6 - body["i"]))  # later records finish first
        if body["fail"]:
            raise ValueError(body["i"])

    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=Telemetry.disabled(), max_workers=6)
    response = process_partial_response(event, handler, processor)
    seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": seqs[1]}, {"itemIdentifier": seqs[4]}]}


# -- telemetry ------------------------------------------------------------------------------------------------


def test_threaded_spans_parentage_and_log_correlation() -> None:
    """Threaded: one record span per record under the batch span, current in its worker; handler spans nest under it;
    the record's log entry carries the record span's ids."""
    seen: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    with capture_telemetry() as captured:
        tracer = captured.tracer_provider.get_tracer("handler")

        def handler(record: Any) -> None:
            from opentelemetry import trace

            current = trace.get_current_span().get_span_context()
            with tracer.start_as_current_span("handler work") as inner:
                time.sleep(0.002)
                with lock:
                    seen[record.message_id] = {
                        "current": current.span_id,
                        "inner": inner.get_span_context().span_id,
                        "thread": threading.current_thread().name,
                    }
            if json.loads(record.body)["fail"]:
                raise ValueError("boom")

        event = sqs_event([{"fail": i in (2, 5)} for i in range(8)], seed=9, queue="orders")
        processor = BatchProcessor(EventType.SQS, max_workers=4)
        response = process_partial_response(event, handler, processor, lambda_context(seed=1))
        ids = [r["messageId"] for r in event["Records"]]
        assert response == {"batchItemFailures": [{"itemIdentifier": ids[2]}, {"itemIdentifier": ids[5]}]}

        batch_spans = captured.batch_spans()
        record_spans = captured.record_spans()
        assert len(batch_spans) == 1
        batch = batch_spans[0]
        assert sorted(s.attributes["messaging.message.id"] for s in record_spans) == sorted(ids)
        by_id = {s.attributes["messaging.message.id"]: s for s in record_spans}
        handler_spans = {s.context.span_id: s for s in captured.spans if s.name == "handler work"}
        assert len(handler_spans) == 8
        for mid, span in by_id.items():
            assert span.name == "process orders"
            assert span.parent is not None
            assert span.parent.span_id == batch.context.span_id
            assert span.context.trace_id == batch.context.trace_id
            assert seen[mid]["current"] == span.context.span_id
            assert seen[mid]["thread"].startswith("batchlens")
            inner = handler_spans[seen[mid]["inner"]]
            assert inner.parent is not None
            assert inner.parent.span_id == span.context.span_id

        entries = {e["record_id"]: e for e in captured.logs if e.get("event") in ("record processed", "record failed")}
        assert sorted(entries) == sorted(ids)
        for mid, span in by_id.items():
            entry = entries[mid]
            assert entry["trace_id"] == format(span.context.trace_id, "032x")
            assert entry["span_id"] == format(span.context.span_id, "016x")
            if mid in (ids[2], ids[5]):
                assert entry["event"] == "record failed"
                assert entry["outcome"] == "failure"
                assert entry["error_type"] == "ValueError"
            else:
                assert entry["event"] == "record processed"
                assert entry["outcome"] == "success"
        assert captured.counter("batchlens.records.failed", error__type="ValueError") == 2
        assert (
            captured.counter("messaging.client.consumed.messages") - captured.counter("batchlens.records.failed") == 6
        )


# -- the example ----------------------------------------------------------------------------------------------


def test_parallel_processing_example() -> None:
    """examples/parallel_processing/app.py processes a batch on 4 workers and reports its failing record."""
    example = load_example("parallel_processing")
    assert example.processor.max_workers == example.MAX_WORKERS == 4
    event = sqs_event([{"order_id": f"order-{i}", "status": "fail" if i == 3 else "ok"} for i in range(10)], seed=1)
    response = example.lambda_handler(event, lambda_context(seed=1))
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][3]["messageId"]}]}
