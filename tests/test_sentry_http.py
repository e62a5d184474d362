"""Sentry joined to the trace, end to end: sentry-sdk's real HTTP transport posts envelopes to a local server.

Each failed record's event names the record span's trace and span (``contexts.trace``) and the Lambda request id
(tag ``faas.invocation_id``), whether batchlens initialised Sentry or the application did, with or without
sentry-sdk's ``AwsLambdaIntegration``; its exception text is batchlens' bounded message.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.aws_lambda import AwsLambdaIntegration, _wrap_handler

from _sentry_support import as_sentry_sends, current_trace_id, reset_sentry, sentry_span
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._telemetry._errors import MAX_MESSAGE_CHARS, error_type, exception_message
from batchlens.testing import lambda_context, sqs_event

pytestmark = pytest.mark.sentry

REQUEST_ID = "6f0c8e1e-2d4c-4b6e-9a59-0d1f3c1d2e3f"


class OrderRejected(RuntimeError):
    """An application exception (its error.type is module.qualname)."""


class Ingest:
    """What the local Sentry ingest endpoint received, decoded."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.hang = threading.Event()  # while set, requests are held (released at test end)
        self.release = threading.Event()

    def envelopes(self) -> list[Envelope]:
        return [Envelope.deserialize(body) for _, body in self.requests]

    def error_events(self) -> list[dict[str, Any]]:
        events = []
        for envelope in self.envelopes():
            for item in envelope.items:
                if item.type == "event":
                    events.append(item.payload.json)
        return events


