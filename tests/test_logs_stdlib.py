"""Tests for routing batchlens' entries through stdlib logging: detection, Powertools' Logger, basicConfig,
Lambda's JSON log format and the BATCHLENS_LOG_OUTPUT override."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any

import pytest
import structlog
from aws_lambda_powertools import Logger
from structlog.testing import capture_logs

# pytest fixtures: saved and restored logging state, a Powertools Logger writing to a buffer
from _logs_support import ListHandler, powertools_lambda_handler
from _logs_support import powertools_stream as powertools_stream
from _logs_support import root_logging as root_logging
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._telemetry.logs import REQUEST_ID_KEY
from batchlens.testing import lambda_context, sqs_event

SECRET = "card-4111-1111-1111-1111"
RECORD_KEYS = {"record_id", "outcome", "event_source", "destination", "duration_ms", "trace_id", "span_id"}


def handler(record: Any) -> str:
    body = record.body  # a frame local holding the body: never logged
    if "fail" in body:
        raise ValueError("could not process the order")
    return "done"


# -- Powertools' Logger ----------------------------------------------------------------------------------------------
def test_powertools_logger_lines_carry_batchlens_keys_and_its_correlation_fields(telemetry, powertools_stream):
    """With a Powertools Logger, batchlens' entries come out as its JSON lines, with its Lambda context fields."""
    logger, stream = powertools_stream
    context = lambda_context(aws_request_id="9a3c5e7f-0000-4000-8000-000000000001", function_name="orders-fn")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    powertools_lambda_handler(logger, processor, handler)(
        sqs_event(["ok", f"fail {SECRET}"], queue="orders", seed=1), context
    )

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "handler started",
        "record processed",
        "record failed",
        "batch processed",
    ]
    for line in lines:
        assert line["service"] == logger.service
        assert line["function_name"] == "orders-fn"
        assert line["function_request_id"] == context.aws_request_id
        assert "cold_start" in line
    processed, failed, summary = lines[1:]
    assert set(processed) >= RECORD_KEYS
    assert processed["level"] == "INFO"
    assert processed["destination"] == "orders"
    assert failed["level"] == "ERROR"
    assert failed["error_type"] == "ValueError"
    assert failed["error_message"] == "could not process the order"
    assert "in handler" in failed["exception"]
    assert (summary["batch_size"], summary["failure_count"]) == (2, 1)
    assert SECRET not in stream.getvalue()


def test_powertools_logger_without_inject_lambda_context_gets_batchlens_request_id(telemetry, powertools_stream):
    """Without inject_lambda_context, batchlens still adds function_request_id from the context it is given."""
    _logger, stream = powertools_stream
    context = lambda_context(aws_request_id="req-plain-powertools")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok"], seed=2), handler, processor, context)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["record processed", "batch processed"]
    assert all(line[REQUEST_ID_KEY] == "req-plain-powertools" for line in lines)


def test_powertools_logger_level_filters_batchlens_entries(telemetry):
    """The Powertools Logger's level applies: at WARNING only record failures come through."""
    stream = io.StringIO()
    service = f"orders-quiet-{uuid.uuid4().hex[:8]}"
    Logger(service=service, stream=stream, level="WARNING")
    try:
        processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
        process_partial_response(sqs_event(["ok", "fail", "ok"], seed=3), handler, processor)
    finally:
        logging.getLogger(service).handlers.clear()

    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["record failed"]


def test_powertools_logger_wins_over_the_lambda_json_runtime_handler(
    telemetry, powertools_stream, root_logging, monkeypatch
):
    """Under Lambda's JSON format a Powertools user still gets batchlens' entries in Powertools' shape."""
    _logger, stream = powertools_stream

    class LambdaLoggerHandler(ListHandler):
        """Stands in for the runtime's handler (matched by class name)."""

    runtime = LambdaLoggerHandler()
    root_logging.addHandler(runtime)
    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", "JSON")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok"], seed=12), handler, processor)

    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        "record processed",
        "batch processed",
    ]
    assert runtime.records == []


# -- plain logging --------------------------------------------------------------------------------------------------
def test_basic_config_routes_entries_through_the_batchlens_logger(telemetry, root_logging, capsys):
    """With logging.basicConfig and structlog unconfigured, entries are 'batchlens' records with the keys as extras."""
    stream = io.StringIO()
    logging.basicConfig(level=logging.INFO, stream=stream, format="%(levelname)s %(name)s %(message)s", force=True)
    keeper = ListHandler()
    root_logging.addHandler(keeper)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", f"fail {SECRET}"], queue="orders", seed=4), handler, processor)

    assert stream.getvalue().splitlines() == [
        "INFO batchlens record processed",
        "ERROR batchlens record failed",
        "INFO batchlens batch processed",
    ]
    processed, failed, summary = keeper.records
    assert processed.__dict__["record_id"]
    assert processed.__dict__["destination"] == "orders"
    assert failed.__dict__["error_type"] == "ValueError"
    assert failed.exc_info is None  # the bounded text travels as extras, not the exception
    assert "in handler" in failed.__dict__["exception"]
    assert summary.__dict__["batch_size"] == 2
    assert SECRET not in repr([r.__dict__ for r in keeper.records])
    assert capsys.readouterr().out == ""  # nothing through structlog's defaults


