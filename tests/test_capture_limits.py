"""Tests for the bounds of response capture: memory while measuring huge results, and the per-batch byte budget."""

from __future__ import annotations

import json
import threading
import tracemalloc
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _capture_support import full_json, make_capture
from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens._telemetry.capture import (
    RESPONSE,
    RESPONSE_SIZE,
    RESPONSE_TRUNCATED,
    CaptureBudget,
)
from batchlens.testing import sqs_event


# -- memory bounds ------------------------------------------------------------------------------------------------
def peak_during(fn: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_100_mb_string_result_is_measured_without_copying_it():
    """Capturing a 100 MB string allocates well under 2 MB, yet reports its full size."""
    value = "x" * 100_000_000
    capture = make_capture()
    attrs, peak = peak_during(lambda: capture.attributes(value, capture.new_budget()))
    assert peak < 2_000_000
    assert attrs[RESPONSE_SIZE] == 100_000_002
    assert attrs[RESPONSE] == '"' + "x" * 1023
    assert attrs[RESPONSE_TRUNCATED] is True


def test_a_large_multibyte_string_inside_a_dict_is_bounded_too():
    """A 20-million-character non-ASCII string nested in a dict: bounded memory, exact UTF-8 size."""
    value = {"text": "ü€" * 10_000_000}
    capture = make_capture()
    attrs, peak = peak_during(lambda: capture.attributes(value, capture.new_budget()))
    assert peak < 2_000_000
    assert attrs[RESPONSE_SIZE] == len('{"text": ""}') + 10_000_000 * 5


def test_large_bytes_are_bounded():
    """A 20 MB bytes result is measured slice by slice: bounded memory, exact repr size."""
    blob = b"\x00'" * 10_000_000
    capture = make_capture()
    attrs, peak = peak_during(lambda: capture.attributes(blob, capture.new_budget()))
    assert peak < 2_000_000
    assert attrs[RESPONSE_SIZE] == len(repr(blob))
    assert attrs[RESPONSE] == repr(blob)[:1024]


def test_long_lists_are_bounded():
    """A list whose JSON is 4 MB is measured element by element without building that text."""
    numbers = [10**30 + i for i in range(120_000)]
    capture = make_capture()
    attrs, peak = peak_during(lambda: capture.attributes(numbers, capture.new_budget()))
    assert peak < 2_000_000
    assert attrs[RESPONSE_SIZE] == len(json.dumps(numbers)) > 3_900_000


# -- the batch budget -----------------------------------------------------------------------------------------------
def test_budget_is_shared_by_records_and_spent_records_capture_nothing():
    """Records draw on one budget: the one that crosses it is cut, later ones get size and truncated only."""
    capture = make_capture(capture_max_bytes_per_record=1024, capture_max_bytes_per_batch=1500)
    budget = capture.new_budget()
    value = "y" * 798  # 800 JSON bytes
    first = capture.attributes(value, budget)
    second = capture.attributes(value, budget)
    third = capture.attributes(value, budget)
    assert (first[RESPONSE_TRUNCATED], len(first[RESPONSE])) == (False, 800)
    assert (second[RESPONSE_TRUNCATED], len(second[RESPONSE])) == (True, 700)
    assert third == {RESPONSE_SIZE: 800, RESPONSE_TRUNCATED: True}
    assert budget.remaining == 0
    assert capture.new_budget().remaining == 1500  # every batch starts afresh


def test_budget_cut_that_lands_inside_a_character_returns_the_spare_bytes():
    """When the remaining budget ends inside a character, the unused bytes go back to the budget."""
    capture = make_capture(capture_max_bytes_per_batch=10)
    budget = capture.new_budget()
    budget.take(1)  # leave 9 bytes: '"' + 4 two-byte characters fit exactly
    attrs = capture.attributes("éééééé", budget)
    assert attrs[RESPONSE] == '"éééé'
    assert budget.remaining == 0
    budget = CaptureBudget(10)
    budget.take(2)  # 8 bytes: '"' + 3 characters = 7 bytes, one byte is given back
    assert capture.attributes("éééééé", budget)[RESPONSE] == '"ééé'
    assert budget.remaining == 1


def test_budget_is_exact_under_concurrent_records():
    """Eight threads capturing 4,000 results never exceed the batch budget, and spend all of it."""
    capture = make_capture(capture_max_bytes_per_batch=32768)
    budget = capture.new_budget()
    captured: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for i in range(500):
            attrs = capture.attributes({"i": i, "pad": "z" * 80}, budget)
            with lock:
                captured.append(len(attrs.get(RESPONSE, "").encode()))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(captured) == 32768
    assert budget.remaining == 0


# -- end to end through a processor with the tracing observer ---------------------------------------------------------
def record_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    spans = [s for s in exporter.get_finished_spans() if "messaging.message.id" in (s.attributes or {})]
    return sorted(spans, key=lambda s: s.start_time or 0)


def tracing_only(tracer_provider: TracerProvider, **settings: Any) -> Telemetry:
    return Telemetry(tracing=True, metrics=False, logging=False, tracer_provider=tracer_provider, **settings)


def padded(record: Any) -> dict[str, Any]:
    return {"id": record.message_id, "pad": "p" * 100}


def check_budget(spans: list[ReadableSpan], budget: int, per_record: int) -> list[int]:
    sizes = []
    for span in spans:
        attrs = span.attributes or {}
        assert attrs[RESPONSE_SIZE] > 0
        text = attrs.get(RESPONSE)
        sizes.append(0 if text is None else len(str(text).encode()))
        assert sizes[-1] <= per_record
        if sizes[-1] < attrs[RESPONSE_SIZE]:
            assert attrs[RESPONSE_TRUNCATED] is True
    assert sum(sizes) <= budget
    return sizes


def test_budget_is_spent_across_a_2000_record_batch(tracer_provider, span_exporter):
    """In a 2,000-record batch the captured bytes stop at the 32 KB budget; later spans carry size only."""
    processor = BatchProcessor(EventType.SQS, telemetry=tracing_only(tracer_provider))
    event = sqs_event(count=2000, seed=1)
    process_partial_response(event, padded, processor)
    spans = record_spans(span_exporter)
    assert len(spans) == 2000
    sizes = check_budget(spans, 32768, 1024)
    expected = len(full_json(padded_for(event["Records"][0])))
    assert sum(sizes) == 32768
    spent_at = sizes.index(0)
    assert all(size == expected for size in sizes[: spent_at - 1])
    assert all(size == 0 for size in sizes[spent_at:])
    for span in spans[spent_at:]:
        assert RESPONSE not in (span.attributes or {})
        assert span.attributes[RESPONSE_TRUNCATED] is True  # type: ignore[index]
        assert span.attributes[RESPONSE_SIZE] == expected  # type: ignore[index]


def padded_for(raw: dict[str, Any]) -> dict[str, Any]:
    return {"id": raw["messageId"], "pad": "p" * 100}


def test_each_batch_gets_a_fresh_budget(tracer_provider, span_exporter):
    """The second batch through the same processor captures again."""
    processor = BatchProcessor(EventType.SQS, telemetry=tracing_only(tracer_provider, capture_max_bytes_per_batch=300))
    for seed in (1, 2):
        process_partial_response(sqs_event(count=5, seed=seed), padded, processor)
    sizes = [len(str((s.attributes or {}).get(RESPONSE, "")).encode()) for s in record_spans(span_exporter)]
    assert sum(sizes[:5]) == 300
    assert sum(sizes[5:]) == 300


def test_threaded_batch_respects_the_budget(tracer_provider, span_exporter):
    """With a thread pool the batch still captures at most the budget, all of it."""
    processor = BatchProcessor(EventType.SQS, telemetry=tracing_only(tracer_provider), max_workers=8)
    process_partial_response(sqs_event(count=2000, seed=3), padded, processor)
    assert sum(check_budget(record_spans(span_exporter), 32768, 1024)) == 32768


async def async_padded(record: Any) -> dict[str, Any]:
    return padded(record)


def test_concurrent_async_batch_respects_the_budget(tracer_provider, span_exporter):
    """Concurrent async records share the budget the same way."""
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=tracing_only(tracer_provider))
    async_process_partial_response(sqs_event(count=1000, seed=4), async_padded, processor)
    assert sum(check_budget(record_spans(span_exporter), 32768, 1024)) == 32768


