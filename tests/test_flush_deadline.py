"""The flush deadline: one wall-clock budget, min(remaining - 300 ms, 5 s), whatever the exporters do.

Everything here uses real SDK parts (TracerProvider, BatchSpanProcessor, MeterProvider, the OTLP/HTTP exporters);
only the exporters' far end misbehaves. Each hung export is released at test end, so no test leaves a thread
waiting for long.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import _collector_support as collectors
from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    Telemetry,
    async_batch_processor,
    async_process_partial_response,
    batch_processor,
    process_partial_response,
)
from batchlens._telemetry import _health
from batchlens._telemetry._flush import FlushTask, flush_budget_ms, flush_within
from batchlens.telemetry import configure
from batchlens.testing import lambda_context, sqs_event
from batchlens.warnings import BatchlensDeprecationWarning

# 2,000 ms remaining leaves a 1,700 ms budget; 100 ms on top covers the batch itself and a loaded machine.
LIMIT_S = 1.8
FLUSH_THREAD = "BatchlensFlush-"


class HangingSpanExporter(SpanExporter):
    """Keeps spans; while ``hang`` is set, export() blocks until ``release`` is set (at most 30 s)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.hang = threading.Event()
        self.release = threading.Event()
        self.hang.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.hang.is_set():
            self.release.wait(30)
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def recover(self) -> None:
        self.hang.clear()
        self.release.set()

    def shutdown(self) -> None:
        self.recover()


class SlowMetricExporter(MetricExporter):
    """Keeps exported metric data; export() blocks until ``release`` is set or ``delay_s`` has passed."""

    def __init__(self, delay_s: float = 30.0) -> None:
        super().__init__(preferred_temporality={}, preferred_aggregation={})
        self.delay_s = delay_s
        self.release = threading.Event()
        self.exported: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.release.wait(self.delay_s)
        self.exported.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.release.set()

    def record_counts(self) -> int:
        """The latest exported value of messaging.client.consumed.messages (cumulative), summed over its points."""
        total = 0
        for data in self.exported[-1:]:
            for resource in data.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name == "messaging.client.consumed.messages":
                            total += sum(int(p.value) for p in metric.data.data_points)  # type: ignore[union-attr]
        return total


