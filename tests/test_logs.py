"""Tests for the logging observer: entries per record and per batch, levels, correlation, Lambda JSON fallback."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens._telemetry.logs import LoggingObserver
from batchlens.testing._events import kafka_event, sqs_event, sqs_fifo_event

SECRET = "card-4111-1111-1111-1111"
RECORD_KEYS = {"event", "log_level", "record_id", "outcome", "event_source", "destination", "duration_ms"}
TRACE_KEYS = {"trace_id", "span_id"}


def handler(record: Any) -> Any:
    if "fail" in record.body:
        raise ValueError("could not process the order")
    return "done"


def entries(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event]


# -- entries -------------------------------------------------------------------------------------------------
def test_record_processed_entries_have_exactly_the_documented_keys(telemetry):
    """Each successful record logs 'record processed' at info with the documented keys and nothing else."""
    event = sqs_event(count=3, queue="orders", seed=1)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(event, handler, processor)

    processed = entries(logs, "record processed")
    assert len(processed) == 3
    for entry, raw in zip(processed, event["Records"], strict=True):
        assert set(entry) == RECORD_KEYS | TRACE_KEYS
        assert entry["log_level"] == "info"
        assert entry["record_id"] == raw["messageId"]
        assert entry["outcome"] == "success"
        assert entry["event_source"] == "aws:sqs"
        assert entry["destination"] == "orders"
        assert isinstance(entry["duration_ms"], float)
        assert entry["duration_ms"] >= 0
        assert len(entry["trace_id"]) == 32
        assert len(entry["span_id"]) == 16


def test_record_failed_entries_carry_the_exception_and_error_type(telemetry):
    """A failed record logs 'record failed' at error with error_type and the exception itself."""
    event = sqs_event(["ok", "fail"], queue="orders", seed=2)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(event, handler, processor)

    (failed,) = entries(logs, "record failed")
    assert set(failed) == RECORD_KEYS | TRACE_KEYS | {"error_type", "exc_info"}
    assert failed["log_level"] == "error"
    assert failed["outcome"] == "failure"
    assert failed["error_type"] == "ValueError"
    assert isinstance(failed["exc_info"], ValueError)
    assert failed["record_id"] == event["Records"][1]["messageId"]


def test_fifo_skipped_records_log_outcome_skipped_without_a_traceback(telemetry):
    """Short-circuited FIFO records log 'record failed' with outcome skipped and the circuit-breaker's error.type."""
    event = sqs_fifo_event(["ok", "fail", "ok", "ok"], queue="orders.fifo", seed=3)
    processor = SqsFifoPartialProcessor(telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(event, handler, processor)

    failed = entries(logs, "record failed")
    assert [e["outcome"] for e in failed] == ["failure", "skipped", "skipped"]
    assert [e["error_type"] for e in failed] == [
        "ValueError",
        "batchlens.exceptions.SQSFifoCircuitBreakerError",
        "batchlens.exceptions.SQSFifoCircuitBreakerError",
    ]
    assert "exc_info" in failed[0]
    assert all("exc_info" not in e for e in failed[1:])
    assert len(entries(logs, "record processed")) == 1


def test_batch_summary_entry(telemetry, span_exporter):
    """Each batch logs one 'batch processed' entry with its size, counts, destination, duration and batch span."""
    event = sqs_event(["ok", "fail", "ok", "fail", "ok"], queue="orders", seed=4)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(event, handler, processor)

    (summary,) = entries(logs, "batch processed")
    assert set(summary) == {
        "event",
        "log_level",
        "batch_size",
        "success_count",
        "failure_count",
        "destination",
        "duration_ms",
        "trace_id",
        "span_id",
    }
    (batch_span,) = [s for s in span_exporter.get_finished_spans() if s.parent is None]
    assert summary["trace_id"] == format(batch_span.context.trace_id, "032x")
    assert summary["span_id"] == format(batch_span.context.span_id, "016x")
    assert (summary["batch_size"], summary["success_count"], summary["failure_count"]) == (5, 3, 2)
    assert summary["destination"] == "orders"
    assert summary["log_level"] == "info"
    assert logs[-1] is summary


def test_kafka_record_ids_and_event_source(telemetry):
    """Kafka entries identify records as topic-partition@offset and name the aws:kafka source."""
    event = kafka_event(count=2, topic="payments", seed=5)
    processor = BatchProcessor(EventType.Kafka, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(event, lambda record: None, processor)

    processed = entries(logs, "record processed")
    raws = event["records"]["payments-0"]
    assert [e["record_id"] for e in processed] == [f"payments-0@{r['offset']}" for r in raws]
    assert {e["event_source"] for e in processed} == {"aws:kafka"}
    assert {e["destination"] for e in processed} == {"payments"}


def test_message_bodies_are_never_logged(telemetry):
    """No entry (nor its rendering) contains the message body."""
    event = sqs_event([SECRET, f"fail {SECRET}"], seed=6)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    stream = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
    )

    with capture_logs() as logs:
        process_partial_response(event, handler, processor)
    process_partial_response(event, handler, processor)

    assert len(logs) == 3
    assert SECRET not in repr(logs)
    assert stream.getvalue().count("\n") == 3
    assert SECRET not in stream.getvalue()


# -- correlation -------------------------------------------------------------------------------------------------
def test_log_entries_correlate_with_record_spans(telemetry, span_exporter):
    """trace_id/span_id in each record entry are those of that record's span."""
    event = sqs_event(["ok", "fail", "ok"], seed=7)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(event, handler, processor)

    spans = {
        s.attributes["messaging.message.id"]: s
        for s in span_exporter.get_finished_spans()
        if "messaging.message.id" in s.attributes
    }
    record_entries = [e for e in logs if "record_id" in e]
    assert len(record_entries) == 3
    for entry in record_entries:
        span = spans[entry["record_id"]]
        assert entry["trace_id"] == format(span.context.trace_id, "032x")
        assert entry["span_id"] == format(span.context.span_id, "016x")


async def test_concurrent_async_entries_correlate_with_their_own_spans(telemetry, span_exporter):
    """Under 40 concurrent async records every entry carries its own record span's ids."""
    event = sqs_event(count=40, fail_rate=0.2, seed=8)
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=telemetry)

    async def async_handler(record: Any) -> Any:
        await asyncio.sleep(0.002)
        return handler(record)

    with capture_logs() as logs:
        await asyncio.to_thread(async_process_partial_response, event, async_handler, processor)

    spans = {
        s.attributes["messaging.message.id"]: s
        for s in span_exporter.get_finished_spans()
        if "messaging.message.id" in s.attributes
    }
    record_entries = [e for e in logs if "record_id" in e]
    assert len(record_entries) == 40
    assert len(entries(logs, "record failed")) == 8
    for entry in record_entries:
        assert entry["span_id"] == format(spans[entry["record_id"]].context.span_id, "016x")


