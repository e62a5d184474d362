"""Records parsed into a pydantic model: a batch where every record fails validation fails entirely."""

from pydantic import BaseModel, Json

from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens.models import SqsRecordModel
from batchlens.telemetry import configure


class Order(BaseModel):
    order_id: int


class OrderRecord(SqsRecordModel):
    body: Json[Order]


telemetry = configure(service_name="orders")
processor = BatchProcessor(event_type=EventType.SQS, model=OrderRecord)


def record_handler(record: OrderRecord):
    return record.body.order_id


def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
