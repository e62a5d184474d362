"""Tests for the Sentry observer: one event per failed record, through a real sentry-sdk client and transport."""

from __future__ import annotations

import gzip
import http.server
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sentry_sdk.envelope import Envelope

from _sentry_support import TEST_DSN, KeepingTransport, collects_user_info, reset_sentry
from batchlens import (
    AsyncBatchProcessor,
    BatchProcessingError,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens._telemetry.sentry import SentryObserver
from batchlens.testing import kinesis_event, lambda_context, sqs_event, sqs_fifo_event

pytestmark = pytest.mark.sentry

SENTRY_ONLY = Telemetry(tracing=False, metrics=False, logging=False, sentry=True)


class RaisingTransport(KeepingTransport):
    """A transport whose every send fails."""

    attempts = 0

    def capture_envelope(self, envelope: Envelope) -> None:
        self.attempts += 1
        raise ConnectionError("sentry is down")


@pytest.fixture(autouse=True)
def _fresh_sentry() -> Iterator[None]:
    """Every test starts and ends without a Sentry client."""
    reset_sentry()
    yield
    reset_sentry()


@pytest.fixture
def transport() -> KeepingTransport:
    """The application's Sentry client, sending to an in-memory transport."""
    kept = KeepingTransport()
    sentry_sdk.init(dsn=TEST_DSN, transport=kept, default_integrations=False)
    return kept


def failing_handler(record: Any) -> dict[str, Any]:
    if "fail" in record.body:
        raise ValueError(f"cannot process {record.message_id}")
    return {"ok": record.message_id}


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


# -- one event per failed record ---------------------------------------------------------------------------------
def test_each_failed_record_sends_one_event_with_tags_and_context(transport):
    """Two failed records in a batch of five give two events, tagged and described, in record order."""
    event = sqs_event(["a", "fail-1", "b", "fail-2", "c"], queue="orders", seed=1)
    response = process_partial_response(event, failing_handler, BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY))
    records = event["Records"]
    assert failed_ids(response) == [records[1]["messageId"], records[3]["messageId"]]
    events = transport.events
    assert len(events) == 2
    for sent, index in zip(events, (1, 3), strict=True):
        message_id = records[index]["messageId"]
        assert sent["tags"] == {
            "messaging.system": "aws_sqs",
            "messaging.destination.name": "orders",
            "messaging.message.id": message_id,
            "error.type": "ValueError",
        }
        assert sent["contexts"]["batch_record"] == {
            "record_id": message_id,
            "index": index,
            "event_source": "aws:sqs",
            "batch_size": 5,
            "receive_count": 1,
        }
        (exception,) = sent["exception"]["values"]
        assert exception["type"] == "ValueError"
        assert exception["value"] == f"cannot process {message_id}"


def test_message_bodies_and_frame_variables_are_never_sent(transport):
    """No part of any envelope holds the body; stack frames carry no local variables."""
    marker = "BODY-7f3a9c-do-not-send"
    event = sqs_event([f"fail {marker}"], seed=2)
    with pytest.raises(BatchProcessingError):
        process_partial_response(event, failing_handler, BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY))
    (envelope,) = transport.envelopes
    assert marker not in envelope.serialize().decode("utf-8", "replace")
    frames = transport.events[0]["exception"]["values"][0]["stacktrace"]["frames"]
    assert frames
    assert all("vars" not in frame for frame in frames)


def test_kinesis_failures_are_tagged_with_the_stream(transport):
    """Stream records carry their system, stream name and sequence number; no receive count."""
    event = kinesis_event(["ok", "fail"], stream="clicks", seed=3)
    process_partial_response(
        event, kinesis_handler, BatchProcessor(EventType.KinesisDataStreams, telemetry=SENTRY_ONLY)
    )
    (sent,) = transport.events
    sequence = event["Records"][1]["kinesis"]["sequenceNumber"]
    assert sent["tags"]["messaging.system"] == "aws.kinesis"
    assert sent["tags"]["messaging.destination.name"] == "clicks"
    assert sent["tags"]["messaging.message.id"] == sequence
    assert "receive_count" not in sent["contexts"]["batch_record"]
    assert sent["contexts"]["batch_record"]["event_source"] == "aws:kinesis"