def test_batchlens_logger_level_applies(telemetry, root_logging):
    """A level set on the 'batchlens' logger filters its entries before any is built."""
    keeper = ListHandler()
    logging.basicConfig(level=logging.INFO, handlers=[keeper], force=True)
    logging.getLogger("batchlens").setLevel(logging.ERROR)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], seed=5), handler, processor)

    assert [r.getMessage() for r in keeper.records] == ["record failed"]


def test_structlog_configured_application_keeps_structlog(telemetry, root_logging):
    """An application that configured structlog keeps getting the entries through structlog, handlers or not."""
    keeper = ListHandler()
    logging.basicConfig(level=logging.INFO, handlers=[keeper], force=True)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(sqs_event(["ok", "fail"], seed=6), handler, processor)

    assert [e["event"] for e in logs] == ["record processed", "record failed", "batch processed"]
    assert keeper.records == []


def test_lambda_runtime_text_handler_alone_keeps_the_json_fallback(telemetry, root_logging, monkeypatch, capsys):
    """The Lambda runtime's own text handler on root does not count: entries stay JSON lines on stdout."""

    class LambdaLoggerHandler(ListHandler):
        """Stands in for the runtime's handler (matched by class name)."""

    runtime = LambdaLoggerHandler()
    root_logging.addHandler(runtime)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok"], seed=7), handler, processor)

    assert [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()] == [
        "record processed",
        "batch processed",
    ]
    assert runtime.records == []


def test_lambda_json_log_format_routes_through_logging(telemetry, root_logging, monkeypatch, capsys):
    """Under AWS_LAMBDA_LOG_FORMAT=JSON the runtime's handler formats records as JSON: entries go to logging."""

    class LambdaLoggerHandler(ListHandler):
        """Stands in for the runtime's handler (matched by class name)."""

    runtime = LambdaLoggerHandler()
    root_logging.addHandler(runtime)
    root_logging.setLevel(logging.INFO)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", "JSON")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok"], seed=8), handler, processor, lambda_context(aws_request_id="r-json"))

    assert capsys.readouterr().out == ""
    assert [r.getMessage() for r in runtime.records] == ["record processed", "batch processed"]
    assert all(r.__dict__[REQUEST_ID_KEY] == "r-json" for r in runtime.records)


# -- BATCHLENS_LOG_OUTPUT --------------------------------------------------------------------------------------------
def test_log_output_stdlib_forces_logging_even_when_structlog_is_configured(telemetry, caplog):
    """log_output="stdlib" sends entries to the 'batchlens' logger whatever structlog's state."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry.replace(log_output="stdlib"))

    with capture_logs() as logs, caplog.at_level(logging.INFO, logger="batchlens"):
        process_partial_response(sqs_event(["ok", "fail"], seed=9), handler, processor)

    assert logs == []
    assert [r.getMessage() for r in caplog.records if r.name == "batchlens"] == [
        "record processed",
        "record failed",
        "batch processed",
    ]


def test_log_output_structlog_ignores_detected_logging(telemetry, root_logging, monkeypatch, capsys):
    """BATCHLENS_LOG_OUTPUT=structlog keeps the private JSON lines in Lambda despite the application's handlers."""
    keeper = ListHandler()
    logging.basicConfig(level=logging.INFO, handlers=[keeper], force=True)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    monkeypatch.setenv("BATCHLENS_LOG_OUTPUT", "Structlog")
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.from_env(tracing=False, metrics=False))

    process_partial_response(sqs_event(["ok"], seed=10), handler, processor)

    assert [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()] == [
        "record processed",
        "batch processed",
    ]
    assert keeper.records == []


def test_log_output_auto_detects_application_handlers(telemetry, root_logging):
    """The default (auto) routes to logging once the application has a handler and structlog is unconfigured."""
    assert telemetry.log_output == "auto"
    keeper = ListHandler()
    logging.getLogger("batchlens").addHandler(keeper)
    logging.getLogger("batchlens").setLevel(logging.INFO)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok"], seed=11), handler, processor)

    assert not structlog.is_configured()
    assert [r.getMessage() for r in keeper.records] == ["record processed", "batch processed"]


@pytest.mark.parametrize("value", ["json", "both", "1"])
def test_log_output_rejects_unknown_values(value, monkeypatch):
    """An unknown BATCHLENS_LOG_OUTPUT or log_output value is an error naming the setting and the choices."""
    monkeypatch.setenv("BATCHLENS_LOG_OUTPUT", value)
    with pytest.raises(ValueError, match=r"BATCHLENS_LOG_OUTPUT.*auto, structlog, stdlib"):
        Telemetry.from_env()
    with pytest.raises(ValueError, match=r"log_output.*auto, structlog, stdlib"):
        Telemetry(log_output=value)


def test_log_output_parsing_is_case_insensitive_and_blank_means_auto(monkeypatch):
    """BATCHLENS_LOG_OUTPUT accepts any case; an empty value means the default."""
    monkeypatch.setenv("BATCHLENS_LOG_OUTPUT", " STDLIB ")
    assert Telemetry.from_env().log_output == "stdlib"
    monkeypatch.setenv("BATCHLENS_LOG_OUTPUT", "")
    assert Telemetry.from_env().log_output == "auto"
