"""Span attributes against the semantic conventions: names, values, schema URL, and the per-source fields."""

from __future__ import annotations

import base64
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from batchlens import BatchProcessor, EventType, SqsFifoPartialProcessor, Telemetry, process_partial_response
from batchlens._source_attributes import sqs_queue_url
from batchlens._source_kinds import _SqsSource
from batchlens._sources import SQS
from batchlens._telemetry.tracing import SCHEMA_URL, TracingObserver
from batchlens.testing._events import (
    dynamodb_event,
    kafka_event,
    kinesis_event,
    lambda_context,
    sqs_event,
    sqs_fifo_event,
)

W3C_TRACE = "0af7651916cd43dd8448eb211c80319c"
W3C_SPAN = "b7ad6b7169203331"


def ok(record: Any) -> None:
    return None


def fail_some(record: Any) -> None:
    if "fail" in str(getattr(record, "raw_event", record)):
        raise ValueError("failed")


def _registry() -> dict[str, Any]:
    """Every attribute name the installed opentelemetry-semantic-conventions package defines, with its module."""
    names: dict[str, Any] = {}
    for package_name in ("opentelemetry.semconv.attributes", "opentelemetry.semconv._incubating.attributes"):
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package_name}.{info.name}")
            for value in vars(module).values():
                if isinstance(value, str) and "." in value and " " not in value:
                    names[value] = module
    return names


def record_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if "messaging.batch.message_count" not in s.attributes]


def batch_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if "messaging.batch.message_count" in s.attributes]
    return span


def kafka_with_headers() -> dict[str, Any]:
    event = kafka_event(count=3, seed=5)
    records = [r for rs in event["records"].values() for r in rs]
    records[0]["headers"].append({"traceparent": list(f"00-{W3C_TRACE}-{W3C_SPAN}-01".encode())})
    records[1]["key"] = base64.b64encode(b"\x00\xff\xfe").decode()  # binary: not text
    records[2]["key"] = None
    records[2]["value"] = None  # a tombstone
    return event


# -- names and values -----------------------------------------------------------------------------------------
def test_every_span_attribute_name_is_registered_or_batchlens_own(span_exporter, tracer_provider):
    """All attribute names on every source's spans exist in the semconv package, except batchlens.* ones."""
    telemetry = Telemetry(tracer_provider=tracer_provider, metrics=False, logging=False, document_keys=True)
    context = lambda_context(seed=1)
    runs = [
        (
            sqs_event(count=3, fail_rate=0.5, seed=1, trace_header=True),
            BatchProcessor(EventType.SQS, telemetry=telemetry),
        ),
        (sqs_fifo_event(count=2, seed=1), SqsFifoPartialProcessor(telemetry=telemetry)),
        (kinesis_event(count=2, seed=1), BatchProcessor(EventType.KinesisDataStreams, telemetry=telemetry)),
        (dynamodb_event(count=2, seed=1), BatchProcessor(EventType.DynamoDBStreams, telemetry=telemetry)),
        (kafka_with_headers(), BatchProcessor(EventType.Kafka, telemetry=telemetry)),
    ]
    for event, processor in runs:
        process_partial_response(event, fail_some, processor, context)

    registry = _registry()
    emitted = {key for span in span_exporter.get_finished_spans() for key in span.attributes}
    for expected in ("messaging.kafka.offset", "aws.sqs.queue.url", "faas.document.name", "server.address"):
        assert expected in emitted
    unknown = sorted(k for k in emitted if not k.startswith("batchlens.") and k not in registry)
    assert unknown == []
    reference = Path(__file__).parents[1].joinpath("docs", "telemetry.md").read_text(encoding="utf-8")
    spans_section = reference[reference.index("## Spans") : reference.index("## Metrics")]
    undocumented = sorted(k for k in emitted if f"`{k}`" not in spans_section and not k.startswith("test."))
    assert undocumented == []


def test_enumerated_values_are_the_registry_values_except_batchlens_own_systems():
    """faas.trigger and document operations come from the registry; aws.kinesis/aws.dynamodb are batchlens' own."""
    from opentelemetry.semconv._incubating.attributes.faas_attributes import (
        FaasDocumentOperationValues,
        FaasTriggerValues,
    )
    from opentelemetry.semconv._incubating.attributes.messaging_attributes import MessagingSystemValues

    from batchlens._sources import DYNAMODB, KAFKA, KINESIS

    systems = {v.value for v in MessagingSystemValues}
    assert {SQS.messaging_system, KAFKA.messaging_system} <= systems
    # the registry has no Kinesis or DynamoDB Streams value: docs/telemetry.md says these two are batchlens' own
    assert KINESIS.messaging_system not in systems
    assert DYNAMODB.messaging_system not in systems
    triggers = {v.value for v in FaasTriggerValues}
    assert {s.faas_trigger for s in (SQS, KINESIS, DYNAMODB, KAFKA)} <= triggers
    from batchlens._source_kinds import _DDB_OPERATIONS

    assert set(_DDB_OPERATIONS.values()) <= {v.value for v in FaasDocumentOperationValues}


