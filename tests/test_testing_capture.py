"""Tests for ``batchlens.testing.capture_telemetry`` and ``CapturedTelemetry``."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, StatusCode

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    SqsFifoPartialProcessorAsync,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens.testing import CapturedTelemetry, capture_telemetry, kinesis_event, lambda_context, sqs_event

# Built at import, before any test sets up telemetry, as a Lambda module would.
SQS_PROCESSOR = BatchProcessor(EventType.SQS)
ASYNC_PROCESSOR = AsyncBatchProcessor(EventType.SQS)


def handler(record: Any) -> dict[str, str]:
    if "fail" in record.body:
        raise ValueError("rejected")
    return {"status": "ok"}


async def async_handler(record: Any) -> dict[str, str]:
    await asyncio.sleep(0)
    return handler(record)


def ids(event: dict[str, Any]) -> list[str]:
    return [r["messageId"] for r in event["Records"]]


def process(event: dict[str, Any], processor: Any = SQS_PROCESSOR) -> Any:
    return process_partial_response(event, handler, processor, lambda_context())


# -- what is captured ------------------------------------------------------------------------------------------------
def test_captures_spans_of_a_processor_built_before_the_block() -> None:
    """A processor created at import time emits its batch and record spans into the capture."""
    event = sqs_event(["ok", "fail", "ok"], seed=1)
    with capture_telemetry() as telemetry:
        response = process(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": ids(event)[1]}]}
    assert len(telemetry.spans) == 4
    (batch,) = telemetry.batch_spans()
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 3
    assert batch.kind is SpanKind.CONSUMER
    records = telemetry.record_spans()
    assert [s.attributes["messaging.message.id"] for s in records if s.attributes] == ids(event)
    assert all(s.parent is not None and s.parent.span_id == batch.context.span_id for s in records)
    assert telemetry.spans[-1].context.span_id == batch.context.span_id  # the batch span ends last


def test_failed_record_ids_lists_failed_records_only() -> None:
    """failed_record_ids() names the records whose spans ended in error, in processing order."""
    event = sqs_event(["fail", "ok", "fail", "ok"], seed=2)
    with capture_telemetry() as telemetry:
        process(event)
    assert telemetry.failed_record_ids() == [ids(event)[0], ids(event)[2]]
    failed = [s for s in telemetry.record_spans() if s.status.status_code is StatusCode.ERROR]
    assert all(s.attributes and s.attributes["error.type"] == "ValueError" for s in failed)


def test_failed_record_ids_include_skipped_fifo_records() -> None:
    """Records skipped by the FIFO circuit breaker count as failed record spans."""
    event = sqs_event(["ok", "fail", "ok"], seed=3)
    with capture_telemetry() as telemetry:
        process(event, SqsFifoPartialProcessor())
    assert telemetry.failed_record_ids() == ids(event)[1:]


def test_counters_and_histogram_count() -> None:
    """counter() sums matching points (attribute names with dots written as __); histogram_count() counts values."""
    event = sqs_event(["ok", "fail", "ok", "ok"], seed=4)
    with capture_telemetry() as telemetry:
        process(event)
    assert telemetry.counter("messaging.client.consumed.messages") == 4
    assert telemetry.counter("batchlens.records.failed") == 1
    assert telemetry.counter("batchlens.records.failed", error__type="ValueError") == 1
    assert telemetry.counter("batchlens.records.failed", error__type="KeyError") == 0
    assert telemetry.counter("messaging.client.consumed.messages", messaging__system="aws_sqs") == 4
    assert telemetry.histogram_count("batchlens.batch.size", batchlens__batch__outcome="partial_failure") == 1
    assert telemetry.histogram_count("batchlens.batch.size", batchlens__batch__outcome="success") == 0
    assert telemetry.counter("no.such.metric") == 0
    assert telemetry.histogram_count("messaging.process.duration") == 4
    assert telemetry.histogram_count("messaging.process.duration", error__type="ValueError") == 1
    assert telemetry.histogram_count("batchlens.batch.size") == 1
    assert "batchlens.records.failed" in telemetry.metrics()


def test_counters_accumulate_over_batches() -> None:
    """Several batches in one block add up."""
    with capture_telemetry() as telemetry:
        process(sqs_event(["ok", "fail"], seed=5))
        process(sqs_event(["fail", "ok", "ok"], seed=6))
    assert telemetry.counter("messaging.client.consumed.messages") == 5
    assert telemetry.counter("batchlens.records.failed") == 2
    assert telemetry.histogram_count("batchlens.batch.size") == 2
    assert len(telemetry.batch_spans()) == 2


def test_log_events_returns_batchlens_entries() -> None:
    """log_events() returns batchlens' record and batch entries, optionally filtered by event name."""
    import structlog

    event = sqs_event(["ok", "fail"], seed=7)
    with capture_telemetry() as telemetry:
        structlog.get_logger("app").info("unrelated")
        process(event)
    assert [e["event"] for e in telemetry.log_events()] == ["record processed", "record failed", "batch processed"]
    (failed,) = telemetry.log_events("record failed")
    assert failed["record_id"] == ids(event)[1]
    assert failed["error_type"] == "ValueError"
    assert failed["log_level"] == "error"
    (batch,) = telemetry.log_events("batch processed")
    assert (batch["batch_size"], batch["success_count"], batch["failure_count"]) == (2, 1, 1)
    assert any(e["event"] == "unrelated" for e in telemetry.logs)
    assert not any(e["event"] == "unrelated" for e in telemetry.log_events())