class SlowSpanExporter(SpanExporter):
    """Keeps spans after sleeping ``delay_s`` per export (slow, but it finishes)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(self.delay_s)
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def hanging() -> Iterator[HangingSpanExporter]:
    """A span exporter that hangs until the test ends (or calls ``recover()``)."""
    exporter = HangingSpanExporter()
    yield exporter
    exporter.recover()


@pytest.fixture
def slow_metrics() -> Iterator[SlowMetricExporter]:
    """A metric exporter that hangs until the test ends."""
    exporter = SlowMetricExporter()
    yield exporter
    exporter.release.set()


def span_provider(exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def metric_provider(exporter: MetricExporter) -> MeterProvider:
    # a very long interval: only the flush exports
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(metric_readers=[reader])


def handler(record: Any) -> str:
    if "fail" in record.body:
        raise ValueError("no")
    return "ok"


async def async_handler(record: Any) -> str:
    return handler(record)


def timed(function: Any, *args: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = function(*args)
    return result, time.monotonic() - started


def cut_reports(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "batchlens" and "flush cut" in r.getMessage()]


def recoveries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "batchlens_recovered")]


def wait_for(condition: Any, timeout_s: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; the last result."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


def flush_threads(name: str) -> set[threading.Thread]:
    """The live flush workers for ``name`` (workers of earlier tests included: they idle for a minute)."""
    return {t for t in threading.enumerate() if t.name == FLUSH_THREAD + name and t.is_alive()}


# -- the budget -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("remaining", "budget"),
    [(2000, 1700), (900_000, 5000), (100, 0), (math.nan, 5000), (math.inf, 5000), (None, 5000)],
)
def test_budget_is_remaining_minus_margin_capped_at_5_s(remaining: float | None, budget: int) -> None:
    """The budget is min(remaining - 300 ms, 5 s); no context, NaN or infinity give the 5 s cap."""
    context = None if remaining is None else lambda_context(remaining_ms=lambda: remaining, frozen=True)  # type: ignore[arg-type, return-value]
    assert flush_budget_ms(context) == budget


# -- a hanging exporter ---------------------------------------------------------------------------------------------
def test_hanging_span_exporter_does_not_hold_the_invocation(hanging, caplog):
    """A span exporter that never returns: process_partial_response returns within the 1.7 s budget, reports once."""
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(tracer_provider=span_provider(hanging), metrics=False, logging=False)
    )
    caplog.set_level(logging.WARNING, logger="batchlens")
    event = sqs_event(["ok", "fail", "ok"], seed=1)
    response, elapsed = timed(
        process_partial_response, event, handler, processor, lambda_context(remaining_ms=2000, frozen=True)
    )
    assert elapsed <= LIMIT_S, elapsed
    assert [item["itemIdentifier"] for item in response["batchItemFailures"]] == [event["Records"][1]["messageId"]]
    (report,) = cut_reports(caplog)
    assert "tracer_provider" in report.getMessage()
    assert "meter_provider" not in report.getMessage()
    assert report.batchlens_flush_cut == ["tracer_provider"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["async_function", "sync_decorator", "async_decorator"])
def test_every_entry_point_keeps_the_deadline(hanging, kind):
    """async_process_partial_response and both deprecated decorators flush within the same deadline."""
    telemetry = Telemetry(tracer_provider=span_provider(hanging), metrics=False, logging=False)
    event, context = sqs_event(count=2, seed=2), lambda_context(remaining_ms=800, frozen=True)
    started = time.monotonic()
    if kind == "async_function":
        async_process_partial_response(
            event, async_handler, AsyncBatchProcessor(EventType.SQS, telemetry=telemetry), context
        )
    else:
        decorator = batch_processor if kind == "sync_decorator" else async_batch_processor
        processor = (BatchProcessor if kind == "sync_decorator" else AsyncBatchProcessor)(
            EventType.SQS, telemetry=telemetry
        )
        chosen = handler if kind == "sync_decorator" else async_handler

        @decorator(record_handler=chosen, processor=processor)
        def lambda_handler(event: Any, context: Any) -> str:
            return "done"

        with pytest.warns(BatchlensDeprecationWarning):
            assert lambda_handler(event, context) == "done"
    assert time.monotonic() - started <= 0.65  # a 500 ms budget


def test_two_slow_providers_share_one_budget(caplog):
    """Spans and metrics that each take 1.2 s to export are flushed at once: done in one budget, not 2.4 s."""
    spans = SlowSpanExporter(1.2)
    metrics = SlowMetricExporter(delay_s=1.2)
    telemetry = Telemetry(tracer_provider=span_provider(spans), meter_provider=metric_provider(metrics), logging=False)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    caplog.set_level(logging.WARNING, logger="batchlens")
    _, elapsed = timed(
        process_partial_response,
        sqs_event(count=3, seed=3),
        handler,
        processor,
        lambda_context(remaining_ms=2000, frozen=True),
    )
    assert elapsed <= LIMIT_S, elapsed
    assert len(spans.spans) == 4  # batch span + 3 record spans, exported before returning
    assert metrics.record_counts() == 3
    assert cut_reports(caplog) == []


def test_two_hanging_providers_are_both_cut_in_one_report(hanging, slow_metrics, caplog):
    """Spans and metrics both hang: one budget for both, one warning naming both."""
    telemetry = Telemetry(
        tracer_provider=span_provider(hanging), meter_provider=metric_provider(slow_metrics), logging=False
    )
    caplog.set_level(logging.WARNING, logger="batchlens")
    _, elapsed = timed(
        process_partial_response,
        sqs_event(count=2, seed=4),
        handler,
        BatchProcessor(EventType.SQS, telemetry=telemetry),
        lambda_context(remaining_ms=2000, frozen=True),
    )
    assert elapsed <= LIMIT_S, elapsed
    (report,) = cut_reports(caplog)
    assert sorted(report.batchlens_flush_cut) == ["meter_provider", "tracer_provider"]  # type: ignore[attr-defined]


# -- the next invocation --------------------------------------------------------------------------------------------
def test_invocations_after_a_cut_flush_work_and_export_once_the_exporter_recovers(hanging, slow_metrics, caplog):
    """After a cut flush, warm invocations process normally; their spans and metrics arrive once export recovers."""
    telemetry = Telemetry(
        tracer_provider=span_provider(hanging), meter_provider=metric_provider(slow_metrics), logging=False
    )
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    caplog.set_level(logging.WARNING, logger="batchlens")
    before = {name: flush_threads(name) for name in ("tracer_provider", "meter_provider")}

    def invoke(seed: int) -> tuple[dict[str, Any], float]:
        event = sqs_event(["ok", "fail"], seed=seed)
        return timed(
            process_partial_response, event, handler, processor, lambda_context(remaining_ms=1000, frozen=True)
        )

    for seed in (10, 11, 12):  # the first flush hangs; the next two arrive while it is still stuck
        response, elapsed = invoke(seed)
        # the first waits its whole 700 ms budget; the targets are failing after it, so the others wait 40 ms
        assert elapsed <= (0.9 if seed == 10 else 0.35), elapsed
        assert len(response["batchItemFailures"]) == 1
    (report,) = cut_reports(caplog)  # one warning when the targets fail, none each invocation after it
    assert sorted(report.batchlens_flush_failing) == ["meter_provider", "tracer_provider"]  # type: ignore[attr-defined]
    # a stuck target keeps one flush thread, not one per invocation
    assert len(flush_threads("tracer_provider") - before["tracer_provider"]) == 1
    assert len(flush_threads("meter_provider") - before["meter_provider"]) == 1

    hanging.recover()
    slow_metrics.release.set()
    caplog.clear()
    response, elapsed = invoke(13)
    assert elapsed <= 0.35, elapsed
    assert cut_reports(caplog) == []
    # the flush of invocation 13 finishes in the background (the invocation waited 40 ms for it): every span of the
    # four invocations (a batch span and two record spans each) is exported, and each target says it recovered once
    assert wait_for(lambda: len(hanging.spans) == 12 and slow_metrics.record_counts() == 8), (
        len(hanging.spans),
        slow_metrics.record_counts(),
    )
    assert wait_for(lambda: len(recoveries(caplog)) == 2)
    assert sorted(r.batchlens_recovered for r in recoveries(caplog)) == ["meter_provider", "tracer_provider"]  # type: ignore[attr-defined]
    caplog.clear()
    _, elapsed = invoke(14)  # good again: waited for in full, exported before the invocation returns
    assert len(hanging.spans) == 15
    assert caplog.records == []


def test_processors_built_per_invocation_share_flush_workers(tracer_provider, meter_provider):
    """Fifty processors (one per invocation) over the same providers start no thread per processor."""
    names = ("tracer_provider", "meter_provider", "LoggingObserver", "logs")
    before = {name: flush_threads(name) for name in names}
    telemetry = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    for seed in range(50):
        processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
        process_partial_response(sqs_event(count=1, seed=seed), handler, processor, lambda_context(frozen=True))
    assert all(len(flush_threads(name) - before[name]) <= 1 for name in names)


# -- a collector that accepts connections and never answers ---------------------------------------------------------
@pytest.fixture
def silent_collector() -> Iterator[str]:
    """A TCP endpoint on 127.0.0.1 that accepts connections and never answers; closed (with them) at test end."""
    with collectors.silent_collector() as url:
        yield url


@pytest.fixture
def otlp_handle(silent_collector: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """configure(traces="otlp", metrics="otlp") pointed at the silent collector (providers not global)."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", silent_collector)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    handle = configure(service_name="flush-test", traces="otlp", metrics="otlp", logs="none", set_global=False)
    yield handle
    handle.shutdown(timeout_millis=200)


