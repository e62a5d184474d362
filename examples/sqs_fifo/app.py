"""SQS FIFO queues: stop at the first failure so nothing overtakes a failed message.

Seed section: "FIFO queues" (Recommended).

``SqsFifoPartialProcessor`` processes records in order. After the first failure it does not call the
handler for the rest of the batch: those records are reported as failed too
(``SQSFifoCircuitBreakerError``), so SQS redelivers them after the failed one and order is preserved.

Run it: ``python examples/sqs_fifo/app.py`` - the second payment (bob, negative amount) fails, so it and
every later payment are returned to the queue.
"""

from __future__ import annotations

from typing import Any

import structlog

from batchlens import PartialItemFailureResponse, SqsFifoPartialProcessor, process_partial_response
from batchlens.data_classes import SQSRecord

processor = SqsFifoPartialProcessor()
logger = structlog.get_logger()


class InvalidAmountError(ValueError):
    """A payment with an amount that cannot be booked."""


def record_handler(record: SQSRecord) -> None:
    payment = record.json_body
    if payment["amount"] <= 0:
        raise InvalidAmountError(f"amount must be positive, got {payment['amount']}")
    logger.info("payment booked", order_id=payment["order_id"], group=record.attributes.message_group_id)


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
