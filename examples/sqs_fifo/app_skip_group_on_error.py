"""SQS FIFO with ``skip_group_on_error=True``: a failure only holds back its own message group.

Seed section: "FIFO queues" (Enabling skip_group_on_error flag).

Ordering in SQS FIFO is per message group. With ``skip_group_on_error`` the processor keeps processing
the other groups after a failure; only the later records of the failed group are skipped and reported
(``SQSFifoMessageGroupCircuitBreakerError``).

Run it: ``python examples/sqs_fifo/app_skip_group_on_error.py`` - bob's group (customer-bob) fails at its first
payment, so both of bob's payments are returned; all of alice's (customer-alice) are booked.
"""

from __future__ import annotations

from typing import Any

import structlog

from batchlens import PartialItemFailureResponse, SqsFifoPartialProcessor, process_partial_response
from batchlens.data_classes import SQSRecord

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
logger = structlog.get_logger()


def record_handler(record: SQSRecord) -> None:
    payment = record.json_body
    if payment["amount"] <= 0:
        raise ValueError(f"amount must be positive, got {payment['amount']}")
    logger.info("payment booked", order_id=payment["order_id"], group=record.attributes.message_group_id)


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
