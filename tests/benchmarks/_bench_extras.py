"""bench_overhead.py's other measurements: import cost, a 10,000-record batch, capture memory, async."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from _bench_configs import NullExporter, handler, make_configs, setup_providers  # noqa: F401

import batchlens
from batchlens.testing import sqs_event


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
