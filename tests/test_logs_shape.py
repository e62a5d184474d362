"""batchlens' log lines keep the application's shape after ``configure()``: Powertools' Logger and Lambda's JSON
format get them as ``logging`` records whenever that logger was created, configure()'s JSON lines follow a
redirected ``sys.stdout``, ``batch processed`` carries the batch span on every route, configure()'s lines carry
``logger``."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import uuid
from contextlib import redirect_stdout
from typing import Any

import pytest
import structlog
from aws_lambda_powertools import Logger
from structlog.testing import capture_logs

# pytest fixtures: a clean environment, handles shut down after each test, saved and restored logging state
from _configure_support import clean_environment as clean_environment
from _configure_support import handles_fixture as handles_fixture
from _logs_support import ListHandler, powertools_lambda_handler
from _logs_support import root_logging as root_logging
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._telemetry.logs import REQUEST_ID_KEY, LoggingObserver
from batchlens.telemetry import TelemetryHandle, configure
from batchlens.testing import capture_telemetry, lambda_context, sqs_event

BATCHLENS_EVENTS = ["record processed", "record failed", "batch processed"]
XRAY_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def handler(record: Any) -> str:
    if "fail" in record.body:
        raise ValueError("could not process the order")
    return "done"


def _configure(handles: list[TelemetryHandle], **kwargs: Any) -> TelemetryHandle:
    """configure() as a Lambda function calls it: its default logs (JSON in Lambda), no exporters."""
    handle = configure(traces="none", metrics="none", set_global=False, **kwargs)
    handles.append(handle)
    return handle


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def in_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-fn")


@pytest.fixture
def powertools_after_configure(
    handles: list[TelemetryHandle], in_lambda: None
) -> Any:  # Iterator[tuple[Logger, io.StringIO]]
    """configure()'s default first (structlog JSON in Lambda), then a Powertools Logger writing to a buffer."""
    assert _configure(handles).log_format == "json"
    stream = io.StringIO()
    logger = Logger(service=f"orders-{uuid.uuid4().hex[:8]}", stream=stream)
    yield logger, stream
    logging.getLogger(logger.service).handlers.clear()


# -- Powertools' Logger ----------------------------------------------------------------------------------------------
def test_powertools_logger_created_after_configure_gets_batchlens_lines_in_its_shape(
    telemetry, powertools_after_configure, monkeypatch, capsys
):
    """After configure(), batchlens' lines go through a Powertools Logger created later, with all of its keys."""
    logger, stream = powertools_after_configure
    monkeypatch.setenv("_X_AMZN_TRACE_ID", XRAY_HEADER)
    context = lambda_context(aws_request_id="9a3c5e7f-0000-4000-8000-00000000000a", function_name="orders-fn")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    powertools_lambda_handler(logger, processor, handler)(sqs_event(["ok", "fail"], queue="orders", seed=1), context)

    lines = _json_lines(stream.getvalue())
    assert [line["message"] for line in lines] == ["handler started", *BATCHLENS_EVENTS]
    for line in lines[1:]:
        assert "event" not in line
        assert line["level"] in ("INFO", "ERROR")
        assert line["service"] == logger.service
        assert line["function_request_id"] == context.aws_request_id
        assert line["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
        assert "cold_start" in line
        assert "timestamp" in line
    assert [line["level"] for line in lines[1:]] == ["INFO", "ERROR", "INFO"]
    # structlog's JSON (configure()'s pipeline) printed none of batchlens' lines
    assert capsys.readouterr().out == ""


def test_powertools_location_is_the_real_caller_never_batchlens_0(telemetry, powertools_after_configure):
    """Powertools' `location` of batchlens' lines is a real function and line of batchlens' log observer."""
    _logger, stream = powertools_after_configure
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], seed=2), handler, processor)

    lines = _json_lines(stream.getvalue())
    assert [line["message"] for line in lines] == BATCHLENS_EVENTS
    for line in lines:
        location = line.get("location")
        if location is None:
            continue
        assert location != "batchlens:0"
        match = re.fullmatch(r"(\w+):([1-9]\d*)", location)
        assert match is not None, location
        assert callable(getattr(LoggingObserver, match.group(1), None)), location


