"""Harness of the differential tests: run one event through Powertools 3.37.0 and through batchlens, compare.

Both implementations get their own deep copy of every event (Powertools' Kafka model decodes headers in
place), the same handler decisions (taken from record content, see ``decide``), and their outcomes are
compared field by field: the response (byte-identical JSON), the raised exception (class name and first
line of the message), the processed-message tuples and the recorded exceptions.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities import batch as pt
from hypothesis import HealthCheck, settings

import batchlens as bl

from ._compare import assert_same

__all__ = [
    "ASYNC_HANDLERS",
    "DIFF_SETTINGS",
    "HANDLERS",
    "FakeContext",
    "Outcome",
    "RecordFailed",
    "assert_same",
    "bl_models",
    "context_handlers",
    "decide",
    "model_handler",
    "pt_models",
    "records_of",
    "run",
]

# Examples per hypothesis test; every event type runs several such tests (see the report in each module).
# BATCHLENS_DIFF_EXAMPLES scales the whole suite, e.g. 1000 for a long soak.
EXAMPLES = int(os.environ.get("BATCHLENS_DIFF_EXAMPLES", "40"))

DIFF_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    derandomize=False,
)


class RecordFailed(Exception):
    """The record's payload asked the handler to fail."""


def decide(text: str) -> None:
    """Fail the way the record's content says: ``fail`` raises RecordFailed, ``oops`` raises KeyError."""
    if "fail" in text:
        raise RecordFailed(f"cannot process {text[:40]!r}")
    if "oops" in text:
        raise KeyError("oops")


def _delay_of(key: str) -> int:
    # a content-derived number of event-loop yields, so completion order differs from input order
    return zlib.crc32(key.encode()) % 7


class FakeContext:
    """A minimal Lambda context."""

    function_name = "diff-fn"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:diff-fn"
    memory_limit_in_mb = 128
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name = "/aws/lambda/diff-fn"
    log_stream_name = "2024/01/01/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


# -- data-class handlers: read many properties, return them, fail on content --------------------------------


def _sqs_view(record: Any) -> tuple[dict[str, Any], str]:
    attributes = record.attributes
    message_attributes = {}
    for name, attribute in record.message_attributes.items():
        value = attribute.binary_value if attribute.data_type == "Binary" else attribute.string_value
        message_attributes[name] = (attribute.data_type, value)
    view = {
        "id": record.message_id,
        "receipt": record.receipt_handle,
        "body": record.body,
        "json": record.json_body,
        "group": attributes.message_group_id,
        "dedup": attributes.message_deduplication_id,
        "sequence": attributes.sequence_number,
        "receive_count": attributes.approximate_receive_count,
        "sent": attributes.sent_timestamp,
        "first_receive": attributes.approximate_first_receive_timestamp,
        "sender": attributes.sender_id,
        "trace": attributes.aws_trace_header,
        "queue_url": record.queue_url,
        "region": record.aws_region,
        "md5": record.md5_of_body,
        "source": record.event_source,
        "arn": record.event_source_arn,
        "message_attributes": message_attributes,
    }
    return view, record.body


def _kinesis_view(record: Any) -> tuple[dict[str, Any], str]:
    kinesis = record.kinesis
    text = kinesis.data_as_text()
    view = {
        "sequence": kinesis.sequence_number,
        "partition_key": kinesis.partition_key,
        "schema": kinesis.kinesis_schema_version,
        "arrival": kinesis.approximate_arrival_timestamp,
        "bytes": kinesis.data_as_bytes(),
        "text": text,
        "json": kinesis.data_as_json(),
        "event_id": record.event_id,
        "event_name": record.event_name,
        "source": record.event_source,
        "arn": record.event_source_arn,
        "region": record.aws_region,
        "version": record.event_version,
        "identity": record.invoke_identity_arn,
    }
    return view, text


def _dynamodb_view(record: Any) -> tuple[dict[str, Any], str]:
    change = record.dynamodb
    new_image = change.new_image
    old_image = change.old_image
    view = {
        "sequence": change.sequence_number,
        "event_name": record.event_name.name,
        "keys": change.keys,
        "new": new_image,
        "old": old_image,
        "view_type": change.stream_view_type.name,
        "size": change.size_bytes,
        "created": change.approximate_creation_date_time,
        "event_id": record.event_id,
        "source": record.event_source,
        "arn": record.event_source_arn,
        "region": record.aws_region,
        "version": record.event_version,
    }
    payload = (new_image or old_image or {}).get("payload", "")
    return view, payload


