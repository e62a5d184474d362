"""A dead exporter costs one invocation, not all of them: per-target health decides how long a flush waits.

A target whose flush was cut at the deadline, or whose watched exporter fails, is waited for at most 40 ms until one
of its exports succeeds again; one warning says it fails, one says it recovered, and the exporter's own retry lines
print once per failing period. The exporters are fakes (hanging on an Event, raising, returning FAILURE) and the
real OTLP/HTTP exporter facing a closed port and a socket that accepts and never answers, on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import _collector_support as collectors
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._telemetry import _health
from batchlens._telemetry._flush import FlushTask, flush_within
from batchlens.telemetry import TelemetryHandle, configure
from batchlens.testing import lambda_context, sqs_event

# 3,000 ms remaining leaves a 2,700 ms flush budget (the measurement: 2.70 s per invocation without health)
REMAINING_MS = 3000
WARM = 20
# the target is <= 50 ms over traces="none"; asserted generously for a loaded 2-core machine
EXTRA_LIMIT_S = 0.15
OTLP_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


class FakeSpanExporter(SpanExporter):
    """Keeps spans; ``mode`` decides each export: "ok", "fail" (FAILURE), "raise", or "hang" (until released)."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.spans: list[ReadableSpan] = []
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.mode == "hang":
            self.release.wait(30)
        elif self.mode == "fail":
            return SpanExportResult.FAILURE
        elif self.mode == "raise":
            raise ConnectionError("collector unreachable")
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def recover(self) -> None:
        self.mode = "ok"
        self.release.set()

    def shutdown(self) -> None:
        self.release.set()


def handler(record: Any) -> str:
    return "ok"


def invoke(handle: TelemetryHandle, seed: int) -> float:
    """One Lambda invocation of a two-record batch through ``handle``'s providers; its duration in seconds."""
    telemetry = Telemetry(tracer_provider=handle.tracer_provider, meter_provider=handle.meter_provider, logging=False)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    context = lambda_context(remaining_ms=REMAINING_MS, frozen=True)
    started = time.monotonic()
    process_partial_response(sqs_event(count=2, seed=seed), handler, processor, context)
    return time.monotonic() - started


def invocations(handle: TelemetryHandle, count: int = WARM + 1) -> list[float]:
    return [invoke(handle, seed) for seed in range(count)]


def wait_for(condition: Callable[[], object], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


def batchlens_warnings(caplog: pytest.LogCaptureFixture, key: str) -> list[logging.LogRecord]:
    """Warnings on the batchlens logger carrying the extra ``key`` (batchlens_flush_cut, _unhealthy, _recovered)."""
    return [r for r in caplog.records if r.name == "batchlens" and hasattr(r, key)]


def report(label: str, times: list[float]) -> None:
    warm = times[1:]
    print(f"\n{label}: first {times[0] * 1000:.1f} ms, warm max {max(warm) * 1000:.1f} ms, warm median "
          f"{sorted(warm)[len(warm) // 2] * 1000:.1f} ms")  # fmt: skip


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Clears OTEL_* variables; the returned function points OTLP/HTTP at an endpoint."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)

    def point_at(endpoint: str) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

    return point_at


@pytest.fixture
def handles() -> Iterator[list[TelemetryHandle]]:
    created: list[TelemetryHandle] = []
    yield created
    for handle in created:
        handle.shutdown(timeout_millis=300)


def make(handles: list[TelemetryHandle], traces: Any) -> TelemetryHandle:
    handle = configure(service_name="health", traces=traces, metrics="none", logs="none", set_global=False)
    handles.append(handle)
    return handle


@pytest.fixture
def baseline(handles: list[TelemetryHandle]) -> float:
    """The slowest of 20 warm invocations of the same handler with traces="none", in seconds."""
    times = invocations(make(handles, "none"))
    report('traces="none"', times)
    return max(times[1:])


# -- fakes ----------------------------------------------------------------------------------------------------------
def test_hanging_exporter_costs_the_first_invocation_only(handles, baseline, caplog):
    """An export that never returns: the first flush waits its budget, the next 20 at most 40 ms each, one warning."""
    exporter = FakeSpanExporter("hang")
    handle = make(handles, exporter)
    caplog.set_level(logging.WARNING)
    try:
        times = invocations(handle)
    finally:
        exporter.recover()
    report("hanging exporter", times)
    assert times[0] >= 2.5  # the 2,700 ms budget, cut
    assert max(times[1:]) - baseline < EXTRA_LIMIT_S, (times, baseline)
    (cut,) = batchlens_warnings(caplog, "batchlens_flush_cut")
    assert cut.batchlens_flush_failing == ["tracer_provider"]  # type: ignore[attr-defined]
    # released, the stuck export succeeds: one recovery warning, and spans queued meanwhile are exported
    assert wait_for(lambda: batchlens_warnings(caplog, "batchlens_recovered"))
    assert wait_for(lambda: len(exporter.spans) == 3 * (WARM + 1))
    (recovered,) = batchlens_warnings(caplog, "batchlens_recovered")
    assert recovered.batchlens_recovered == "tracer_provider"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("mode", "cause"), [("fail", "an export failed"), ("raise", "raised ConnectionError")])
