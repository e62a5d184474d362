"""Events Sentry captures itself (AwsLambdaIntegration, LoggingIntegration) hold no record body and repeat nothing.

Every test drives sentry-sdk's real ``AwsLambdaIntegration`` handler wrapper and a real client sending to an
in-memory transport, under whichever major version is installed (CI runs this file under 3.x and the oldest
supported 2.x).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_sdk
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import Json
from sentry_sdk.integrations.aws_lambda import AwsLambdaIntegration, _wrap_handler
from sentry_sdk.integrations.logging import LoggingIntegration

from _sentry_support import SENTRY_MAJOR, TEST_DSN, KeepingTransport, reset_sentry, sent_spans
from batchlens import (
    BatchProcessingError,
    BatchProcessor,
    EventType,
    Telemetry,
    batch_processor,
    process_partial_response,
)
from batchlens._telemetry._errors import exception_message
from batchlens.models import SqsRecordModel
from batchlens.testing import lambda_context, sqs_event

pytestmark = pytest.mark.sentry

MARKER = "BODY-5d1e-never-in-sentry"
REQUEST_ID = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
OFF = Telemetry(tracing=False, metrics=False, logging=False, sentry=False)


class OrderBody(SqsRecordModel):
    body: Json[dict[str, int]]  # type: ignore[assignment]


def order_event(count: int = 2, seed: int = 1) -> dict[str, Any]:
    """Records whose bodies fail validation: pydantic's error text quotes the body (``input_value=...``)."""
    return sqs_event([json.dumps({"qty": f"{MARKER}-{i}"}) for i in range(count)], seed=seed)


def never_called(record: Any) -> None:
    raise AssertionError("validation fails first")


@pytest.fixture(autouse=True)
def _fresh_sentry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # read by the integration's span attributes
    reset_sentry()
    yield
    reset_sentry()


def init_sentry(**options: Any) -> KeepingTransport:
    """The application's client with the integration, as its docs show, sending to memory."""
    kept = KeepingTransport()
    integrations = [AwsLambdaIntegration(), *options.pop("integrations", [])]
    sentry_sdk.init(dsn=TEST_DSN, transport=kept, default_integrations=False, integrations=integrations, **options)
    return kept


def invoke(handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any]) -> Any:
    """Run ``handler`` the way the integration wraps the runtime's handler; the exception it lets out, if any."""
    try:
        return _wrap_handler(handler)(event, lambda_context(remaining_ms=3000, frozen=True, aws_request_id=REQUEST_ID))
    except BatchProcessingError as error:
        return error


def frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [frame for value in event["exception"]["values"] for frame in value.get("stacktrace", {}).get("frames", [])]


def batchlens_frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [frame for frame in frames(event) if str(frame.get("module", "")).startswith("batchlens.")]


def batch_event(kept: KeepingTransport) -> dict[str, Any]:
    (event,) = [e for e in kept.events if e["exception"]["values"][-1]["type"] == "BatchProcessingError"]
    return event


# -- local variables -------------------------------------------------------------------------------------------------
def test_whole_batch_failure_reaches_sentry_without_any_body():
    """batchlens' Sentry off, handler entirely batchlens' own: the unhandled error's envelope holds no body."""
    kept = init_sentry()
    processor = BatchProcessor(EventType.SQS, model=OrderBody, telemetry=OFF)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecated decorator: its wrapper is the only frame holding the event

        @batch_processor(record_handler=never_called, processor=processor)
        def lambda_handler(event: dict[str, Any], context: Any) -> None:
            raise AssertionError("the whole batch failed first")

        error = invoke(lambda_handler, order_event())
    assert isinstance(error, BatchProcessingError)
    assert MARKER in error.format_exceptions(error.msg)  # the records' tracebacks quote the bodies
    sent = batch_event(kept)
    assert len(batchlens_frames(sent)) >= 3  # the wrapper, the processor's __exit__ and _clean
    assert all("vars" not in frame for frame in batchlens_frames(sent))
    assert MARKER not in kept.serialized()


