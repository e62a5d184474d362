"""batchlens.telemetry.configure(): exporters at work (OTLP, console, Prometheus) and span pipeline sizing."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# pytest fixtures: the autouse environment cleaner, and `handles` (shut down after each test)
from _configure_support import clean_environment as clean_environment
from _configure_support import handles_fixture as handles_fixture
from _configure_support import make
from batchlens import telemetry
from batchlens.telemetry import TelemetryHandle

# ----------------------------------------------------------------------------------------------------
# exporters at work


class _OtlpSink(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_sink() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    """A loopback HTTP server that accepts OTLP/HTTP requests and keeps them."""
    requests: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Sink", (_OtlpSink,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_otlp_uses_endpoint_and_headers_from_env(
    monkeypatch: pytest.MonkeyPatch,
    handles: list[TelemetryHandle],
    otlp_sink: tuple[str, list[tuple[str, dict[str, str], bytes]]],
) -> None:
    """OTLP exports go to OTEL_EXPORTER_OTLP_ENDPOINT with OTEL_EXPORTER_OTLP_HEADERS, carrying the resource."""
    endpoint, requests = otlp_sink
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret")
    handle = make(handles, service_name="otlp-test")
    handle.tracer_provider.get_tracer("t").start_span("process orders").end()
    handle.meter_provider.get_meter("batchlens").create_counter("batchlens.batches").add(1)
    assert handle.flush()
    paths = sorted(path for path, _, _ in requests)
    assert paths == ["/v1/metrics", "/v1/traces"]
    for _, headers, _ in requests:
        assert headers["x-api-key"] == "s3cret"
    (trace_body,) = [body for path, _, body in requests if path == "/v1/traces"]
    message = ExportTraceServiceRequest.FromString(trace_body)
    resource_spans = message.resource_spans[0]
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource["service.name"] == "otlp-test"
    assert resource_spans.scope_spans[0].spans[0].name == "process orders"


def test_console_exporters_print(capsys: pytest.CaptureFixture[str], handles: list[TelemetryHandle]) -> None:
    """traces="console" and metrics="console" print spans and metrics to stdout on flush."""
    handle = make(handles, traces="console", metrics="console")
    handle.tracer_provider.get_tracer("t").start_span("console-span").end()
    handle.meter_provider.get_meter("batchlens").create_counter("batchlens.records.succeeded").add(2)
    assert handle.flush()
    out = capsys.readouterr().out
    assert '"name": "console-span"' in out
    assert "batchlens.records.succeeded" in out


def test_prometheus_serves_metrics(handles: list[TelemetryHandle]) -> None:
    """metrics="prometheus" serves /metrics on the loopback port, with Prometheus names, until shutdown."""
    handle = make(handles, traces="none", metrics="prometheus", prometheus_port=0)
    port = handle.prometheus_port
    assert port
    counter = handle.meter_provider.get_meter("batchlens").create_counter("batchlens.records.failed", unit="{record}")
    counter.add(2, {"messaging.system": "aws_sqs", "error.type": "ValueError"})
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "batchlens_records_failed_total{" in body
    assert 'error_type="ValueError"' in body
    handle.shutdown()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_prometheus_flushes_do_not_duplicate_series(handles: list[TelemetryHandle]) -> None:
    """Flushing before each Lambda freeze must not make the next scrape repeat every series (Prometheus rejects it)."""
    handle = make(handles, traces="none", metrics="prometheus", prometheus_port=0)
    counter = handle.meter_provider.get_meter("batchlens").create_counter("batchlens.records.failed", unit="{record}")
    for _ in range(3):
        counter.add(1, {"messaging.system": "aws_sqs", "error.type": "ValueError"})
        assert handle.flush()
    body = urllib.request.urlopen(f"http://127.0.0.1:{handle.prometheus_port}/metrics", timeout=10).read().decode()
    series = [line for line in body.splitlines() if line.startswith("batchlens_records_failed_total{")]
    assert len(series) == 1
    assert series[0].endswith(" 3.0")


def test_prometheus_port_from_env(monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]) -> None:
    """OTEL_EXPORTER_PROMETHEUS_PORT / _HOST pick the endpoint when the arguments are not given."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(free_port))
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    handle = make(handles, traces="none", metrics="prometheus")
    assert handle.prometheus_port == free_port