def kinesis_handler(record: Any) -> None:
    if b"fail" in record.kinesis.data_as_bytes():
        raise RuntimeError("bad click")


def test_trace_and_span_ids_are_those_of_the_record_span(transport, tracer_provider, span_exporter):
    """With tracing on, the context names the failed record's span, which is still current when Sentry runs."""
    telemetry = Telemetry(tracing=True, metrics=False, logging=False, sentry=True, tracer_provider=tracer_provider)
    event = sqs_event(["ok", "fail"], seed=4)
    process_partial_response(event, failing_handler, BatchProcessor(EventType.SQS, telemetry=telemetry))
    (sent,) = transport.events
    failed_id = event["Records"][1]["messageId"]
    (span,) = [
        s for s in span_exporter.get_finished_spans() if (s.attributes or {}).get("messaging.message.id") == failed_id
    ]
    context = sent["contexts"]["batch_record"]
    assert context["trace_id"] == format(span.context.trace_id, "032x")
    assert context["span_id"] == format(span.context.span_id, "016x")


def test_no_trace_ids_without_a_recording_span(transport):
    """Without tracing there is no span to name, and the context says nothing about traces."""
    process_partial_response(
        sqs_event(["fail"], seed=5),
        failing_handler,
        BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY, raise_on_entire_batch_failure=False),
    )
    context = transport.events[0]["contexts"]["batch_record"]
    assert "trace_id" not in context
    assert "span_id" not in context


def test_async_concurrent_failures_each_send_one_event(transport):
    """Concurrent async records each send their own event with their own tags."""

    async def handler(record: Any) -> None:
        if "fail" in record.body:
            raise KeyError(record.message_id)

    event = sqs_event(count=20, fail_rate=0.5, seed=6)
    response = async_process_partial_response(event, handler, AsyncBatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY))
    sent_ids = sorted(sent["tags"]["messaging.message.id"] for sent in transport.events)
    assert sent_ids == sorted(failed_ids(response))
    assert len(sent_ids) == 10


def test_record_scopes_do_not_leak_into_the_application_scope(transport):
    """After the batch, the application's own events carry none of the record tags or context."""
    process_partial_response(
        sqs_event(["fail", "ok"], seed=7), failing_handler, BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY)
    )
    sentry_sdk.capture_message("after the batch")
    last = transport.events[-1]
    assert last["message"] == "after the batch"
    assert "messaging.message.id" not in (last.get("tags") or {})
    assert "batch_record" not in (last.get("contexts") or {})


# -- what is not sent ---------------------------------------------------------------------------------------------
def test_nothing_is_sent_when_sentry_is_off(transport):
    """With ``sentry=False`` failed records reach no Sentry client, even one the application set up."""
    telemetry = Telemetry(tracing=False, metrics=False, logging=False, sentry=False)
    process_partial_response(
        sqs_event(["fail", "ok"], seed=8), failing_handler, BatchProcessor(EventType.SQS, telemetry=telemetry)
    )
    assert transport.envelopes == []


@pytest.mark.parametrize("skip_group_on_error", [False, True])
def test_fifo_short_circuited_records_are_not_sent(transport, skip_group_on_error):
    """Only the record that failed is sent; the FIFO records skipped after it are consequences."""
    event = sqs_fifo_event(["ok", "fail", "a", "b"], groups=1, seed=9)
    processor = SqsFifoPartialProcessor(skip_group_on_error=skip_group_on_error, telemetry=SENTRY_ONLY)
    response = process_partial_response(event, failing_handler, processor)
    assert len(failed_ids(response)) == 3
    (sent,) = transport.events
    assert sent["tags"]["messaging.message.id"] == event["Records"][1]["messageId"]


def test_deadline_and_stream_stop_skips_are_not_sent(transport):
    """Records skipped by the deadline guard or the stream stop policy send nothing."""
    deadline = BatchProcessor(
        EventType.SQS, telemetry=SENTRY_ONLY, deadline_margin_ms=10_000, raise_on_entire_batch_failure=False
    )
    response = process_partial_response(
        sqs_event(["a", "b"], seed=10), failing_handler, deadline, lambda_context(remaining_ms=5_000, frozen=True)
    )
    assert len(failed_ids(response)) == 2
    stop = BatchProcessor(
        EventType.KinesisDataStreams,
        telemetry=SENTRY_ONLY,
        stop_on_first_failure=True,
        raise_on_entire_batch_failure=False,
    )
    response = process_partial_response(kinesis_event(["fail", "x", "y"], seed=11), kinesis_handler, stop)
    assert len(failed_ids(response)) == 3
    assert len(transport.events) == 1


