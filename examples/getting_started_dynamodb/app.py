"""Getting started with DynamoDB Streams.

Seed section: "Processing messages from DynamoDB" (Recommended).

``EventType.DynamoDBStreams``; the data class deserializes ``NewImage``/``OldImage`` from DynamoDB JSON into
plain Python values (numbers become ``Decimal``). A failed record is reported by its sequence number.

Run it: ``python examples/getting_started_dynamodb/app.py`` - the second item has no ``Message`` attribute.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import DynamoDBRecord

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
logger = structlog.get_logger()


def record_handler(record: DynamoDBRecord) -> None:
    assert record.dynamodb is not None  # always present in stream records; narrows the type for mypy
    new_image = record.dynamodb.new_image
    message: dict[str, Any] = json.loads(new_image["Message"])  # KeyError when missing: the record fails
    logger.info("order changed", id=new_image["id"], change=record.event_name, message=message)


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=record_handler,
        processor=processor,
        context=context,
    )


if __name__ == "__main__":
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