def test_log_entries_carry_the_record_span_ids() -> None:
    """Each record log entry's trace_id/span_id matches the captured record span."""
    event = sqs_event(["ok", "fail"], seed=8)
    with capture_telemetry() as telemetry:
        process(event)
    spans = {s.attributes["messaging.message.id"]: s for s in telemetry.record_spans() if s.attributes}
    for entry in telemetry.log_events():
        if "record_id" not in entry:
            continue
        span = spans[entry["record_id"]]
        assert entry["trace_id"] == trace.format_trace_id(span.context.trace_id)
        assert entry["span_id"] == trace.format_span_id(span.context.span_id)


def test_works_with_other_event_sources() -> None:
    """Record spans carry each source's identifier (Kinesis sequence numbers here)."""
    event = kinesis_event(["ok", "fail"], seed=9)
    processor = BatchProcessor(EventType.KinesisDataStreams)

    def kinesis_handler(record: Any) -> None:
        if "fail" in record.kinesis.data_as_text():
            raise ValueError("rejected")

    with capture_telemetry() as telemetry:
        process_partial_response(event, kinesis_handler, processor, lambda_context())
    assert telemetry.failed_record_ids() == [event["Records"][1]["kinesis"]["sequenceNumber"]]
    assert telemetry.counter("batchlens.records.failed", messaging__system="aws.kinesis") == 1


# -- async processors --------------------------------------------------------------------------------------------------
def test_async_processor_is_captured() -> None:
    """An AsyncBatchProcessor built at import emits spans, logs and metrics into the capture."""
    event = sqs_event(["ok", "fail", "ok", "fail"], seed=10)
    with capture_telemetry() as telemetry:
        response = async_process_partial_response(event, async_handler, ASYNC_PROCESSOR, lambda_context())
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in (ids(event)[1], ids(event)[3])]}
    assert sorted(telemetry.failed_record_ids()) == sorted([ids(event)[1], ids(event)[3]])
    assert len(telemetry.record_spans()) == 4
    (batch,) = telemetry.batch_spans()
    assert all(s.parent is not None and s.parent.span_id == batch.context.span_id for s in telemetry.record_spans())
    assert telemetry.counter("messaging.client.consumed.messages") == 4
    assert telemetry.histogram_count("messaging.process.duration") == 4
    assert len(telemetry.log_events("record failed")) == 2


def test_async_fifo_processor_is_captured() -> None:
    """SqsFifoPartialProcessorAsync's skipped records appear as failed record spans."""
    event = sqs_event(["ok", "fail", "ok"], seed=11)
    with capture_telemetry() as telemetry:
        async_process_partial_response(event, async_handler, SqsFifoPartialProcessorAsync(), lambda_context())
    assert telemetry.failed_record_ids() == ids(event)[1:]
    assert telemetry.counter("batchlens.records.failed") == 2


# -- isolation ---------------------------------------------------------------------------------------------------------
def test_nothing_before_or_after_the_block_is_captured() -> None:
    """Batches processed before or after the block leave the capture unchanged; its data stays readable."""
    process(sqs_event(["fail", "ok"], seed=12))
    event = sqs_event(["ok", "fail"], seed=13)
    with capture_telemetry() as telemetry:
        process(event)
    before = (len(telemetry.spans), len(telemetry.logs), telemetry.counter("messaging.client.consumed.messages"))
    process(sqs_event(["ok", "ok", "fail"], seed=14))
    after = (len(telemetry.spans), len(telemetry.logs), telemetry.counter("messaging.client.consumed.messages"))
    assert before == after == (3, 3, 2)
    assert telemetry.failed_record_ids() == [ids(event)[1]]