def test_powertools_logger_created_between_batches_takes_over_from_the_next_batch(
    telemetry, handles, in_lambda, capsys
):
    """A Logger created after the processor and a first batch gets batchlens' lines from the next batch on."""
    _configure(handles)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    process_partial_response(sqs_event(["ok"], seed=20), handler, processor)
    stream = io.StringIO()
    logger = Logger(service=f"late-{uuid.uuid4().hex[:8]}", stream=stream)
    try:
        process_partial_response(sqs_event(["ok"], seed=21), handler, processor)
    finally:
        logging.getLogger(logger.service).handlers.clear()

    before = _json_lines(capsys.readouterr().out)
    assert [(line["event"], line["logger"]) for line in before] == [
        ("record processed", "batchlens"),
        ("batch processed", "batchlens"),
    ]
    after = _json_lines(stream.getvalue())
    assert [(line["message"], line["service"]) for line in after] == [
        ("record processed", logger.service),
        ("batch processed", logger.service),
    ]


def test_application_logging_set_up_after_configure_gets_the_entries(telemetry, handles, root_logging, capsys):
    """An application handler installed after configure() (logging.basicConfig) receives batchlens' records."""
    _configure(handles, logs="json")
    keeper = ListHandler()
    logging.basicConfig(level=logging.INFO, handlers=[keeper], force=True)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], seed=3), handler, processor)

    assert [r.getMessage() for r in keeper.records] == BATCHLENS_EVENTS
    assert all(r.name == "batchlens" for r in keeper.records)
    assert capsys.readouterr().out == ""


# -- Lambda's JSON log format ----------------------------------------------------------------------------------------
class _Sink:
    """The runtime's log sink: keeps what its handler writes."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, msg: str, frame_type: bytes | None = None) -> None:
        self.lines.append(msg)


def test_lambda_json_format_with_the_runtime_formatter_gets_batchlens_lines_after_configure(
    telemetry, handles, root_logging, monkeypatch, capsys, in_lambda
):
    """Under AWS_LAMBDA_LOG_FORMAT=JSON, batchlens' lines come out of awslambdaric's formatter with requestId."""
    bootstrap = pytest.importorskip(
        "awslambdaric.bootstrap", reason="awslambdaric (the Lambda runtime client, Linux only) is not installed"
    )
    from awslambdaric.lambda_runtime_log_utils import LogFormat

    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", "JSON")
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "INFO")
    # the runtime's own set-up of the root logger; it also switches logging's clock to UTC, undone afterwards
    monkeypatch.setattr(logging.Formatter, "converter", logging.Formatter.converter)
    sink = _Sink()
    bootstrap._setup_logging(LogFormat.JSON, "INFO", sink)
    monkeypatch.setattr(bootstrap, "_GLOBAL_AWS_REQUEST_ID", "req-runtime-json")
    _configure(handles)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(
        sqs_event(["ok", "fail"], seed=4), handler, processor, lambda_context(aws_request_id="req-runtime-json")
    )

    lines = [json.loads(line) for line in sink.lines]
    assert [line["message"] for line in lines] == BATCHLENS_EVENTS
    for line in lines:
        assert "event" not in line
        assert line["logger"] == "batchlens"
        assert line["requestId"] == "req-runtime-json"
        assert line[REQUEST_ID_KEY] == "req-runtime-json"
        assert line.get("location") != "batchlens:0"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["timestamp"])
    assert [line["level"] for line in lines] == ["INFO", "ERROR", "INFO"]
    assert "trace_id" in lines[-1]
    assert capsys.readouterr().out == ""


# -- restoring the old routing, and where structlog still wins --------------------------------------------------------
def test_log_output_structlog_keeps_configure_json_next_to_powertools(telemetry, powertools_after_configure, capsys):
    """log_output="structlog" (BATCHLENS_LOG_OUTPUT=structlog) restores the old route: configure()'s JSON lines."""
    _logger, stream = powertools_after_configure
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry.replace(log_output="structlog"))

    process_partial_response(sqs_event(["ok"], seed=5), handler, processor)

    assert stream.getvalue() == ""
    lines = _json_lines(capsys.readouterr().out)
    assert [(line["event"], line["level"], line["logger"]) for line in lines] == [
        ("record processed", "info", "batchlens"),
        ("batch processed", "info", "batchlens"),
    ]