def test_without_a_client_or_dsn_nothing_happens():
    """Sentry on but neither a client nor a DSN: records are processed and nothing breaks."""
    response = process_partial_response(
        sqs_event(["fail", "ok"], seed=12), failing_handler, BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY)
    )
    assert len(failed_ids(response)) == 1
    assert not sentry_sdk.get_client().is_active()


# -- initialisation from the DSN ------------------------------------------------------------------------------------
class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append({"path": self.path, "body": body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP endpoint standing in for Sentry's ingest API; yields (dsn, received requests)."""
    received: list[dict[str, Any]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://public@127.0.0.1:{server.server_address[1]}/42", received
    server.shutdown()
    server.server_close()


def envelope_events(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for request in received:
        envelope = Envelope.deserialize(request["body"])
        event = envelope.get_event()
        if event is not None:
            events.append(event)
    return events


def test_dsn_initialises_sentry_when_the_application_has_no_client(sentry_server):
    """Given only a DSN, batchlens initialises Sentry (no PII) and events reach it over the real HTTP transport."""
    dsn, received = sentry_server
    processor = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY.replace(sentry_dsn=dsn))
    assert not sentry_sdk.get_client().is_active()  # nothing happens before the first batch
    process_partial_response(sqs_event(["fail", "ok"], seed=13), failing_handler, processor, lambda_context())
    client = sentry_sdk.get_client()
    assert client.dsn == dsn
    assert collects_user_info(client) is False
    (sent,) = envelope_events(received)
    assert received[0]["path"] == "/api/42/envelope/"
    assert sent["contexts"]["batch_record"]["batch_size"] == 2


def test_dsn_replaces_a_client_initialised_without_a_dsn(sentry_server):
    """An application that called sentry_sdk.init() without a DSN has no transport: the DSN is used."""
    dsn, received = sentry_server
    sentry_sdk.init(default_integrations=False)
    assert sentry_sdk.get_client().is_active()
    processor = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY.replace(sentry_dsn=dsn))
    process_partial_response(sqs_event(["fail", "ok"], seed=14), failing_handler, processor)
    processor.flush_telemetry(2000)
    assert sentry_sdk.get_client().dsn == dsn
    assert len(envelope_events(received)) == 1


def test_the_applications_client_wins_over_the_dsn(transport, sentry_server):
    """When the application already has a client with a transport, batchlens never re-initialises Sentry."""
    dsn, received = sentry_server
    client = sentry_sdk.get_client()
    processor = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY.replace(sentry_dsn=dsn))
    process_partial_response(sqs_event(["fail", "ok"], seed=15), failing_handler, processor, lambda_context())
    assert sentry_sdk.get_client() is client
    assert len(transport.events) == 1
    assert received == []


def test_the_client_is_looked_up_per_batch_not_at_construction(sentry_server):
    """A processor built before the application initialises Sentry still uses the application's client."""
    dsn, received = sentry_server
    processor = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY.replace(sentry_dsn=dsn))
    kept = KeepingTransport()
    sentry_sdk.init(dsn=TEST_DSN, transport=kept, default_integrations=False)
    process_partial_response(sqs_event(["fail", "ok"], seed=16), failing_handler, processor)
    assert len(kept.events) == 1
    assert received == []


# -- faults and flushing ---------------------------------------------------------------------------------------------
def test_a_raising_transport_leaves_responses_unchanged():
    """A transport that raises on every send changes nothing in the responses."""
    event = sqs_event(count=10, fail_rate=0.5, seed=17)
    baseline = process_partial_response(
        event, failing_handler, BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled())
    )
    raising = RaisingTransport()
    sentry_sdk.init(dsn=TEST_DSN, transport=raising, default_integrations=False)
    processor = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY)
    first = process_partial_response(event, failing_handler, processor, lambda_context())
    second = process_partial_response(event, failing_handler, processor, lambda_context())
    assert first == baseline
    assert second == baseline
    assert raising.attempts == 10


