"""Error handling: raise any exception from the record handler to fail that record only.

Seed section: "Error handling" (Sample error handling with custom exception).

Every ``Exception`` raised by the record handler is caught per record: the batch keeps going, the record
is added to ``batchItemFailures``, and the Lambda invocation itself succeeds. batchlens also records the
exception type on the record's span (``error.type``), in the failure counter and in the log entry, so a
custom exception class doubles as an error category on dashboards.

Run it: ``python examples/error_handling/app.py`` - the second order has no ``item``.
"""

from __future__ import annotations

from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)


class InvalidPayloadError(Exception):
    """The message lacks what is needed to process it."""


def record_handler(record: SQSRecord) -> str:
    order = record.json_body
    if "item" not in order:
        # Any exception works; a dedicated class makes the failure easy to find and count.
        raise InvalidPayloadError(f"order {order.get('order_id')} has no item")
    return f"{order['order_id']}: {order['item']}"


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    # Exceptions from record_handler never escape here; they become entries in batchItemFailures.
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
