"""The Lambda life-cycle hooks: Managed Instances leave export to the background; a bounded flush at SIGTERM.

Signals are tested in child processes (a SIGTERM must really end, or not end, a process); the end-to-end runs under
Lambda's own runtime client are in tests/runtime/test_runtime_managed.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from _configure_support import handles_fixture as handles_fixture
from _processor_support import FakeContext
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._telemetry import _lifecycle
from batchlens.testing import sqs_event

LAMBDA = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    _lifecycle._reset_for_tests()
    yield
    _lifecycle._reset_for_tests()
    signal.signal(signal.SIGTERM, before)


class FlushCounter(SpanProcessor):
    """A span processor that counts the flushes asked of it."""

    def __init__(self) -> None:
        self.flushes = 0

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.flushes += 1
        return True


def test_not_installed_outside_a_lambda_runtime() -> None:
    assert _lifecycle.install_sigterm_flush(TracerProvider(), env={}) is False
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_installed_once_under_a_lambda_runtime() -> None:
    assert _lifecycle.install_sigterm_flush(TracerProvider(), env=LAMBDA) is True
    assert signal.getsignal(signal.SIGTERM) is _lifecycle._on_sigterm
    assert _lifecycle.install_sigterm_flush(TracerProvider(), env=LAMBDA) is True
    assert len(_lifecycle._providers) == 2


def test_the_variable_false_leaves_sigterm_alone() -> None:
    env = {**LAMBDA, "BATCHLENS_SIGTERM_FLUSH": "false"}
    assert _lifecycle.install_sigterm_flush(TracerProvider(), env=env) is False
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_typo_in_the_variable_is_reported_and_sigterm_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    env = {**LAMBDA, "BATCHLENS_SIGTERM_FLUSH": "maybe"}
    assert _lifecycle.install_sigterm_flush(TracerProvider(), env=env) is False
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert "BATCHLENS_SIGTERM_FLUSH='maybe'" in caplog.text


def test_not_installed_off_the_main_thread() -> None:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(_lifecycle.install_sigterm_flush(env=LAMBDA)))
    thread.start()
    thread.join(5)
    assert result == [False]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_managed_instances_is_the_max_concurrency_variable() -> None:
    assert _lifecycle.managed_instances({"AWS_LAMBDA_MAX_CONCURRENCY": "4"}) is True
    assert _lifecycle.managed_instances({"AWS_LAMBDA_MAX_CONCURRENCY": " "}) is False
    assert _lifecycle.managed_instances({}) is False


def _processor(flush: str) -> tuple[BatchProcessor, FlushCounter]:
    counter = FlushCounter()
    provider = TracerProvider()
    provider.add_span_processor(counter)
    telemetry = Telemetry(tracer_provider=provider, logging=False, metrics=False, flush=flush)
    return BatchProcessor(EventType.SQS, telemetry=telemetry), counter


def test_auto_flush_is_left_to_the_background_in_managed_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    processor, counter = _processor("auto")
    process_partial_response(sqs_event(count=2), lambda record: None, processor, FakeContext())
    assert counter.flushes == 1  # a standard sandbox: flushed before the freeze
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    process_partial_response(sqs_event(count=2), lambda record: None, processor, FakeContext())
    assert counter.flushes == 1


def test_always_still_flushes_in_managed_instances(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    processor, counter = _processor("always")
    process_partial_response(sqs_event(count=2), lambda record: None, processor, FakeContext())
    assert counter.flushes == 1


_CHILD = """
import os, signal, sys, time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from batchlens._telemetry._lifecycle import install_sigterm_flush

out = open(sys.argv[1], "a", buffering=1)

class FileExporter(SpanExporter):
    def export(self, spans):
        if os.environ.get("HANG"):
            time.sleep(60)
        for span in spans:
            out.write(span.name + "\\n")
        return SpanExportResult.SUCCESS

{previous}
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(FileExporter(), schedule_delay_millis=60_000))
for i in range(3):
    provider.get_tracer("t").start_span(f"span-{{i}}").end()
assert install_sigterm_flush(provider)
out.write("ready\\n")
time.sleep(30)
out.write("survived\\n")
"""


def _run_child(tmp_path: Path, previous: str = "", wait_s: float = 10, **env: str) -> tuple[int | None, list[str], float]:
    """Start the child, SIGTERM it once ready; (exit code or None when still alive after ``wait_s``, lines, s)."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD).format(previous=previous))
    out = tmp_path / "out.txt"
    out.touch()
    child_env = {**os.environ, **LAMBDA, **env}
    child = subprocess.Popen([sys.executable, str(script), str(out)], env=child_env)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "ready" in out.read_text()
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        try:
            code = child.wait(wait_s)
        except subprocess.TimeoutExpired:
            code = None  # still alive: a SIG_IGN previous handler
        elapsed = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    return code, out.read_text().split(), elapsed