def test_application_frames_keep_their_variables_batchlens_frames_do_not():
    """Sentry's default keeps frame variables: the application's frame has ``event``, batchlens' frames none."""
    kept = init_sentry()
    processor = BatchProcessor(EventType.SQS, model=OrderBody, telemetry=OFF)

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(event, never_called, processor, context)

    invoke(lambda_handler, order_event(seed=2))
    sent = batch_event(kept)
    (own,) = [frame for frame in frames(sent) if frame.get("function") == "lambda_handler"]
    assert MARKER in json.dumps(own["vars"])  # so the option is live: without the processor batchlens' would too
    names = {frame["function"] for frame in batchlens_frames(sent)}
    assert {"process_partial_response", "_clean"} <= names
    assert all("vars" not in frame for frame in batchlens_frames(sent))
    # the exception text is batchlens' summary, not str() with every record's traceback and validation input
    (value,) = sent["exception"]["values"]
    assert MARKER not in value["value"]
    assert value["value"].startswith("All records failed processing. 2 individual errors")


def test_the_documented_option_turns_off_the_applications_frame_variables():
    """docs/sentry.md: ``include_local_variables=False`` (2.x) or ``data_collection`` (3.x) for your frames."""
    if SENTRY_MAJOR >= 3:
        kept = init_sentry(data_collection={"stack_frame_variables": False})
    else:
        kept = init_sentry(include_local_variables=False)
    processor = BatchProcessor(EventType.SQS, model=OrderBody, telemetry=OFF)

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(event, never_called, processor, context)

    invoke(lambda_handler, order_event(seed=3))
    assert frames(batch_event(kept))
    assert MARKER not in kept.serialized()


def test_the_processor_is_registered_once_sentry_sdk_is_imported_and_scrubs_a_later_client():
    """Registered at the first batch after ``import sentry_sdk``, once whatever the number of batches; a client
    initialised afterwards gets batchlens' frames scrubbed. Run in a fresh interpreter: registration is once per
    process."""
    script = f"""
import sys
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._sentry_guard import scrub_event
from batchlens.testing import sqs_event

processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled())
event = sqs_event(["a"], seed=1)
process_partial_response(event, lambda record: None, processor)
import sentry_sdk
import sentry_sdk.scope as scope_module
from sentry_sdk.transport import Transport
assert scrub_event not in scope_module.global_event_processors
for _ in range(3):
    process_partial_response(event, lambda record: None, processor)
assert scope_module.global_event_processors.count(scrub_event) == 1

class Keep(Transport):
    envelopes = []
    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

sentry_sdk.init(dsn={TEST_DSN!r}, transport=Keep(), default_integrations=False)
try:
    process_partial_response(event, lambda record: 1 / 0, processor)
except Exception:
    sentry_sdk.capture_exception()
(sent,) = [e.get_event() for e in Keep.envelopes]
frames = [f for v in sent["exception"]["values"] for f in v["stacktrace"]["frames"]]
assert any(f["module"] == "batchlens._functions" for f in frames)
assert all("vars" not in f for f in frames if f["module"].startswith("batchlens."))
assert any("vars" in f for f in frames if f["module"] == "__main__")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_batchlens_never_imports_sentry_sdk_to_scrub():
    """A process that never imported sentry-sdk does not load it by processing batches."""
    script = """
import sys
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens.testing import sqs_event

processor = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled(), raise_on_entire_batch_failure=False)
process_partial_response(sqs_event(["a"], seed=1), lambda record: 1 / 0, processor)
print("sentry_sdk" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# -- nothing reported twice, the two traces joined -------------------------------------------------------------------
def batch_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if "messaging.batch.message_count" in (s.attributes or {})]
    return span


def failing(record: Any) -> None:
    if "ok" not in record.body:
        raise ValueError(f"cannot process {record.message_id}")


def run_with_integration(provider: TracerProvider, bodies: list[str], seed: int) -> tuple[dict[str, Any], Any]:
    telemetry = Telemetry(tracing=True, metrics=False, logging=False, sentry=True, tracer_provider=provider)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(event, failing, processor, context)

    event = sqs_event(bodies, seed=seed)
    return event, invoke(lambda_handler, event)


def test_whole_batch_failure_with_both_captures_reports_each_record_once(tracer_provider, span_exporter):
    """batchlens sends each record; the integration's batch event repeats none of them and names the OTel trace."""
    provider, exporter = tracer_provider, span_exporter
    kept = init_sentry()
    event, error = run_with_integration(provider, ["a", "b"], seed=4)
    assert isinstance(error, BatchProcessingError)
    trace_id = format(batch_span(exporter).context.trace_id, "032x")
    sent = kept.events
    assert len(sent) == 3  # two records, one batch
    batch = batch_event(kept)
    assert batch["exception"]["values"][-1]["value"] == exception_message(error)
    assert batch["tags"]["otel.trace_id"] == trace_id
    records = [e for e in sent if e is not batch]
    for record in event["Records"]:
        message = f"cannot process {record['messageId']}"
        assert sum(message in json.dumps(e) for e in sent) == 1  # in its own event only
        (own,) = [e for e in records if e["tags"]["messaging.message.id"] == record["messageId"]]
        assert own["tags"]["otel.trace_id"] == trace_id
        assert own["contexts"]["trace"]["trace_id"] == trace_id


