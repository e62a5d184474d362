"""Tests for the batch span joining the Lambda invocation: context attributes, X-Ray parent, adopted span."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens.testing._events import dynamodb_event, kafka_event, kinesis_event, lambda_context, sqs_event

XRAY_TRACE = "5759e988bd862e3fe1be46a994272793"
XRAY_PARENT = "53995c3f42cd8ad8"
INVOCATION_HEADER = f"Root=1-{XRAY_TRACE[:8]}-{XRAY_TRACE[8:]};Parent={XRAY_PARENT};Sampled=1;Lineage=a87bd80c:0"
W3C_TRACE = "0af7651916cd43dd8448eb211c80319c"
W3C_SPAN = "b7ad6b7169203331"


def ok(record: Any) -> None:
    return None


def batch_and_records(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    spans = exporter.get_finished_spans()
    batches = [s for s in spans if "messaging.batch.message_count" in (s.attributes or {})]
    assert len(batches) == 1, [s.name for s in spans]
    return batches[0], [s for s in spans if s is not batches[0] and s.kind is SpanKind.CONSUMER]


# -- Lambda context attributes ------------------------------------------------------------------------------
def test_batch_span_carries_the_lambda_context_attributes(telemetry, span_exporter):
    """faas.trigger, faas.invocation_id, cloud.resource_id, aws.lambda.invoked_arn and cloud.account.id are set."""
    context = lambda_context(function_name="orders", account_id="210987654321", aws_request_id="req-1")
    process_partial_response(
        sqs_event(count=2, seed=1), ok, BatchProcessor(EventType.SQS, telemetry=telemetry), context
    )

    batch, records = batch_and_records(span_exporter)
    arn = "arn:aws:lambda:us-east-1:210987654321:function:orders"
    assert {k: batch.attributes[k] for k in batch.attributes if k.startswith(("faas.", "cloud.", "aws.lambda"))} == {
        "faas.trigger": "pubsub",
        "faas.invocation_id": "req-1",
        "cloud.resource_id": arn,
        "aws.lambda.invoked_arn": arn,
        "cloud.account.id": "210987654321",
    }
    # batch-level only: record spans stay lean
    assert all("faas.invocation_id" not in (r.attributes or {}) for r in records)


def test_an_alias_in_the_invoked_arn_becomes_the_version_in_the_resource_id(telemetry, span_exporter):
    """cloud.resource_id replaces the alias with the running version (semconv); the invoked ARN stays as is."""
    context = lambda_context(function_name="orders", function_version="7")
    context.invoked_function_arn += ":live"
    process_partial_response(
        sqs_event(count=1, seed=1), ok, BatchProcessor(EventType.SQS, telemetry=telemetry), context
    )

    batch, _ = batch_and_records(span_exporter)
    assert batch.attributes["aws.lambda.invoked_arn"].endswith(":function:orders:live")
    assert batch.attributes["cloud.resource_id"].endswith(":function:orders:7")


@pytest.mark.parametrize(
    ("event", "event_type", "trigger"),
    [
        (kinesis_event(count=1, seed=1), EventType.KinesisDataStreams, "pubsub"),
        (kafka_event(count=1, seed=1), EventType.Kafka, "pubsub"),
        (dynamodb_event(count=1, seed=1), EventType.DynamoDBStreams, "datasource"),
    ],
)
def test_faas_trigger_follows_the_source(telemetry, span_exporter, event, event_type, trigger):
    """Streams and Kafka are pubsub triggers; DynamoDB Streams is a datasource trigger."""
    process_partial_response(event, ok, BatchProcessor(event_type, telemetry=telemetry), lambda_context(seed=2))

    batch, _ = batch_and_records(span_exporter)
    assert batch.attributes["faas.trigger"] == trigger


def test_without_a_context_no_faas_attributes_are_set(telemetry, span_exporter):
    """Without a Lambda context the batch span carries no faas.*/cloud.* attributes."""
    process_partial_response(sqs_event(count=1, seed=1), ok, BatchProcessor(EventType.SQS, telemetry=telemetry))

    batch, _ = batch_and_records(span_exporter)
    assert not [k for k in batch.attributes if k.startswith(("faas.", "cloud.", "aws.lambda"))]


def test_each_invocation_gets_its_own_invocation_id(telemetry, span_exporter):
    """The cached constant attributes never carry one invocation's request id into the next."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    for request_id in ("req-a", "req-b"):
        process_partial_response(sqs_event(count=1, seed=1), ok, processor, lambda_context(aws_request_id=request_id))

    ids = [
        s.attributes["faas.invocation_id"] for s in span_exporter.get_finished_spans() if "faas.trigger" in s.attributes
    ]
    assert ids == ["req-a", "req-b"]


