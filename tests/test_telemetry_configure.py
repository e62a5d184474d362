"""batchlens.telemetry.configure(): standard variables, validation, resource, exporters, logs, flush and shutdown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from batchlens import telemetry
from batchlens.telemetry import TelemetryHandle, configure

_CLEARED_PREFIXES = ("OTEL_", "AWS_LAMBDA_", "BATCHLENS_")
_CLEARED = ("AWS_REGION", "AWS_EXECUTION_ENV")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without OTEL_*/Lambda variables and with structlog at its defaults."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name)
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def handles() -> Iterator[list[TelemetryHandle]]:
    """Collects handles and shuts them all down after the test."""
    created: list[TelemetryHandle] = []
    yield created
    for handle in created:
        handle.shutdown()


def make(handles: list[TelemetryHandle], **kwargs: Any) -> TelemetryHandle:
    kwargs.setdefault("set_global", False)
    kwargs.setdefault("logs", "none")
    handle = configure(**kwargs)
    handles.append(handle)
    return handle


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


# ----------------------------------------------------------------------------------------------------
# exporter selection


def test_defaults_follow_standard_variables(monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]) -> None:
    """Unset arguments come from OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    handle = make(handles)
    assert handle.resource.attributes["service.name"] == "from-env"
    assert [type(e) for e in handle.span_exporters] == [ConsoleSpanExporter]
    (reader,) = handle.metric_readers
    assert isinstance(reader, PeriodicExportingMetricReader)
    assert isinstance(reader._exporter, ConsoleMetricExporter)


def test_otlp_is_the_default(handles: list[TelemetryHandle]) -> None:
    """With nothing set, traces and metrics go to OTLP over HTTP/protobuf, the OpenTelemetry default."""
    handle = make(handles)
    (exporter,) = handle.span_exporters
    assert type(exporter).__module__ == "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    (reader,) = handle.metric_readers
    assert type(reader._exporter).__module__ == "opentelemetry.exporter.otlp.proto.http.metric_exporter"


def test_arguments_override_variables(monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]) -> None:
    """Explicit arguments win over the environment."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    handle = make(handles, service_name="explicit", traces="none", metrics="none")
    assert handle.span_exporters == ()
    assert handle.metric_readers == ()
    assert handle.resource.attributes["service.name"] == "explicit"


def test_exporter_lists_and_case(handles: list[TelemetryHandle]) -> None:
    """Comma-separated names build one pipeline each; names are case-insensitive and deduplicated."""
    handle = make(handles, traces=" Console, otlp ,console", metrics="none")
    assert [type(e).__name__ for e in handle.span_exporters] == ["ConsoleSpanExporter", "OTLPSpanExporter"]


def test_instances_are_used_as_given(handles: list[TelemetryHandle]) -> None:
    """A SpanExporter and a MetricReader instance are plugged in unchanged."""
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    handle = make(handles, traces=exporter, metrics=reader)
    assert handle.span_exporters == (exporter,)
    assert handle.metric_readers == (reader,)
    handle.tracer_provider.get_tracer("t").start_span("s").end()
    handle.meter_provider.get_meter("batchlens").create_counter("c").add(3)
    assert handle.flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["s"]
    data = reader.get_metrics_data()
    assert data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0].value == 3


@pytest.mark.parametrize(
    ("kwargs", "env", "named"),
    [
        ({"traces": "zipkin"}, {}, "traces='zipkin'"),
        ({"metrics": "statsd"}, {}, "metrics='statsd'"),
        ({}, {"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER='jaeger'"),
        ({}, {"OTEL_METRICS_EXPORTER": "otlp,graphite"}, "OTEL_METRICS_EXPORTER='otlp,graphite'"),
        ({"traces": "none,console"}, {}, "traces='none,console'"),
        ({"traces": " , "}, {}, "traces=' , '"),
        ({"logs": "xml"}, {}, "logs='xml'"),
        ({"log_level": "LOUD", "logs": "json"}, {}, "log_level='LOUD'"),
        ({"logs": "json"}, {"AWS_LAMBDA_LOG_LEVEL": "CHATTY"}, "AWS_LAMBDA_LOG_LEVEL='CHATTY'"),
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"),
        ({}, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='udp'"),
        ({"metrics": "prometheus"}, {"OTEL_EXPORTER_PROMETHEUS_PORT": "http"}, "OTEL_EXPORTER_PROMETHEUS_PORT"),
        ({"metrics": "prometheus", "prometheus_port": 70000}, {}, "prometheus_port=70000"),
        ({}, {"OTEL_BSP_MAX_QUEUE_SIZE": "lots"}, "OTEL_BSP_MAX_QUEUE_SIZE='lots'"),
    ],
)
def test_unknown_values_raise_a_clear_value_error(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], env: dict[str, str], named: str
) -> None:
    """Unknown values raise ValueError naming the argument or variable (and the accepted values)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as info:
        configure(set_global=False, **kwargs)
    assert named in str(info.value)
    assert "accepted values" in str(info.value) or "expected" in str(info.value) or "combined" in str(info.value)


