"""The EMF exporter: schema-valid lines, values that add up, dimensions and roll-ups, units, delta, splitting."""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from batchlens import BatchProcessingError, BatchProcessor, EventType, SqsFifoPartialProcessor, Telemetry
from batchlens import process_partial_response as process
from batchlens._telemetry._emf_reader import FlushMetricReader
from batchlens._telemetry.emf import (
    DEFAULT_DIMENSIONS,
    MAX_METRICS_PER_DIRECTIVE,
    MAX_VALUES_PER_ARRAY,
    EmfMetricExporter,
    cloudwatch_unit,
)
from batchlens.testing import kinesis_event, lambda_context, sqs_event, sqs_fifo_event

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "emf.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
ROLLUP_TRIGGERS = ("error.type", "batchlens.batch.outcome")


def validate(line: str) -> dict[str, Any]:
    """Check one line against the schema and the references the schema cannot express; return the document."""
    document = json.loads(line)
    VALIDATOR.validate(document)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert isinstance(document[key], str), f"dimension {key} has no string value"
        names = [metric["Name"] for metric in directive["Metrics"]]
        assert len(names) == len(set(names))
        for name in names:
            assert name in document, f"metric {name} has no value"
    return document


class Pipeline:
    """An SDK meter provider whose only reader writes EMF into a string buffer at each flush."""

    def __init__(self, **options: Any) -> None:
        self.out = io.StringIO()
        self.exporter = EmfMetricExporter(self.out, **options)
        self.reader = FlushMetricReader(self.exporter)
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(meter_provider=self.provider, tracing=False, logging=False, flush="never")
        self._read = 0

    def flush(self) -> list[dict[str, Any]]:
        """Flush and return the documents written since the last flush, each validated."""
        self.provider.force_flush()
        text = self.out.getvalue()
        new, self._read = text[self._read :], len(text)
        return [validate(line) for line in new.splitlines()]


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    made = Pipeline()
    yield made
    made.provider.shutdown()


def handler(record: Any) -> None:
    if "fail" in record.body:
        raise ValueError("boom")
    if "missing" in record.body:
        raise KeyError("k")


