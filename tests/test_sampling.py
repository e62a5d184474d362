"""Record sampling (``Telemetry.record_sampling`` / ``BATCHLENS_RECORD_SAMPLING``): which records get a span, a
success log line and response capture; metrics and failures stay complete."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessor,
    EventType,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens.testing import kinesis_event, sqs_event
from test_sentry import TEST_DSN, KeepingTransport, reset_sentry

KINESIS = EventType.KinesisDataStreams
BATCH_ATTRIBUTE = "messaging.batch.message_count"
ID = "messaging.message.id"


def crc_sampled(message_id: str, rate: float) -> bool:
    """The documented rule: CRC-32 of the UTF-8 message id below floor(rate * 2**32)."""
    return zlib.crc32(message_id.encode("utf-8")) < math.floor(rate * 2**32)


def kinesis_ids(event: dict[str, Any]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


def fails(record: Any) -> bool:
    return b"fail" in record.kinesis.data_as_bytes()


def kinesis_handler(record: Any) -> dict[str, Any]:
    if fails(record):
        raise ValueError("rejected")
    return {"ok": True}


def always_fails(record: Any) -> None:
    raise ValueError("rejected")


def split(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, dict[str, ReadableSpan], list[ReadableSpan]]:
    """(batch span, record spans by message id, every other span)."""
    spans = exporter.get_finished_spans()
    (batch,) = [s for s in spans if BATCH_ATTRIBUTE in (s.attributes or {})]
    records = {str(s.attributes[ID]): s for s in spans if ID in (s.attributes or {})}  # type: ignore[index]
    others = [s for s in spans if s is not batch and ID not in (s.attributes or {})]
    return batch, records, others


def run(telemetry: Telemetry, event: dict[str, Any], handler: Any = kinesis_handler, **kwargs: Any) -> Any:
    return process_partial_response(event, handler, BatchProcessor(KINESIS, telemetry=telemetry, **kwargs))


@pytest.fixture
def sampled(telemetry: Telemetry) -> Any:
    """``sampled(rate)``: the conftest Telemetry with that record sampling rate."""
    return lambda rate: telemetry.replace(record_sampling=rate)


# -- the decision ----------------------------------------------------------------------------------------------------
def test_record_spans_are_exactly_the_records_the_crc32_rule_keeps(sampled, span_exporter):
    """At 0.3, the successful records with spans are those whose message id's CRC-32 is below 0.3 * 2**32."""
    event = kinesis_event(count=300, seed=5)
    run(sampled(0.3), event)
    _, records, _ = split(span_exporter)
    expected = {m for m in kinesis_ids(event) if crc_sampled(m, 0.3)}
    assert set(records) == expected
    assert 50 < len(expected) < 130  # about 90 of 300: the rule does sample, and not everything


