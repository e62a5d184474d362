"""Telemetry overhead, import cost and large-batch benchmark, measured against Powertools in one process.

Run:  python tests/benchmarks/bench_overhead.py [--records 3000] [--rounds 15] [--breakdown]

Configurations (same SQS batch, ~10% failures, trivial handler):
  A  Powertools BatchProcessor, no telemetry (the anchor)
  B  batchlens with every telemetry switch off
  C  batchlens with full telemetry (batch span, record span + links + capture, log line, metrics)
  D  Powertools subclassed as its docs suggest: one span, one structlog line, one counter per record
  F  the floor: one SDK span start/end plus one structlog JSON line per record, nothing else
All share SDK providers with a BatchSpanProcessor to a do-nothing exporter, an InMemoryMetricReader, and structlog
rendering JSON with a timestamp into an in-memory stream. Rounds are interleaved; medians are reported.
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
    tracer_provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=200_000, schedule_delay_millis=200))
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


def make_configs(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> dict[str, Callable[[dict[str, Any]], Any]]:
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
    }


def interleaved(
    runs: dict[str, Callable[[dict[str, Any]], Any]],
    records: int,
    rounds: int,
    tracer_provider: TracerProvider,
    stream: io.StringIO,
) -> dict[str, float]:
    """Median us/record of each run over interleaved rounds on one SQS batch (10% failing), after a warm-up."""
    event = sqs_event(count=records, fail_rate=0.1, seed=42)
    for run in runs.values():  # warm up
        run(event)
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
    captured = sum(len(str(s.attributes.get("batchlens.record.response", "")).encode()) for s in record_spans if s.attributes)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--import-runs", type=int, default=9)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--breakdown", action="store_true", help="also print the cost of each observer on its own")
    args = parser.parse_args(argv)

    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cpus; {args.records} SQS records, 10% failing, "
          f"{args.rounds} interleaved rounds (medians)")
    med = overhead(args.records, args.rounds)
    for name in "ABCDF":
        print(f"  {name}: {med[name]:8.2f} us/record")
    print("Ratios (targets in brackets):")
    print(f"  C/D         = {med['C'] / med['D']:.2f}  [<= 1.0]")
    print(f"  (C - A)/F   = {(med['C'] - med['A']) / med['F']:.2f}  [<= 1.2]")
    print(f"  B/A         = {med['B'] / med['A']:.2f}  [<= 0.9]")
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