# -- X-Ray parent ----------------------------------------------------------------------------------------------
def test_sampled_invocation_trace_is_the_batch_span_parent(telemetry, span_exporter, monkeypatch):
    """With no current span, the sampled _X_AMZN_TRACE_ID becomes the parent; producers stay links."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", INVOCATION_HEADER)
    event = sqs_event(count=2, seed=3, trace_header=True)
    process_partial_response(event, ok, BatchProcessor(EventType.SQS, telemetry=telemetry), lambda_context())

    batch, records = batch_and_records(span_exporter)
    assert batch.parent is not None
    assert batch.parent.is_remote
    assert (format(batch.parent.trace_id, "032x"), format(batch.parent.span_id, "016x")) == (XRAY_TRACE, XRAY_PARENT)
    assert format(batch.context.trace_id, "032x") == XRAY_TRACE
    assert len(batch.links) == 2  # the two producers, still links
    assert all(r.parent.span_id == batch.context.span_id for r in records)


@pytest.mark.parametrize("header", [INVOCATION_HEADER.replace("Sampled=1", "Sampled=0"), "Root=garbage", ""])
def test_unsampled_or_malformed_invocation_trace_starts_a_new_trace(telemetry, span_exporter, monkeypatch, header):
    """An unsampled, malformed or empty header leaves the batch span a root span."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    process_partial_response(sqs_event(count=1, seed=3), ok, BatchProcessor(EventType.SQS, telemetry=telemetry))

    batch, _ = batch_and_records(span_exporter)
    assert batch.parent is None


