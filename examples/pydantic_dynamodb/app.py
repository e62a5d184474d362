"""Pydantic models for DynamoDB Streams.

Seed section: "Pydantic integration" (DynamoDB Streams).

``NewImage``/``OldImage`` are deserialized from DynamoDB JSON before your model sees them, so the
``Message`` attribute arrives as a plain string; a ``field_validator`` turns that JSON string into the
nested ``Order`` model. Subclass ``DynamoDBStreamChangedRecordModel`` and ``DynamoDBStreamRecordModel``
so the sequence number stays reachable for failure reports.

Run it: ``python examples/pydantic_dynamodb/app.py`` - the third item's ``Message`` is not JSON.
"""

# No ``from __future__ import annotations`` here: pydantic resolves the field annotations at runtime.
import json
from typing import Any

from pydantic import field_validator

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.models import BaseModel, DynamoDBStreamChangedRecordModel, DynamoDBStreamRecordModel


class Order(BaseModel):
    item: dict[str, Any]


class OrderItem(BaseModel):
    id: str
    Message: Order

    @field_validator("Message", mode="before")
    @classmethod
    def parse_message(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class OrderChange(DynamoDBStreamChangedRecordModel):
    NewImage: OrderItem | None = None
    OldImage: OrderItem | None = None


class OrderChangeRecord(DynamoDBStreamRecordModel):
    dynamodb: OrderChange


processor = BatchProcessor(event_type=EventType.DynamoDBStreams, model=OrderChangeRecord)


def record_handler(record: OrderChangeRecord) -> dict[str, Any] | None:
    new_image = record.dynamodb.NewImage
    return new_image.Message.item if new_image is not None else None


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