def test_record_span_captures_a_multibyte_result_cut_at_1024_bytes(tracer_provider, span_exporter):
    """A real record span gets the capture cut on a character boundary, with the full size."""
    processor = BatchProcessor(EventType.SQS, telemetry=tracing_only(tracer_provider))
    process_partial_response(sqs_event(count=1, seed=5), lambda record: "a" * 1020 + "😀" * 100, processor)
    (span,) = record_spans(span_exporter)
    attrs = span.attributes or {}
    assert attrs[RESPONSE] == '"' + "a" * 1020
    assert attrs[RESPONSE_SIZE] == 1022 + 400
    assert attrs[RESPONSE_TRUNCATED] is True


def test_failed_records_capture_nothing_and_capture_off_adds_no_attributes(tracer_provider, span_exporter):
    """Failed records have no response attributes; with capture off neither do successful ones."""

    def handler(record: Any) -> str:
        if "fail" in record.body:
            raise ValueError("bad")
        return "ok"

    event = sqs_event(["ok", "fail"], seed=6)
    process_partial_response(event, handler, BatchProcessor(EventType.SQS, telemetry=tracing_only(tracer_provider)))
    ok, failed = record_spans(span_exporter)
    assert (ok.attributes or {})[RESPONSE] == '"ok"'
    assert RESPONSE_SIZE not in (failed.attributes or {})
    span_exporter.clear()
    off = tracing_only(tracer_provider, capture_response=False)
    process_partial_response(event, handler, BatchProcessor(EventType.SQS, telemetry=off))
    for span in record_spans(span_exporter):
        assert not any(key.startswith("batchlens.record.response") for key in span.attributes or {})
