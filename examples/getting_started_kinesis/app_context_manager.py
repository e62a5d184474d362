"""Getting started with Kinesis Data Streams, context-manager form.

Seed section: "Processing messages from Kinesis" (As a context manager).
"""

from __future__ import annotations

from typing import Any

import structlog

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse
from batchlens.data_classes import KinesisStreamRecord

processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
logger = structlog.get_logger()


def record_handler(record: KinesisStreamRecord) -> None:
    click = record.kinesis.data_as_json()
    logger.info("click", page=click["page"], user=click["user"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    with processor(records=event["Records"], handler=record_handler, lambda_context=context):
        processed = processor.process()

    logger.info("batch done", processed=len(processed), failed=len(processor.fail_messages))
    return processor.response()


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
