"""Accessing the Lambda context inside the record handler.

Seed section: "Accessing Lambda Context" (Recommended).

Give the record handler a parameter named ``lambda_context`` and the processor passes the invocation's
context to it, e.g. to check how much time is left before the function times out. (To stop starting
records near the deadline without writing that check yourself, see ``examples/deadline_guard``.)

Run it: ``python examples/accessing_lambda_context/app.py``.
"""

from __future__ import annotations

from typing import Any

import structlog

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
logger = structlog.get_logger()


def record_handler(record: SQSRecord, lambda_context: Any = None) -> int | None:
    if lambda_context is None:  # called without a context, e.g. from a unit test
        return None
    remaining_ms: int = lambda_context.get_remaining_time_in_millis()
    logger.info("building report", day=record.json_body["day"], remaining_ms=remaining_ms)
    return remaining_ms


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context(remaining_ms=60_000))))
