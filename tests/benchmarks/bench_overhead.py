"""Telemetry overhead, import cost and large-batch benchmark, measured against Powertools in one process.

Run:  python tests/benchmarks/bench_overhead.py [--records 3000] [--rounds 15] [--breakdown] [--instructions]

Configurations (same SQS batch, ~10% failures, trivial handler):
  A  Powertools BatchProcessor, no telemetry (the anchor)
  B  batchlens with every telemetry switch off
  C  batchlens with full telemetry (batch span, record span + links + capture, log line, metrics)
  D  Powertools subclassed as its docs suggest: one span, one structlog line, one counter per record
  F  the floor: one SDK span start/end plus one structlog JSON line per record, nothing else
  M  the contract floor: a hand-written loop making exactly the OpenTelemetry API and structlog calls that C's
     telemetry contract requires (same spans, attributes, log keys, histogram samples, counters), with no
     batchlens code but its traceback formatter (the cheapest we know of). An implementation that keeps the
     contract can hardly be cheaper than M, so M/D and (M - A)/F are about the best C/D and (C - A)/F can be,
     and C/M is what batchlens' own code adds.
  L  batchlens "lean": C without response capture and with success lines at debug (so an info-level logger
     drops them after a level check): spans, failure lines and metrics as in C
All share SDK providers with a BatchSpanProcessor to a do-nothing exporter, an InMemoryMetricReader, and structlog
rendering JSON with a timestamp into an in-memory stream. Rounds are interleaved; medians are reported.
With --instructions it also counts CPU instructions per record of each configuration under valgrind's callgrind
(deterministic, unlike wall time on a shared machine; slow: about a minute per configuration on 2 cores).
With --breakdown it also prints what each observer costs on its own (batchlens with only that switch on, minus B,
same providers, interleaved rounds) and the cost of capturing one ~200-byte dict result.
This is not a test: it prints figures and ratios, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import os
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import batchlens
from batchlens.testing import sqs_event


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
    # the README's "trade detail for speed" settings: no response capture, success lines at debug (dropped by
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
    end, the ``batch processed`` log entry, the oldest-record age sample (and the redeliveries, when any) at its
    start, the consumed and failed counters and the batch-size histogram by outcome at its end. Per record: a
    CONSUMER child span with six attributes at start, current while the handler runs; on success the captured
    JSON result and its size; on failure ``error.type``, an error status and an exception event; one structlog
    entry with the contract's keys (trace and span id included); one duration histogram sample.
    """
    import json

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
        outcome = "partial_failure" if failures else "success"
        sizes.record(len(records), {**outcome_attributes, "batchlens.batch.outcome": outcome}, context=no_exemplar)
        batch_span.set_attributes(
            {
                "batchlens.batch.failure_count": len(failures),
                "batchlens.batch.success_count": len(records) - len(failures),
            }
        )
        otel_context.detach(batch_token)
        batch_span.end()
        logger.info(
            "batch processed",
            batch_size=len(records),
            success_count=len(records) - len(failures),
            failure_count=len(failures),
            destination=queue,
            duration_ms=(perf_ns() - batch_start) // 1000 / 1000,
        )
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    return run


def interleaved(
    runs: dict[str, Callable[[dict[str, Any]], Any]],
    records: int,
    rounds: int,
    tracer_provider: TracerProvider,
    stream: io.StringIO,
) -> dict[str, float]:
    """Median us/record of each run over interleaved rounds on one SQS batch (10% failing), after a warm-up."""
    event = sqs_event(count=records, fail_rate=0.1, seed=42)
    responses = {name: run(event) for name, run in runs.items()}  # warm up, and check they agree
    answers = {name: r for name, r in responses.items() if r is not None}
    if len({repr(r) for r in answers.values()}) > 1:
        raise SystemExit(f"configurations disagree on the response: {answers}")
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            stream.seek(0)
            stream.truncate()
            gc.collect()
            start = time.perf_counter()
            run(event)
            samples[name].append((time.perf_counter() - start) / records * 1e6)
        tracer_provider.force_flush()
    tracer_provider.shutdown()
    return {name: statistics.median(values) for name, values in samples.items()}


def overhead(records: int, rounds: int) -> dict[str, float]:
    tracer_provider, meter_provider, stream = setup_providers()
    configs = make_configs(tracer_provider, meter_provider)
    return interleaved(configs, records, rounds, tracer_provider, stream)


