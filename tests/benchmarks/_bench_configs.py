"""The configurations bench_overhead.py compares (A, B, C, D, F, L, M), on shared SDK providers."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import batchlens


class NullExporter(SpanExporter):
    """Accepts spans and drops them (the cost of a real exporter is not what we measure)."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def handler(record: Any) -> dict[str, Any]:
    body = record.body
    if "fail" in body:
        raise ValueError("rejected")
    return {"ok": True, "n": len(body)}


def setup_providers() -> tuple[TracerProvider, MeterProvider, io.StringIO]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        BatchSpanProcessor(NullExporter(), max_queue_size=200_000, schedule_delay_millis=200)
    )
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    stream = io.StringIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream),
        wrapper_class=structlog.make_filtering_bound_logger(20),
        cache_logger_on_first_use=True,
    )
    return tracer_provider, meter_provider, stream


def make_configs(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> dict[str, Callable[[dict[str, Any]], Any]]:
    from aws_lambda_powertools.utilities.batch import BatchProcessor as PTBatchProcessor
    from aws_lambda_powertools.utilities.batch import EventType as PTEventType
    from aws_lambda_powertools.utilities.batch import process_partial_response as pt_process

    pt_plain = PTBatchProcessor(event_type=PTEventType.SQS)

    tracer = tracer_provider.get_tracer("handrolled")
    counter = meter_provider.get_meter("handrolled").create_counter("records", unit="{record}")
    log = structlog.get_logger("handrolled")

    class InstrumentedProcessor(PTBatchProcessor):
        """The Powertools docs' recipe: subclass and add telemetry per record."""

        def _process_record(self, record: dict[str, Any]) -> Any:
            with tracer.start_as_current_span("process record"):
                return super()._process_record(record)

        def success_handler(self, record: Any, result: Any) -> Any:
            counter.add(1, {"outcome": "success"})
            log.info("record processed", record_id=record["messageId"])
            return super().success_handler(record, result)

        def failure_handler(self, record: Any, exception: Any) -> Any:
            counter.add(1, {"outcome": "failure"})
            log.error("record failed", record_id=record.message_id)
            return super().failure_handler(record, exception)

    pt_instrumented = InstrumentedProcessor(event_type=PTEventType.SQS)
    bl_off = batchlens.BatchProcessor(batchlens.EventType.SQS, telemetry=batchlens.Telemetry.disabled())
    bl_full = batchlens.BatchProcessor(
        batchlens.EventType.SQS,
        telemetry=batchlens.Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider, flush="never"),
    )
    # docs/performance.md's "trade detail for speed" settings: no response capture, success lines at debug (dropped by
    # the info-level logger after a level check); spans, failure lines and metrics as in C
    bl_lean = batchlens.BatchProcessor(
        batchlens.EventType.SQS,
        telemetry=batchlens.Telemetry(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            flush="never",
            capture_response=False,
            success_log_level="debug",
        ),
    )
    floor_tracer = tracer_provider.get_tracer("floor")
    floor_log = structlog.get_logger("floor")

    def floor(event: dict[str, Any]) -> None:
        for record in event["Records"]:
            span = floor_tracer.start_span("process")
            floor_log.info("record processed", record_id=record["messageId"])
            span.end()

    return {
        "A": lambda event: pt_process(event, handler, pt_plain),
        "B": lambda event: batchlens.process_partial_response(event, handler, bl_off),
        "C": lambda event: batchlens.process_partial_response(event, handler, bl_full),
        "D": lambda event: pt_process(event, handler, pt_instrumented),
        "F": floor,
        "M": contract_floor(tracer_provider, meter_provider),
        "L": lambda event: batchlens.process_partial_response(event, handler, bl_lean),
    }


