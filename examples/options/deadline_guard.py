"""Stopping before the Lambda timeout: ``deadline_margin_ms=M``.

When an invocation times out, Lambda retries the *whole* batch, including records that were already
processed. With ``deadline_margin_ms=M`` and a Lambda context, the processor checks the remaining time before
starting each record; once fewer than M milliseconds are left it starts no more records and reports every
unstarted one as failed (``DeadlineExceededError``, outcome ``skipped`` in logs, counted in metrics), so the
function returns in time and Lambda retries only those. Records already running finish. Pick M larger than
your slowest record plus the time to flush telemetry. Works for ``BatchProcessor`` (sequential or with
``max_workers``), ``AsyncBatchProcessor`` and the FIFO processors. ``BATCHLENS_DEADLINE_MARGIN_MS=M`` does
the same from the environment; the default is off.

Run it: ``python examples/options/deadline_guard.py`` - a 600 ms budget, 50 ms records, a 250 ms margin.
"""

from __future__ import annotations

import time
from typing import Any

from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(EventType.SQS, deadline_margin_ms=250)


def record_handler(record: SQSRecord) -> str:
    time.sleep(0.05)  # a slow record: 50 ms each
    return record.message_id


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    from batchlens.testing import lambda_context, sqs_event

    sample = sqs_event(count=20, seed=1)
    started = time.perf_counter()
    response = lambda_handler(sample, lambda_context(remaining_ms=600))
    elapsed_ms = (time.perf_counter() - started) * 1000
    reported = len(response["batchItemFailures"])
    print(f"returned after {elapsed_ms:.0f} ms of a 600 ms budget")
    print(f"{20 - reported} records processed, {reported} not started and reported for retry")