def test_silent_otlp_collector_does_not_hold_the_invocation(otlp_handle, caplog):
    """Real OTLP/HTTP exporters facing a collector that never answers: the invocation returns within budget."""
    telemetry = Telemetry(
        tracer_provider=otlp_handle.tracer_provider, meter_provider=otlp_handle.meter_provider, logging=False
    )
    caplog.set_level(logging.WARNING, logger="batchlens")
    event = sqs_event(["ok", "fail"], seed=20)
    response, elapsed = timed(
        process_partial_response,
        event,
        handler,
        BatchProcessor(EventType.SQS, telemetry=telemetry),
        lambda_context(remaining_ms=2000, frozen=True),
    )
    assert elapsed <= LIMIT_S, elapsed
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][1]["messageId"]}]
    (report,) = cut_reports(caplog)
    assert "tracer_provider" in report.batchlens_flush_cut  # type: ignore[attr-defined]


def test_handle_flush_is_bounded_in_wall_time(otlp_handle):
    """TelemetryHandle.flush(context=...) returns False within the budget when the collector never answers."""
    otlp_handle.tracer_provider.get_tracer("t").start_span("s").end()
    ok, elapsed = timed(lambda: otlp_handle.flush(context=lambda_context(remaining_ms=2000, frozen=True)))
    assert ok is False
    assert elapsed <= LIMIT_S, elapsed
    ok, elapsed = timed(lambda: otlp_handle.flush(timeout_millis=300))
    assert ok is False
    assert elapsed <= 0.5, elapsed