@pytest.fixture
def ingest() -> Iterator[tuple[str, Ingest]]:
    """A local HTTP server standing in for Sentry's ingest API; yields (dsn, what it received)."""
    received = Ingest()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if received.hang.is_set():
                received.release.wait(30)
            received.requests.append((self.path, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://public@127.0.0.1:{server.server_address[1]}/1", received
    received.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _fresh_sentry() -> Iterator[None]:
    """Every test starts and ends without a Sentry client."""
    reset_sentry()
    yield
    reset_sentry()


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def handler(record: Any) -> str:
    if "fail" in record.body:
        raise ValueError(f"cannot process {record.message_id}")
    return "ok"


def record_span(exporter: InMemorySpanExporter, message_id: str) -> ReadableSpan:
    (span,) = [
        s for s in exporter.get_finished_spans() if (s.attributes or {}).get("messaging.message.id") == message_id
    ]
    return span


def run_batch(provider: TracerProvider, *, dsn: str | None = None, logging: bool = False) -> Any:
    telemetry = Telemetry(
        tracing=True, metrics=False, logging=logging, sentry=True, sentry_dsn=dsn, tracer_provider=provider
    )
    event = sqs_event(["ok", "fail"], seed=7)
    context = lambda_context(remaining_ms=3000, frozen=True, aws_request_id=REQUEST_ID)
    process_partial_response(event, handler, BatchProcessor(EventType.SQS, telemetry=telemetry), context)
    return event


def assert_joined(sent: dict[str, Any], span: ReadableSpan) -> None:
    """The event names the record span's trace and span, and the invocation's request id."""
    trace = sent["contexts"]["trace"]
    assert trace["trace_id"] == format(span.context.trace_id, "032x")
    assert trace["span_id"] == format(span.context.span_id, "016x")
    assert span.parent is not None
    assert trace["parent_span_id"] == format(span.parent.span_id, "016x")  # the batch span
    assert sent["tags"]["faas.invocation_id"] == REQUEST_ID
    assert sent["contexts"]["batch_record"]["aws_request_id"] == REQUEST_ID


def test_batchlens_initialised_sentry_joins_the_trace(ingest, spans, monkeypatch):
    """BATCHLENS_SENTRY_DSN: the envelope posted over HTTP carries the record span's ids and the request id."""
    dsn, received = ingest
    provider, exporter = spans
    monkeypatch.setenv("BATCHLENS_SENTRY_ENABLED", "true")
    monkeypatch.setenv("BATCHLENS_SENTRY_DSN", dsn)
    telemetry = Telemetry.from_env().replace(tracer_provider=provider, metrics=False, logging=False, tracing=True)
    assert telemetry.sentry_dsn == dsn
    event = sqs_event(["ok", "fail"], seed=8)
    context = lambda_context(remaining_ms=3000, frozen=True, aws_request_id=REQUEST_ID)
    process_partial_response(event, handler, BatchProcessor(EventType.SQS, telemetry=telemetry), context)
    # the flush before returning has sent the envelope
    assert {path for path, _ in received.requests} == {"/api/1/envelope/"}
    (sent,) = received.error_events()
    failed_id = event["Records"][1]["messageId"]
    assert_joined(sent, record_span(exporter, failed_id))
    assert sent["tags"]["messaging.message.id"] == failed_id
    assert sent["tags"]["error.type"] == "ValueError"
    (value,) = sent["exception"]["values"]
    assert value["value"] == f"cannot process {failed_id}"


@pytest.mark.parametrize("traces_sample_rate", [None, 1.0])
def test_application_initialised_sentry_joins_the_trace(ingest, spans, traces_sample_rate):
    """The application's own client (with or without Sentry tracing): the event still names the OTel trace."""
    dsn, received = ingest
    provider, exporter = spans
    sentry_sdk.init(dsn=dsn, default_integrations=False, traces_sample_rate=traces_sample_rate)
    with sentry_span("handler"):
        event = run_batch(provider)
    sentry_sdk.flush(2)
    (sent,) = received.error_events()
    assert_joined(sent, record_span(exporter, event["Records"][1]["messageId"]))


@pytest.mark.parametrize("traces_sample_rate", [None, 1.0])
def test_application_with_the_aws_lambda_integration_joins_the_trace(ingest, spans, traces_sample_rate):
    """Under AwsLambdaIntegration's handler wrapper (its own transaction and scope), events name the OTel trace."""
    dsn, received = ingest
    provider, exporter = spans
    sentry_sdk.init(
        dsn=dsn,
        default_integrations=False,
        integrations=[AwsLambdaIntegration()],
        traces_sample_rate=traces_sample_rate,
    )
    telemetry = Telemetry(tracing=True, metrics=False, logging=False, sentry=True, tracer_provider=provider)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(event, handler, processor, context)

    wrapped = _wrap_handler(lambda_handler)  # what the integration does to the runtime's handler
    event = sqs_event(["fail", "ok"], seed=9)
    response = wrapped(event, lambda_context(remaining_ms=3000, frozen=True, aws_request_id=REQUEST_ID))
    sentry_sdk.flush(2)
    failed_id = event["Records"][0]["messageId"]
    assert response == {"batchItemFailures": [{"itemIdentifier": failed_id}]}
    (sent,) = received.error_events()
    assert_joined(sent, record_span(exporter, failed_id))
    assert sent["extra"]["lambda"]["aws_request_id"] == REQUEST_ID  # the integration's own fields are kept


def test_exception_text_is_batchlens_bounded_message_for_every_chained_exception(ingest, spans):
    """The event's exception values are exception_message() of each exception in the chain, never str(exc)."""
    dsn, received = ingest
    provider, _ = spans
    long_cause = KeyError("k" * 100_000)

    def chained(record: Any) -> None:
        try:
            raise long_cause
        except KeyError as exc:
            raise OrderRejected("x" * 50_000) from exc

    sentry_sdk.init(dsn=dsn, default_integrations=False)
    telemetry = Telemetry(tracing=True, metrics=False, logging=False, sentry=True, tracer_provider=provider)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry, raise_on_entire_batch_failure=False)
    process_partial_response(sqs_event(["a"], seed=10), chained, processor, lambda_context(remaining_ms=3000))
    (sent,) = received.error_events()
    cause, raised = sent["exception"]["values"]
    raised_exc = processor.exceptions[0][1]  # type: ignore[attr-defined]
    assert raised["type"] == "OrderRejected"
    assert raised["value"] == as_sentry_sends(exception_message(raised_exc))
    assert cause["value"] == as_sentry_sends(exception_message(long_cause))
    assert len(raised["value"]) <= MAX_MESSAGE_CHARS
    assert len(cause["value"]) <= MAX_MESSAGE_CHARS
    assert sent["tags"]["error.type"] == error_type(raised_exc) == "test_sentry_http.OrderRejected"
    for value in (cause, raised):
        assert all("vars" not in frame for frame in value.get("stacktrace", {}).get("frames", []))


def test_no_trace_context_override_without_a_recording_span(ingest):
    """Without tracing there is no record span: the event keeps Sentry's own trace context, with the request id."""
    dsn, received = ingest
    sentry_sdk.init(dsn=dsn, default_integrations=False)
    telemetry = Telemetry(tracing=False, metrics=False, logging=False, sentry=True)
    context = lambda_context(remaining_ms=3000, frozen=True, aws_request_id=REQUEST_ID)
    process_partial_response(
        sqs_event(["fail", "ok"], seed=11), handler, BatchProcessor(EventType.SQS, telemetry=telemetry), context
    )
    (sent,) = received.error_events()
    assert sent["contexts"]["trace"]["trace_id"] == current_trace_id()
    assert "trace_id" not in sent["contexts"]["batch_record"]
    assert sent["tags"]["faas.invocation_id"] == REQUEST_ID


def test_no_request_id_tag_without_a_context(ingest, spans):
    """Outside Lambda (no context) there is no request id to tag."""
    dsn, received = ingest
    provider, _ = spans
    sentry_sdk.init(dsn=dsn, default_integrations=False)
    telemetry = Telemetry(tracing=True, metrics=False, logging=False, sentry=True, tracer_provider=provider)
    process_partial_response(
        sqs_event(["fail", "ok"], seed=12), handler, BatchProcessor(EventType.SQS, telemetry=telemetry)
    )
    sentry_sdk.flush(2)
    (sent,) = received.error_events()
    assert "faas.invocation_id" not in sent["tags"]
    assert "aws_request_id" not in sent["contexts"]["batch_record"]


def test_sentry_flush_shares_the_one_deadline(ingest):
    """A Sentry endpoint and a span exporter that both hang: the invocation still returns within its budget."""
    dsn, received = ingest
    received.hang.set()
    gate = threading.Event()

    class Hanging(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            gate.wait(30)
            return super().export(spans)

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Hanging()))
    sentry_sdk.init(dsn=dsn, default_integrations=False)
    telemetry = Telemetry(tracing=True, metrics=False, logging=False, sentry=True, tracer_provider=provider)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    context = lambda_context(remaining_ms=2000, frozen=True, aws_request_id=REQUEST_ID)
    try:
        started = time.monotonic()
        process_partial_response(sqs_event(["ok", "fail"], seed=13), handler, processor, context)
        elapsed = time.monotonic() - started
    finally:
        gate.set()
    assert elapsed <= 1.8, elapsed  # 2,000 ms remaining: a 1,700 ms budget
    assert elapsed >= 1.6, elapsed  # it did wait for the flushes, up to the deadline


def test_one_failed_record_is_followed_across_span_log_line_and_sentry_event(ingest, spans):
    """One trace id and one request id join the failed record's span, its log line and its Sentry event."""
    from structlog.testing import capture_logs

    dsn, received = ingest
    provider, exporter = spans
    with capture_logs() as logs:
        event = run_batch(provider, dsn=dsn, logging=True)
    failed_id = event["Records"][1]["messageId"]
    span = record_span(exporter, failed_id)
    (batch_span,) = [s for s in exporter.get_finished_spans() if "messaging.batch.message_count" in (s.attributes or {})]
    (line,) = [entry for entry in logs if entry["event"] == "record failed"]
    (sent,) = received.error_events()

    trace_id, span_id = format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")
    assert line["trace_id"] == sent["contexts"]["trace"]["trace_id"] == trace_id
    assert line["span_id"] == sent["contexts"]["trace"]["span_id"] == span_id
    assert batch_span.attributes["faas.invocation_id"] == REQUEST_ID
    assert line["function_request_id"] == sent["tags"]["faas.invocation_id"] == REQUEST_ID
    assert line["error_type"] == span.attributes["error.type"] == sent["tags"]["error.type"] == "ValueError"
