"""Parallel processing on threads with ``max_workers`` (batchlens addition).

Not in the seed: Powertools processes a synchronous batch one record at a time. For I/O-bound handlers
(HTTP calls, S3 reads, database writes with blocking clients) ``BatchProcessor(..., max_workers=N)`` runs
records on a pool of N threads. Nothing else changes: ``batchItemFailures`` and the list returned by
``process()`` stay in input order, each record's span is the current span in its worker thread (so spans
and log entries made by the handler belong to that record, under the batch span), context variables set by
the caller are visible in every record without leaking between records, and ``lambda_context`` is still
injected.

Configuration alternative: ``BATCHLENS_MAX_WORKERS=4``. Use it only when records are independent and the
handler is thread-safe. FIFO processors refuse ``max_workers > 1`` (their point is order), and it cannot be
combined with ``stop_on_first_failure``.

Run it: ``python examples/parallel_processing/app.py`` - 8 "thumbnail" jobs of 100 ms each, timed in
sequence and on 4 threads (about 800 ms vs 200 ms); the job marked ``fail`` is reported.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord

MAX_WORKERS = 4
processor = BatchProcessor(event_type=EventType.SQS, max_workers=MAX_WORKERS)

WORK_SECONDS = 0.1  # stands in for an S3 download + upload


def record_handler(record: SQSRecord) -> dict[str, str]:
    job = record.json_body
    time.sleep(WORK_SECONDS)  # blocking I/O releases the GIL, so the other threads keep working
    if job["status"] == "fail":
        raise RuntimeError(f"could not render {job['order_id']}")
    return {"order_id": job["order_id"], "thread": threading.current_thread().name}


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens import Telemetry
    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    quiet = Telemetry.disabled()  # the comparison measures processing time only
    for label, demo in (
        ("sequential", BatchProcessor(EventType.SQS, telemetry=quiet)),
        (f"max_workers={MAX_WORKERS}", BatchProcessor(EventType.SQS, telemetry=quiet, max_workers=MAX_WORKERS)),
    ):
        started = time.perf_counter()
        process_partial_response(sample, record_handler, demo, lambda_context())
        print(f"{label:>13}: {len(sample['Records'])} records in {time.perf_counter() - started:.2f}s")
    print(json.dumps(lambda_handler(sample, lambda_context())))
