"""Type-checked (not run) use of the public API: `mypy --strict` on this file must pass (see test_typing.py)."""

from __future__ import annotations

from typing import Any

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessingError,
    BatchProcessor,
    EventType,
    PartialItemFailureResponse,
    SqsFifoPartialProcessor,
    SqsFifoPartialProcessorAsync,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens.data_classes import DynamoDBRecord, KafkaEventRecord, KinesisStreamRecord, SQSRecord
from batchlens.exceptions import SQSFifoCircuitBreakerError
from batchlens.testing import capture_telemetry, lambda_context, sqs_event

processor = BatchProcessor(event_type=EventType.SQS, telemetry=Telemetry(capture_response=False), max_workers=4)
fifo = SqsFifoPartialProcessor(skip_group_on_error=True, raise_on_entire_batch_failure=False)
fifo_async = SqsFifoPartialProcessorAsync()
streams = BatchProcessor(EventType.KinesisDataStreams, stop_on_first_failure=True, deadline_margin_ms=500)
async_processor = AsyncBatchProcessor(EventType.DynamoDBStreams, max_concurrency=10)


def sqs_handler(record: SQSRecord) -> str:
    count: str = record.attributes.approximate_receive_count
    return record.body + count


def kinesis_handler(record: KinesisStreamRecord) -> Any:
    return record.kinesis.data_as_json()


async def dynamodb_handler(record: DynamoDBRecord) -> None:
    image: dict[str, Any] | None = record.dynamodb.new_image if record.dynamodb else None
    del image


def kafka_handler(record: KafkaEventRecord) -> Any:
    return record.json_value


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=sqs_handler, processor=processor, context=context)


def async_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return async_process_partial_response(event, dynamodb_handler, async_processor, context)


def with_context_manager(event: dict[str, Any]) -> list[Any]:
    try:
        with processor(records=event["Records"], handler=sqs_handler) as batch:
            processed: list[Any] = batch.process()
    except BatchProcessingError as error:
        children = error.child_exceptions
        return [children]
    return processed


def test_style() -> None:
    with capture_telemetry() as telemetry:
        lambda_handler(sqs_event(["ok"]), lambda_context())
    failed: list[str] = telemetry.failed_record_ids()
    assert not failed
    assert issubclass(SQSFifoCircuitBreakerError, Exception)