def test_without_tracing_entries_have_no_trace_ids(meter_provider):
    """With tracing off the entries carry no trace_id/span_id."""
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry(tracing=False, meter_provider=meter_provider))

    with capture_logs() as logs:
        process_partial_response(sqs_event(["ok", "fail"], seed=9), handler, processor)

    record_entries = [e for e in logs if "record_id" in e]
    assert len(record_entries) == 2
    assert all(not (TRACE_KEYS & set(e)) for e in record_entries)


# -- levels ----------------------------------------------------------------------------------------------------------
def test_success_level_is_configurable(telemetry):
    """success_log_level sets the level of 'record processed'."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry.replace(success_log_level="debug"))

    with capture_logs() as logs:
        process_partial_response(sqs_event(count=2, seed=10), handler, processor)

    assert [e["log_level"] for e in entries(logs, "record processed")] == ["debug", "debug"]


def test_filtered_levels_build_no_entry(telemetry, monkeypatch):
    """When the application filters the success level out, no success entry is even assembled."""
    built: list[str] = []
    original = LoggingObserver._fields

    def counting_fields(batch: Any, state: Any, record: Any) -> dict[str, Any]:
        built.append(record.outcome)
        return original(batch, state, record)

    monkeypatch.setattr(LoggingObserver, "_fields", staticmethod(counting_fields))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with capture_logs() as logs:
        process_partial_response(sqs_event(["ok", "fail", "ok", "ok"], seed=11), handler, processor)

    assert built == ["failure"]
    assert [e["event"] for e in logs] == ["record failed"]


def test_stdlib_integration_uses_the_batchlens_logger_and_its_level(telemetry, caplog):
    """With structlog routed to logging, entries go to the 'batchlens' logger and obey its level."""
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    with caplog.at_level(logging.INFO, logger="batchlens"):
        process_partial_response(sqs_event(["ok", "fail"], seed=12), handler, processor)
    mine = [r for r in caplog.records if r.name == "batchlens"]
    assert [r.levelno for r in mine] == [logging.INFO, logging.ERROR, logging.INFO]
    assert "event='record processed'" in mine[0].getMessage()

    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="batchlens"):
        process_partial_response(sqs_event(["ok", "fail"], seed=13), handler, processor)
    assert [r.levelno for r in caplog.records if r.name == "batchlens"] == [logging.ERROR]


def test_application_json_renderer_formats_the_exception(telemetry):
    """The exception reaches the application's renderer, which formats its traceback."""
    stream = io.StringIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
    )
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], seed=14), handler, processor)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (failed,) = [e for e in lines if e["event"] == "record failed"]
    assert failed["exception"][0]["exc_type"] == "ValueError"
    assert failed["exception"][0]["exc_value"] == "could not process the order"


# -- output when structlog is not configured --------------------------------------------------------------------------
def test_unconfigured_in_lambda_prints_one_json_object_per_line(telemetry, monkeypatch, capsys):
    """In Lambda with structlog unconfigured, entries are JSON lines on stdout; structlog stays unconfigured."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], queue="orders", seed=15), handler, processor)

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    decoded = [json.loads(line) for line in lines]
    assert [e["event"] for e in decoded] == ["record processed", "record failed", "batch processed"]
    assert [e["level"] for e in decoded] == ["info", "error", "info"]
    assert all(e["logger"] == "batchlens" and "timestamp" in e for e in decoded)
    assert decoded[1]["exception"].startswith("Traceback (most recent call last):")
    assert decoded[1]["exception"].endswith("ValueError: could not process the order\n")
    assert decoded[1]["error_message"] == "could not process the order"
    assert decoded[0]["destination"] == "orders"
    assert not structlog.is_configured()


def test_lambda_log_level_filters_the_private_logger(telemetry, monkeypatch, capsys):
    """AWS_LAMBDA_LOG_LEVEL applies to the private Lambda logger."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "ERROR")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(["ok", "fail"], seed=16), handler, processor)

    decoded = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in decoded] == ["record failed"]


def test_unconfigured_outside_lambda_uses_structlog_defaults(telemetry, capsys):
    """Outside Lambda an unconfigured structlog keeps its default console rendering."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(count=1, seed=17), handler, processor)

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "record processed" in lines[0]
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[0])


def test_configured_structlog_in_lambda_is_respected(telemetry, monkeypatch, capsys):
    """In Lambda, an application's own structlog configuration wins over the JSON fallback."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-handler")
    stream = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
    )
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(sqs_event(count=1, seed=18), handler, processor)

    assert capsys.readouterr().out == ""
    assert stream.getvalue().startswith("event='record processed'")