def values(documents: list[dict[str, Any]], name: str, **dimensions: str) -> list[Any]:
    """The values of metric ``name`` in documents whose dimensions are exactly ``dimensions`` (dots as __)."""
    wanted = {k.replace("__", "."): v for k, v in dimensions.items()}
    found = []
    for document in documents:
        keys = set(document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
        if name in document and {k: document[k] for k in keys} == wanted:
            found.append(document[name])
    return found


ORDERS = {"messaging__system": "aws_sqs", "messaging__destination__name": "orders"}


# -- documents -----------------------------------------------------------------------------------------------
def test_every_line_validates_and_the_values_add_up(pipeline: Pipeline) -> None:
    """Lines validate against the EMF schema; counts and histogram counts and sums equal what was processed."""
    processor = BatchProcessor(EventType.SQS, telemetry=pipeline.telemetry)
    batches = [["ok", "fail", "ok", "missing"], ["ok"] * 7, ["fail", "ok", "fail"]]
    for seed, bodies in enumerate(batches):
        event = sqs_event(bodies, queue="orders", seed=seed)
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "4"
        process(event, handler, processor)

    documents = pipeline.flush()

    assert values(documents, "messaging.client.consumed.messages", **ORDERS) == [14]
    assert values(documents, "batchlens.records.failed", **ORDERS, error__type="ValueError") == [3]
    assert values(documents, "batchlens.records.failed", **ORDERS, error__type="KeyError") == [1]
    assert values(documents, "batchlens.records.redelivered", **ORDERS) == [3]
    (ok,) = values(documents, "messaging.process.duration", **ORDERS)
    (failed,) = values(documents, "messaging.process.duration", **ORDERS, error__type="ValueError")
    assert (ok["Count"], failed["Count"]) == (10, 3)
    assert sum(ok["Counts"]) == ok["Count"]
    assert 0 < ok["Min"] <= ok["Max"] < 1
    assert ok["Min"] <= ok["Sum"] / ok["Count"] <= ok["Max"]
    (partial,) = values(documents, "batchlens.batch.size", **ORDERS, batchlens__batch__outcome="partial_failure")
    (success,) = values(documents, "batchlens.batch.size", **ORDERS, batchlens__batch__outcome="success")
    assert (partial["Count"], partial["Sum"], success["Count"], success["Sum"]) == (2, 7, 1, 7)
    assert (success["Values"], success["Counts"]) == ([7], [1])
    (age,) = values(documents, "batchlens.batch.oldest_record_age", **ORDERS)
    assert age["Count"] == 3


def test_failed_batches_and_fifo_skips_are_counted(pipeline: Pipeline) -> None:
    """An entirely failed batch is outcome failure; FIFO short-circuited records are failed with their error.type."""
    with pytest.raises(BatchProcessingError):
        process(
            sqs_event(["fail"] * 2, queue="orders", seed=1),
            handler,
            BatchProcessor(EventType.SQS, telemetry=pipeline.telemetry),
        )
    process(
        sqs_fifo_event(["ok", "fail", "ok"], queue="orders.fifo", seed=2),
        handler,
        SqsFifoPartialProcessor(telemetry=pipeline.telemetry),
    )

    documents = pipeline.flush()

    (failure,) = values(documents, "batchlens.batch.size", **ORDERS, batchlens__batch__outcome="failure")
    assert (failure["Count"], failure["Sum"]) == (1, 2)
    fifo = {**ORDERS, "messaging__destination__name": "orders.fifo"}
    breaker = "batchlens.exceptions.SQSFifoCircuitBreakerError"
    assert values(documents, "batchlens.records.failed", **fifo, error__type=breaker) == [1]
    assert values(documents, "batchlens.records.failed", **fifo, error__type="ValueError") == [1]
    assert values(documents, "batchlens.records.failed", **ORDERS, error__type="ValueError") == [2]
    assert values(documents, "messaging.client.consumed.messages", **fifo) == [3]


def test_dimension_sets_and_rollups(pipeline: Pipeline) -> None:
    """Dimensions are the present low-cardinality attributes in order, plus a roll-up set for error.type/outcome."""
    process(
        sqs_event(["ok", "fail"], queue="orders", seed=3),
        handler,
        BatchProcessor(EventType.SQS, telemetry=pipeline.telemetry),
    )

    documents = pipeline.flush()

    seen = set()
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        first, *rest = directive["Dimensions"]
        assert first == [k for k in DEFAULT_DIMENSIONS if k in document]
        seen.add(tuple(first))
        if any(k in first for k in ROLLUP_TRIGGERS):
            assert rest == [["messaging.system", "messaging.destination.name"]]
        else:
            assert rest == []
        assert "messaging.operation.name" not in document  # not a dimension, and never a member
        assert directive["Namespace"] == "batchlens"
    assert seen == {
        ("messaging.system", "messaging.destination.name"),
        ("messaging.system", "messaging.destination.name", "error.type"),
        ("messaging.system", "messaging.destination.name", "batchlens.batch.outcome"),
    }


def test_rollup_without_a_destination_is_the_system_alone(pipeline: Pipeline) -> None:
    """A batch mixing queues has no destination on batch.size: its roll-up set is [messaging.system]."""
    event = sqs_event(["ok"], queue="queue-a", seed=4)
    event["Records"] += sqs_event(["ok"], queue="queue-b", seed=5)["Records"]
    process(event, handler, BatchProcessor(EventType.SQS, telemetry=pipeline.telemetry))

    documents = pipeline.flush()

    (document,) = [d for d in documents if "batchlens.batch.size" in d]
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["messaging.system", "batchlens.batch.outcome"],
        ["messaging.system"],
    ]
    assert values(
        documents,
        "messaging.client.consumed.messages",
        messaging__system="aws_sqs",
        messaging__destination__name="queue-b",
    ) == [1]


def test_units_are_cloudwatch_units(pipeline: Pipeline) -> None:
    """Seconds for s; Count for {record}, {message} and {batch}; None for what CloudWatch has no unit for."""
    process(
        kinesis_event(count=2, stream="clicks", seed=6),
        lambda record: None,
        BatchProcessor(EventType.KinesisDataStreams, telemetry=pipeline.telemetry),
    )

    units = {
        metric["Name"]: metric["Unit"]
        for document in pipeline.flush()
        for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }

    assert units == {
        "messaging.process.duration": "Seconds",
        "batchlens.batch.oldest_record_age": "Seconds",
        "messaging.client.consumed.messages": "Count",
        "batchlens.records.succeeded": "Count",
        "batchlens.batch.size": "Count",
    }
    assert [cloudwatch_unit(u) for u in ("{batch}", "ms", "By", "1", "", None, "furlongs")] == [
        "Count", "Milliseconds", "Bytes", "None", "None", "None", "None",
    ]  # fmt: skip