def test_an_error_inside_sentry_capture_is_contained_and_reported_once(transport, monkeypatch, caplog):
    """Should sentry-sdk itself raise, processing goes on and one warning says so."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("sentry internals")

    monkeypatch.setattr(sentry_sdk, "capture_exception", broken)
    event = sqs_event(["fail", "ok", "fail"], seed=23)
    processor = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY)
    with caplog.at_level(logging.WARNING, logger="batchlens"):
        for _ in range(2):
            response = process_partial_response(event, failing_handler, processor)
            assert failed_ids(response) == [event["Records"][0]["messageId"], event["Records"][2]["messageId"]]
    reports = [r for r in caplog.records if "Sentry" in r.getMessage()]
    assert len(reports) == 1


def test_flush_passes_the_timeout_in_seconds(transport):
    """``flush_telemetry(ms)`` flushes the Sentry client with the timeout converted to seconds."""
    processor = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY)
    processor.flush_telemetry(1500)
    assert transport.flushes == [1.5]


def test_flush_before_freeze_is_bounded_by_the_remaining_time(transport):
    """With a Lambda context, the batch ends with a Sentry flush bounded by remaining time minus the margin."""
    processor = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY)
    process_partial_response(
        sqs_event(["fail", "ok"], seed=18), failing_handler, processor, lambda_context(remaining_ms=2000, frozen=True)
    )
    assert transport.flushes == [1.7]
    never = BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY.replace(flush="never"))
    process_partial_response(sqs_event(["ok"], seed=19), failing_handler, never, lambda_context())
    assert transport.flushes == [1.7]


# -- import behaviour --------------------------------------------------------------------------------------------------
def test_missing_sentry_sdk_raises_an_import_error_naming_the_extra(monkeypatch):
    """Without sentry-sdk, turning Sentry on fails at construction with the pip command to fix it."""
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    with pytest.raises(ImportError, match=r"pip install 'batchlens\[sentry\]'"):
        BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY)
    with pytest.raises(ImportError, match=r"pip install 'batchlens\[sentry\]'"):
        SentryObserver(SENTRY_ONLY)


def test_missing_sentry_sdk_is_fine_while_sentry_is_off(monkeypatch):
    """Processors without Sentry never import sentry_sdk, so its absence does not matter."""
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    off = Telemetry(tracing=False, metrics=False, logging=False, sentry=False)
    response = process_partial_response(
        sqs_event(["fail", "ok"], seed=20), failing_handler, BatchProcessor(EventType.SQS, telemetry=off)
    )
    assert len(failed_ids(response)) == 1


@pytest.mark.parametrize(("enabled", "imported"), [("false", False), ("true", True)])
def test_sentry_sdk_is_imported_only_when_sentry_is_on(enabled, imported):
    """A fresh interpreter imports sentry_sdk only once BATCHLENS_SENTRY_ENABLED is on."""
    code = (
        "import sys\n"
        "from batchlens import BatchProcessor, EventType, process_partial_response\n"
        "from batchlens.testing import sqs_event\n"
        "processor = BatchProcessor(EventType.SQS)\n"
        "process_partial_response(sqs_event(['x'], seed=1), lambda record: None, processor)\n"
        "print('sentry_sdk' in sys.modules)\n"
    )
    env = {"BATCHLENS_SENTRY_ENABLED": enabled, "BATCHLENS_LOGGING": "false", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout.strip().splitlines()[-1].lower()) is imported


def test_observer_hooks_other_than_failure_send_nothing(transport):
    """Starts, successes and batch ends never produce Sentry events."""
    process_partial_response(
        sqs_event(count=5, seed=21), failing_handler, BatchProcessor(EventType.SQS, telemetry=SENTRY_ONLY)
    )
    assert transport.envelopes == []


def test_tracing_spans_are_unaffected_by_sentry(
    transport, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
):
    """Sentry running beside tracing leaves every record span finished."""
    telemetry = Telemetry(tracing=True, metrics=False, logging=False, sentry=True, tracer_provider=tracer_provider)
    process_partial_response(
        sqs_event(["fail", "ok", "fail"], seed=22), failing_handler, BatchProcessor(EventType.SQS, telemetry=telemetry)
    )
    assert len(span_exporter.get_finished_spans()) == 4
    assert len(transport.events) == 2
