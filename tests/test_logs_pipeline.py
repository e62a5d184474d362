"""Tests for the log pipelines batchlens chooses (private Lambda logger, configure(logs=), CLI) and for the keys
every entry carries: request id, error type, bounded locals-free exception text, timestamps, serializer, caching.
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._cli_common import _configure_stderr_logging
from batchlens._telemetry import _log_render
from batchlens._telemetry._errors import MAX_MESSAGE_CHARS, MAX_STACKTRACE_CHARS
from batchlens._telemetry.logs import REQUEST_ID_KEY
from batchlens.telemetry import TelemetryHandle, configure
from batchlens.testing import lambda_context, sqs_event

SECRET = "card-4111-1111-1111-1111"
HUGE = 5 * 1024 * 1024
# a whole line may hold the bounded stack trace and message, plus the keys around them
MAX_LINE_BYTES = 2 * (MAX_MESSAGE_CHARS + MAX_STACKTRACE_CHARS) + 2048


class OrderRejected(Exception):
    """An application exception, named module.qualname in telemetry."""


def handler_with_locals(record: Any) -> str:
    body = record.body  # a frame local holding the message body: must never be logged
    if "fail" in body:
        raise ValueError("could not process the order")
    return "done"


def handler_huge_message(record: Any) -> str:
    body = record.body
    if "fail" in body:
        raise ValueError("x" * HUGE)
    return "done"


def handler_custom_error(record: Any) -> str:
    if "fail" in record.body:
        raise OrderRejected("no stock")
    return "done"


@pytest.fixture
def handles() -> Iterator[list[TelemetryHandle]]:
    made: list[TelemetryHandle] = []
    yield made
    for handle in made:
        handle.shutdown()


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# -- privacy and size, in every pipeline batchlens chooses ---------------------------------------------------------
def test_private_lambda_logger_renders_tracebacks_without_locals(telemetry, monkeypatch, capsys):
    """In Lambda with structlog unconfigured, a failed record's line holds its traceback but no frame locals."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", f"fail {SECRET}"], seed=1), handler_with_locals, processor)

    out = capsys.readouterr().out
    (failed,) = [e for e in _json_lines(out) if e["event"] == "record failed"]
    assert "in handler_with_locals" in failed["exception"]
    assert failed["error_message"] == "could not process the order"
    assert SECRET not in out


def test_private_lambda_logger_bounds_a_huge_exception_message(telemetry, monkeypatch, capsys):
    """A 5 MB exception message yields a log line of a few KiB, its message and stack trace capped."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], seed=2), handler_huge_message, processor)

    lines = capsys.readouterr().out.splitlines()
    (failed,) = [line for line in lines if '"record failed"' in line]
    assert len(failed.encode()) <= MAX_LINE_BYTES
    entry = json.loads(failed)
    assert len(entry["error_message"]) == MAX_MESSAGE_CHARS
    assert len(entry["exception"]) <= MAX_STACKTRACE_CHARS


def test_configure_json_renders_batchlens_and_application_exceptions_without_locals(telemetry, capsys, handles):
    """configure(logs="json"): record failures and the application's log.exception() carry no locals, bounded."""
    handles.append(configure(service_name="svc", traces="none", metrics="none", logs="json", set_global=False))
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", f"fail {SECRET}"], seed=3), handler_with_locals, processor)
    try:
        handler_huge_message(type("Record", (), {"body": f"fail {SECRET}"})())
    except ValueError:
        structlog.get_logger("app").exception("application failure")

    out = capsys.readouterr().out
    assert SECRET not in out
    lines = out.splitlines()
    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in lines)
    entries = _json_lines(out)
    events = [e["event"] for e in entries]
    assert events == ["record processed", "record failed", "batch processed", "application failure"]
    assert "in handler_with_locals" in entries[1]["exception"]
    assert len(entries[3]["error_message"]) == MAX_MESSAGE_CHARS


def test_configure_console_renders_tracebacks_without_locals(telemetry, capsys, handles):
    """configure(logs="console") prints the failed record's traceback without frame locals."""
    handles.append(configure(service_name="svc", traces="none", metrics="none", logs="console", set_global=False))
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", f"fail {SECRET}"], seed=4), handler_with_locals, processor)

    out = capsys.readouterr().out
    assert "in handler_with_locals" in out
    assert SECRET not in out