def test_unknown_exporter_message_lists_accepted_values() -> None:
    """The ValueError for an exporter name lists every accepted name."""
    with pytest.raises(ValueError, match="accepted values: emf, otlp, prometheus, console, none"):
        configure(metrics="influx", set_global=False)


def test_wrong_types_raise_type_error() -> None:
    """Objects that are neither a name nor an exporter/reader are rejected."""
    with pytest.raises(TypeError, match="SpanExporter"):
        configure(traces=InMemoryMetricReader(), set_global=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MetricReader"):
        configure(metrics=InMemorySpanExporter(), set_global=False)  # type: ignore[arg-type]


def test_grpc_protocol_needs_the_grpc_exporter(monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc uses the gRPC exporter, or says which package to install."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="opentelemetry-exporter-otlp-proto-grpc"):
            configure(metrics="none", set_global=False)
    else:
        handle = make(handles, metrics="none")
        assert "grpc" in type(handle.span_exporters[0]).__module__


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the OpenTelemetry SDK the ImportError says to install batchlens[sdk]."""
    for name in [m for m in sys.modules if m == "opentelemetry.sdk" or m.startswith("opentelemetry.sdk.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)
    with pytest.raises(ImportError, match=r"pip install 'batchlens\[sdk\]'"):
        configure(traces="none", metrics="none", set_global=False)


def test_importing_the_module_does_not_import_the_sdk() -> None:
    """`import batchlens.telemetry` stays cheap: the SDK is imported only by configure()."""
    code = "import sys, batchlens.telemetry; print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------------
# resource


def test_resource_in_lambda(monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]) -> None:
    """In Lambda the resource names the function, region, version, instance and memory (in bytes)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-consumer")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]abc")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    attributes = make(handles, traces="none", metrics="none").resource.attributes
    assert attributes["service.name"] == "orders-consumer"
    assert attributes["faas.name"] == "orders-consumer"
    assert attributes["cloud.region"] == "eu-west-1"
    assert attributes["cloud.provider"] == "aws"
    assert attributes["cloud.platform"] == "aws_lambda"
    assert attributes["faas.version"] == "$LATEST"
    assert attributes["faas.instance"] == "2026/01/01/[$LATEST]abc"
    assert attributes["faas.max_memory"] == 512 * 1024 * 1024


def test_service_name_precedence(monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]) -> None:
    """service.name: argument, then OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then the function name."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    assert make(handles, traces="none", metrics="none").resource.attributes["service.name"] == "fn"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,deployment.environment=prod")
    resource = make(handles, traces="none", metrics="none").resource
    assert resource.attributes["service.name"] == "from-attrs"
    assert resource.attributes["deployment.environment"] == "prod"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    assert make(handles, traces="none", metrics="none").resource.attributes["service.name"] == "from-env"
    resource = make(handles, service_name="arg", traces="none", metrics="none").resource
    assert resource.attributes["service.name"] == "arg"
    assert resource.attributes["faas.name"] == "fn"


def test_operator_resource_attributes_override_detection(
    monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]
) -> None:
    """OTEL_RESOURCE_ATTRIBUTES wins over what configure() detected from the Lambda environment."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "cloud.region=override-1")
    assert make(handles, traces="none", metrics="none").resource.attributes["cloud.region"] == "override-1"


def test_no_lambda_attributes_outside_lambda(handles: list[TelemetryHandle]) -> None:
    """Outside Lambda there are no faas.*/cloud.* attributes and the SDK's default service name applies."""
    attributes = make(handles, traces="none", metrics="none").resource.attributes
    assert not [key for key in attributes if key.startswith(("faas.", "cloud."))]
    assert str(attributes["service.name"]).startswith("unknown_service")


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


# ----------------------------------------------------------------------------------------------------
# span pipeline sizing


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


