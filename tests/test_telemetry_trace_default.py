"""Which trace pipeline configure() builds inside Lambda when neither traces= nor OTEL_TRACES_EXPORTER says."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from _configure_support import clean_environment as clean_environment
from _configure_support import handles_fixture as handles_fixture
from _configure_support import make
from batchlens._telemetry import _resolve
from batchlens.telemetry import TelemetryHandle

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(autouse=True)
def lambda_without_collector(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Inside Lambda, with the collector extension looked for at a path that does not exist."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders")
    monkeypatch.delenv("OPENTELEMETRY_COLLECTOR_CONFIG_URI", raising=False)
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000")
    monkeypatch.setattr(_resolve, "COLLECTOR_EXTENSION", str(tmp_path / "extensions" / "collector"))


def exporter_names(handle: TelemetryHandle) -> list[str]:
    return [type(exporter).__name__ for exporter in handle.span_exporters]


def default_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "batchlens.telemetry" and "traces" in r.getMessage()]


def test_with_nothing_detected_traces_go_to_xray(
    handles: list[TelemetryHandle], caplog: pytest.LogCaptureFixture
) -> None:
    """No OTLP endpoint, no collector extension, no installed provider: X-Ray, said once with how to change it."""
    with caplog.at_level(logging.INFO, logger="batchlens.telemetry"):
        handle = make(handles, metrics="none")
    assert exporter_names(handle) == ["XRayUdpSpanExporter"]
    (line,) = default_lines(caplog)
    assert "X-Ray" in line
    assert "127.0.0.1:2000" in line
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in line
    assert "OTEL_TRACES_EXPORTER" in line
    assert "localhost:4318" in line


@pytest.mark.parametrize(
    "variable",
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OPENTELEMETRY_COLLECTOR_CONFIG_URI"],
)
def test_an_otlp_endpoint_or_collector_config_keeps_otlp(
    variable: str, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An OTLP endpoint variable, or the collector layer's config variable, means a collector: OTLP."""
    monkeypatch.setenv(variable, "http://127.0.0.1:4318" if "ENDPOINT" in variable else "/opt/collector.yaml")
    with caplog.at_level(logging.INFO, logger="batchlens.telemetry"):
        handle = make(handles, metrics="none")
    assert exporter_names(handle) == ["OTLPSpanExporter"]
    (line,) = default_lines(caplog)
    assert "OTLP" in line
    assert variable in line


def test_the_collector_extension_keeps_otlp(
    handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A collector extension installed by a layer (/opt/extensions/collector) means OTLP."""
    extension = tmp_path / "opt" / "extensions" / "collector"
    extension.parent.mkdir(parents=True)
    extension.write_bytes(b"")
    monkeypatch.setattr(_resolve, "COLLECTOR_EXTENSION", str(extension))
    assert exporter_names(make(handles, metrics="none")) == ["OTLPSpanExporter"]


def test_an_installed_sdk_provider_is_used_as_it_is(
    handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A layer's SDK TracerProvider is the handle's, gets no exporter, is said once, and outlives shutdown()."""
    exported = InMemorySpanExporter()
    layer_provider = TracerProvider()
    layer_provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(trace_api, "_TRACER_PROVIDER", layer_provider)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")  # the installed provider wins
    with caplog.at_level(logging.INFO, logger="batchlens.telemetry"):
        handle = make(handles, metrics="none")
    assert handle.tracer_provider is layer_provider
    assert handle.span_exporters == ()
    assert len(layer_provider._active_span_processor._span_processors) == 1
    (line,) = default_lines(caplog)
    assert "already installed" in line
    assert "OTEL_TRACES_EXPORTER" in line
    handle.shutdown()
    layer_provider.get_tracer("t").start_span("after").end()
    assert [span.name for span in exported.get_finished_spans()] == ["after"]


@pytest.mark.parametrize(("variable", "expected"), [("otlp", "OTLPSpanExporter"), ("none", None)])
def test_an_explicit_choice_wins_and_says_nothing(
    variable: str,
    expected: str | None,
    handles: list[TelemetryHandle],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OTEL_TRACES_EXPORTER restores any pipeline, the old OTLP default included, without the default's line."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", variable)
    with caplog.at_level(logging.INFO, logger="batchlens.telemetry"):
        handle = make(handles, metrics="none")
    assert exporter_names(handle) == ([expected] if expected else [])
    assert default_lines(caplog) == []
    assert exporter_names(make(handles, traces="otlp", metrics="none")) == ["OTLPSpanExporter"]


def test_outside_lambda_the_default_stays_otlp(
    handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without AWS_LAMBDA_FUNCTION_NAME nothing is detected and OTLP is built, as before."""
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    with caplog.at_level(logging.INFO, logger="batchlens.telemetry"):
        assert exporter_names(make(handles, metrics="none")) == ["OTLPSpanExporter"]
    assert default_lines(caplog) == []


def test_a_layer_installed_global_provider_receives_the_batch_spans(tmp_path: Path) -> None:
    """As under /opt/otel-instrument: the global provider set before configure() gets batchlens' spans."""
    code = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        layer_exporter = InMemorySpanExporter()
        layer = TracerProvider()
        layer.add_span_processor(SimpleSpanProcessor(layer_exporter))
        trace.set_tracer_provider(layer)  # what the layer's wrapper does before the handler module loads

        import batchlens
        from batchlens.telemetry import configure
        from batchlens.testing import lambda_context, sqs_event
        handle = configure(service_name="orders", metrics="none", logs="none")
        assert handle.tracer_provider is layer and handle.is_global and handle.span_exporters == ()
        processor = batchlens.BatchProcessor(event_type=batchlens.EventType.SQS)
        batchlens.process_partial_response(sqs_event(count=2), lambda record: None, processor, lambda_context())
        print(len(layer_exporter.get_finished_spans()))
        """
    )
    env = {"PYTHONPATH": SRC, "AWS_LAMBDA_FUNCTION_NAME": "orders", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1] == "3"  # batch span and two record spans
    assert "Overriding" not in out.stderr  # configure() did not try to replace the layer's provider