def test_capture_logs_after_configure_still_sees_entries_next_to_powertools(telemetry, powertools_after_configure):
    """structlog.testing.capture_logs() and capture_telemetry() capture batchlens' entries despite the Logger."""
    _logger, stream = powertools_after_configure
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(sqs_event(["ok", "fail"], seed=6), handler, processor)
    with capture_telemetry() as captured:
        process_partial_response(sqs_event(["ok"], seed=7), handler, BatchProcessor(EventType.SQS))

    assert [e["event"] for e in logs] == BATCHLENS_EVENTS
    assert [e["event"] for e in captured.logs] == ["record processed", "batch processed"]
    assert stream.getvalue() == ""
    # once the capture ends, configure()'s structlog is batchlens' again: the Logger gets the entries
    process_partial_response(sqs_event(["ok"], seed=8), handler, processor)
    assert [line["message"] for line in _json_lines(stream.getvalue())] == ["record processed", "batch processed"]


def test_application_reconfiguring_structlog_after_configure_keeps_structlog(
    telemetry, powertools_after_configure, capsys
):
    """structlog configured by the application after configure() is the application's choice: entries follow it."""
    _logger, stream = powertools_after_configure
    structlog.configure(processors=[structlog.processors.KeyValueRenderer(key_order=["event"])])
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok"], seed=9), handler, processor)

    assert stream.getvalue() == ""
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" record_id=")[0].split(" batch_size=")[0] for line in out] == [
        "event='record processed'",
        "event='batch processed'",
    ]


# -- configure(logs="json") and sys.stdout ---------------------------------------------------------------------------
def test_redirected_stdout_without_a_buffer_gets_every_line(telemetry, handles, caplog):
    """Under redirect_stdout(io.StringIO()), every batchlens line and the application's own lines are written."""
    _configure(handles, logs="json")
    app = structlog.get_logger("app")
    app.info("before the redirect")  # caches the logger while stdout has a buffer
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    redirected = io.StringIO()

    with caplog.at_level(logging.WARNING, logger="batchlens"), redirect_stdout(redirected):
        for seed in (10, 11):
            process_partial_response(sqs_event(["ok", "fail"], seed=seed), handler, processor)
        structlog.get_logger("app").info("inside", n=1)
        app.info("cached logger inside")

    events = [(line["logger"], line["event"]) for line in _json_lines(redirected.getvalue())]
    assert events == [
        *[("batchlens", event) for event in BATCHLENS_EVENTS * 2],
        ("app", "inside"),
        ("app", "cached logger inside"),
    ]
    assert [r for r in caplog.records if r.name == "batchlens"] == []


def test_stdout_swapped_after_configure_under_redirect_gets_the_lines(handles, capsys):
    """configure() run while stdout was a StringIO writes to the stdout of each later write, not to that StringIO."""
    captured_at_configure = io.StringIO()
    with redirect_stdout(captured_at_configure):
        _configure(handles, logs="json")
        structlog.get_logger("app").info("while redirected")

    structlog.get_logger("app").info("after")

    assert [line["event"] for line in _json_lines(captured_at_configure.getvalue())] == ["while redirected"]
    assert [line["event"] for line in _json_lines(capsys.readouterr().out)] == ["after"]