def test_cli_pipeline_bounds_and_hides_locals(telemetry, capsys):
    """The CLI's structlog pipeline (stderr JSON) renders bounded tracebacks without frame locals."""
    _configure_stderr_logging()
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", f"fail {SECRET}", "fail"], seed=5), handler_huge_message, processor)

    err = capsys.readouterr().err
    assert SECRET not in err
    failed = [e for e in _json_lines(err) if e["event"] == "record failed"]
    assert len(failed) == 2
    assert all(len(e["exception"]) <= MAX_STACKTRACE_CHARS for e in failed)
    assert all(len(json.dumps(e)) <= MAX_LINE_BYTES for e in failed)


def test_application_structlog_receives_the_exception_itself(telemetry):
    """An application's own structlog configuration gets the exception object as exc_info, to render as it likes."""
    with capture_logs() as logs:
        process_partial_response(
            sqs_event(["ok", "fail"], seed=6), handler_with_locals, BatchProcessor(EventType.SQS, telemetry=telemetry)
        )

    (failed,) = [e for e in logs if e["event"] == "record failed"]
    assert isinstance(failed["exc_info"], ValueError)
    assert "exception" not in failed


def test_application_structlog_gets_bounded_text_for_a_huge_message(telemetry):
    """An exception whose own text exceeds the bounds reaches the application's structlog as bounded text only."""
    with capture_logs() as logs:
        process_partial_response(
            sqs_event(["ok", "fail"], seed=6), handler_huge_message, BatchProcessor(EventType.SQS, telemetry=telemetry)
        )

    (failed,) = [e for e in logs if e["event"] == "record failed"]
    assert "exc_info" not in failed
    assert len(failed["error_message"]) == MAX_MESSAGE_CHARS
    assert len(failed["exception"]) <= MAX_STACKTRACE_CHARS


# -- keys ----------------------------------------------------------------------------------------------------------
def test_every_entry_carries_the_lambda_request_id(telemetry):
    """With a Lambda context, record processed/failed and batch processed all carry function_request_id."""
    context = lambda_context(aws_request_id="6f7c1b2e-1d2a-4f4e-9a57-0c1f2d3e4f50")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(sqs_event(["ok", "fail"], seed=7), handler_with_locals, processor, context)

    assert [e["event"] for e in logs] == ["record processed", "record failed", "batch processed"]
    assert {e[REQUEST_ID_KEY] for e in logs} == {context.aws_request_id}


def test_request_id_without_an_opentelemetry_sdk(monkeypatch, capsys):
    """Without any SDK (tracing and metrics through the no-op API), the private Lambda lines carry the request id."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    context = lambda_context(aws_request_id="req-without-sdk")
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry(flush="never"))

    process_partial_response(sqs_event(["ok", "fail"], seed=8), handler_with_locals, processor, context)

    entries = _json_lines(capsys.readouterr().out)
    assert len(entries) == 3
    assert all(e[REQUEST_ID_KEY] == "req-without-sdk" for e in entries)
    assert all("trace_id" not in e for e in entries)


def test_no_request_id_key_without_a_context(telemetry):
    """Without a Lambda context (or with one lacking a usable id) entries have no request id key."""

    class Context:
        aws_request_id = None

    processor = BatchProcessor(EventType.SQS, telemetry=telemetry.replace(flush="never"))
    with capture_logs() as logs:
        process_partial_response(sqs_event(["ok"], seed=9), handler_with_locals, processor)
        process_partial_response(sqs_event(["ok"], seed=9), handler_with_locals, processor, Context())

    assert len(logs) == 4
    assert all(REQUEST_ID_KEY not in e for e in logs)


def test_error_type_names_application_exceptions_by_module_and_class(telemetry):
    """error_type is module.qualname for an application exception, as on spans, metrics and Sentry."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(sqs_event(["ok", "fail"], seed=10), handler_custom_error, processor)

    (failed,) = [e for e in logs if e["event"] == "record failed"]
    assert failed["error_type"] == f"{OrderRejected.__module__}.OrderRejected"