def test_prometheus_port_in_use_is_reported(handles: list[TelemetryHandle]) -> None:
    """A busy port raises OSError naming the address, instead of silently serving nothing."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            make(handles, traces="none", metrics="prometheus", prometheus_port=port)


def test_two_prometheus_handles_coexist(handles: list[TelemetryHandle]) -> None:
    """Each handle serves its own registry, so one process can run two without duplicate series."""
    first = make(handles, traces="none", metrics="prometheus", prometheus_port=0)
    second = make(handles, traces="none", metrics="prometheus", prometheus_port=0)
    first.meter_provider.get_meter("batchlens").create_counter("only.first").add(1)
    second_body = urllib.request.urlopen(f"http://127.0.0.1:{second.prometheus_port}/metrics", timeout=10).read()
    first_body = urllib.request.urlopen(f"http://127.0.0.1:{first.prometheus_port}/metrics", timeout=10).read()
    assert b"only_first_total" in first_body
    assert b"only_first_total" not in second_body


def test_no_http_server_without_prometheus(handles: list[TelemetryHandle]) -> None:
    """Without the prometheus option no port is opened."""
    assert make(handles, traces="none", metrics="none").prometheus_port is None


def test_urlopen_error_type_is_oserror() -> None:
    """Guard for the shutdown test: urllib's connection errors are OSError subclasses."""
    assert issubclass(urllib.error.URLError, OSError)


# ----------------------------------------------------------------------------------------------------
# span pipeline sizing


class GatedExporter(InMemorySpanExporter):
    """Keeps every span, but export() blocks until the gate opens: an exporter slower than the handler."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(timeout=60)
        return super().export(spans)


def burst(provider: TracerProvider, records: int) -> None:
    """One batch span with ``records`` child spans, ended as fast as the SDK allows."""
    tracer = provider.get_tracer("burst")
    with tracer.start_as_current_span("process big-queue"):
        for index in range(records):
            with tracer.start_as_current_span("process big-queue") as span:
                span.set_attribute("messaging.message.id", str(index))


def test_ten_thousand_span_burst_loses_nothing(handles: list[TelemetryHandle]) -> None:
    """A 10,000-record burst ended while the exporter is stalled is fully exported after flush()."""
    exporter = GatedExporter()
    handle = make(handles, traces=exporter, metrics="none")
    burst(handle.tracer_provider, 10_000)
    exporter.gate.set()
    assert handle.flush()
    spans = exporter.get_finished_spans()
    assert len(spans) == 10_001
    assert len({s.attributes["messaging.message.id"] for s in spans if s.attributes}) == 10_000


def test_sdk_default_queue_drops_the_same_burst() -> None:
    """Control: the SDK's default BatchSpanProcessor loses spans of the same burst (the test can fail)."""
    exporter = GatedExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        burst(provider, 10_000)
        exporter.gate.set()
        provider.force_flush()
        assert len(exporter.get_finished_spans()) < 10_001
    finally:
        provider.shutdown()


def test_explicit_queue_size_variable_wins(monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]) -> None:
    """OTEL_BSP_MAX_QUEUE_SIZE, when set, replaces the batch-sized default (here small enough to drop)."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    exporter = GatedExporter()
    handle = make(handles, traces=exporter, metrics="none")
    burst(handle.tracer_provider, 2_000)
    exporter.gate.set()
    handle.flush()
    assert len(exporter.get_finished_spans()) < 2_001


def test_default_queue_holds_a_full_batch_with_handler_spans() -> None:
    """The default queue fits 10,000 record spans, a batch span and two handler spans per record."""
    assert telemetry.DEFAULT_SPAN_QUEUE_SIZE >= 10_000 * 3 + 1