# ----------------------------------------------------------------------------------------------------
# flush and shutdown


class _FailingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise RuntimeError("backend down")

    def shutdown(self) -> None:
        pass


def test_flush_returns_true_when_everything_is_exported(handles: list[TelemetryHandle]) -> None:
    """flush() exports spans and metrics and reports success."""
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    handle = make(handles, traces=exporter, metrics=reader)
    handle.tracer_provider.get_tracer("t").start_span("s").end()
    assert exporter.get_finished_spans() == ()
    assert handle.flush(timeout_millis=10_000) is True
    assert len(exporter.get_finished_spans()) == 1


def test_flush_never_raises(handles: list[TelemetryHandle]) -> None:
    """An exporter that raises does not make flush() raise (a handler's finally block stays safe)."""
    handle = make(handles, traces=_FailingExporter(), metrics="none")
    handle.tracer_provider.get_tracer("t").start_span("s").end()
    assert isinstance(handle.flush(), bool)


def test_shutdown_is_idempotent_and_flush_after_it_reports_false(handles: list[TelemetryHandle]) -> None:
    """shutdown() exports what is pending, can be called twice, and a later flush() returns False."""
    exporter = InMemorySpanExporter()
    handle = make(handles, traces=exporter, metrics="none")
    handle.tracer_provider.get_tracer("t").start_span("pending").end()
    handle.shutdown()
    handle.shutdown()
    assert [s.name for s in exporter.get_finished_spans()] == ["pending"]
    assert handle.flush() is False


def test_repr_summarises_the_pipelines(handles: list[TelemetryHandle]) -> None:
    """The handle's repr names the service and the exporters."""
    handle = make(handles, service_name="svc", traces="console", metrics="none")
    assert (
        repr(handle)
        == "TelemetryHandle(service_name='svc', spans=[ConsoleSpanExporter], metrics=[none], logs='none', global=False)"
    )


def test_globals_are_installed_once_per_process() -> None:
    """The first configure() installs the global providers; a second one warns and is not global."""
    code = textwrap.dedent(
        """
        import json, logging
        logging.basicConfig(level=logging.WARNING)
        from opentelemetry import metrics, trace
        from batchlens.telemetry import configure
        first = configure(service_name="a", traces="none", metrics="none", logs="none")
        second = configure(service_name="b", traces="none", metrics="none", logs="none")
        print(json.dumps({
            "first": first.is_global,
            "second": second.is_global,
            "tracer": trace.get_tracer_provider() is first.tracer_provider,
            "meter": metrics.get_meter_provider() is first.meter_provider,
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    assert json.loads(result.stdout) == {"first": True, "second": False, "tracer": True, "meter": True}
    assert "already set" in result.stderr


# ----------------------------------------------------------------------------------------------------
# structlog


def _last_json_line(text: str) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return entry


def test_json_logs_have_timestamp_and_level(capsys: pytest.CaptureFixture[str], handles: list[TelemetryHandle]) -> None:
    """logs="json" writes one JSON object per line with event, level and an ISO UTC timestamp."""
    make(handles, traces="none", metrics="none", logs="json")
    structlog.get_logger().info("order stored", order_id=7)
    entry = _last_json_line(capsys.readouterr().out)
    assert entry["event"] == "order stored"
    assert entry["level"] == "info"
    assert entry["order_id"] == 7
    assert entry["timestamp"].endswith("Z")
    datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))


def test_json_logs_carry_the_active_span(capsys: pytest.CaptureFixture[str], handles: list[TelemetryHandle]) -> None:
    """Application log lines inside a span carry its trace_id and span_id."""
    handle = make(handles, traces=InMemorySpanExporter(), metrics="none", logs="json")
    with handle.tracer_provider.get_tracer("t").start_as_current_span("work") as span:
        structlog.get_logger().info("inside")
    entry = _last_json_line(capsys.readouterr().out)
    context = span.get_span_context()
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")


def test_json_logs_keep_explicit_trace_keys(capsys: pytest.CaptureFixture[str], handles: list[TelemetryHandle]) -> None:
    """trace_id/span_id passed by the caller (batchlens' record entries) are not overwritten."""
    handle = make(handles, traces=InMemorySpanExporter(), metrics="none", logs="json")
    with handle.tracer_provider.get_tracer("t").start_as_current_span("batch"):
        structlog.get_logger().info("record processed", trace_id="a" * 32, span_id="b" * 16)
    entry = _last_json_line(capsys.readouterr().out)
    assert (entry["trace_id"], entry["span_id"]) == ("a" * 32, "b" * 16)


def test_json_logs_render_exceptions(capsys: pytest.CaptureFixture[str], handles: list[TelemetryHandle]) -> None:
    """log.exception() inside an except block renders the exception as bounded traceback text and its message."""
    make(handles, traces="none", metrics="none", logs="json")
    try:
        raise ValueError("bad record")
    except ValueError:
        structlog.get_logger().exception("record failed")
    entry = _last_json_line(capsys.readouterr().out)
    assert entry["level"] == "error"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: bad record\n")
    assert entry["error_message"] == "bad record"


def test_log_level_from_lambda_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], handles: list[TelemetryHandle]
) -> None:
    """AWS_LAMBDA_LOG_LEVEL (Lambda's advanced logging control, WARN spelling included) filters entries."""
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "WARN")
    make(handles, traces="none", metrics="none", logs="json")
    log = structlog.get_logger()
    log.info("dropped")
    log.warning("kept")
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["kept"]