# -- fast path -----------------------------------------------------------------------------------------------------
def test_timestamp_is_iso_utc_with_milliseconds_and_formatted_once_per_millisecond(monkeypatch):
    """Lines within one millisecond share one formatted timestamp; the next millisecond gets a new one."""
    now = [1_764_633_600_123_456_789]
    formatted: list[float] = []
    strftime = time.strftime

    def counting_strftime(fmt: str, value: Any) -> str:
        formatted.append(1)
        return strftime(fmt, value)

    monkeypatch.setattr(time, "time_ns", lambda: now[0])
    monkeypatch.setattr(time, "strftime", counting_strftime)
    stamper = _log_render.MillisecondTimeStamper()

    first = stamper(None, "info", {})["timestamp"]
    now[0] += 500_000  # same millisecond
    second = stamper(None, "info", {})["timestamp"]
    now[0] += 1_000_000
    third = stamper(None, "info", {})["timestamp"]

    assert first == second == "2025-12-02T00:00:00.123Z"
    assert third == "2025-12-02T00:00:00.124Z"
    assert len(formatted) == 2
    expected = datetime.fromtimestamp(1_764_633_600.124, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert third == expected


def test_json_serializer_is_orjson_when_installed_and_stdlib_json_otherwise(monkeypatch):
    """The serializer is orjson.dumps when orjson imports, else stdlib json producing the same bytes shape."""
    orjson = pytest.importorskip("orjson")
    assert _log_render.json_serializer() is orjson.dumps

    monkeypatch.setitem(sys.modules, "orjson", None)  # makes `import orjson` fail
    fallback = _log_render.json_serializer()
    assert fallback is not orjson.dumps
    assert json.loads(fallback({"event": "x", "n": 1})) == {"event": "x", "n": 1}
    assert isinstance(fallback({}), bytes)


def test_configure_json_without_orjson_still_writes_json_lines(monkeypatch, capsys, handles):
    """Without orjson, configure(logs="json") falls back to stdlib json and writes the same lines."""
    monkeypatch.setitem(sys.modules, "orjson", None)
    handles.append(configure(service_name="svc", traces="none", metrics="none", logs="json", set_global=False))

    structlog.get_logger().info("order stored", order_id=7)

    (entry,) = _json_lines(capsys.readouterr().out)
    assert entry["event"] == "order stored"
    assert entry["order_id"] == 7
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])


def test_configure_json_caches_loggers_and_capture_logs_still_sees_them(handles, capsys):
    """Loggers are cached (fast path), yet capture_logs() in an application's tests still captures them."""
    handles.append(configure(service_name="svc", traces="none", metrics="none", logs="json", set_global=False))
    assert structlog.get_config()["cache_logger_on_first_use"] is True
    module_logger = structlog.get_logger("app")
    module_logger.info("first use caches the logger")

    with capture_logs() as logs:
        module_logger.info("captured", order_id=1)
    # configuring again keeps the cached logger on the live processor list
    handles.append(configure(service_name="svc", traces="none", metrics="none", logs="json", set_global=False))
    with capture_logs() as again:
        module_logger.info("captured again")

    assert logs == [{"event": "captured", "order_id": 1, "log_level": "info"}]
    assert [e["event"] for e in again] == ["captured again"]
    assert [e["event"] for e in _json_lines(capsys.readouterr().out)] == ["first use caches the logger"]


def test_configure_json_output_goes_to_the_stdout_buffer_as_bytes(handles, monkeypatch):
    """configure(logs="json") writes bytes to sys.stdout.buffer (BytesLoggerFactory), one line per entry."""
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8"))
    handles.append(configure(service_name="svc", traces="none", metrics="none", logs="json", set_global=False))

    structlog.get_logger().info("one")
    structlog.get_logger().info("two")

    assert [json.loads(line)["event"] for line in raw.getvalue().splitlines()] == ["one", "two"]


def test_configure_json_on_a_text_only_stdout_writes_text(handles, monkeypatch):
    """A stdout without a bytes buffer (a notebook's stream) still gets JSON lines, as text."""
    text = io.StringIO()
    monkeypatch.setattr(sys, "stdout", text)
    handles.append(configure(service_name="svc", traces="none", metrics="none", logs="json", set_global=False))

    structlog.get_logger().info("one", n=1)

    assert json.loads(text.getvalue()) | {"timestamp": "x"} == {
        "event": "one",
        "n": 1,
        "level": "info",
        "timestamp": "x",
    }