def test_xray_parent_can_be_switched_off(span_exporter, tracer_provider, monkeypatch):
    """BATCHLENS_XRAY_PARENT=false keeps the batch span a root span."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", INVOCATION_HEADER)
    monkeypatch.setenv("BATCHLENS_XRAY_PARENT", "false")
    telemetry = Telemetry.from_env(tracer_provider=tracer_provider, metrics=False, logging=False)
    assert telemetry.xray_parent is False
    process_partial_response(sqs_event(count=1, seed=3), ok, BatchProcessor(EventType.SQS, telemetry=telemetry))

    batch, _ = batch_and_records(span_exporter)
    assert batch.parent is None


def test_a_current_span_wins_over_the_invocation_trace(telemetry, span_exporter, tracer_provider, monkeypatch):
    """When a span is current (e.g. the Lambda instrumentation's), the batch span is its child."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", INVOCATION_HEADER)
    with tracer_provider.get_tracer("app").start_as_current_span("handler", kind=SpanKind.SERVER) as outer:
        process_partial_response(sqs_event(count=1, seed=3), ok, BatchProcessor(EventType.SQS, telemetry=telemetry))

    batch, _ = batch_and_records(span_exporter)
    assert batch.parent.span_id == outer.get_span_context().span_id


# -- adopting another instrumentation's batch span -------------------------------------------------------------
def test_a_process_consumer_span_is_adopted_as_the_batch_span(telemetry, span_exporter, tracer_provider):
    """A current `process ...` CONSUMER span gets the batch attributes and links, is not ended, parents records."""
    event = sqs_event(count=3, seed=4)
    traceparent = f"00-{W3C_TRACE}-{W3C_SPAN}-01"
    event["Records"][0]["messageAttributes"] = {"traceparent": {"stringValue": traceparent, "dataType": "String"}}
    existing = Link(SpanContext(int(W3C_TRACE, 16), int(W3C_SPAN, 16), is_remote=True, trace_flags=TraceFlags(1)))
    tracer = tracer_provider.get_tracer("other-instrumentation")
    with tracer.start_as_current_span("process my-queue", kind=SpanKind.CONSUMER, links=[existing]) as outer:
        process_partial_response(event, ok, BatchProcessor(EventType.SQS, telemetry=telemetry))
        assert outer.is_recording(), "batchlens must not end a span it did not start"

    spans = span_exporter.get_finished_spans()
    assert len(spans) == 4
    batch, records = batch_and_records(span_exporter)
    assert batch.context.span_id == outer.get_span_context().span_id
    assert batch.attributes["messaging.batch.message_count"] == 3
    assert batch.attributes["batchlens.batch.success_count"] == 3
    assert len(batch.links) == 1  # the same producer context is not linked twice
    assert len(records) == 3
    assert all(r.parent.span_id == batch.context.span_id for r in records)


def test_links_are_added_to_an_adopted_span(telemetry, span_exporter, tracer_provider):
    """Producer contexts the adopted span lacks are added to it after its start."""
    event = sqs_event(count=2, seed=4, trace_header=True)
    with tracer_provider.get_tracer("other").start_as_current_span("process my-queue", kind=SpanKind.CONSUMER):
        process_partial_response(event, ok, BatchProcessor(EventType.SQS, telemetry=telemetry))

    batch, _ = batch_and_records(span_exporter)
    assert batch.instrumentation_scope.name == "other"
    assert len(batch.links) == 2
    assert {link.attributes["messaging.message.id"] for link in batch.links} == {
        r["messageId"] for r in event["Records"]
    }


@pytest.mark.parametrize(("name", "kind"), [("handler", SpanKind.CONSUMER), ("process my-queue", SpanKind.SERVER)])
def test_other_current_spans_are_parents_not_batch_spans(telemetry, span_exporter, tracer_provider, name, kind):
    """Only a CONSUMER span named `process...` is adopted; any other current span becomes the parent."""
    with tracer_provider.get_tracer("app").start_as_current_span(name, kind=kind) as outer:
        process_partial_response(sqs_event(count=1, seed=4), ok, BatchProcessor(EventType.SQS, telemetry=telemetry))

    batch, _ = batch_and_records(span_exporter)
    assert batch.context.span_id != outer.get_span_context().span_id
    assert batch.parent.span_id == outer.get_span_context().span_id


def test_a_processor_inside_a_record_handler_does_not_adopt_the_record_span(telemetry, span_exporter):
    """batchlens' own record span (CONSUMER, `process ...`) is a parent for a nested batch, never adopted."""
    inner = BatchProcessor(EventType.SQS, telemetry=telemetry)

    def nested(record: Any) -> None:
        process_partial_response(sqs_event(count=1, seed=6, queue="inner"), ok, inner)

    process_partial_response(sqs_event(count=1, seed=5), nested, BatchProcessor(EventType.SQS, telemetry=telemetry))

    spans = span_exporter.get_finished_spans()
    batches = [s for s in spans if "messaging.batch.message_count" in s.attributes]
    assert [s.name for s in batches] == ["process inner", "process my-queue"]
    outer_record = next(s for s in spans if s.name == "process my-queue" and s not in batches)
    assert batches[0].parent.span_id == outer_record.context.span_id


# -- the real opentelemetry-instrumentation-aws-lambda ---------------------------------------------------------
HANDLER_MODULE = "batchlens_instrumented_handler"


@pytest.fixture
def instrumented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracer_provider: TracerProvider) -> Iterator[Any]:
    """A Lambda handler module named by _HANDLER, wrapped by the real AwsLambdaInstrumentor; unwrapped after."""
    instrumentor_module = pytest.importorskip("opentelemetry.instrumentation.aws_lambda")
    (tmp_path / f"{HANDLER_MODULE}.py").write_text(
        textwrap.dedent(
            """
            from batchlens import BatchProcessor, EventType, process_partial_response

            processor = None

            def record_handler(record):
                if "fail" in record.body:
                    raise ValueError("failed")

            def handler(event, context):
                return process_partial_response(event, record_handler, processor, context)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "batch-handler")
    monkeypatch.setenv("_HANDLER", f"{HANDLER_MODULE}.handler")
    module = importlib.import_module(HANDLER_MODULE)
    instrumentor = instrumentor_module.AwsLambdaInstrumentor()
    meter_provider = MeterProvider()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield module
    finally:
        instrumentor.uninstrument()
        meter_provider.shutdown()
        sys.modules.pop(HANDLER_MODULE, None)


def test_real_lambda_instrumentation_gives_one_batch_span(instrumented, telemetry, span_exporter):
    """With AwsLambdaInstrumentor: one batch-level CONSUMER span (the instrumentor's), one record span per record."""
    instrumented.processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    event = sqs_event(count=4, fail_rate=0.5, seed=8, trace_header=True)
    context = lambda_context(aws_request_id="req-9")
    assert getattr(instrumented.handler, "__wrapped__", None) is not None, "the handler must be instrumented"

    response = instrumented.handler(event, context)

    assert len(response["batchItemFailures"]) == 2
    spans = span_exporter.get_finished_spans()
    server = [s for s in spans if s.kind is SpanKind.SERVER]
    batches = [s for s in spans if s.kind is SpanKind.CONSUMER and "messaging.message.id" not in s.attributes]
    records = [s for s in spans if s.kind is SpanKind.CONSUMER and "messaging.message.id" in s.attributes]
    assert len(server) == 1
    assert len(batches) == 1
    batch = batches[0]
    assert batch.name == "process my-queue"
    assert batch.instrumentation_scope.name == "opentelemetry.instrumentation.aws_lambda"
    assert batch.parent.span_id == server[0].context.span_id
    assert batch.attributes["messaging.batch.message_count"] == 4
    assert batch.attributes["faas.invocation_id"] == "req-9"
    assert batch.attributes["batchlens.batch.failure_count"] == 2
    assert len(batch.links) == 4  # the X-Ray producer contexts, added by batchlens
    assert sorted(r.attributes["messaging.message.id"] for r in records) == sorted(
        r["messageId"] for r in event["Records"]
    )
    assert all(r.parent.span_id == batch.context.span_id for r in records)
    assert spans[-1] is server[0]  # ended once, by its owner


def test_uninstrumenting_restores_the_handler(instrumented):
    """The fixture's handler is wrapped while instrumented (other tests see the plain function afterwards)."""
    assert hasattr(instrumented.handler, "__wrapped__")


def test_each_invocation_joins_its_own_xray_trace(telemetry, span_exporter, monkeypatch):
    """A new _X_AMZN_TRACE_ID per invocation gives each batch span that invocation's parent."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    second_trace = "1" * 32
    for trace_hex in (XRAY_TRACE, second_trace, XRAY_TRACE):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root=1-{trace_hex[:8]}-{trace_hex[8:]};Parent={XRAY_PARENT};Sampled=1")
        process_partial_response(sqs_event(count=1, seed=3), ok, processor)

    batches = [s for s in span_exporter.get_finished_spans() if "messaging.batch.message_count" in s.attributes]
    assert [format(s.parent.trace_id, "032x") for s in batches] == [XRAY_TRACE, second_trace, XRAY_TRACE]
