"""``stop_on_first_failure`` for streams: no record is processed after a failed one; it and every later record are reported."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessingError,
    BatchProcessor,
    EventType,
    StreamCircuitBreakerError,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens.testing import capture_telemetry, dynamodb_event, kafka_event, kinesis_event, lambda_context, sqs_event

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUIET = Telemetry.disabled()
STREAMS = [EventType.KinesisDataStreams, EventType.DynamoDBStreams, EventType.Kafka]


def stream_event(event_type: EventType, count: int) -> dict[str, Any]:
    """A stream event whose record ``i`` carries ``{"i": i}`` in its payload (one shard / partition)."""
    if event_type is EventType.KinesisDataStreams:
        return kinesis_event([{"i": i} for i in range(count)], seed=count)
    if event_type is EventType.DynamoDBStreams:
        return dynamodb_event([{"id": f"item-{i}", "i": i} for i in range(count)], seed=count)
    return kafka_event([{"i": i} for i in range(count)], seed=count)


def index_of(record: Any) -> int:
    if hasattr(record, "kinesis"):
        return int(record.kinesis.data_as_json()["i"])
    if hasattr(record, "dynamodb"):
        return int(record.dynamodb.new_image["i"])
    return int(record.json_value["i"])


def reference(fails: list[bool]) -> tuple[list[int], list[int]]:
    """The sequential model: (indexes handled, indexes reported) when stopping at the first failure."""
    handled: list[int] = []
    reported: list[int] = []
    stopped = False
    for index, fail in enumerate(fails):
        if stopped:
            reported.append(index)
            continue
        handled.append(index)
        if fail:
            reported.append(index)
            stopped = True
    return handled, reported


def expected_response(event_type: EventType, event: dict[str, Any], reported: list[int]) -> dict[str, Any]:
    """The response a plain processor gives when exactly ``reported`` fail (item identifiers in source format)."""

    def handler(record: Any) -> None:
        if index_of(record) in reported:
            raise ValueError("reference")

    plain = BatchProcessor(event_type, telemetry=QUIET, raise_on_entire_batch_failure=False)
    return process_partial_response(event, handler, plain)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("event_type", STREAMS, ids=lambda e: e.name)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fails=st.lists(st.booleans(), min_size=1, max_size=20))
def test_stop_policy_matches_sequential_reference(event_type: EventType, use_async: bool, fails: list[bool]) -> None:
    """Handled records, reported records, errors and tuples equal the loop model's, for every stream type."""
    event = stream_event(event_type, len(fails))
    handled: list[int] = []

    def work(record: Any) -> None:
        index = index_of(record)
        handled.append(index)
        if fails[index]:
            raise ValueError(f"record {index}")

    if use_async:

        async def async_handler(record: Any) -> None:
            await asyncio.sleep(0)
            work(record)

        processor: Any = AsyncBatchProcessor(
            event_type, telemetry=QUIET, stop_on_first_failure=True, raise_on_entire_batch_failure=False
        )
        records = processor._source.records_from_event(event)
        with processor(records, async_handler):
            processed = processor.async_process()
    else:
        processor = BatchProcessor(
            event_type, telemetry=QUIET, stop_on_first_failure=True, raise_on_entire_batch_failure=False
        )
        records = processor._source.records_from_event(event)
        with processor(records, work):
            processed = processor.process()

    model_handled, model_reported = reference(fails)
    assert handled == model_handled
    assert processor.response() == expected_response(event_type, event, model_reported)
    assert [status for status, _, _ in processed] == [
        "fail" if i in model_reported else "success" for i in range(len(fails))
    ]
    errors = [type(e[1]) for e in processor.exceptions]
    if model_reported:
        assert errors == [ValueError] + [StreamCircuitBreakerError] * (len(model_reported) - 1)
        assert str(processor.exceptions[0][1]) == f"record {model_reported[0]}"
        assert all(
            t[1].startswith("<class 'batchlens.exceptions.StreamCircuitBreakerError'>:")
            for t in processed[model_reported[0] + 1 :]
        )
    else:
        assert errors == []