def test_every_process_and_every_retry_decides_alike(sampled, span_exporter, tmp_path):
    """A second run of the same batch, and a process with another PYTHONHASHSEED, keep the same records."""
    event = kinesis_event(count=200, seed=8)
    run(sampled(0.5), event)
    first = set(split(span_exporter)[1])
    span_exporter.clear()
    run(sampled(0.5), event)
    assert set(split(span_exporter)[1]) == first
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    script = f"""
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
telemetry = Telemetry(tracer_provider=provider, metrics=False, logging=False, record_sampling=0.5)
event = json.load(open({str(path)!r}))
process_partial_response(event, lambda record: None, BatchProcessor(EventType.KinesisDataStreams, telemetry=telemetry))
ids = [s.attributes["messaging.message.id"] for s in exporter.get_finished_spans() if "messaging.message.id" in s.attributes]
print(json.dumps(sorted(ids)))
"""
    for seed in ("1", "987654"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert set(json.loads(out.stdout)) == first


def test_the_bound_is_strict_at_the_records_own_hash(sampled, span_exporter):
    """A record whose CRC-32 equals floor(rate * 2**32) is left out; one more and it is kept."""
    event = sqs_event(["ok"], seed=2)
    message_id = event["Records"][0]["messageId"]
    crc = zlib.crc32(message_id.encode("utf-8"))

    def spans_at(rate: float) -> int:
        span_exporter.clear()
        process_partial_response(event, lambda record: None, BatchProcessor(EventType.SQS, telemetry=sampled(rate)))
        return len(split(span_exporter)[1])

    assert spans_at(crc / 2**32) == 0
    assert spans_at((crc + 1) / 2**32) == 1


def test_rate_one_records_every_record_and_adds_no_sampling_attributes(sampled, span_exporter):
    """The default: every record has its span, and the batch span has no sampling attributes."""
    event = kinesis_event(count=30, seed=3)
    run(sampled(1.0), event)
    batch, records, _ = split(span_exporter)
    assert set(records) == set(kinesis_ids(event))
    assert "batchlens.batch.sampling_rate" not in batch.attributes
    assert "batchlens.batch.unsampled_count" not in batch.attributes


def test_rate_zero_keeps_only_failures(sampled, span_exporter):
    """At 0, successes get no span and no log line; every failure gets both."""
    event = kinesis_event(count=40, fail_rate=0.25, seed=4)
    with capture_logs() as logs:
        response = run(sampled(0.0), event)
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert failed
    _, records, _ = split(span_exporter)
    assert set(records) == failed
    assert not [entry for entry in logs if entry["event"] == "record processed"]
    assert {entry["record_id"] for entry in logs if entry["event"] == "record failed"} == failed


def test_records_without_a_message_id_are_always_sampled(sampled, span_exporter):
    """A record with no messaging.message.id has nothing to hash: it is recorded."""
    event = sqs_event(["a", "b"], seed=6)
    del event["Records"][0]["messageId"]
    process_partial_response(event, lambda record: None, BatchProcessor(EventType.SQS, telemetry=sampled(0.0)))
    batch = split(span_exporter)[0]
    record_spans = [s for s in span_exporter.get_finished_spans() if s is not batch]
    assert len(record_spans) == 1
    assert ID not in record_spans[0].attributes
    assert batch.attributes["batchlens.batch.unsampled_count"] == 1


# -- configuration -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), float("inf"), "abc", "", True, None, [0.5]])
def test_invalid_rates_raise_naming_the_field(value):
    """Anything but a fraction in [0, 1] is a ValueError that names record_sampling."""
    with pytest.raises(ValueError, match="record_sampling"):
        Telemetry(record_sampling=value)


@pytest.mark.parametrize("raw", ["2", "-1", "abc", "nan", "inf", "1e3", "true"])
def test_invalid_variable_raises_naming_the_variable(raw):
    """BATCHLENS_RECORD_SAMPLING outside [0, 1] or not a number is a ValueError naming the variable."""
    with pytest.raises(ValueError, match="BATCHLENS_RECORD_SAMPLING"):
        Telemetry.from_env({"BATCHLENS_RECORD_SAMPLING": raw})


def test_valid_settings_parse():
    """Numbers and their text are accepted; unset or blank means the default, 1.0."""
    assert Telemetry().record_sampling == 1.0
    assert Telemetry.from_env({}).record_sampling == 1.0
    assert Telemetry.from_env({"BATCHLENS_RECORD_SAMPLING": "  "}).record_sampling == 1.0
    assert Telemetry.from_env({"BATCHLENS_RECORD_SAMPLING": " 0.01 "}).record_sampling == 0.01
    assert Telemetry.from_env({"BATCHLENS_RECORD_SAMPLING": "0"}).record_sampling == 0.0
    assert Telemetry(record_sampling="0.25").record_sampling == 0.25
    assert Telemetry(record_sampling=1).record_sampling == 1.0
    assert isinstance(Telemetry(record_sampling=0).record_sampling, float)


def test_processor_reads_the_variable(monkeypatch, span_exporter, tracer_provider):
    """A processor built without telemetry= samples at BATCHLENS_RECORD_SAMPLING."""
    monkeypatch.setenv("BATCHLENS_RECORD_SAMPLING", "0")
    processor = BatchProcessor(KINESIS, telemetry=Telemetry.from_env(tracer_provider=tracer_provider))
    process_partial_response(kinesis_event(count=5, seed=1), kinesis_handler, processor)
    batch, records, _ = split(span_exporter)
    assert records == {}
    assert batch.attributes["batchlens.batch.sampling_rate"] == 0.0


# -- what a left-out record produces ----------------------------------------------------------------------------------
def test_spans_started_by_a_left_out_records_handler_are_not_exported(sampled, span_exporter, tracer_provider):
    """Under a left-out record no span records; the handler sees an unsampled span of the batch's trace."""
    tracer = tracer_provider.get_tracer("app")
    seen: dict[str, tuple[bool, bool, int]] = {}

    def handler(record: Any) -> None:
        current = trace.get_current_span()
        with tracer.start_as_current_span("child") as child:
            context = current.get_span_context()
            seen[record.kinesis.sequence_number] = (
                child.is_recording(),
                context.trace_flags.sampled,
                context.trace_id,
            )

    event = kinesis_event(count=60, seed=9)
    run(sampled(0.5), event, handler)
    batch, records, others = split(span_exporter)
    kept = {m for m in kinesis_ids(event) if crc_sampled(m, 0.5)}
    assert 0 < len(kept) < 60
    assert set(records) == kept
    # one exported child per kept record, each under its record span
    assert sorted(c.parent.span_id for c in others) == sorted(records[m].context.span_id for m in kept)
    for message_id, (recording, flag, trace_id) in seen.items():
        assert recording is (message_id in kept)
        assert flag is (message_id in kept)
        assert trace_id == batch.context.trace_id


def test_a_left_out_failure_gets_a_childless_span_with_its_real_times(sampled, span_exporter, tracer_provider):
    """The span made after a left-out record failed starts and ends when the record did and has no children."""
    tracer = tracer_provider.get_tracer("app")
    window: dict[str, int] = {}

    def handler(record: Any) -> None:
        window["entry"] = time.time_ns()
        with tracer.start_as_current_span("child"):
            time.sleep(0.03)
        window["exit"] = time.time_ns()
        raise ValueError("rejected")

    event = kinesis_event(count=1, seed=10)
    (message_id,) = kinesis_ids(event)
    with capture_logs() as logs:
        run(sampled(0.0), event, handler, raise_on_entire_batch_failure=False)
    batch, records, others = split(span_exporter)
    span = records[message_id]
    assert others == []  # the child was never recorded
    assert span.parent.span_id == batch.context.span_id
    assert span.start_time <= window["entry"]
    assert span.end_time >= window["exit"]
    assert span.end_time - span.start_time < (window["exit"] - window["entry"]) + 10_000_000
    assert batch.start_time <= span.start_time
    assert span.end_time <= batch.end_time
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    (exception,) = span.events
    assert exception.name == "exception"
    assert span.start_time <= exception.timestamp <= span.end_time
    (line,) = [entry for entry in logs if entry["event"] == "record failed"]
    assert line["span_id"] == format(span.context.span_id, "016x")
    assert line["duration_ms"] >= 30


def test_a_left_out_failures_span_matches_a_sampled_one(sampled, span_exporter):
    """Same name, attributes, links, kind and status whether the failing record was sampled or not."""
    event = kinesis_event(count=8, fail_rate=0.5, seed=11)
    run(sampled(1.0), event)
    _, kept, _ = split(span_exporter)
    span_exporter.clear()
    run(sampled(0.0), event)
    _, late, _ = split(span_exporter)
    assert set(late) < set(kept)
    assert late
    for message_id, span in late.items():
        twin = kept[message_id]
        assert (span.name, span.kind, dict(span.attributes)) == (twin.name, twin.kind, dict(twin.attributes))
        assert [link.context for link in span.links] == [link.context for link in twin.links]
        assert (span.status.status_code, span.status.description) == (twin.status.status_code, twin.status.description)
        assert [e.name for e in span.events] == [e.name for e in twin.events]


def test_skipped_records_keep_their_span_and_line(sampled, span_exporter):
    """Records a stream stop skips are recorded at any rate (error status, no exception event)."""
    event = kinesis_event(count=6, seed=12)
    with capture_logs() as logs:
        response = run(
            sampled(0.0), event, always_fails, stop_on_first_failure=True, raise_on_entire_batch_failure=False
        )
    assert len(response["batchItemFailures"]) == 6
    _, records, _ = split(span_exporter)
    assert set(records) == set(kinesis_ids(event))
    skipped = [records[m] for m in kinesis_ids(event)[1:]]
    assert all(s.status.status_code is trace.StatusCode.ERROR and not s.events for s in skipped)
    assert len([e for e in logs if e["event"] == "record failed"]) == 6


def test_counters_and_durations_count_every_record(sampled, meter_provider, metric_reader: InMemoryMetricReader):
    """Consumed, failed and the duration histogram are exact whatever the rate."""
    event = kinesis_event(count=120, fail_rate=0.1, seed=13)
    response = run(sampled(0.01), event)
    failures = len(response["batchItemFailures"])
    points: dict[str, Any] = {}
    for resource in metric_reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    assert sum(p.value for p in points["messaging.client.consumed.messages"]) == 120
    assert sum(p.value for p in points["batchlens.records.failed"]) == failures > 0
    assert sum(p.count for p in points["messaging.process.duration"]) == 120


def test_batch_span_counts_what_was_left_out(sampled, span_exporter):
    """sampling_rate at start, unsampled_count at the end: the record spans are message_count - unsampled_count."""
    event = kinesis_event(count=150, fail_rate=0.2, seed=14)
    response = run(sampled(0.2), event)
    batch, records, _ = split(span_exporter)
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    left_out = {m for m in kinesis_ids(event) if not crc_sampled(m, 0.2) and m not in failed}
    assert batch.attributes["batchlens.batch.sampling_rate"] == 0.2
    assert batch.attributes["batchlens.batch.unsampled_count"] == len(left_out) > 0
    assert len(records) == batch.attributes[BATCH_ATTRIBUTE] - len(left_out)
    assert set(records) == set(kinesis_ids(event)) - left_out


def test_response_capture_only_on_sampled_records(sampled, span_exporter):
    """Sampled successes carry the captured response as today."""
    event = kinesis_event(count=40, seed=15)
    run(sampled(0.5), event)
    _, records, _ = split(span_exporter)
    assert records
    assert all(s.attributes["batchlens.record.response"] == '{"ok": true}' for s in records.values())


def test_async_and_threaded_processors_sample_alike(sampled, span_exporter):
    """AsyncBatchProcessor and max_workers > 1 keep the same records, failures with their late spans."""
    event = kinesis_event(count=50, fail_rate=0.2, seed=16)
    run(sampled(0.3), event)
    expected = set(split(span_exporter)[1])
    span_exporter.clear()
    run(sampled(0.3), event, max_workers=3)
    assert set(split(span_exporter)[1]) == expected
    span_exporter.clear()

    async def handler(record: Any) -> None:
        await asyncio.sleep(0)
        if fails(record):
            raise ValueError("rejected")

    processor = AsyncBatchProcessor(KINESIS, telemetry=sampled(0.3))
    async_process_partial_response(event, handler, processor)
    assert set(split(span_exporter)[1]) == expected


# -- Sentry -------------------------------------------------------------------------------------------------------
@pytest.fixture
def transport() -> Iterator[KeepingTransport]:
    reset_sentry()
    kept = KeepingTransport()
    sentry_sdk.init(dsn=TEST_DSN, transport=kept, default_integrations=False)
    yield kept
    reset_sentry()


def test_sentry_gets_left_out_failures_not_skips(sampled, span_exporter, transport):
    """A left-out failure is sent, naming its late span; the records a stream stop skips are not."""
    event = kinesis_event(count=5, seed=17)
    telemetry = sampled(0.0).replace(sentry=True)
    run(telemetry, event, always_fails, stop_on_first_failure=True, raise_on_entire_batch_failure=False)
    (sent,) = transport.events
    first = kinesis_ids(event)[0]
    assert sent["tags"]["messaging.message.id"] == first
    span = split(span_exporter)[1][first]
    assert sent["contexts"]["batch_record"]["span_id"] == format(span.context.span_id, "016x")