def test_log_level_argument(capsys: pytest.CaptureFixture[str], handles: list[TelemetryHandle]) -> None:
    """log_level="debug" lets debug entries through."""
    make(handles, traces="none", metrics="none", logs="json", log_level="debug")
    structlog.get_logger().debug("detail")
    assert _last_json_line(capsys.readouterr().out)["level"] == "debug"


def test_console_logs_use_the_console_renderer(handles: list[TelemetryHandle]) -> None:
    """logs="console" ends the processor chain with structlog's ConsoleRenderer."""
    handle = make(handles, traces="none", metrics="none", logs="console")
    assert handle.log_format == "console"
    assert isinstance(structlog.get_config()["processors"][-1], structlog.dev.ConsoleRenderer)


def test_default_logs_are_json_in_lambda(monkeypatch: pytest.MonkeyPatch, handles: list[TelemetryHandle]) -> None:
    """Without `logs`, Lambda gets JSON lines and other environments the console renderer."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fn")
    assert configure(traces="none", metrics="none", set_global=False).log_format == "json"
    assert isinstance(structlog.get_config()["processors"][-1], structlog.processors.JSONRenderer)
    structlog.reset_defaults()
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    assert configure(traces="none", metrics="none", set_global=False).log_format == "console"


def test_default_leaves_application_structlog_alone(handles: list[TelemetryHandle]) -> None:
    """When the application configured structlog already, the default does not touch it."""
    marker = structlog.processors.KeyValueRenderer()
    structlog.configure(processors=[marker])
    handle = configure(traces="none", metrics="none", set_global=False)
    handles.append(handle)
    assert handle.log_format == "none"
    assert structlog.get_config()["processors"] == [marker]


def test_logs_none_leaves_structlog_alone(handles: list[TelemetryHandle]) -> None:
    """logs="none" never configures structlog."""
    make(handles, traces="none", metrics="none", logs="none")
    assert not structlog.is_configured()


def test_capture_logs_still_works_after_configure(handles: list[TelemetryHandle]) -> None:
    """Loggers are not cached, so structlog.testing.capture_logs() captures after configure()."""
    make(handles, traces="none", metrics="none", logs="json")
    log = structlog.get_logger()
    log.info("before")
    with structlog.testing.capture_logs() as captured:
        log.info("captured", k=1)
    assert captured == [{"event": "captured", "k": 1, "log_level": "info"}]


def test_no_http_server_without_prometheus(handles: list[TelemetryHandle]) -> None:
    """Without the prometheus option no port is opened."""
    assert make(handles, traces="none", metrics="none").prometheus_port is None


def test_lambda_flush_pattern_end_to_end(handles: list[TelemetryHandle]) -> None:
    """The documented pattern (configure at import, flush in finally) exports within the invocation."""
    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    handle = make(handles, traces=exporter, metrics=reader)

    def handler() -> str:
        try:
            with handle.tracer_provider.get_tracer("app").start_as_current_span("invocation"):
                return "ok"
        finally:
            handle.flush(timeout_millis=5_000)

    assert handler() == "ok"
    assert [s.name for s in exporter.get_finished_spans()] == ["invocation"]


def test_urlopen_error_type_is_oserror() -> None:
    """Guard for the shutdown test: urllib's connection errors are OSError subclasses."""
    assert issubclass(urllib.error.URLError, OSError)