@pytest.mark.parametrize("event_type", STREAMS, ids=lambda e: e.name)
def test_without_the_policy_every_record_runs(event_type: EventType) -> None:
    """By default (as in Powertools) a failure does not stop the batch: every record runs, only failures are reported."""
    event = stream_event(event_type, 5)
    handled: list[int] = []

    def handler(record: Any) -> None:
        handled.append(index_of(record))
        if index_of(record) == 1:
            raise ValueError("one")

    processor = BatchProcessor(event_type, telemetry=QUIET)
    response = process_partial_response(event, handler, processor)
    assert handled == [0, 1, 2, 3, 4]
    assert response == expected_response(event_type, event, [1])


def test_first_record_failing_fails_the_whole_batch() -> None:
    """When the first record fails every record is reported, so the batch fails as a whole (like FIFO)."""
    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=QUIET, stop_on_first_failure=True)

    def handler(record: Any) -> None:
        raise ValueError("first")

    with pytest.raises(BatchProcessingError) as raised:
        process_partial_response(stream_event(EventType.KinesisDataStreams, 3), handler, processor)
    assert [type(e[1]) for e in raised.value.child_exceptions] == [
        ValueError,
        StreamCircuitBreakerError,
        StreamCircuitBreakerError,
    ]


def test_processor_reuse_resets_the_stop() -> None:
    """A failure in one batch does not stop the next batch of a module-level processor."""
    processor = BatchProcessor(EventType.KinesisDataStreams, telemetry=QUIET, stop_on_first_failure=True)
    first = stream_event(EventType.KinesisDataStreams, 4)

    def fail_second(record: Any) -> None:
        if index_of(record) == 1:
            raise ValueError("second")

    assert process_partial_response(first, fail_second, processor) == expected_response(
        EventType.KinesisDataStreams, first, [1, 2, 3]
    )
    assert process_partial_response(first, lambda record: None, processor) == {"batchItemFailures": []}


