"""Deadline guard: stop starting records when the invocation is about to time out (batchlens addition).

Not in the seed: if a batch is still running when the function times out, Lambda retries the *whole*
batch, including records that had succeeded. With ``deadline_margin_ms=M`` the processor checks
``context.get_remaining_time_in_millis()`` before starting each record and, once fewer than M milliseconds
remain, reports every unstarted record as failed with ``DeadlineExceededError`` (outcome ``skipped`` in the
log entry and on the span, counted in ``batchlens.records.failed``) without starting it. Records already
running finish. The invocation returns in time with a correct partial response: finished records are not
repeated, unstarted ones are retried. If no record could start, the batch fails as a whole
(``BatchProcessingError``, unless ``raise_on_entire_batch_failure=False``).

Pick M above the slowest record plus the time needed to return (and flush telemetry). Configuration
alternative: ``BATCHLENS_DEADLINE_MARGIN_MS=2000`` (default: off). It works for ``BatchProcessor``
(sequential or with ``max_workers``), ``AsyncBatchProcessor`` (where it matters with ``max_concurrency``:
without a cap every record starts at once) and the FIFO processors. It needs the Lambda context
(``context=`` or ``lambda_context=``); without one there is no deadline to check.

Run it: ``python examples/deadline_guard/app.py`` - 5 exports of 300 ms on a real clock counting down from
1 second, with a 450 ms margin: the first two finish, the last three are handed back, and the function
returns with time to spare.
"""

from __future__ import annotations

import time
from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord

DEADLINE_MARGIN_MS = 450
processor = BatchProcessor(event_type=EventType.SQS, deadline_margin_ms=DEADLINE_MARGIN_MS)


def export_order(order: dict[str, Any]) -> None:
    time.sleep(0.3)  # a slow export (tests replace this function to simulate time passing)


def record_handler(record: SQSRecord) -> str:
    order = record.json_body
    export_order(order)
    return str(order["order_id"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    BUDGET_MS = 1_000
    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    started = time.perf_counter()
    # the fake context's remaining time decreases with the wall clock, like Lambda's
    response = lambda_handler(sample, lambda_context(remaining_ms=BUDGET_MS))
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"returned after {elapsed_ms:.0f} ms of a {BUDGET_MS} ms budget (margin {DEADLINE_MARGIN_MS} ms)")
    print(f"started {len(processor.success_messages)} of {len(sample['Records'])} records before the margin")
    print(json.dumps(response))