def test_namespace_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """BATCHLENS_EMF_NAMESPACE overrides the namespace; an argument overrides both; bad names are refused."""
    monkeypatch.setenv("BATCHLENS_EMF_NAMESPACE", "Orders/Prod")
    assert EmfMetricExporter().namespace == "Orders/Prod"
    assert EmfMetricExporter(namespace="Explicit").namespace == "Explicit"
    monkeypatch.setenv("BATCHLENS_EMF_NAMESPACE", " ")
    assert EmfMetricExporter().namespace == "batchlens"
    with pytest.raises(ValueError, match="namespace"):
        EmfMetricExporter(namespace=":bad")
    with pytest.raises(ValueError, match="30 dimensions"):
        EmfMetricExporter(dimensions=[f"d{i}" for i in range(31)])


def test_delta_temporality_each_flush_holds_only_what_happened_since(pipeline: Pipeline) -> None:
    """A flush writes only the new measurements; a flush with nothing new writes nothing."""
    processor = BatchProcessor(EventType.SQS, telemetry=pipeline.telemetry)
    process(sqs_event(count=3, queue="orders", seed=7), handler, processor)
    first = pipeline.flush()
    process(sqs_event(count=2, queue="orders", seed=8), handler, processor)
    second = pipeline.flush()

    assert values(first, "messaging.client.consumed.messages", **ORDERS) == [3]
    assert values(second, "messaging.client.consumed.messages", **ORDERS) == [2]
    assert pipeline.flush() == []


def test_flush_before_the_lambda_returns_writes_the_invocation(capsys: pytest.CaptureFixture[str]) -> None:
    """With a Lambda context, process_partial_response's flush writes the EMF lines to stdout before returning."""
    exporter = EmfMetricExporter()  # no stream: sys.stdout at write time
    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)])
    processor = BatchProcessor(
        EventType.SQS, telemetry=Telemetry(meter_provider=provider, tracing=False, logging=False)
    )
    capsys.readouterr()

    process(sqs_event(count=2, queue="orders", seed=9), handler, processor, lambda_context())

    documents = [validate(line) for line in capsys.readouterr().out.splitlines()]
    assert values(documents, "messaging.client.consumed.messages", **ORDERS) == [2]
    provider.shutdown()


# -- limits --------------------------------------------------------------------------------------------------
def test_more_than_100_metrics_are_split_over_documents(pipeline: Pipeline) -> None:
    """250 metrics with the same dimensions become documents of at most 100 metrics, each metric once."""
    meter = pipeline.provider.get_meter("app")
    for index in range(250):
        meter.create_counter(f"app.counter.{index:03}", unit="{item}").add(index + 1, {"messaging.system": "aws_sqs"})

    documents = pipeline.flush()

    sizes = [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in documents]
    assert sizes == [100, 100, 50]
    assert max(sizes) <= MAX_METRICS_PER_DIRECTIVE
    merged = {k: v for d in documents for k, v in d.items() if k.startswith("app.")}
    assert merged == {f"app.counter.{i:03}": i + 1 for i in range(250)}


def test_histograms_with_more_than_100_values_are_split_and_add_up(pipeline: Pipeline) -> None:
    """A histogram with 250 non-empty buckets is spread over documents whose Count, Sum, Min and Max add up."""
    histogram = pipeline.provider.get_meter("app").create_histogram(
        "app.latency", unit="ms", explicit_bucket_boundaries_advisory=[float(b) for b in range(1, 300)]
    )
    samples = [i + 0.5 for i in range(250)] + [7.25] * 3
    for sample in samples:
        histogram.record(sample, {"messaging.system": "aws_sqs"})

    parts = [d["app.latency"] for d in pipeline.flush()]

    assert len(parts) == 3
    assert all(len(p["Values"]) == len(p["Counts"]) <= MAX_VALUES_PER_ARRAY for p in parts)
    assert sum(p["Count"] for p in parts) == sum(sum(p["Counts"]) for p in parts) == len(samples)
    assert sum(p["Sum"] for p in parts) == pytest.approx(sum(samples))
    assert (min(p["Min"] for p in parts), max(p["Max"] for p in parts)) == (0.5, 249.5)


def test_documents_stay_below_the_event_size_limit() -> None:
    """With a small max_event_bytes the metrics of one dimension set are split until each line fits."""
    pipeline = Pipeline(max_event_bytes=2_000)
    meter = pipeline.provider.get_meter("app")
    for index in range(60):
        meter.create_counter(f"app.a.rather.long.counter.name.number.{index:03}").add(1)

    lines = pipeline.out.getvalue().splitlines() if pipeline.flush() else []

    assert len(lines) > 1
    assert all(len(line.encode()) <= 2_000 for line in lines)
    assert sum(len(json.loads(line)["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for line in lines) == 60
    pipeline.provider.shutdown()


def test_high_cardinality_attributes_never_become_dimensions(pipeline: Pipeline) -> None:
    """Points that differ only in other attributes are merged into one value under the known dimensions."""
    counter = pipeline.provider.get_meter("app").create_counter("app.seen", unit="{message}")
    for index in range(5):
        counter.add(2, {"messaging.system": "aws_sqs", "messaging.message.id": f"id-{index}"})

    (document,) = pipeline.flush()

    assert document["app.seen"] == 10
    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["messaging.system"]]
    assert not any("id-" in str(v) for v in document.values())


def test_a_failing_stream_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """export() returns FAILURE and logs when the stream cannot be written; nothing reaches the caller."""

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stdout closed")

    exporter = EmfMetricExporter(Broken())
    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)])
    provider.get_meter("app").create_counter("app.c").add(1)

    provider.force_flush()

    assert "writing EMF metrics failed" in caplog.text
    provider.shutdown()


