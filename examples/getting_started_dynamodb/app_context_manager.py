"""Getting started with DynamoDB Streams, context-manager form.

Seed section: "Processing messages from DynamoDB" (As a context manager).
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse
from batchlens.data_classes import DynamoDBRecord

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
logger = structlog.get_logger()


def record_handler(record: DynamoDBRecord) -> None:
    assert record.dynamodb is not None
    message: dict[str, Any] = json.loads(record.dynamodb.new_image["Message"])
    logger.info("order changed", message=message)


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    with processor(records=event["Records"], handler=record_handler, lambda_context=context):
        processed = processor.process()

    logger.info("batch done", processed=len(processed), failed=len(processor.fail_messages))
    return processor.response()


if __name__ == "__main__":
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