def test_tracer_schema_url_is_the_newest_schema_of_the_semconv_package(span_exporter, telemetry):
    """The batchlens tracer carries the schema URL of the conventions version its names were checked against."""
    from opentelemetry.semconv.schemas import Schemas

    assert list(Schemas)[-1].value == SCHEMA_URL
    process_partial_response(sqs_event(count=1, seed=1), ok, BatchProcessor(EventType.SQS, telemetry=telemetry))
    assert {s.instrumentation_scope.schema_url for s in span_exporter.get_finished_spans()} == {SCHEMA_URL}


# -- Kafka ------------------------------------------------------------------------------------------------------
def test_kafka_record_spans_carry_offset_partition_key_and_tombstone(telemetry, span_exporter):
    """Offset, partition, text key (decoded), tombstone for a null value; a binary key is left out."""
    event = kafka_with_headers()
    process_partial_response(event, ok, BatchProcessor(EventType.Kafka, telemetry=telemetry))

    spans = sorted(record_spans(span_exporter), key=lambda s: s.attributes["messaging.kafka.offset"])
    offsets = sorted(r["offset"] for rs in event["records"].values() for r in rs)
    assert [s.attributes["messaging.kafka.offset"] for s in spans] == offsets
    assert all(s.attributes["messaging.destination.partition.id"] == "0" for s in spans)
    assert spans[0].attributes["messaging.kafka.message.key"] == "key-0"
    assert "messaging.kafka.message.key" not in spans[1].attributes
    assert "messaging.kafka.message.key" not in spans[2].attributes
    assert spans[2].attributes["messaging.kafka.message.tombstone"] is True
    assert "messaging.kafka.message.tombstone" not in spans[0].attributes


def test_kafka_server_address_comes_from_the_event_bootstrap_servers(telemetry, span_exporter):
    """server.address/server.port name the first broker of bootstrapServers, on batch and record spans."""
    event = kafka_event(count=2, seed=5)
    process_partial_response(event, ok, BatchProcessor(EventType.Kafka, telemetry=telemetry))

    first_host = event["bootstrapServers"].split(",")[0].rsplit(":", 1)[0]
    for span in span_exporter.get_finished_spans():
        assert span.attributes["server.address"] == first_host
        assert span.attributes["server.port"] == 9092


def test_kafka_traceparent_header_links_the_producer(telemetry, span_exporter):
    """A W3C traceparent record header (a list of byte values) becomes a link on the record and batch spans."""
    process_partial_response(kafka_with_headers(), ok, BatchProcessor(EventType.Kafka, telemetry=telemetry))

    linked = [s for s in record_spans(span_exporter) if s.links]
    assert len(linked) == 1
    (link,) = linked[0].links
    assert (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) == (W3C_TRACE, W3C_SPAN)
    assert [format(x.context.trace_id, "032x") for x in batch_span(span_exporter).links] == [W3C_TRACE]


# -- SQS, Kinesis, DynamoDB -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arn", "url"),
    [
        ("arn:aws:sqs:eu-west-1:123456789012:orders", "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"),
        ("arn:aws:sqs:us-east-1:1:q.fifo", "https://sqs.us-east-1.amazonaws.com/1/q.fifo"),
        ("arn:aws-cn:sqs:cn-north-1:123:q", "https://sqs.cn-north-1.amazonaws.com.cn/123/q"),
        ("arn:aws-us-gov:sqs:us-gov-west-1:123:q", "https://sqs.us-gov-west-1.amazonaws.com/123/q"),
        ("arn:aws-iso:sqs:us-iso-east-1:123:q", "https://sqs.us-iso-east-1.c2s.ic.gov/123/q"),
        ("arn:aws:sqs:us-east-1::q", None),
        ("arn:aws:sns:us-east-1:123:topic", None),
        ("not an arn", None),
    ],
)
def test_sqs_queue_url_is_built_from_the_arn(arn, url):
    """The queue URL follows the partition's endpoint domain; anything that is not a queue ARN gives None."""
    assert sqs_queue_url(arn) == url


def test_sqs_spans_carry_the_queue_url(telemetry, span_exporter):
    """aws.sqs.queue.url is on the batch span and every record span."""
    event = sqs_event(count=2, queue="orders", region="eu-west-1", seed=1)
    process_partial_response(event, ok, BatchProcessor(EventType.SQS, telemetry=telemetry))

    urls = {s.attributes["aws.sqs.queue.url"] for s in span_exporter.get_finished_spans()}
    assert urls == {"https://sqs.eu-west-1.amazonaws.com/123456789012/orders"}


def test_mixed_queues_give_each_record_span_its_own_queue_url(telemetry, span_exporter):
    """With records from two queues, each record span names its queue's URL; the batch span names none."""
    event = sqs_event(count=1, queue="a", seed=1)
    event["Records"] += sqs_event(count=1, queue="b", seed=2)["Records"]
    process_partial_response(event, ok, BatchProcessor(EventType.SQS, telemetry=telemetry))

    urls = sorted(s.attributes["aws.sqs.queue.url"] for s in record_spans(span_exporter))
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["a", "b"]
    assert "aws.sqs.queue.url" not in batch_span(span_exporter).attributes