def test_configure_json_writes_bytes_to_the_buffer_of_the_current_stdout(handles, monkeypatch):
    """With a buffer, lines go to it as bytes: the buffer of whichever stdout is current at the write."""
    _configure(handles, logs="json")
    first, second = io.BytesIO(), io.BytesIO()
    log = structlog.get_logger("app")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(first, encoding="utf-8"))
    log.info("one", text="ü")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(second, encoding="utf-8"))
    log.info("two")

    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["one"]
    assert json.loads(first.getvalue())["text"] == "ü"
    assert [json.loads(line)["event"] for line in second.getvalue().splitlines()] == ["two"]


# -- keys of configure()'s lines ------------------------------------------------------------------------------------
def test_configure_lines_carry_logger(telemetry, handles, capsys):
    """configure()'s lines name their logger: `batchlens` for batchlens' entries, the application's own names."""
    _configure(handles, logs="json")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], seed=12), handler, processor)
    structlog.get_logger("orders.app").info("stored")
    structlog.get_logger().info("unnamed")

    lines = _json_lines(capsys.readouterr().out)
    assert [(line["event"], line.get("logger")) for line in lines] == [
        *[(event, "batchlens") for event in BATCHLENS_EVENTS],
        ("stored", "orders.app"),
        ("unnamed", None),
    ]


def test_configure_console_lines_carry_logger_and_follow_stdout(telemetry, handles):
    """logs="console" names the logger too and writes to the stdout of each write."""
    _configure(handles, logs="console")
    out = io.StringIO()
    with redirect_stdout(out):
        process_partial_response(
            sqs_event(["ok"], seed=13), handler, BatchProcessor(EventType.SQS, telemetry=telemetry)
        )

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert all("batchlens" in line for line in lines)
    assert "record processed" in lines[0]


# -- batch processed: trace_id and span_id on every route ------------------------------------------------------------
def _route_stdlib(run: Any, root_logging: logging.Logger, capsys: Any, handles: Any) -> list[dict[str, Any]]:
    keeper = ListHandler()
    logging.basicConfig(level=logging.INFO, handlers=[keeper], force=True)
    run()
    return [{"event": r.getMessage(), **r.__dict__} for r in keeper.records]


def _route_lambda_private(run: Any, root_logging: logging.Logger, capsys: Any, handles: Any) -> list[dict[str, Any]]:
    run()
    return _json_lines(capsys.readouterr().out)


def _route_configure(run: Any, root_logging: logging.Logger, capsys: Any, handles: Any) -> list[dict[str, Any]]:
    _configure(handles, logs="json")
    run()
    return _json_lines(capsys.readouterr().out)


def _route_application_structlog(
    run: Any, root_logging: logging.Logger, capsys: Any, handles: Any
) -> list[dict[str, Any]]:
    with capture_logs() as logs:
        run()
    return list(logs)


@pytest.mark.parametrize(
    "route", [_route_stdlib, _route_lambda_private, _route_configure, _route_application_structlog]
)
def test_batch_processed_carries_the_batch_span_on_every_route(
    route, telemetry, span_exporter, handles, root_logging, capsys, in_lambda
):
    """`batch processed` has the batch span's trace_id and span_id through stdlib, Lambda JSON, configure, structlog."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    entries = route(
        lambda: process_partial_response(sqs_event(["ok", "fail"], seed=14), handler, processor),
        root_logging,
        capsys,
        handles,
    )

    assert [e["event"] for e in entries] == BATCHLENS_EVENTS
    summary = entries[-1]
    (batch_span,) = [s for s in span_exporter.get_finished_spans() if s.parent is None]
    assert summary["trace_id"] == format(batch_span.context.trace_id, "032x")
    assert summary["span_id"] == format(batch_span.context.span_id, "016x")


def test_batch_processed_has_no_trace_keys_without_tracing(handles, capsys, in_lambda):
    """Without a recording batch span (tracing off), `batch processed` carries no trace_id/span_id."""
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry(tracing=False, metrics=False, sentry=False))

    process_partial_response(sqs_event(["ok"], seed=15), handler, processor)

    summary = _json_lines(capsys.readouterr().out)[-1]
    assert summary["event"] == "batch processed"
    assert "trace_id" not in summary
    assert "span_id" not in summary
