"""Pydantic models for SQS: validate each message into your own type before the handler runs.

Seed section: "Pydantic integration" (SQS).

Subclass ``SqsRecordModel`` (so the processor still finds the message id) and type the body, here as
JSON holding an ``Order``. A record that does not validate fails on its own, reported like any other
failure, and the handler only ever sees valid orders. Needs ``pip install 'batchlens[pydantic]'``.

Run it: ``python examples/pydantic_sqs/app.py`` - the third message has no ``item`` field.
"""

# No ``from __future__ import annotations`` here: pydantic resolves the field annotations at runtime.
from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.models import BaseModel, Json, SqsRecordModel


class Order(BaseModel):
    item: dict[str, Any]


class OrderSqsRecord(SqsRecordModel):
    body: Json[Order]  # the JSON string is parsed and validated as an Order


processor = BatchProcessor(event_type=EventType.SQS, model=OrderSqsRecord)


def record_handler(record: OrderSqsRecord) -> dict[str, Any]:
    return record.body.item


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