def _kafka_view(record: Any) -> tuple[dict[str, Any], str]:
    value = record.decoded_value
    view = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestamp_type": record.timestamp_type,
        "key": record.key,
        "decoded_key": record.decoded_key,
        "value": value,
        "json": record.json_value,
        "headers": record.headers,
        "decoded_headers": dict(record.decoded_headers),
    }
    return view, value.decode()


_VIEWS: dict[str, Callable[[Any], tuple[dict[str, Any], str]]] = {
    "SQS": _sqs_view,
    "KinesisDataStreams": _kinesis_view,
    "DynamoDBStreams": _dynamodb_view,
    "Kafka": _kafka_view,
}


def _sync_handler(event_type: str) -> Callable[..., Any]:
    view_of = _VIEWS[event_type]

    def record_handler(record: Any) -> Any:
        view, payload = view_of(record)
        decide(payload)
        return view

    record_handler.__qualname__ = f"{event_type}_record_handler"
    return record_handler


def _async_handler(event_type: str) -> Callable[..., Any]:
    view_of = _VIEWS[event_type]

    async def record_handler(record: Any) -> Any:
        view, payload = view_of(record)
        for _ in range(_delay_of(payload)):
            await asyncio.sleep(0)
        decide(payload)
        return view

    record_handler.__qualname__ = f"{event_type}_async_record_handler"
    return record_handler


HANDLERS = {event_type: _sync_handler(event_type) for event_type in _VIEWS}
ASYNC_HANDLERS = {event_type: _async_handler(event_type) for event_type in _VIEWS}


def context_handlers(event_type: str, *, is_async: bool) -> Callable[..., Any]:
    """A handler taking ``lambda_context`` (default None): its result shows whether the context arrived."""
    view_of = _VIEWS[event_type]
    if is_async:

        async def async_handler(record: Any, lambda_context: Any = None) -> Any:
            view, payload = view_of(record)
            for _ in range(_delay_of(payload)):
                await asyncio.sleep(0)
            decide(payload)
            return view, getattr(lambda_context, "aws_request_id", None)

        return async_handler

    def handler(record: Any, lambda_context: Any = None) -> Any:
        view, payload = view_of(record)
        decide(payload)
        return view, getattr(lambda_context, "aws_request_id", None)

    return handler


# -- model handlers ---------------------------------------------------------------------------------------------


def _model_payload(event_type: str, record: Any) -> tuple[Any, str]:
    if event_type == "SQS":
        body = record.body
        text = body if isinstance(body, str) else json.dumps(body.model_dump(), sort_keys=True)
        return record.messageId, text
    if event_type == "KinesisDataStreams":
        return record.kinesis.sequenceNumber, record.kinesis.data.decode()
    if event_type == "DynamoDBStreams":
        change = record.dynamodb
        image = change.NewImage or change.OldImage or {}
        return change.SequenceNumber, image.get("payload", "")
    return (record.topic, record.partition, record.offset), record.value


def model_handler(event_type: str, *, is_async: bool = False) -> Callable[..., Any]:
    """A handler for records parsed into pydantic models; returns the id and payload it saw."""
    if is_async:

        async def async_handler(record: Any) -> Any:
            identifier, payload = _model_payload(event_type, record)
            for _ in range(_delay_of(payload)):
                await asyncio.sleep(0)
            decide(payload)
            return identifier, payload

        return async_handler

    def handler(record: Any) -> Any:
        identifier, payload = _model_payload(event_type, record)
        decide(payload)
        return identifier, payload

    return handler


def pt_models() -> dict[str, Any]:
    """Powertools' record models, by event type."""
    from aws_lambda_powertools.utilities.parser import models

    return {
        "SQS": models.SqsRecordModel,
        "KinesisDataStreams": models.KinesisDataStreamRecord,
        "DynamoDBStreams": models.DynamoDBStreamRecordModel,
        "Kafka": models.KafkaRecordModel,
    }


def bl_models() -> dict[str, Any]:
    """batchlens' record models, by event type."""
    from batchlens import models

    return {
        "SQS": models.SqsRecordModel,
        "KinesisDataStreams": models.KinesisDataStreamRecord,
        "DynamoDBStreams": models.DynamoDBStreamRecordModel,
        "Kafka": models.KafkaRecordModel,
    }


# -- running and comparing -----------------------------------------------------------------------------------------