def test_handle_flush_without_arguments_uses_the_default_budget(hanging, monkeypatch):
    """Without a context or timeout, TelemetryHandle.flush() gives up after the default budget (5 s; 0.4 s here)."""
    import batchlens.telemetry

    monkeypatch.setattr(batchlens.telemetry, "DEFAULT_FLUSH_MS", 400)
    handle = configure(traces=hanging, metrics="none", logs="none", set_global=False)
    handle.tracer_provider.get_tracer("t").start_span("s").end()
    ok, elapsed = timed(handle.flush)
    assert ok is False
    assert 0.35 <= elapsed <= 0.6, elapsed
    hanging.recover()
    handle.shutdown(timeout_millis=1000)
    assert [s.name for s in hanging.spans] == ["s"]


# -- flush_within itself --------------------------------------------------------------------------------------------
def test_flush_within_runs_tasks_at_once_and_passes_the_time_left():
    """Every task starts at once with (about) the whole budget; a raising task is handed to on_error."""
    seen: dict[str, int] = {}
    errors: list[tuple[int, str]] = []

    def recording(name: str) -> Any:
        def flush(timeout: int) -> None:
            seen[name] = timeout
            time.sleep(0.3)

        return flush

    def raising(timeout: int) -> None:
        raise RuntimeError("exporter broke")

    targets = [object(), object(), object()]
    tasks = [
        FlushTask("a", targets[0], recording("a")),
        FlushTask("b", targets[1], recording("b")),
        FlushTask("c", targets[2], raising),
    ]
    cut, elapsed = timed(lambda: flush_within(tasks, 1000, on_error=lambda i, e: errors.append((i, str(e)))))
    assert cut == []
    assert elapsed < 0.55, elapsed  # 2 x 0.3 s sequentially
    assert all(900 <= timeout <= 1000 for timeout in seen.values()), seen
    assert errors == [(2, "exporter broke")]


def test_one_target_runs_one_flush_and_at_most_one_waits():
    """Flushes of a stuck target do not pile up: later requests join the one waiting, which runs after recovery."""
    release = threading.Event()
    calls: list[str] = []
    target = object()

    def stuck(timeout: int) -> None:
        calls.append("stuck")
        release.wait(30)

    def later(label: str) -> Any:
        return lambda timeout: calls.append(label)

    try:
        assert flush_within([FlushTask("tracer_provider", target, stuck)], 100) == ["tracer_provider"]
        for label in ("second", "third", "fourth"):
            assert flush_within([FlushTask("tracer_provider", target, later(label))], 50) == ["tracer_provider"]
        assert calls == ["stuck"]
    finally:
        release.set()
    # the target is failing since its cut: "fifth" is not waited for while "second" still runs, but it runs (or
    # joins "second", giving it a deadline it meets), and a flush finished in time makes the target good again
    flush_within([FlushTask("tracer_provider", target, later("fifth"))], 1000)
    assert wait_for(lambda: not _health.is_bad(target))
    assert flush_within([FlushTask("tracer_provider", target, later("sixth"))], 1000) == []
    # the waiting flush ran once for the three that joined it
    assert calls[:2] == ["stuck", "second"]
    assert calls[2:] in (["sixth"], ["fifth", "sixth"])


def test_no_time_left_cuts_without_starting_anything(caplog):
    """A budget of 0 ms starts no flush and reports every target as cut."""
    calls: list[int] = []
    caplog.set_level(logging.WARNING, logger="batchlens")
    assert flush_within([FlushTask("tracer_provider", object(), calls.append)], 0) == ["tracer_provider"]
    assert calls == []
    assert len(cut_reports(caplog)) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_flushes_with_workers_of_its_own():
    """After a fork (the parent's workers do not exist in the child), the child's flushes still complete."""
    done: list[str] = []
    target = object()
    assert flush_within([FlushTask("tracer_provider", target, lambda timeout: done.append("parent"))], 1000) == []
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        cut = flush_within([FlushTask("tracer_provider", target, lambda timeout: done.append("child"))], 1000)
        os._exit(0 if cut == [] and done == ["parent", "child"] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