def breakdown(records: int, rounds: int) -> dict[str, float]:
    """Median us/record of batchlens with one observer at a time (interleaved with B and C, same providers)."""
    tracer_provider, meter_provider, stream = setup_providers()
    configs = make_configs(tracer_provider, meter_provider)
    off = {"tracing": False, "metrics": False, "logging": False, "capture_response": False}

    def only(**switches: bool) -> Callable[[dict[str, Any]], Any]:
        telemetry = batchlens.Telemetry(
            tracer_provider=tracer_provider, meter_provider=meter_provider, flush="never", **{**off, **switches}
        )
        processor = batchlens.BatchProcessor(batchlens.EventType.SQS, telemetry=telemetry)
        return lambda event: batchlens.process_partial_response(event, handler, processor)

    variants: dict[str, Callable[[dict[str, Any]], Any]] = {
        "B": configs["B"],
        "tracing (spans, no capture)": only(tracing=True),
        "tracing + capture": only(tracing=True, capture_response=True),
        "metrics": only(metrics=True),
        "logging": only(logging=True),
        "C": configs["C"],
    }
    return interleaved(variants, records, rounds, tracer_provider, stream)


def capture_cost(repeat: int = 20_000) -> float:
    """Best-of-5 us to capture a ~200-byte flat dict result (the per-record capture path, without the span)."""
    from batchlens._telemetry.capture import CaptureBudget, ResponseCapture

    capture = ResponseCapture(batchlens.Telemetry())
    value = {
        "orderId": "order-000123",
        "status": "accepted",
        "total": 129.95,
        "currency": "EUR",
        "items": 3,
        "warehouse": "eu-west-1a",
        "express": False,
        "note": None,
        "customer": "c-0000981234",
        "eta_days": 2,
    }
    best = float("inf")
    for _ in range(5):
        budget = CaptureBudget(10**15)
        start = time.perf_counter()
        for _ in range(repeat):
            capture.attributes(value, budget)
        best = min(best, (time.perf_counter() - start) / repeat * 1e6)
    return best


def import_cost(module: str, runs: int) -> float:
    """Median cumulative import time of ``module`` in fresh interpreters, in ms (python -X importtime)."""
    values = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in proc.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$", line)
            if match and match.group(3) == module and match.group(2) == "":
                values.append(int(match.group(1)) / 1000)
    return statistics.median(values)


