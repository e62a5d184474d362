"""Flush before the Lambda freeze: when process_partial_response flushes, and with what timeout."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens.testing import lambda_context, sqs_event


class FlushRecorder(SpanProcessor):
    """A span processor that only remembers the timeouts it was asked to flush within."""

    def __init__(self) -> None:
        self.timeouts: list[int] = []

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.timeouts.append(timeout_millis)
        return True


def handler(record: Any) -> str:
    return "ok"


async def async_handler(record: Any) -> str:
    return "ok"


def run(flush: str, context: Any, *, use_async: bool = False) -> list[int]:
    provider = TracerProvider()
    recorder = FlushRecorder()
    provider.add_span_processor(recorder)
    telemetry = Telemetry(tracer_provider=provider, metrics=False, logging=False, flush=flush)
    event = sqs_event(count=2, seed=5)
    if use_async:
        async_process_partial_response(
            event, async_handler, AsyncBatchProcessor(EventType.SQS, telemetry=telemetry), context
        )
    else:
        process_partial_response(event, handler, BatchProcessor(EventType.SQS, telemetry=telemetry), context)
    return recorder.timeouts


def test_auto_without_a_context_does_not_flush() -> None:
    """flush=auto outside Lambda (no context) leaves exporting to the application."""
    assert run("auto", None) == []


@pytest.mark.parametrize("use_async", [False, True])
def test_auto_with_a_context_flushes_once_within_the_remaining_time(use_async: bool) -> None:
    """flush=auto with a Lambda context flushes once, bounded by the remaining time minus the safety margin."""
    (timeout,) = run("auto", lambda_context(remaining_ms=1500, frozen=True), use_async=use_async)
    assert 1100 <= timeout <= 1200


def test_never_does_not_flush_even_in_lambda() -> None:
    """flush=never never flushes."""
    assert run("never", lambda_context(remaining_ms=10_000, frozen=True)) == []


def test_always_flushes_without_a_context_with_the_default_cap() -> None:
    """flush=always flushes after every batch; without a context the timeout is the 5 s cap."""
    (timeout,) = run("always", None)
    assert 4900 <= timeout <= 5000


def test_flush_timeout_never_exceeds_the_cap_and_never_goes_negative() -> None:
    """A long remaining time is capped at 5 s; an almost-expired invocation gets no time to flush (never a negative).

    Flushing past the deadline would time the invocation out and make Lambda retry a batch that was processed.
    """
    (long_timeout,) = run("auto", lambda_context(remaining_ms=900_000, frozen=True))
    assert 4900 <= long_timeout <= 5000
    assert run("auto", lambda_context(remaining_ms=100, frozen=True)) in ([], [0])


def test_flush_happens_even_when_the_whole_batch_fails() -> None:
    """The spans of a batch that raises BatchProcessingError are flushed too."""
    from batchlens import BatchProcessingError

    provider = TracerProvider()
    recorder = FlushRecorder()
    provider.add_span_processor(recorder)
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(tracer_provider=provider, metrics=False, logging=False)
    )

    def failing(record: Any) -> None:
        raise ValueError("nope")

    with pytest.raises(BatchProcessingError):
        process_partial_response(
            sqs_event(count=2, seed=6), failing, processor, lambda_context(remaining_ms=3000, frozen=True)
        )
    assert len(recorder.timeouts) == 1