def test_kinesis_spans_carry_the_stream_name(telemetry, span_exporter):
    """aws.kinesis.stream_name is the stream of the ARN."""
    process_partial_response(
        kinesis_event(count=2, stream="clicks", seed=1),
        ok,
        BatchProcessor(EventType.KinesisDataStreams, telemetry=telemetry),
    )

    assert {s.attributes["aws.kinesis.stream_name"] for s in span_exporter.get_finished_spans()} == {"clicks"}


def test_dynamodb_spans_carry_collection_and_time_but_not_the_keys_by_default(telemetry, span_exporter):
    """faas.document.collection is the table, faas.document.time the ISO 8601 creation time; no keys by default."""
    event = dynamodb_event(count=2, table="orders", seed=1)
    event["Records"][0]["dynamodb"]["ApproximateCreationDateTime"] = 1700000000
    event["Records"][1]["dynamodb"]["ApproximateCreationDateTime"] = 1700000000.5
    process_partial_response(event, ok, BatchProcessor(EventType.DynamoDBStreams, telemetry=telemetry))

    spans = record_spans(span_exporter)
    assert {s.attributes["faas.document.collection"] for s in spans} == {"orders"}
    assert sorted(s.attributes["faas.document.time"] for s in spans) == [
        "2023-11-14T22:13:20.500000Z",
        "2023-11-14T22:13:20Z",
    ]
    assert all("faas.document.name" not in s.attributes for s in spans)
    assert batch_span(span_exporter).attributes["faas.document.collection"] == "orders"


def test_dynamodb_keys_are_recorded_when_the_user_opts_in(span_exporter, tracer_provider, monkeypatch):
    """BATCHLENS_DOCUMENT_KEYS=true records the keys as faas.document.name (name=value, sorted by name)."""
    monkeypatch.setenv("BATCHLENS_DOCUMENT_KEYS", "true")
    telemetry = Telemetry.from_env(tracer_provider=tracer_provider, metrics=False, logging=False)
    event = dynamodb_event(count=1, seed=1)
    event["Records"][0]["dynamodb"]["Keys"] = {"sk": {"N": "7"}, "pk": {"S": "customer-1"}}
    process_partial_response(event, ok, BatchProcessor(EventType.DynamoDBStreams, telemetry=telemetry))

    (span,) = record_spans(span_exporter)
    assert span.attributes["faas.document.name"] == "pk=customer-1,sk=7"


# -- producer-header check and attribute cache ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (None, False),
        (lambda r: r["attributes"].update(AWSTraceHeader="Root=1-1-1"), True),
        (lambda r: r.update(messageAttributes={"k": {"stringValue": "v"}}), True),
        (lambda r: r.pop("attributes"), True),  # an unexpected shape: the per-record parse decides
    ],
)
def test_sqs_producer_context_check(change, expected):
    """The batch-level check is False only when no record has an X-Ray header or message attributes."""
    records = sqs_event(count=3, seed=1)["Records"]
    if change is not None:
        change(records[-1])
    assert SQS.may_carry_producer_context(records) is expected


def test_no_producer_header_parse_when_no_record_carries_one(telemetry, span_exporter, monkeypatch):
    """Without headers, producer_headers is never called, neither at batch start nor per record."""
    calls: list[Any] = []
    original = _SqsSource.producer_headers

    def counting(self: Any, raw: Any) -> Any:
        calls.append(raw)
        return original(self, raw)

    monkeypatch.setattr(_SqsSource, "producer_headers", counting)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    process_partial_response(sqs_event(count=5, seed=1), ok, processor)
    assert calls == []
    process_partial_response(sqs_event(count=5, seed=1, trace_header=True), ok, processor)
    assert len(calls) == 5  # parsed once each, at batch start, and reused by the record spans
    assert all(s.links for s in record_spans(span_exporter)[5:])


def test_constant_attributes_are_cached_per_destination_and_bounded(telemetry, span_exporter):
    """One processor keeps at most 64 destinations' constant attributes, and every span stays right."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    (observer,) = [o for o in processor._observer.observers if isinstance(o, TracingObserver)]
    for i in range(70):
        process_partial_response(sqs_event(count=1, queue=f"q{i}", seed=i), ok, processor)
    process_partial_response(sqs_event(count=1, queue="q0", seed=1), ok, processor)

    assert len(observer._constants) == 64
    spans = [s for s in span_exporter.get_finished_spans() if "messaging.batch.message_count" in s.attributes]
    assert [s.attributes["messaging.destination.name"] for s in spans] == [f"q{i}" for i in range(70)] + ["q0"]
    assert all(
        s.attributes["aws.sqs.queue.url"].endswith("/" + s.attributes["messaging.destination.name"]) for s in spans
    )
