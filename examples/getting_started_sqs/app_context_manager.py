"""Getting started with SQS, context-manager form: you drive the processor and see every result.

Seed section: "Processing messages from SQS" (As a context manager).

``with processor(records, handler):`` prepares the processor, ``processor.process()`` runs the handler on
every record and returns one ``(status, result_or_error, record)`` tuple per record, and leaving the block
builds the response (or raises ``BatchProcessingError`` if every record failed).
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
logger = structlog.get_logger()


def record_handler(record: SQSRecord) -> str:
    order: dict[str, Any] = json.loads(record.body)
    logger.info("order received", order_id=order["order_id"], item=order["item"])
    return str(order["order_id"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    batch = event["Records"]
    with processor(records=batch, handler=record_handler, lambda_context=context):
        processed = processor.process()  # list of ("success" | "fail", result or error, record)

    logger.info("batch done", processed=len(processed), failed=len(processor.fail_messages))
    return processor.response()


if __name__ == "__main__":
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
