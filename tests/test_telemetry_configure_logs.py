"""batchlens.telemetry.configure(logs=...): structlog JSON and console lines, log levels, leaving app setup alone."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# pytest fixtures: the autouse environment cleaner, and `handles` (shut down after each test)
from _configure_support import clean_environment as clean_environment
from _configure_support import handles_fixture as handles_fixture
from _configure_support import make
from batchlens.telemetry import TelemetryHandle, configure

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
