"""batchlens' metrics aggregated in plain Python when EMF is the only exporter: the same EMF output as the SDK path.

Two pipelines see the same batches with the same record durations (the processor's clock is replaced by a
scripted one) and the same batch start time: one records through the SDK's instruments and collect cycle, the other
through ``DirectMeter`` (``aggregate_in_python``). Every flush must write the same documents: metrics, dimensions,
values, units and order; only the timestamp may differ.
"""

from __future__ import annotations

import io
import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider

import batchlens._base
import batchlens._telemetry.metrics as metrics_module
from batchlens import BatchProcessingError, BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._telemetry._emf_direct import DirectMeter, direct_meter
from batchlens._telemetry._emf_reader import FlushMetricReader, aggregate_in_python
from batchlens._telemetry.emf import EmfMetricExporter
from batchlens.testing import kinesis_event, sqs_event

NOW = 1_800_000_000.0  # the batch start time the age is measured from


class Pipeline:
    """An SDK meter provider with one EMF reader writing into a buffer; ``direct``: batchlens' metrics in Python."""

    def __init__(self, direct: bool) -> None:
        self.out = io.StringIO()
        self.exporter = EmfMetricExporter(self.out)
        self.reader = FlushMetricReader(self.exporter)
        self.provider = MeterProvider(metric_readers=[self.reader])
        if direct:
            assert aggregate_in_python(self.provider, [self.reader])
        telemetry = Telemetry(meter_provider=self.provider, tracing=False, logging=False, flush="never")
        self.sqs = BatchProcessor(EventType.SQS, telemetry=telemetry)
        self.kinesis = BatchProcessor(EventType.KinesisDataStreams, telemetry=telemetry)
        self._read = 0

    def flush(self) -> list[dict[str, Any]]:
        self.provider.force_flush()
        text = self.out.getvalue()
        new, self._read = text[self._read :], len(text)
        return [json.loads(line) for line in new.splitlines()]


def handler(record: Any) -> None:
    text = record.kinesis.data_as_text() if hasattr(record, "kinesis") else record.body
    if "fail" in text:
        raise ValueError("boom")
    if "missing" in text:
        raise KeyError("k")