def test_failing_exporter_warns_once_and_once_more_when_it_recovers(handles, caplog, mode, cause):
    """Exports that return FAILURE or raise: one warning naming the target and the cause, then one on recovery."""
    exporter = FakeSpanExporter(mode)
    handle = make(handles, exporter)
    caplog.set_level(logging.WARNING)
    for seed in range(5):
        invoke(handle, seed)
    (failing,) = batchlens_warnings(caplog, "batchlens_unhealthy")
    assert failing.batchlens_unhealthy == "tracer_provider"  # type: ignore[attr-defined]
    assert cause in failing.batchlens_unhealthy_cause  # type: ignore[attr-defined]
    assert "tracer_provider" in failing.getMessage()
    assert _health.is_bad(handle.tracer_provider)
    exporter.mode = "ok"
    invoke(handle, 5)  # waits at most 40 ms; its export succeeds in the background
    assert wait_for(lambda: not _health.is_bad(handle.tracer_provider))
    assert len(batchlens_warnings(caplog, "batchlens_recovered")) == 1
    caplog.clear()
    exported = len(exporter.spans)
    invoke(handle, 6)  # good again: its batch span and two record spans are exported before the invocation returns
    assert len(exporter.spans) == exported + 3
    assert not batchlens_warnings(caplog, "batchlens_unhealthy")
    assert not batchlens_warnings(caplog, "batchlens_recovered")


def test_a_flush_that_runs_out_its_timeout_marks_the_target_failing(caplog):
    """A flush returning at its timeout with work left (sentry_sdk.flush on a hung endpoint) makes the target bad."""
    target = object()
    fast = threading.Event()

    def sentry_like(timeout_ms: int) -> None:
        if not fast.is_set():
            time.sleep(timeout_ms / 1000)

    caplog.set_level(logging.WARNING)
    flush_within([FlushTask("sentry", target, sentry_like)], 200)
    assert wait_for(lambda: _health.is_bad(target), 2)
    started = time.monotonic()
    assert flush_within([FlushTask("sentry", target, sentry_like)], 2000) == ["sentry"]
    assert time.monotonic() - started < 0.15  # 40 ms, not 2 s
    assert len([r for r in caplog.records if "sentry" in r.getMessage()]) == 1  # one warning, cut or ran out
    fast.set()  # the endpoint answers: a later flush finishes in time and the target recovers
    assert wait_for(lambda: flush_within([FlushTask("sentry", target, sentry_like)], 2000) == [], 5)
    assert wait_for(lambda: not _health.is_bad(target), 2)
    assert len(batchlens_warnings(caplog, "batchlens_recovered")) == 1


def test_a_cut_of_a_failing_target_does_not_warn_again(caplog):
    """Only the first cut warns; later cuts of the still-failing target are debug lines."""
    target, release = object(), threading.Event()
    caplog.set_level(logging.WARNING)
    try:
        for _ in range(5):
            assert flush_within([FlushTask("tracer_provider", target, lambda timeout: release.wait(5))], 100) == [
                "tracer_provider"
            ]
    finally:
        release.set()
    assert len(batchlens_warnings(caplog, "batchlens_flush_cut")) == 1


# -- the real OTLP/HTTP exporter ------------------------------------------------------------------------------------
def retry_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == OTLP_LOGGER and r.getMessage().startswith("Transient error")]


