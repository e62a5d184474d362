"""Parallel processing on threads with ``max_workers`` (batchlens addition).

Not in the seed: Powertools processes a synchronous batch one record at a time. For I/O-bound handlers
(HTTP calls, S3 reads, database writes with blocking clients) ``BatchProcessor(..., max_workers=N)`` runs
records on a pool of N threads. The processed-message list and ``batchItemFailures`` stay in input order,
and each record still gets its own span, parented to the batch span.

Configuration alternative: ``BATCHLENS_MAX_WORKERS=4``. Use it only when records are independent (no
ordering between them) and the handler is thread-safe. Not for SQS FIFO or ordered stream processing.

Run it: ``python examples/parallel_processing/app.py`` - 8 "thumbnail" jobs of 100 ms each finish in about
200 ms on 4 threads; the job marked ``fail`` is reported.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS, max_workers=4)

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

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    started = time.perf_counter()
    response = lambda_handler(sample, lambda_context())
    print(f"{len(sample['Records'])} records in {time.perf_counter() - started:.2f}s")
    print(json.dumps(response))