# -- configure() ---------------------------------------------------------------------------------------------
@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "AWS_LAMBDA_", "BATCHLENS_")):
            monkeypatch.delenv(name)


def _metric_exporters(handle: Any) -> list[str]:
    # an OTLP exporter is behind the watcher configure() puts between it and the reader
    exporters = [getattr(reader, "_exporter", reader) for reader in handle.metric_readers]
    return [type(getattr(exporter, "exporter", exporter)).__name__ for exporter in exporters]


@pytest.mark.usefixtures("bare_environment")
@pytest.mark.parametrize(
    ("variables", "argument", "expected"),
    [
        ({"AWS_LAMBDA_FUNCTION_NAME": "fn"}, None, ["EmfMetricExporter"]),
        ({"AWS_LAMBDA_FUNCTION_NAME": "fn", "OTEL_METRICS_EXPORTER": "otlp"}, None, ["OTLPMetricExporter"]),
        ({"OTEL_METRICS_EXPORTER": "emf"}, None, ["EmfMetricExporter"]),
        ({}, None, ["OTLPMetricExporter"]),
        ({}, "emf,console", ["EmfMetricExporter", "ConsoleMetricExporter"]),
    ],
    ids=["lambda-default", "lambda-otlp-variable", "variable-anywhere", "outside-lambda", "argument"],
)
def test_configure_selects_emf(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], argument: Any, expected: list[str]
) -> None:
    """EMF is the metrics default in Lambda when OTEL_METRICS_EXPORTER is unset, and selectable anywhere."""
    from batchlens.telemetry import configure

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    handle = configure(traces="none", metrics=argument, logs="none", set_global=False)
    try:
        assert _metric_exporters(handle) == expected
    finally:
        handle.shutdown()


@pytest.mark.usefixtures("bare_environment")
def test_configure_emf_starts_no_thread_and_writes_at_flush(capsys: pytest.CaptureFixture[str]) -> None:
    """The EMF reader has no export thread (a frozen sandbox has none to lose); handle.flush() writes the lines."""
    import threading

    from batchlens.telemetry import EmfMetricExporter as Exposed
    from batchlens.telemetry import configure

    before = {t.name for t in threading.enumerate()}
    handle = configure(traces="none", metrics="emf", logs="none", set_global=False)
    try:
        assert Exposed is EmfMetricExporter
        assert "OtelPeriodicExportingMetricReader" not in {t.name for t in threading.enumerate()} - before
        handle.meter_provider.get_meter("app").create_counter("app.c", unit="{record}").add(3)
        capsys.readouterr()
        assert handle.flush()
        (line,) = capsys.readouterr().out.splitlines()
        assert validate(line)["app.c"] == 3
    finally:
        handle.shutdown()


def test_dimension_values_are_non_empty_and_bounded(pipeline: Pipeline) -> None:
    """An empty attribute is not a dimension, and a value is cut to CloudWatch's 1024 characters."""
    counter = pipeline.provider.get_meter("app").create_counter("app.c")
    counter.add(1, {"messaging.system": "aws_sqs", "messaging.destination.name": "", "error.type": "E" * 2000})

    (document,) = pipeline.flush()

    assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0] == ["messaging.system", "error.type"]
    assert document["error.type"] == "E" * 1024


@pytest.mark.usefixtures("bare_environment")
def test_shutdown_writes_what_was_recorded_since_the_last_flush(capsys: pytest.CaptureFixture[str]) -> None:
    """handle.shutdown() exports the measurements no flush has written yet, once."""
    from batchlens.telemetry import configure

    handle = configure(traces="none", metrics="emf", logs="none", set_global=False)
    handle.meter_provider.get_meter("app").create_counter("app.c").add(5)
    capsys.readouterr()

    handle.shutdown()
    handle.shutdown()

    (line,) = capsys.readouterr().out.splitlines()
    assert validate(line)["app.c"] == 5