def test_refusing_collector_costs_one_invocation_then_recovers(handles, baseline, otel_env, caplog, monkeypatch):
    """A closed port: the first refusal ends the wait; 20 warm invocations cost <= ~40 ms more than traces="none"."""
    port = collectors.closed_port()
    otel_env(f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")  # each failing export gives up after ~1 s of retries
    handle = make(handles, "otlp")
    caplog.set_level(logging.INFO)
    times = invocations(handle)
    report("refusing collector", times)
    # the first flush stops waiting once the exporter's first retry line marks the target failing (not after the
    # exporter's ~1 s of retries)
    assert times[0] < 0.6, times
    assert max(times[1:]) - baseline < EXTRA_LIMIT_S, (times, baseline)
    failing = batchlens_warnings(caplog, "batchlens_unhealthy") + batchlens_warnings(caplog, "batchlens_flush_cut")
    assert 1 <= len(failing) <= 2  # the exporter's first retry line marks it failing; the first flush is cut
    assert "Connection refused" in batchlens_warnings(caplog, "batchlens_unhealthy")[0].getMessage()
    time.sleep(1.5)  # a few more failing exports in the background
    assert len(retry_lines(caplog)) == 1  # the exporter's own retry line: printed once, not each invocation

    with collectors.answering_collector(port) as (_, collector):
        # the next flush exports (in the background: it waits 40 ms for the failing target) and succeeds
        assert invoke(handle, 100) - baseline < EXTRA_LIMIT_S
        assert wait_for(lambda: not _health.is_bad(handle.tracer_provider))
        assert "/v1/traces" in collector.paths
        (recovered,) = batchlens_warnings(caplog, "batchlens_recovered")
        assert recovered.batchlens_recovered == "tracer_provider"  # type: ignore[attr-defined]
        before = len(collector.paths)
        invoke(handle, 101)  # good again: this invocation's spans reach the collector before it returns
        assert len(collector.paths) > before
    assert len(retry_lines(caplog)) == 1


def test_silent_collector_costs_one_invocation(handles, baseline, otel_env, caplog):
    """A collector that accepts and never answers: the first flush is cut, 20 warm invocations cost <= ~40 ms more."""
    with collectors.silent_collector() as url:
        otel_env(url)
        handle = make(handles, "otlp")
        caplog.set_level(logging.INFO)
        times = invocations(handle)
        report("silent collector", times)
        assert times[0] >= 2.5
        assert max(times[1:]) - baseline < EXTRA_LIMIT_S, (times, baseline)
        (cut,) = batchlens_warnings(caplog, "batchlens_flush_cut")
        assert cut.batchlens_flush_failing == ["tracer_provider"]  # type: ignore[attr-defined]
        # nothing from the exporter each invocation: at most its one timeout line (when the loaded machine makes the
        # 21 invocations outlast the exporter's 10 s timeout), printed once while the target is failing
        exporter_lines = [r.getMessage() for r in caplog.records if r.name == OTLP_LOGGER]
        assert len(exporter_lines) == len(set(exporter_lines)) <= 1, exporter_lines


def test_refusing_metrics_collector_marks_the_meter_provider_failing(handles, otel_env, caplog, monkeypatch):
    """metrics="otlp" at a closed port: the watched metric exporter names the meter provider, once, and recovers."""
    port = collectors.closed_port()
    otel_env(f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    handle = configure(service_name="health", traces="none", metrics="otlp", logs="none", set_global=False)
    handles.append(handle)
    counter = handle.meter_provider.get_meter("health").create_counter("health.flushes")
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        counter.add(1)
        handle.flush(timeout_millis=2000)
    (failing,) = batchlens_warnings(caplog, "batchlens_unhealthy")
    assert failing.batchlens_unhealthy == "meter_provider"  # type: ignore[attr-defined]
    assert _health.is_bad(handle.meter_provider)
    assert not _health.is_bad(handle.tracer_provider)
    with collectors.answering_collector(port) as (_, collector):
        handle.flush(timeout_millis=2000)
        assert wait_for(lambda: not _health.is_bad(handle.meter_provider))
        assert "/v1/metrics" in collector.paths
    assert [r.batchlens_recovered for r in batchlens_warnings(caplog, "batchlens_recovered")] == ["meter_provider"]  # type: ignore[attr-defined]


# -- the setting ----------------------------------------------------------------------------------------------------
def stuck_target_cut_twice(budget_ms: int) -> float:
    """Cut a stuck target once (it fails), flush it again; how long the second flush waited, in seconds."""
    target, release = object(), threading.Event()
    try:
        flush_within([FlushTask("tracer_provider", target, lambda timeout: release.wait(5))], 50)
        started = time.monotonic()
        assert flush_within([FlushTask("tracer_provider", target, lambda timeout: None)], budget_ms) == [
            "tracer_provider"
        ]
        return time.monotonic() - started
    finally:
        release.set()


def test_the_wait_for_a_failing_target_is_a_setting(monkeypatch):
    """BATCHLENS_FLUSH_FAILING_WAIT_MS=5000 waits the whole budget for a failing target again (the old behaviour)."""
    monkeypatch.setenv("BATCHLENS_FLUSH_FAILING_WAIT_MS", "5000")
    assert 0.25 <= stuck_target_cut_twice(300) < 0.6
    monkeypatch.delenv("BATCHLENS_FLUSH_FAILING_WAIT_MS")
    assert stuck_target_cut_twice(300) < 0.1  # busy with the stuck flush: not waited for at all


def test_an_invalid_wait_setting_is_reported_once_and_the_default_used(monkeypatch, caplog):
    """A value that is not a whole number >= 0 warns once (naming the variable) and flushes still work."""
    monkeypatch.setenv("BATCHLENS_FLUSH_FAILING_WAIT_MS", "-3")
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        assert _health.failing_wait_ms() == _health.BAD_TARGET_WAIT_MS
    (warning,) = [r for r in caplog.records if "BATCHLENS_FLUSH_FAILING_WAIT_MS" in r.getMessage()]
    assert "'-3'" in warning.getMessage()