def contract_floor(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Callable[[dict[str, Any]], Any]:
    """M: the API calls C's contract requires for an SQS batch, written out by hand with no batchlens code.

    Per batch: a CONSUMER span with the messaging attributes (current while records run) and its counts at the
    end, the ``batch processed`` log entry with the batch span's ids, the oldest-record age sample (and the
    redeliveries, when any) at its start, the consumed, failed and succeeded counters and the batch-size histogram
    by outcome at its end. Per record: a
    CONSUMER child span with six attributes at start, current while the handler runs; on success the captured
    JSON result and its size; on failure ``error.type``, an error status and an exception event; one structlog
    entry with the contract's keys (trace and span id included); one duration histogram sample.
    """

    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from batchlens._telemetry.metrics import DURATION_BUCKETS  # the semconv boundaries, a constant
    from batchlens._telemetry.tracing import format_exception  # the cheapest traceback text we know of
    from batchlens.data_classes import SQSRecord

    tracer = tracer_provider.get_tracer("contract-floor")
    meter = meter_provider.get_meter("contract-floor")
    duration = meter.create_histogram(
        "messaging.process.duration", unit="s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
    )
    sizes = meter.create_histogram("batchlens.batch.size", unit="{record}")
    failed = meter.create_counter("batchlens.records.failed", unit="{record}")
    succeeded = meter.create_counter("batchlens.records.succeeded", unit="{record}")
    consumed = meter.create_counter("messaging.client.consumed.messages", unit="{message}")
    ages = meter.create_histogram("batchlens.batch.oldest_record_age", unit="s")
    redelivered = meter.create_counter("batchlens.records.redelivered", unit="{record}")
    no_exemplar = trace.set_span_in_context(trace.INVALID_SPAN)
    log = structlog.get_logger("batchlens")
    perf_ns = time.perf_counter_ns

    def run(event: dict[str, Any]) -> dict[str, Any]:
        records = event["Records"]
        _, _, _, region, account, queue = records[0]["eventSourceARN"].split(":")
        name = f"process {queue}"
        common = {
            "messaging.system": "aws_sqs",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "aws.sqs.queue.url": f"https://sqs.{region}.amazonaws.com/{account}/{queue}",
        }
        batch_start = perf_ns()
        outcome_attributes = {"messaging.system": "aws_sqs", "messaging.destination.name": queue}
        oldest_ms = min(int(raw["attributes"]["SentTimestamp"]) for raw in records)
        ages.record(max(time.time() - oldest_ms / 1000, 0.0), outcome_attributes, context=no_exemplar)
        redeliveries = sum(1 for raw in records if int(raw["attributes"]["ApproximateReceiveCount"]) > 1)
        if redeliveries:
            redelivered.add(redeliveries, outcome_attributes)
        batch_span = tracer.start_span(
            name, kind=SpanKind.CONSUMER, attributes={**common, "messaging.batch.message_count": len(records)}
        )
        batch_context = trace.set_span_in_context(batch_span)
        batch_token = otel_context.attach(batch_context)
        logger = log.bind()
        # (nanoseconds, succeeded); the benchmark's handler only ever raises ValueError
        samples: list[tuple[int, bool]] = []
        failures: list[str] = []
        for raw in records:
            message_id = raw["messageId"]
            attributes = dict(common)
            attributes["messaging.message.id"] = message_id
            attributes["batchlens.sqs.receive_count"] = int(raw["attributes"]["ApproximateReceiveCount"])
            span = tracer.start_span(name, context=batch_context, kind=SpanKind.CONSUMER, attributes=attributes)
            token = otel_context.attach(trace.set_span_in_context(span))
            start = perf_ns()
            error: Exception | None = None
            try:
                result = handler(SQSRecord(raw))
            except Exception as exc:
                error = exc
            end = perf_ns()
            otel_context.detach(token)
            if error is None:
                text = json.dumps(result)  # small ASCII results: bytes == characters, well within the budgets
                span.set_attributes(
                    {
                        "batchlens.record.response": text[:1024],
                        "batchlens.record.response.size": len(text),
                        "batchlens.record.response.truncated": len(text) > 1024,
                    }
                )
            else:
                failures.append(message_id)
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.add_event(
                    "exception",
                    {
                        "exception.type": type(error).__qualname__,
                        "exception.message": str(error),
                        "exception.stacktrace": format_exception(error),
                    },
                )
            span.end()
            span_context = span.get_span_context()
            fields = {
                "record_id": message_id,
                "outcome": "success" if error is None else "failure",
                "event_source": "aws:sqs",
                "destination": queue,
                "duration_ms": (end - start) // 1000 / 1000,
                "trace_id": format(span_context.trace_id, "032x"),
                "span_id": format(span_context.span_id, "016x"),
            }
            if error is None:
                logger.info("record processed", **fields)
            else:
                logger.error("record failed", error_type=type(error).__name__, exc_info=error, **fields)
            samples.append((end - start, error is None))
        metric_attributes = {
            "messaging.system": "aws_sqs",
            "messaging.operation.name": "process",
            "messaging.destination.name": queue,
        }
        failure_attributes = {**metric_attributes, "error.type": "ValueError"}
        for nanoseconds, ok in samples:
            attributes = metric_attributes if ok else failure_attributes
            duration.record(nanoseconds / 1e9, attributes, context=no_exemplar)
        consumed.add(len(records), metric_attributes)
        if failures:
            failed.add(len(failures), {**outcome_attributes, "error.type": "ValueError"})
        if len(records) > len(failures):
            succeeded.add(len(records) - len(failures), outcome_attributes)
        outcome = "partial_failure" if failures else "success"
        sizes.record(len(records), {**outcome_attributes, "batchlens.batch.outcome": outcome}, context=no_exemplar)
        batch_span.set_attributes(
            {
                "batchlens.batch.failure_count": len(failures),
                "batchlens.batch.success_count": len(records) - len(failures),
            }
        )
        otel_context.detach(batch_token)
        batch_ids = batch_span.get_span_context()
        batch_span.end()
        logger.info(
            "batch processed",
            batch_size=len(records),
            success_count=len(records) - len(failures),
            failure_count=len(failures),
            destination=queue,
            duration_ms=(perf_ns() - batch_start) // 1000 / 1000,
            trace_id=format(batch_ids.trace_id, "032x"),
            span_id=format(batch_ids.span_id, "016x"),
        )
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    return run
