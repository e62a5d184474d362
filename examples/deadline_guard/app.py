"""Deadline guard: stop starting records when the invocation is about to time out (batchlens addition).

Not in the seed: if a batch is still running when the function times out, Lambda retries the *whole*
batch, including records that had succeeded. With ``deadline_margin_ms=M`` the processor checks the Lambda
context before each record and, once fewer than M milliseconds remain, reports the remaining records as
failed (``DeadlineExceededError``) without starting them. The invocation returns in time with a correct
partial response: finished records are not repeated, unstarted ones are retried.

Pick M above the slowest record plus the time needed to return (and flush telemetry). Configuration
alternative: ``BATCHLENS_DEADLINE_MARGIN_MS=2000``. It needs the Lambda context (``context=`` or
``lambda_context=``); without one there is no deadline to check.

Run it: ``python examples/deadline_guard/app.py`` - 5 exports of 300 ms in a 1-second budget with a 450 ms
margin: the first two finish, the last three are handed back.
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

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    response = lambda_handler(sample, lambda_context(remaining_ms=1_000))
    print(f"started {len(processor.success_messages)} of {len(sample['Records'])} records before the margin")
    print(json.dumps(response))