def heavy_modules_after_import() -> list[str]:
    code = (
        "import sys, batchlens; "
        "print(','.join(m for m in ('sentry_sdk', 'pydantic', 'opentelemetry.sdk', 'structlog') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def large_batch(records: int = 10_000, result_bytes: int = 4096) -> dict[str, Any]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from batchlens.telemetry import configure

    exporter = InMemorySpanExporter()
    handle = configure(service_name="bench", traces=exporter, metrics="none", logs="none", set_global=False)
    telemetry = batchlens.Telemetry(tracer_provider=handle.tracer_provider, logging=False, metrics=False, flush="never")
    processor = batchlens.BatchProcessor(batchlens.EventType.SQS, telemetry=telemetry)
    payload = "x" * result_bytes
    event = sqs_event(count=records, seed=1)
    start = time.perf_counter()
    batchlens.process_partial_response(event, lambda record: payload, processor)
    elapsed = time.perf_counter() - start
    handle.flush(timeout_millis=60_000)
    spans = exporter.get_finished_spans()
    record_spans = [s for s in spans if s.attributes and "messaging.batch.message_count" not in s.attributes]
    captured = sum(
        len(str(s.attributes.get("batchlens.record.response", "")).encode()) for s in record_spans if s.attributes
    )
    handle.shutdown()
    return {
        "records": records,
        "record_spans": len(record_spans),
        "captured_bytes": captured,
        "budget": telemetry.capture_max_bytes_per_batch,
        "seconds": elapsed,
    }


def capture_peak(size: int) -> int:
    from batchlens._telemetry.capture import ResponseCapture

    capture = ResponseCapture(batchlens.Telemetry())
    value = {"payload": "y" * size}
    budget = capture.new_budget()
    tracemalloc.start()
    capture.attributes(value, budget)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def async_batch(records: int = 1000, delay: float = 0.01) -> float:
    async def slow(record: Any) -> None:
        await asyncio.sleep(delay)

    processor = batchlens.AsyncBatchProcessor(batchlens.EventType.SQS, telemetry=batchlens.Telemetry.disabled())
    event = sqs_event(count=records, seed=3)
    start = time.perf_counter()
    batchlens.async_process_partial_response(event, slow, processor)
    return time.perf_counter() - start


CONFIGURATIONS = "ABCDFML"  # the keys of make_configs(), in the order they are printed
INSTRUCTION_SIZES = (1000, 3000)


class _Context:
    """A Lambda context with a minute left, so process_partial_response flushes as it does in Lambda."""

    aws_request_id = "bench-request"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    function_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def lambda_default() -> Callable[[dict[str, Any]], Any]:
    """N: batchlens as it runs in Lambda with no set-up: no SDK (no-op providers), structlog unconfigured.

    Every switch is on by default; with no SDK the spans and metrics cost next to nothing, and the log lines go
    to the private JSON logger on stdout (sent to /dev/null here). Only for --one runs: it needs a process whose
    structlog was never configured.
    """
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "bench"
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the process ends after the run
    processor = batchlens.BatchProcessor(batchlens.EventType.SQS)
    return lambda event: batchlens.process_partial_response(event, handler, processor)


def flushing(name: str, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Callable[..., Any]:
    """P (C with its flush) and Q (D with the flush Powertools users write): a batch, then a flush, as in Lambda."""
    if name == "P":
        processor = batchlens.BatchProcessor(
            batchlens.EventType.SQS,
            telemetry=batchlens.Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider),
        )
        return lambda event: batchlens.process_partial_response(event, handler, processor, _Context())
    run_d = make_configs(tracer_provider, meter_provider)["D"]

    def run(event: dict[str, Any]) -> Any:
        try:
            return run_d(event)
        finally:
            tracer_provider.force_flush(5000)
            meter_provider.force_flush(5000)

    return run


def run_one(name: str, records: int, batches: int = 0) -> None:
    """Run configuration ``name`` once on ``records`` records, after a warm-up (the body of a callgrind run).

    With ``batches``, run it on that many batches of ``records`` records each instead (per-batch costs).
    """
    if name == "N":
        run = lambda_default()
        tracer_provider = None
    else:
        tracer_provider, meter_provider, _stream = setup_providers()
        if name in ("P", "Q"):
            run = flushing(name, tracer_provider, meter_provider)
        else:
            run = make_configs(tracer_provider, meter_provider)[name]
    warm = sqs_event(count=100, fail_rate=0.1, seed=42)
    run(warm)
    run(warm)
    # the event is built at the largest size and cut, so building it costs the same in every run
    event = sqs_event(count=max(INSTRUCTION_SIZES), fail_rate=0.1, seed=42)
    if batches:
        # the same small batch every time: the first records of the event hold no failure in 1 and one in 10
        small = {"Records": event["Records"][:records]}
        for _ in range(batches):
            run(small)
    else:
        run({"Records": event["Records"][:records]})
    if tracer_provider is not None:
        tracer_provider.shutdown()


def _callgrind(name: str, records: int, batches: int = 0) -> int:
    """Instructions callgrind counts for one ``--one`` run (start-up and imports included)."""
    import shutil

    valgrind = shutil.which("valgrind")
    assert valgrind is not None
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    command += ["--one", name, "--records", str(records), "--batches", str(batches)]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", proc.stderr)
    if match is None:
        raise SystemExit(f"callgrind printed no total for {name}: {proc.stderr[-500:]}")
    return int(match.group(1))


def _counted(jobs: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], int]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(jobs, pool.map(lambda job: _callgrind(*job), jobs), strict=True))


def instructions(names: Sequence[str]) -> dict[str, float] | None:
    """CPU instructions per record of each configuration, counted by callgrind (None without valgrind).

    Each configuration runs in its own interpreter at two batch sizes; the difference of the two totals divided
    by the difference of the sizes leaves out start-up, imports and warm-up. The exporter thread's
    instructions are included, as they are in the timings.
    """
    import shutil

    if shutil.which("valgrind") is None:
        return None
    small, large = INSTRUCTION_SIZES
    totals = _counted([(name, size, 0) for name in names for size in INSTRUCTION_SIZES])
    return {name: (totals[(name, large, 0)] - totals[(name, small, 0)]) / (large - small) for name in names}


BATCH_COUNTS = (100, 300)


def batch_instructions(names: Sequence[str], sizes: Sequence[int]) -> dict[tuple[str, int], float]:
    """CPU instructions per batch of each configuration and batch size (callgrind, start-up cancelled out).

    Each (configuration, size) runs ``BATCH_COUNTS`` batches in two interpreters; the difference of the totals
    over the difference of the counts is the cost of one batch.
    """
    few, many = BATCH_COUNTS
    jobs = [(name, size, count) for name in names for size in sizes for count in BATCH_COUNTS]
    totals = _counted(jobs)
    return {
        (name, size): (totals[(name, size, many)] - totals[(name, size, few)]) / (many - few)
        for name in names
        for size in sizes
    }