def test_sigterm_flushes_then_terminates_as_sigterm_does(tmp_path: Path) -> None:
    code, lines, _ = _run_child(tmp_path)
    assert code == -signal.SIGTERM
    assert lines == ["ready", "span-0", "span-1", "span-2"]


def test_sigterm_hands_on_to_the_previous_handler(tmp_path: Path) -> None:
    previous = "signal.signal(signal.SIGTERM, lambda s, f: (out.write('previous\\n'), sys.exit(3)))"
    code, lines, _ = _run_child(tmp_path, previous)
    assert code == 3
    assert lines == ["ready", "span-0", "span-1", "span-2", "previous"]


def test_an_ignored_sigterm_stays_ignored_after_the_flush(tmp_path: Path) -> None:
    script_previous = "signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    code, lines, _ = _run_child(tmp_path, script_previous, wait_s=2)
    assert code is None  # still running 2 s after SIGTERM
    assert lines == ["ready", "span-0", "span-1", "span-2"]


def test_a_hanging_exporter_delays_sigterm_by_the_flush_budget_only(tmp_path: Path) -> None:
    code, lines, elapsed = _run_child(tmp_path, HANG="1")
    assert code == -signal.SIGTERM
    assert lines == ["ready"]
    assert elapsed < _lifecycle.SIGTERM_FLUSH_MS / 1000 + 1.0


def test_background_export_registers_the_global_sdk_providers_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    sdk_provider = TracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: sdk_provider)
    registered: list[Any] = []
    monkeypatch.setattr(_lifecycle, "install_sigterm_flush", lambda *providers: registered.append(providers))
    assert _lifecycle.background_export() is False
    assert registered == []
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    assert _lifecycle.background_export() is True
    assert _lifecycle.background_export() is True
    # the SDK tracer provider; the API's default meter provider has no force_flush and is left out
    assert registered == [(sdk_provider,)]


def _configure(handles: list[Any], monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    from batchlens.telemetry import configure

    for name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_METRIC_EXPORT_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handle = configure(service_name="orders", traces="none", metrics="emf", logs="none", set_global=False)
    handles.append(handle)
    return handle


def test_configure_in_a_lambda_runtime_flushes_its_providers_at_sigterm(
    handles: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = _configure(handles, monkeypatch, AWS_LAMBDA_RUNTIME_API="127.0.0.1:9001")
    assert signal.getsignal(signal.SIGTERM) is _lifecycle._on_sigterm
    assert _lifecycle._providers == [handle.tracer_provider, handle.meter_provider]


def test_configure_outside_lambda_leaves_sigterm_alone(handles: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _configure(handles, monkeypatch)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_emf_in_managed_instances_writes_on_an_interval_instead_of_per_flush(
    handles: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from batchlens._telemetry._emf_reader import FlushMetricReader

    standard = _configure(handles, monkeypatch, AWS_LAMBDA_FUNCTION_NAME="fn")
    assert [type(r) for r in standard.metric_readers] == [FlushMetricReader]
    managed = _configure(handles, monkeypatch, AWS_LAMBDA_FUNCTION_NAME="fn", AWS_LAMBDA_MAX_CONCURRENCY="4")
    (reader,) = managed.metric_readers
    assert type(reader) is PeriodicExportingMetricReader
    assert reader._export_interval_millis == 60_000  # OTEL_METRIC_EXPORT_INTERVAL's default


class FakeSentryClient:
    def __init__(self, active: bool) -> None:
        self.active = active
        self.flushes: list[float] = []

    def is_active(self) -> bool:
        return self.active

    def flush(self, timeout: float | None = None) -> None:
        self.flushes.append(timeout or 0.0)


@pytest.mark.parametrize("active", [True, False])
def test_the_sigterm_flush_flushes_an_initialised_sentry(monkeypatch: pytest.MonkeyPatch, active: bool) -> None:
    import types

    client = FakeSentryClient(active)
    fake = types.ModuleType("sentry_sdk")
    fake.get_client = lambda: client  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentry_sdk", fake)
    assert _lifecycle._flush_providers(500) == []
    assert client.flushes == ([0.5] if active else [])


@pytest.mark.parametrize(("managed", "processor"), [(False, "FlushSpanProcessor"), (True, "BatchSpanProcessor")])
def test_xray_spans_leave_on_a_thread_in_managed_instances(
    handles: list[Any], monkeypatch: pytest.MonkeyPatch, managed: bool, processor: str
) -> None:
    from batchlens.telemetry import configure

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    if managed:
        monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    handle = configure(service_name="orders", traces="xray", metrics="none", logs="none", set_global=False)
    handles.append(handle)
    processors = handle.tracer_provider._active_span_processor._span_processors
    assert [type(p).__name__ for p in processors] == [processor]
