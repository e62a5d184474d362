"""Pydantic models for Kinesis Data Streams.

Seed section: "Pydantic integration" (Kinesis Data Streams).

``KinesisDataStreamRecordPayload.data`` arrives base64-decoded; typing it as ``Json[Order]`` parses and
validates it. Subclass both the payload and the record model so the sequence number stays reachable.

Run it: ``python examples/pydantic_kinesis/app.py`` - the third record has no ``item`` field.
"""

# No ``from __future__ import annotations`` here: pydantic resolves the field annotations at runtime.
from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.models import BaseModel, Json, KinesisDataStreamRecord, KinesisDataStreamRecordPayload


class Order(BaseModel):
    item: dict[str, Any]


class OrderKinesisPayload(KinesisDataStreamRecordPayload):
    data: Json[Order]


class OrderKinesisRecord(KinesisDataStreamRecord):
    kinesis: OrderKinesisPayload


processor = BatchProcessor(event_type=EventType.KinesisDataStreams, model=OrderKinesisRecord)


def record_handler(record: OrderKinesisRecord) -> dict[str, Any]:
    return record.kinesis.data.item


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
