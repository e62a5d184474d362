"""A migrating user's handler: Powertools' Logger (stdlib logging, JSON) next to batchlens and configure()."""

from aws_lambda_powertools import Logger

from batchlens import BatchProcessor, EventType, process_partial_response
from batchlens.telemetry import configure

logger = Logger(service="orders")
telemetry = configure(service_name="orders")
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record):
    body = record.json_body
    logger.info("processing order", extra={"order_id": body.get("order_id")})
    if body.get("fail"):
        raise ValueError("order rejected")
    return body.get("order_id")


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