def without_timestamps(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for document in documents:
        document["_aws"].pop("Timestamp")
    return documents


class Clock:
    """The processor's clock: advances by the scripted steps in turn (ns), from 0 at each ``script``."""

    def __init__(self) -> None:
        self.steps = [1_000]
        self.now = self.index = 0

    def script(self, steps: list[int]) -> None:
        self.steps, self.now, self.index = list(steps), 0, 0

    def __call__(self) -> int:
        self.now += self.steps[self.index % len(self.steps)]
        self.index += 1
        return self.now


@pytest.fixture
def scripted_time(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A scripted processor clock; the age is measured from NOW."""
    clock = Clock()
    monkeypatch.setattr(batchlens._base, "perf_counter_ns", clock)
    monkeypatch.setattr(metrics_module, "time", SimpleNamespace(time=lambda: NOW))
    return clock


BODIES = st.sampled_from(["ok", "fail", "missing"])
BATCH = st.tuples(
    st.sampled_from(["sqs", "sqs-two-queues", "kinesis"]),
    st.lists(BODIES, min_size=1, max_size=12),
    st.integers(min_value=0, max_value=3),  # redelivered records (SQS)
    st.integers(min_value=0, max_value=10**7),  # age of the oldest record, in ms
)
STEPS = st.lists(st.one_of(BATCH, st.just("flush")), min_size=1, max_size=8)


def build_event(kind: str, bodies: list[str], redelivered: int, age_ms: int, seed: int) -> dict[str, Any]:
    if kind == "kinesis":
        event = kinesis_event(bodies, stream="clicks", seed=seed)
        for record in event["Records"]:
            record["kinesis"]["approximateArrivalTimestamp"] = NOW - age_ms / 1000
        return event
    event = sqs_event(bodies, queue="orders", seed=seed)
    if kind == "sqs-two-queues":
        for record in event["Records"][::2]:
            record["eventSourceARN"] = record["eventSourceARN"].replace("orders", "refunds")
    for index, record in enumerate(event["Records"]):
        record["attributes"]["SentTimestamp"] = str(int(NOW * 1000) - age_ms + index)
        if index < redelivered:
            record["attributes"]["ApproximateReceiveCount"] = "2"
    return event


def run(pipeline: Pipeline, steps: list[Any], events: list[Any]) -> list[list[dict[str, Any]]]:
    flushes = []
    for step, event in zip(steps, events, strict=True):
        if step == "flush":
            flushes.append(without_timestamps(pipeline.flush()))
            continue
        processor = pipeline.kinesis if step[0] == "kinesis" else pipeline.sqs
        try:
            process_partial_response(event, handler, processor)
        except BatchProcessingError:
            pass  # every record failed
    flushes.append(without_timestamps(pipeline.flush()))
    return flushes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, clock_steps=st.lists(st.integers(min_value=1, max_value=3 * 10**9), min_size=1, max_size=7))
def test_direct_emf_output_is_identical_to_the_sdk_path(scripted_time: Clock, steps: Any, clock_steps: Any) -> None:
    """Same batches, same durations: the plain-Python path writes the SDK path's EMF documents, flush by flush."""
    events = [None if step == "flush" else build_event(*step, seed=index) for index, step in enumerate(steps)]
    sdk, direct = Pipeline(direct=False), Pipeline(direct=True)
    try:
        scripted_time.script(clock_steps)
        expected = run(sdk, steps, events)
        scripted_time.script(clock_steps)
        actual = run(direct, steps, events)
    finally:
        sdk.provider.shutdown()
        direct.provider.shutdown()
    assert actual == expected


def test_durations_land_in_the_same_buckets_as_the_sdk(scripted_time: Clock) -> None:
    """Samples on bucket boundaries (5 ms, 10 ms) and beyond the last (12 s) are counted as the SDK counts them."""
    bodies = ["ok", "fail", "ok", "ok", "missing", "ok"]
    outputs = []
    for direct in (False, True):
        # each record: start and end (two clock reads); batch start/end reads too
        scripted_time.script([5_000_000, 10_000_000, 12_000_000_000, 1])
        pipeline = Pipeline(direct=direct)
        process_partial_response(sqs_event(bodies, queue="orders", seed=3), handler, pipeline.sqs)
        outputs.append(without_timestamps(pipeline.flush()))
        pipeline.provider.shutdown()
    assert outputs[0] == outputs[1]
    durations = [d["messaging.process.duration"] for d in outputs[1] if "messaging.process.duration" in d]
    assert sum(d["Count"] for d in durations) == len(bodies)


def test_batchlens_metrics_skip_the_sdk_instruments(scripted_time: Clock) -> None:
    """With the direct path the SDK collects nothing of batchlens': the exporter gets only the drained metrics."""
    pipeline = Pipeline(direct=True)
    calls: list[tuple[Any, Any]] = []
    export = pipeline.exporter.export

    def spy(metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        calls.append((metrics_data, kwargs.get("direct")))
        return export(metrics_data, timeout_millis, **kwargs)

    pipeline.exporter.export = spy  # type: ignore[method-assign]
    process_partial_response(sqs_event(["ok", "fail"], queue="orders", seed=1), handler, pipeline.sqs)
    documents = pipeline.flush()
    pipeline.provider.shutdown()

    ((metrics_data, (_, drained)),) = calls
    assert metrics_data is None
    assert {metric.name for metric in drained} >= {"batchlens.records.failed", "batchlens.records.succeeded"}
    assert sum(d.get("batchlens.records.succeeded", 0) for d in documents) == 1


def test_application_instruments_on_the_provider_are_written_too(scripted_time: Clock) -> None:
    """The application's own instruments still go through the SDK, and land in the same flush's documents."""
    documents = []
    for direct in (False, True):
        pipeline = Pipeline(direct=direct)
        orders = pipeline.provider.get_meter("app").create_counter("orders.placed", unit="{order}")
        orders.add(3, {"messaging.system": "aws_sqs", "messaging.destination.name": "orders"})
        process_partial_response(sqs_event(["ok", "fail"], queue="orders", seed=1), handler, pipeline.sqs)
        documents.append(sorted(json.dumps(d, sort_keys=True) for d in without_timestamps(pipeline.flush())))
        pipeline.provider.shutdown()
    assert documents[0] == documents[1]
    assert any('"orders.placed": 3' in d for d in documents[1])


def test_nothing_recorded_writes_nothing() -> None:
    """A flush without batches writes no document, and neither does the one after a drained flush."""
    pipeline = Pipeline(direct=True)
    assert pipeline.flush() == []
    process_partial_response(sqs_event(["ok"], queue="orders", seed=1), handler, pipeline.sqs)
    assert pipeline.flush()
    assert pipeline.flush() == []
    pipeline.provider.shutdown()


def test_concurrent_batches_and_flushes_lose_no_count() -> None:
    """Batches in four threads while another thread flushes: every record is counted exactly once."""
    pipeline = Pipeline(direct=True)
    done = threading.Event()
    written: list[dict[str, Any]] = []

    def flusher() -> None:
        while not done.is_set():
            written.extend(pipeline.flush())

    def worker(seed: int) -> None:
        processor = BatchProcessor(EventType.SQS, telemetry=pipeline.sqs.telemetry)  # one per thread, as in Lambda
        for batch in range(25):
            event = sqs_event(["ok", "fail", "ok", "ok"], queue="orders", seed=seed * 100 + batch)
            process_partial_response(event, handler, processor)

    background = threading.Thread(target=flusher)
    background.start()
    workers = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    done.set()
    background.join(timeout=60)
    written.extend(pipeline.flush())
    pipeline.provider.shutdown()

    assert sum(d.get("messaging.client.consumed.messages", 0) for d in written) == 4 * 25 * 4
    assert sum(d.get("batchlens.records.succeeded", 0) for d in written) == 4 * 25 * 3
    assert sum(d.get("batchlens.records.failed", 0) for d in written if "error.type" in d) == 4 * 25


def test_only_a_lone_emf_reader_aggregates_in_python() -> None:
    """Two readers, another exporter or a plain periodic reader keep the SDK path."""
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, InMemoryMetricReader

    emf = FlushMetricReader(EmfMetricExporter(io.StringIO()))
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[emf, memory])
    assert not aggregate_in_python(provider, [emf, memory])
    assert direct_meter(provider) is None
    console = FlushMetricReader(ConsoleMetricExporter(out=io.StringIO()))
    other = MeterProvider(metric_readers=[console])
    assert not aggregate_in_python(other, [console])
    provider.shutdown()
    other.shutdown()


def test_configure_lambda_defaults_aggregate_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure()'s Lambda default (EMF only) registers a DirectMeter for its meter provider; EMF + OTLP does not."""
    from batchlens.telemetry import configure

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders")
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    handle = configure(service_name="orders", traces="none", logs="none", set_global=False)
    both = configure(service_name="orders", traces="none", metrics="emf,console", logs="none", set_global=False)
    try:
        assert isinstance(direct_meter(handle.meter_provider), DirectMeter)
        assert direct_meter(both.meter_provider) is None
    finally:
        handle.shutdown()
        both.shutdown()


def test_lambda_default_flushes_metrics_and_spans_in_the_calling_thread() -> None:
    """configure()'s Lambda default (EMF only, X-Ray UDP): a flush starts no worker thread and writes the EMF line."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import threading
        from batchlens import BatchProcessor, EventType, process_partial_response
        from batchlens.telemetry import configure
        from batchlens.testing import lambda_context, sqs_event

        configure(service_name="orders")
        processor = BatchProcessor(event_type=EventType.SQS)
        process_partial_response(sqs_event(["a", "b"]), lambda record: None, processor, lambda_context())
        names = sorted(t.name for t in threading.enumerate() if t.name.startswith("BatchlensFlush"))
        print("flush threads:", names)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_", "BATCHLENS_", "_X_AMZN"))}
    env.update(
        AWS_LAMBDA_FUNCTION_NAME="orders",
        AWS_REGION="eu-west-1",
        AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:9",  # nothing listens: UDP sends go nowhere, never wait
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "flush threads: []"
    assert any('"_aws"' in line and "messaging.client.consumed.messages" in line for line in lines)