def test_a_later_block_captures_only_its_own_batches() -> None:
    """Each block starts empty, whatever earlier blocks captured."""
    with capture_telemetry() as first:
        process(sqs_event(["ok"], seed=15))
    event = sqs_event(["fail", "ok"], seed=16)
    with capture_telemetry() as second:
        process(event)
    assert first.counter("messaging.client.consumed.messages") == 1
    assert first.failed_record_ids() == []
    assert second.failed_record_ids() == [ids(event)[0]]
    assert len(second.record_spans()) == 2


def test_nested_blocks_capture_into_the_innermost() -> None:
    """Inside a nested block batches go to the inner capture; after it, to the outer one again."""
    inner_event = sqs_event(["fail"], seed=17)
    outer_event = sqs_event(["ok", "fail"], seed=18)
    with capture_telemetry() as outer:
        with capture_telemetry() as inner:
            process(sqs_event(["fail", "ok"], seed=19))
            process_partial_response(
                inner_event, handler, BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
            )
        process(outer_event)
    assert len(inner.batch_spans()) == 2
    assert ids(inner_event)[0] in inner.failed_record_ids()
    assert outer.failed_record_ids() == [ids(outer_event)[1]]
    assert outer.histogram_count("batchlens.batch.size") == 1


def test_global_tracer_provider_is_untouched() -> None:
    """The block neither installs nor replaces the OpenTelemetry global tracer provider."""
    before = trace.get_tracer_provider()
    with capture_telemetry() as telemetry:
        assert trace.get_tracer_provider() is before
        assert telemetry.tracer_provider is not before
    assert trace.get_tracer_provider() is before


def test_explicit_providers_in_telemetry_win(telemetry: Telemetry, span_exporter: InMemorySpanExporter) -> None:
    """A processor given its own tracer provider keeps using it inside the block."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    with capture_telemetry() as captured:
        process(sqs_event(["ok", "fail"], seed=20), processor)
    assert captured.spans == []
    assert len(span_exporter.get_finished_spans()) == 3


def test_disabled_tracing_emits_no_spans_but_still_counts() -> None:
    """With tracing switched off only metrics and logs are captured."""
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry(tracing=False, sentry=False))
    with capture_telemetry() as telemetry:
        process(sqs_event(["ok", "fail"], seed=21), processor)
    assert telemetry.spans == []
    assert telemetry.failed_record_ids() == []
    assert telemetry.counter("batchlens.records.failed") == 1
    assert len(telemetry.log_events("record failed")) == 1


def test_exception_in_the_block_propagates_and_restores() -> None:
    """An exception inside the block propagates, and the next block still captures normally."""
    with pytest.raises(RuntimeError, match="boom"), capture_telemetry():
        raise RuntimeError("boom")
    with capture_telemetry() as telemetry:
        process(sqs_event(["ok"], seed=22))
    assert len(telemetry.record_spans()) == 1


# -- id generator ------------------------------------------------------------------------------------------------------
class CountingIds(IdGenerator):
    """Predictable ids: 1, 2, 3..."""

    def __init__(self) -> None:
        self.next = 0

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 1
        return self.next


class SeededIds(IdGenerator):
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.rng.getrandbits(128) or 1


def test_id_generator_is_used_for_spans() -> None:
    """capture_telemetry(id_generator=...) gives the captured spans the generator's ids."""
    with capture_telemetry(id_generator=CountingIds()) as telemetry:
        process(sqs_event(["ok", "ok"], seed=23))
    (batch,) = telemetry.batch_spans()
    assert batch.context.trace_id == 1
    assert batch.context.span_id == 2
    assert sorted(s.context.span_id for s in telemetry.record_spans()) == [3, 4]


def test_seeded_id_generator_repeats_trace_ids() -> None:
    """Two captures with equally seeded generators produce the same trace and span ids."""
    runs: list[CapturedTelemetry] = []
    for _ in range(2):
        with capture_telemetry(id_generator=SeededIds(99)) as telemetry:
            process(sqs_event(["ok", "fail"], seed=24))
        runs.append(telemetry)
    first, second = ([(s.context.trace_id, s.context.span_id) for s in run.spans] for run in runs)
    assert first == second
