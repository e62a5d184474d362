"""Parallel processing of a synchronous handler: ``BatchProcessor(..., max_workers=8)``.

For I/O-bound handlers (an HTTP call, a database write per record) a thread pool processes the batch several
times faster. Nothing else changes: the response lists failures in input order, ``process()`` returns the
tuples in input order, each record's span is the current span in its worker thread (so spans and logs made in
the handler belong to that record), and ``lambda_context`` is still injected. ``BATCHLENS_MAX_WORKERS=8``
does the same from the environment. FIFO processors refuse ``max_workers > 1``: their point is order.

Run it: ``python examples/options/parallel_workers.py`` - 40 records of 10 ms each, sequential vs 8 workers.
"""

from __future__ import annotations

import time
from typing import Any

from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(EventType.SQS, max_workers=8)


def record_handler(record: SQSRecord) -> str:
    order = record.json_body
    time.sleep(0.01)  # stands for a 10 ms call to another service: the thread waits, others run
    if order["status"] == "fail":
        raise ValueError(f"order {order['order']} was rejected")
    return f"order {order['order']} stored"


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json

    from batchlens import Telemetry
    from batchlens.testing import lambda_context, sqs_event

    sample = sqs_event([{"order": i, "status": "fail" if i % 10 == 3 else "ok"} for i in range(40)], seed=1)
    quiet = Telemetry.disabled()  # the demo compares processing time only
    for label, demo in (
        ("sequential", BatchProcessor(EventType.SQS, telemetry=quiet)),
        ("max_workers=8", BatchProcessor(EventType.SQS, telemetry=quiet, max_workers=8)),
    ):
        started = time.perf_counter()
        response = process_partial_response(sample, record_handler, demo, lambda_context())
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"{label:>14}: {elapsed_ms:6.0f} ms, {len(response['batchItemFailures'])} failures reported")
    print(json.dumps(lambda_handler(sample, lambda_context()))[:200], "...")