def test_sentry_span_and_otel_batch_span_name_each_other(tracer_provider, span_exporter):
    """With Sentry tracing, its span carries otel.trace_id and the OTel batch span carries sentry.trace_id."""
    provider, exporter = tracer_provider, span_exporter
    kept = init_sentry(traces_sample_rate=1.0)
    event, response = run_with_integration(provider, ["a", "ok"], seed=5)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    sentry_sdk.flush(2)
    batch = batch_span(exporter)
    otel_trace_id = format(batch.context.trace_id, "032x")
    linked = [span for span in sent_spans(kept.envelopes) if span["fields"].get("otel.trace_id") == otel_trace_id]
    assert len(linked) == 1
    # 3.x: the integration's queue.process span; 2.x: its function.aws transaction
    assert linked[0]["op"] == ("queue.process" if SENTRY_MAJOR >= 3 else "function.aws")
    assert batch.attributes["sentry.trace_id"] == linked[0]["trace_id"]
    assert batch.attributes["sentry.trace_id"] != otel_trace_id


def test_no_link_attributes_without_a_sentry_client(tracer_provider, span_exporter):
    """batchlens' Sentry on but no client: the batch span says nothing about Sentry."""
    provider, exporter = tracer_provider, span_exporter
    run_with_integration(provider, ["ok"], seed=6)
    assert "sentry.trace_id" not in (batch_span(exporter).attributes or {})


def test_record_failed_log_line_is_not_a_second_event():
    """Sentry's LoggingIntegration turns ERROR log records into events: batchlens' own line is dropped while
    batchlens sends the record itself, and kept when it does not."""
    kept = init_sentry(integrations=[LoggingIntegration(event_level=logging.ERROR)])
    own = logging.getLogger("batchlens")
    saved = (list(own.handlers), own.level)
    handler = logging.handlers.BufferingHandler(capacity=100)  # the application's own handler: batchlens logs to it
    own.addHandler(handler)
    own.setLevel(logging.INFO)
    try:
        for sentry_on in (True, False):
            telemetry = Telemetry(tracing=False, metrics=False, logging=True, sentry=sentry_on)
            processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
            process_partial_response(sqs_event(["a", "ok"], seed=7), failing, processor)
    finally:
        own.handlers[:] = saved[0]
        own.setLevel(saved[1])
    assert [r.getMessage() for r in handler.buffer].count("record failed") == 2  # logged both times
    log_events = [e for e in kept.events if e.get("logger") == "batchlens"]
    own_events = [e for e in kept.events if "messaging.message.id" in (e.get("tags") or {})]
    assert len(own_events) == 1
    assert len(log_events) == 1  # the batch without batchlens' Sentry capture


def test_batch_span_finds_the_integrations_batch_event_without_sentry_tracing(tracer_provider, span_exporter):
    """No traces_sample_rate: the batch span's sentry.trace_id is the trace of the integration's batch event."""
    kept = init_sentry()
    _, error = run_with_integration(tracer_provider, ["a", "b"], seed=8)
    assert isinstance(error, BatchProcessingError)
    sentry_trace_id = batch_span(span_exporter).attributes["sentry.trace_id"]
    assert batch_event(kept)["contexts"]["trace"]["trace_id"] == sentry_trace_id


def test_no_sentry_trace_id_without_a_sentry_span(tracer_provider, span_exporter):
    """A client but no Sentry span (no integration): Sentry's process-wide trace id would mislead, so none."""
    kept = init_sentry()
    telemetry = Telemetry(tracing=True, metrics=False, logging=False, sentry=True, tracer_provider=tracer_provider)
    process_partial_response(
        sqs_event(["a", "ok"], seed=9), failing, BatchProcessor(EventType.SQS, telemetry=telemetry)
    )
    assert "sentry.trace_id" not in (batch_span(span_exporter).attributes or {})
    (sent,) = kept.events
    assert sent["tags"]["otel.trace_id"] == format(batch_span(span_exporter).context.trace_id, "032x")