def print_batch_costs(per_record: dict[str, float], per_batch: dict[tuple[str, int], float]) -> None:
    """The per-batch figures of the second performance issue, with their targets."""
    c1, d1, c10, d10 = per_batch[("C", 1)], per_batch[("D", 1)], per_batch[("C", 10)], per_batch[("D", 10)]
    print("Instructions per batch (callgrind; batches of 1 and 10 records, 0 and 1 failing):")
    for (name, size), value in sorted(per_batch.items()):
        print(f"  {name} x {size:2d}: {value:12,.0f}")
    print(
        f"  fixed cost of a batch, C (batch of 1 minus a record of a large batch) = {c1 - per_record['C']:,.0f}"
        "  [<= 500k]"
    )
    print(f"  C/D batch of 1  = {c1 / d1:.2f}  [<= 2.9]")
    print(f"  C/D batch of 10 = {c10 / d10:.2f}  [<= 1.75]")
    if ("P", 1) in per_batch and ("Q", 1) in per_batch:
        print(f"  flush of a 1-record batch: C {per_batch[('P', 1)] - c1:,.0f}, D {per_batch[('Q', 1)] - d1:,.0f}")
    if "N" in per_record:
        print(
            f"  Lambda default (no SDK, structlog unconfigured) per record / A = {per_record['N'] / per_record['A']:.2f}"
            "  [<= 6]"
        )
    print(f"  C/M large batch = {per_record['C'] / per_record['M']:.2f}  [<= 1.08]")


def print_ratios(values: dict[str, float], unit: str) -> None:
    c, d, a, f, m = values["C"], values["D"], values["A"], values["F"], values["M"]
    print(f"Ratios by {unit} (targets in brackets):")
    print(f"  C/D         = {c / d:.2f}  [<= 1.0]    contract floor M/D       = {m / d:.2f}")
    print(f"  (C - A)/F   = {(c - a) / f:.2f}  [<= 1.2]    contract floor (M - A)/F = {(m - a) / f:.2f}")
    print(f"  B/A         = {values['B'] / a:.2f}  [<= 0.9]")
    print(f"  C/M         = {c / m:.2f}  (what batchlens' own code adds to the contract floor)")
    if "L" in values:
        print(f"  L/D         = {values['L'] / d:.2f}  (batchlens without capture, success lines at debug)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--import-runs", type=int, default=9)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--breakdown", action="store_true", help="also print the cost of each observer on its own")
    parser.add_argument("--instructions", action="store_true", help="also count instructions per record (valgrind)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one, args.records, args.batches)
        return 0

    print(
        f"python {sys.version.split()[0]} on {os.cpu_count()} cpus; {args.records} SQS records, 10% failing, "
        f"{args.rounds} interleaved rounds (medians)"
    )
    med = overhead(args.records, args.rounds)
    for name in CONFIGURATIONS:
        print(f"  {name}: {med[name]:8.2f} us/record")
    print_ratios(med, "time")
    if args.instructions:
        counted = instructions((*CONFIGURATIONS, "N"))
        if counted is None:
            print("Instructions: valgrind is not installed (apt-get install valgrind)")
        else:
            print("Instructions per record (callgrind; N = Lambda default, no SDK, structlog unconfigured):")
            for name in (*CONFIGURATIONS, "N"):
                print(f"  {name}: {counted[name]:10,.0f}")
            print_ratios(counted, "instructions")
            print_batch_costs(counted, batch_instructions(("C", "D", "P", "Q"), (1, 10)))
    if args.breakdown:
        parts = breakdown(args.records, args.rounds)
        print("Breakdown (batchlens with one observer on; us/record, and minus B):")
        for name, value in parts.items():
            print(f"  {name:28s} {value:8.2f}  ({value - parts['B']:+8.2f})")
        print(f"  capture of a 200-byte dict result: {capture_cost():.2f} us")

    bl = import_cost("batchlens", args.import_runs)
    pt = import_cost("aws_lambda_powertools.utilities.batch", args.import_runs)
    print(f"Import: batchlens {bl:.1f} ms, powertools batch {pt:.1f} ms, ratio {bl / pt:.2f}  [<= 0.5]")
    print(f"  heavy modules loaded by 'import batchlens': {heavy_modules_after_import() or 'none'}")

    if not args.skip_large:
        result = large_batch()
        print(
            f"Large batch: {result['records']} records with 4 KB results -> {result['record_spans']} record spans "
            f"exported, {result['captured_bytes']} captured bytes (budget {result['budget']}), {result['seconds']:.2f} s"
        )
        small, big = capture_peak(4096), capture_peak(4 * 1024 * 1024)
        print(f"  capture peak memory: 4 KB result {small} B, 4 MB result {big} B (ratio {big / small:.2f})")
    print(f"Async: 1000 records awaiting 10 ms each: {async_batch():.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