def records_of(event: dict[str, Any], event_type: str) -> list[Any]:
    """The records a processor sees, Kafka partitions flattened in order."""
    if event_type == "Kafka":
        return [record for records in event["records"].values() for record in records]
    return list(event["Records"])


@dataclass
class Outcome:
    """What one implementation did with one event."""

    response: Any = None
    error: BaseException | None = None
    processed: list[Any] | None = None
    exceptions: list[str] = field(default_factory=list)
    inputs: list[Any] = field(default_factory=list)


def run(
    event: Any,
    handler: Callable[..., Any],
    processor: Any,
    *,
    event_type: str,
    context: Any = None,
    is_async: bool = False,
    form: str = "function",
    implementation: Any = None,
) -> Outcome:
    """Run ``event`` (deep-copied) through ``processor`` in the given form and capture the outcome.

    ``form`` is ``"function"`` ((async_)process_partial_response of ``implementation``: the ``pt`` or ``bl``
    module) or ``"context"`` (``with processor(records, handler, lambda_context=...)``).
    """
    event = copy.deepcopy(event)
    outcome = Outcome()
    try:
        # a snapshot: Powertools' Kafka model decodes the headers of the records it is given in place
        outcome.inputs = copy.deepcopy(records_of(event, event_type))
    except (AttributeError, KeyError, TypeError):
        pass  # an invalid event
    try:
        if form == "function":
            function = (
                implementation.async_process_partial_response if is_async else (implementation.process_partial_response)
            )
            outcome.response = function(event=event, record_handler=handler, processor=processor, context=context)
        else:
            records = records_of(event, event_type)
            try:
                with processor(records, handler, lambda_context=context):
                    outcome.processed = processor.async_process() if is_async else processor.process()
            finally:
                outcome.response = processor.response()
    except Exception as error:
        outcome.error = error
    outcome.exceptions = [f"{exc[0]}:{exc[1]}" for exc in processor.exceptions]
    return outcome


def assert_input_order(event: dict[str, Any], event_type: str, outcome: Outcome) -> None:
    """batchlens reports failures in input order (Powertools async: completion order)."""
    if outcome.response is None:
        return
    position = {}
    for index, record in enumerate(records_of(event, event_type)):
        position[_identifier(record, event_type)] = index
    reported = [json.dumps(item["itemIdentifier"], sort_keys=True) for item in outcome.response["batchItemFailures"]]
    indexes = [position[key] for key in reported]
    assert indexes == sorted(indexes), reported


def _identifier(record: dict[str, Any], event_type: str) -> str:
    if event_type == "SQS":
        value: Any = record["messageId"]
    elif event_type == "KinesisDataStreams":
        value = record["kinesis"]["sequenceNumber"]
    elif event_type == "DynamoDBStreams":
        value = record["dynamodb"]["SequenceNumber"]
    else:
        value = {"partition": f"{record['topic']}-{record['partition']}", "offset": record["offset"]}
    return json.dumps(value, sort_keys=True)


def processor_pair(kind: str, event_type: str, *, telemetry: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """A Powertools processor and the equivalent batchlens one (telemetry disabled unless given)."""
    telemetry = bl.Telemetry.disabled() if telemetry is None else telemetry
    if kind == "fifo":
        raise_on = kwargs.pop("raise_on_entire_batch_failure", True)
        pt_processor = pt.SqsFifoPartialProcessor(**kwargs)
        # Powertools' FIFO constructor lacks the switch, but its _clean honours the attribute.
        pt_processor.raise_on_entire_batch_failure = raise_on
        return pt_processor, bl.SqsFifoPartialProcessor(
            **kwargs, raise_on_entire_batch_failure=raise_on, telemetry=telemetry
        )
    if kind == "fifo_async":
        raise_on = kwargs.pop("raise_on_entire_batch_failure", True)
        pt_processor = pt.SqsFifoPartialProcessor(**kwargs)
        pt_processor.raise_on_entire_batch_failure = raise_on
        return pt_processor, bl.SqsFifoPartialProcessorAsync(
            **kwargs, raise_on_entire_batch_failure=raise_on, telemetry=telemetry
        )
    pt_class = pt.AsyncBatchProcessor if kind == "async" else pt.BatchProcessor
    bl_class = bl.AsyncBatchProcessor if kind == "async" else bl.BatchProcessor
    return (
        pt_class(getattr(pt.EventType, event_type), **kwargs),
        bl_class(getattr(bl.EventType, event_type), telemetry=telemetry, **kwargs),
    )
