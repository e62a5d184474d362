"""The flush-time span processor: spans wait for the flush, which exports them in the flushing thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

from batchlens._telemetry._span_flush import FlushSpanProcessor


class Recorder(SpanExporter):
    """Keeps each export's span names and the thread it ran in; raises when told to."""

    def __init__(self) -> None:
        self.exports: list[tuple[list[str], str]] = []
        self.fail = False
        self.shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.fail:
            raise OSError("exporter fault")
        self.exports.append(([s.name for s in spans], threading.current_thread().name))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.shut_down = True


class RecordOnly(Sampler):
    """Records every span without sampling it (recording, but not sampled)."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "RecordOnly"


def pipeline(max_batch: int = 512, sampler: Sampler | None = None) -> tuple[TracerProvider, Recorder]:
    recorder = Recorder()
    provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    provider.add_span_processor(FlushSpanProcessor(recorder, max_batch))
    return provider, recorder


def end_spans(provider: TracerProvider, *names: str) -> None:
    tracer = provider.get_tracer("test")
    for name in names:
        tracer.start_span(name).end()


def test_spans_wait_for_the_flush_which_exports_them_in_the_calling_thread() -> None:
    """Nothing leaves before force_flush; then one export, in this thread, with every span in order."""
    provider, recorder = pipeline()
    end_spans(provider, "a", "b", "c")
    assert recorder.exports == []
    assert provider.force_flush() is True
    assert recorder.exports == [(["a", "b", "c"], threading.current_thread().name)]
    assert provider.force_flush() is True  # nothing left: no empty export
    assert len(recorder.exports) == 1


def test_a_full_batch_leaves_at_once() -> None:
    """With max_export_batch_size spans waiting, the span that fills the batch exports it."""
    provider, recorder = pipeline(max_batch=2)
    end_spans(provider, "a", "b", "c")
    assert [names for names, _thread in recorder.exports] == [["a", "b"]]
    provider.force_flush()
    assert [names for names, _thread in recorder.exports] == [["a", "b"], ["c"]]


def test_recorded_but_unsampled_spans_are_not_kept() -> None:
    """Only sampled spans are exported: X-Ray would not record the others."""
    provider, recorder = pipeline(sampler=RecordOnly())
    end_spans(provider, "a")
    provider.force_flush()
    assert recorder.exports == []


def test_an_exporter_fault_never_reaches_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    """An exporter that raises makes the flush return False and is logged; the spans are not kept for retry."""
    provider, recorder = pipeline(max_batch=1)
    recorder.fail = True
    with caplog.at_level(logging.ERROR, logger="batchlens.telemetry"):
        end_spans(provider, "a")  # fills the batch: exported, and failing, inside end()
        end_spans(provider, "b")
    assert "exporting spans failed" in caplog.text
    processor = FlushSpanProcessor(recorder)
    processor.on_end(_ended(provider, "c"))
    assert processor.force_flush() is False


def test_shutdown_exports_what_waits_then_stops_the_exporter() -> None:
    """Spans ended before shutdown leave with it; later ones are ignored."""
    provider, recorder = pipeline()
    end_spans(provider, "a")
    provider.shutdown()
    assert [names for names, _thread in recorder.exports] == [["a"]]
    assert recorder.shut_down is True


def _ended(provider: TracerProvider, name: str) -> ReadableSpan:
    span = provider.get_tracer("test").start_span(name)
    span.end()
    assert isinstance(span, ReadableSpan)
    return span