def test_async_policy_runs_one_record_at_a_time() -> None:
    """The async processor with the policy awaits records one by one, even with max_concurrency set."""
    in_flight = 0
    peak = 0

    async def handler(record: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1

    processor = AsyncBatchProcessor(EventType.Kafka, telemetry=QUIET, stop_on_first_failure=True, max_concurrency=8)
    async_process_partial_response(stream_event(EventType.Kafka, 10), handler, processor)
    assert peak == 1


# -- configuration --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("processor_class", [BatchProcessor, AsyncBatchProcessor])
def test_sqs_refuses_the_policy(processor_class: Any) -> None:
    """SQS processors refuse stop_on_first_failure=True and point to the FIFO processor."""
    with pytest.raises(ValueError, match="SqsFifoPartialProcessor") as raised:
        processor_class(EventType.SQS, stop_on_first_failure=True)
    assert "stream" in str(raised.value)
    assert processor_class(EventType.SQS, stop_on_first_failure=False) is not None


def test_policy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHLENS_STOP_ON_FIRST_FAILURE turns the policy on for stream processors only; an explicit False wins."""
    monkeypatch.setenv("BATCHLENS_STOP_ON_FIRST_FAILURE", "TRUE")
    event = stream_event(EventType.DynamoDBStreams, 4)
    handled: list[int] = []

    def handler(record: Any) -> None:
        handled.append(index_of(record))
        if index_of(record) == 1:
            raise ValueError("one")

    response = process_partial_response(event, handler, BatchProcessor(EventType.DynamoDBStreams, telemetry=QUIET))
    assert handled == [0, 1]
    assert response == expected_response(EventType.DynamoDBStreams, event, [1, 2, 3])

    handled.clear()
    explicit_off = BatchProcessor(EventType.DynamoDBStreams, telemetry=QUIET, stop_on_first_failure=False)
    process_partial_response(event, handler, explicit_off)
    assert handled == [0, 1, 2, 3]

    # SQS processors accept the variable (it is meant for the streams of the same deployment) and ignore it
    sqs = sqs_event(count=3, seed=1)
    seen: list[str] = []
    response = process_partial_response(
        sqs, lambda record: seen.append(record.message_id), BatchProcessor(EventType.SQS, telemetry=QUIET)
    )
    assert response == {"batchItemFailures": []}
    assert len(seen) == 3


@pytest.mark.parametrize("event_type", [EventType.KinesisDataStreams, EventType.SQS], ids=lambda e: e.name)
@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_invalid_policy_variable_is_rejected(
    monkeypatch: pytest.MonkeyPatch, event_type: EventType, value: str
) -> None:
    """An invalid BATCHLENS_STOP_ON_FIRST_FAILURE fails construction of any processor, naming the variable."""
    monkeypatch.setenv("BATCHLENS_STOP_ON_FIRST_FAILURE", value)
    with pytest.raises(ValueError, match="BATCHLENS_STOP_ON_FIRST_FAILURE"):
        BatchProcessor(event_type)
    with pytest.raises(ValueError, match="BATCHLENS_STOP_ON_FIRST_FAILURE"):
        AsyncBatchProcessor(event_type)


# -- telemetry ------------------------------------------------------------------------------------------------


def test_short_circuited_records_are_traced_logged_and_counted() -> None:
    """The failed record is a failure; the records after it are skipped, with StreamCircuitBreakerError everywhere."""
    from opentelemetry.trace import StatusCode

    event = kinesis_event([{"i": i} for i in range(5)], seed=5, stream="sensor-readings")
    seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]

    def handler(record: Any) -> None:
        if index_of(record) == 2:
            raise KeyError("missing reading")

    with capture_telemetry() as captured:
        processor = BatchProcessor(EventType.KinesisDataStreams, stop_on_first_failure=True)
        response = process_partial_response(event, handler, processor, lambda_context(seed=1))
        assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == seqs[2:]

        entries = {e["record_id"]: e for e in captured.logs if e.get("event") in ("record processed", "record failed")}
        assert [entries[s]["outcome"] for s in seqs] == ["success", "success", "failure", "skipped", "skipped"]
        assert entries[seqs[2]]["error_type"] == "KeyError"
        assert (
            entries[seqs[3]]["error_type"]
            == entries[seqs[4]]["error_type"]
            == "batchlens.exceptions.StreamCircuitBreakerError"
        )
        assert entries[seqs[4]]["event"] == "record failed"

        spans = {s.attributes["messaging.message.id"]: s for s in captured.record_spans()}
        assert sorted(spans) == sorted(seqs)
        for seq in seqs[3:]:
            assert spans[seq].status.status_code is StatusCode.ERROR
            assert spans[seq].attributes["error.type"] == "batchlens.exceptions.StreamCircuitBreakerError"
            assert spans[seq].name == "process sensor-readings"

        assert (
            captured.counter("batchlens.records.failed", error__type="batchlens.exceptions.StreamCircuitBreakerError")
            == 2
        )
        assert captured.counter("batchlens.records.failed", error__type="KeyError") == 1
        assert (
            captured.counter("messaging.client.consumed.messages") - captured.counter("batchlens.records.failed") == 2
        )


# -- the example ----------------------------------------------------------------------------------------------


def test_stream_stop_on_first_failure_example() -> None:
    """examples/stream_stop_on_first_failure/app.py applies entries in order up to the bad one and reports the rest."""
    spec = importlib.util.spec_from_file_location(
        "example_stream_stop_on_first_failure", EXAMPLES / "stream_stop_on_first_failure" / "app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    entries = [{"account": "acc-1", "delta": "bad" if i == 3 else i} for i in range(6)]
    event = kinesis_event(entries, seed=2)
    response = example.lambda_handler(event, lambda_context(seed=1))
    seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    applied = example.APPLIED
    assert applied == seqs[:3]
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in seqs[3:]]}
