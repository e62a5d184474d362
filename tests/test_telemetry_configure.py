"""batchlens.telemetry.configure(): standard variables, validation, resource, flush and shutdown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# pytest fixtures: the autouse environment cleaner, and `handles` (shut down after each test)
from _configure_support import clean_environment as clean_environment
from _configure_support import handles_fixture as handles_fixture
from _configure_support import make
from batchlens.telemetry import TelemetryHandle, configure

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
    # configure() watches the OTLP exporter's exports (a dead collector costs one flush): the reader holds the watcher
    assert type(reader._exporter.exporter).__module__ == "opentelemetry.exporter.otlp.proto.http.metric_exporter"


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
