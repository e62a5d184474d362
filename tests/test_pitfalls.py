"""One test per Powertools 3.37.0 pitfall: each asserts Powertools' behaviour (documenting it) and batchlens' fix.

Pitfalls from /work/shared/reference/powertools-behaviour.md and issue 2. Where batchlens keeps Powertools'
behaviour on purpose (the empty batch), the test says so.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import sys
import warnings
from typing import Any

import pytest
from aws_lambda_powertools.utilities import batch as pt
from aws_lambda_powertools.utilities.parser import models as pt_models
from pydantic import ValidationError, field_validator

import batchlens as bl
from batchlens import models as bl_models

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OFF = bl.Telemetry.disabled()


def _sqs_record(message_id: str, body: str, **attributes: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "AROAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000003",
            **attributes,
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders",
        "awsRegion": "us-east-1",
    }


def _sqs_event(*bodies: str) -> dict[str, Any]:
    return {"Records": [_sqs_record(f"m-{index}", body) for index, body in enumerate(bodies)]}


def _ids(response: Any) -> list[Any]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


# -- async: failures reported in completion order ------------------------------------------------------------


async def _slow_then_fail(record: Any) -> str:
    # "slow" records yield to the loop many times, so they finish after the others
    for _ in range(20 if "slow" in record.body else 0):
        await asyncio.sleep(0)
    if "fail" in record.body:
        raise ValueError(record.body)
    return record.body


def test_async_failures_are_reported_in_input_order() -> None:
    """Powertools' async processor reports failures in completion order; batchlens in input order."""
    event = _sqs_event("slow fail", "fail", "ok", "slow fail too", "fail again")
    pt_response = pt.async_process_partial_response(
        copy.deepcopy(event), _slow_then_fail, pt.AsyncBatchProcessor(pt.EventType.SQS)
    )
    bl_response = bl.async_process_partial_response(
        copy.deepcopy(event), _slow_then_fail, bl.AsyncBatchProcessor(bl.EventType.SQS, telemetry=OFF)
    )
    assert _ids(pt_response) == ["m-1", "m-4", "m-0", "m-3"]
    assert _ids(bl_response) == ["m-0", "m-1", "m-3", "m-4"]


# -- async handler given to the sync processor ----------------------------------------------------------------


async def async_order_handler(record: Any) -> str:
    return record.body


def test_async_handler_given_to_sync_processor_fails_the_record() -> None:
    """Powertools counts the un-awaited coroutine as success; batchlens fails the record with a clear TypeError."""
    event = _sqs_event("a", "b")
    pt_processor = pt.BatchProcessor(pt.EventType.SQS)
    with pt_processor(copy.deepcopy(event)["Records"], async_order_handler):
        pt_processed = pt_processor.process()
    assert pt_processor.response() == {"batchItemFailures": []}
    assert all(entry[0] == "success" and asyncio.iscoroutine(entry[1]) for entry in pt_processed)
    for entry in pt_processed:
        entry[1].close()  # keep the never-awaited warning out of this test run

    bl_processor = bl.BatchProcessor(bl.EventType.SQS, raise_on_entire_batch_failure=False, telemetry=OFF)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bl_processor(copy.deepcopy(event)["Records"], async_order_handler):
            bl_processed = bl_processor.process()
        gc.collect()
    assert bl_processor.response() == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}
    assert [entry[0] for entry in bl_processed] == ["fail", "fail"]
    assert bl_processed[0][1].startswith("<class 'TypeError'>:")
    assert "async_order_handler" in bl_processed[0][1]
    assert "AsyncBatchProcessor" in bl_processed[0][1]
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning) and "never awaited" in str(w.message)]


def test_async_handler_given_to_sync_process_partial_response_raises_on_entire_failure() -> None:
    """Through process_partial_response the wrong handler kind fails every record: BatchProcessingError."""
    with pytest.raises(bl.BatchProcessingError, match="All records failed processing") as info:
        bl.process_partial_response(
            _sqs_event("a"), async_order_handler, bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF)
        )
    assert "async_order_handler" in str(info.value)


# -- sync handler given to the async processor ----------------------------------------------------------------


def sync_order_handler(record: Any) -> str:
    return record.body


def test_sync_handler_given_to_async_processor_fails_with_a_clear_type_error() -> None:
    """Powertools fails the record with a cryptic 'can't be used in await' error; batchlens names the handler."""
    event = _sqs_event("a", "b")
    pt_processor = pt.AsyncBatchProcessor(pt.EventType.SQS, raise_on_entire_batch_failure=False)
    with pt_processor(copy.deepcopy(event)["Records"], sync_order_handler):
        pt_processed = pt_processor.async_process()
    assert pt_processed[0][0] == "fail"
    assert "can't be used in 'await' expression" in pt_processed[0][1]
    assert "sync_order_handler" not in pt_processed[0][1]

    bl_processor = bl.AsyncBatchProcessor(bl.EventType.SQS, raise_on_entire_batch_failure=False, telemetry=OFF)
    with bl_processor(copy.deepcopy(event)["Records"], sync_order_handler):
        bl_processed = bl_processor.async_process()
    assert bl_processor.response() == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}
    message = bl_processed[0][1]
    assert message.startswith("<class 'TypeError'>:")
    assert "sync_order_handler" in message
    assert "synchronous" in message
    assert "BatchProcessor" in message


# -- model validators raising something other than ValidationError ----------------------------------------------


def _model_with_validator(base: type[Any], error: type[Exception]) -> type[Any]:
    class StrictBody(base):  # type: ignore[misc, valid-type]
        @field_validator("body")
        @classmethod
        def reject_poison(cls, value: Any) -> Any:
            if value == "poison":
                raise error("poison body")
            return value

    return StrictBody


def _handle_body(record: Any) -> str:
    return str(record.body)


@pytest.mark.parametrize("error", [TypeError, KeyError])
def test_validator_raising_non_validation_error_is_an_ordinary_failure(error: type[Exception]) -> None:
    """Powertools crashes building the response; batchlens fails just that record and reports its id."""
    event = _sqs_event("ok", "poison", "ok too")
    pt_processor = pt.BatchProcessor(pt.EventType.SQS, model=_model_with_validator(pt_models.SqsRecordModel, error))
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'message_id'"):
        pt.process_partial_response(copy.deepcopy(event), _handle_body, pt_processor)

    for base in (bl_models.SqsRecordModel, pt_models.SqsRecordModel):
        bl_processor = bl.BatchProcessor(bl.EventType.SQS, model=_model_with_validator(base, error), telemetry=OFF)
        with bl_processor(copy.deepcopy(event)["Records"], _handle_body):
            processed = bl_processor.process()
        assert bl_processor.response() == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
        assert processed[1][0] == "fail"
        assert processed[1][1].startswith(f"<class '{error.__name__}'>:")
        assert processed[1][2].raw_event == event["Records"][1]


@pytest.mark.parametrize("error", [TypeError, KeyError])
def test_validator_raising_non_validation_error_in_async_processor(error: type[Exception]) -> None:
    """The async processor treats a crashing validator the same way: the record fails, its id is reported."""

    async def handler(record: Any) -> str:
        return str(record.body)

    event = _sqs_event("poison", "ok")
    model = _model_with_validator(bl_models.SqsRecordModel, error)
    response = bl.async_process_partial_response(
        event, handler, bl.AsyncBatchProcessor(bl.EventType.SQS, model=model, telemetry=OFF)
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}


# -- FIFO short-circuit validating outside the try ----------------------------------------------------------------


def test_fifo_short_circuit_reports_an_invalid_model_record() -> None:
    """After a failure Powertools' FIFO lets a poison pill's ValidationError escape; batchlens reports it."""
    event = _sqs_event("fail", "ok", "ok")
    del event["Records"][1]["md5OfBody"]  # a poison pill after the first failure

    def handler(record: Any) -> str:
        if "fail" in record.body:
            raise ValueError("failed")
        return record.body

    with pytest.raises(ValidationError):
        pt.process_partial_response(
            copy.deepcopy(event), handler, pt.SqsFifoPartialProcessor(model=pt_models.SqsRecordModel)
        )

    for model in (bl_models.SqsRecordModel, pt_models.SqsRecordModel):
        processor = bl.SqsFifoPartialProcessor(model=model, raise_on_entire_batch_failure=False, telemetry=OFF)
        response = bl.process_partial_response(copy.deepcopy(event), handler, processor)
        assert _ids(response) == ["m-0", "m-1", "m-2"]
        assert [exc[0] for exc in processor.exceptions] == [
            ValueError,
            bl.SQSFifoCircuitBreakerError,
            bl.SQSFifoCircuitBreakerError,
        ]


def test_fifo_group_short_circuit_reports_a_crashing_validator_record() -> None:
    """skip_group_on_error: a skipped record whose validator raises TypeError is reported, not raised."""
    event = {
        "Records": [
            _sqs_record("m-0", "fail", MessageGroupId="g1"),
            _sqs_record("m-1", "poison", MessageGroupId="g1"),
            _sqs_record("m-2", "ok", MessageGroupId="g2"),
        ]
    }

    def handler(record: Any) -> str:
        if "fail" in record.body:
            raise ValueError("failed")
        return record.body

    with pytest.raises(TypeError, match="poison body"):
        pt.process_partial_response(
            copy.deepcopy(event),
            handler,
            pt.SqsFifoPartialProcessor(
                model=_model_with_validator(pt_models.SqsRecordModel, TypeError), skip_group_on_error=True
            ),
        )
    processor = bl.SqsFifoPartialProcessor(
        model=_model_with_validator(bl_models.SqsRecordModel, TypeError), skip_group_on_error=True, telemetry=OFF
    )
    assert _ids(bl.process_partial_response(copy.deepcopy(event), handler, processor)) == ["m-0", "m-1"]


# -- a failed record without its identifier -------------------------------------------------------------------


def _failing(record: Any) -> None:
    # records to fail carry a top-level "marker"; the others succeed so the batch is not entirely failed
    if "marker" in record.raw_event:
        raise ValueError("failed")


def _marked(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "marker": "fail"}


def _kinesis_record(sequence: str | None) -> dict[str, Any]:
    kinesis = {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "data": "e30=", "approximateArrivalTimestamp": 1.0}
    if sequence is not None:
        kinesis["sequenceNumber"] = sequence
    return {
        "kinesis": kinesis,
        "eventSource": "aws:kinesis",
        "eventID": "shardId-0:1",
        "eventName": "aws:kinesis:record",
    }


def _dynamodb_record(sequence: str | None) -> dict[str, Any]:
    change: dict[str, Any] = {"Keys": {"pk": {"S": "a"}}, "StreamViewType": "KEYS_ONLY", "SizeBytes": 10}
    if sequence is not None:
        change["SequenceNumber"] = sequence
    return {"eventID": "e", "eventName": "INSERT", "eventSource": "aws:dynamodb", "dynamodb": change}


def _kafka_record(offset: int | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "topic": "orders",
        "partition": 0,
        "timestamp": 1,
        "timestampType": "CREATE_TIME",
        "value": "e30=",
        "headers": [],
    }
    if offset is not None:
        record["offset"] = offset
    return record


_MISSING_ID_CASES = [
    pytest.param(
        "SQS",
        {
            "Records": [
                _sqs_record("m-0", "x"),
                _marked({k: v for k, v in _sqs_record("m-1", "x").items() if k != "messageId"}),
            ]
        },
        KeyError,
        "messageId",
        id="sqs",
    ),
    pytest.param(
        "KinesisDataStreams",
        {"Records": [_kinesis_record("1"), _marked(_kinesis_record(None))]},
        KeyError,
        "kinesis.sequenceNumber",
        id="kinesis",
    ),
    pytest.param(
        "DynamoDBStreams",
        {"Records": [_dynamodb_record("1"), _marked(_dynamodb_record(None))]},
        None,  # Powertools reports {"itemIdentifier": None}, which Lambda cannot act on
        "dynamodb.SequenceNumber",
        id="dynamodb",
    ),
    pytest.param(
        "Kafka",
        {"records": {"orders-0": [_kafka_record(1), _marked(_kafka_record(None))]}},
        KeyError,
        "offset",
        id="kafka",
    ),
]


@pytest.mark.parametrize(("event_type", "event", "pt_error", "field"), _MISSING_ID_CASES)
def test_failed_record_without_identifier_fails_the_whole_batch(
    event_type: str, event: dict[str, Any], pt_error: type[Exception] | None, field: str
) -> None:
    """Powertools raises a bare KeyError (or reports a None id); batchlens raises MissingItemIdentifierError."""
    pt_processor = pt.BatchProcessor(getattr(pt.EventType, event_type))
    if pt_error is None:
        response = pt.process_partial_response(copy.deepcopy(event), _failing, pt_processor)
        assert None in _ids(response)
    else:
        with pytest.raises(pt_error):
            pt.process_partial_response(copy.deepcopy(event), _failing, pt_processor)

    bl_processor = bl.BatchProcessor(getattr(bl.EventType, event_type), telemetry=OFF)
    with pytest.raises(bl.MissingItemIdentifierError) as info:
        bl.process_partial_response(copy.deepcopy(event), _failing, bl_processor)
    error = info.value
    assert isinstance(error, bl.BatchProcessingError)
    assert isinstance(error, bl.exceptions.BatchProcessingError)
    assert not isinstance(error, KeyError)
    assert error.index == 1
    assert error.field == field
    assert "Record 1" in str(error)
    assert field in str(error)
    assert len(error.child_exceptions) == 1


def test_missing_identifier_of_a_successful_record_is_harmless() -> None:
    """Only failed records need an identifier: a successful record without one does not fail the batch."""
    event = {
        "Records": [_sqs_record("m-0", "fail"), {k: v for k, v in _sqs_record("m-1", "ok").items() if k != "messageId"}]
    }

    def handler(record: Any) -> None:
        if record.body == "fail":
            raise ValueError("failed")

    response = bl.process_partial_response(event, handler, bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}


# -- message attribute without stringValue ------------------------------------------------------------------------


def test_message_attribute_without_string_value_is_none() -> None:
    """Powertools raises KeyError for a binary attribute's string_value; batchlens returns None."""
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord as PtSQSRecord

    raw = _sqs_record("m-0", "x")
    raw["messageAttributes"] = {
        "blob": {"binaryValue": "AAE=", "dataType": "Binary"},
        "name": {"stringValue": "n", "dataType": "String"},
    }
    with pytest.raises(KeyError):
        _ = PtSQSRecord(raw).message_attributes["blob"].string_value
    record = bl.SQSRecord(raw)
    assert record.message_attributes["blob"].string_value is None
    assert record.message_attributes["blob"].binary_value == "AAE="
    assert record.message_attributes["name"].binary_value is None
    assert record.message_attributes["name"].string_value == "n"
    assert record.message_attributes["missing"] is None


# -- custom processor through process_partial_response ------------------------------------------------------------


class _Recorder:
    """Where the custom processors below put what they saw."""

    def __init__(self) -> None:
        self.rows: list[Any] = []


def _custom_processor(base: Any, recorder: _Recorder) -> Any:
    class ListProcessor(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.batch_response = {"batchItemFailures": []}
            super().__init__()

        def _prepare(self) -> None:
            self.success_messages.clear()
            self.fail_messages.clear()
            self.exceptions.clear()
            self.batch_response = {"batchItemFailures": []}

        def _clean(self) -> None:
            recorder.rows.extend(self.success_messages)
            self.batch_response = {
                "batchItemFailures": [{"itemIdentifier": message["messageId"]} for message in self.fail_messages]
            }

        def response(self) -> Any:
            return self.batch_response

        def _process_record(self, record: dict[str, Any]) -> Any:
            try:
                return self.success_handler(record, self.handler(record))
            except Exception:
                return self.failure_handler(record, sys.exc_info())

        async def _async_process_record(self, record: dict[str, Any]) -> Any:
            raise NotImplementedError

    return ListProcessor()


def _raw_handler(record: dict[str, Any]) -> str:
    if record["body"] == "fail":
        raise ValueError("failed")
    return record["body"]


def test_custom_processor_without_event_type_works_with_process_partial_response() -> None:
    """Powertools' process_partial_response needs processor.event_type (AttributeError); batchlens does not."""
    event = _sqs_event("ok", "fail")
    with pytest.raises(AttributeError, match="event_type"):
        pt.process_partial_response(
            copy.deepcopy(event), _raw_handler, _custom_processor(pt.BasePartialProcessor, _Recorder())
        )

    recorder = _Recorder()
    response = bl.process_partial_response(
        copy.deepcopy(event), _raw_handler, _custom_processor(bl.BasePartialProcessor, recorder)
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert [row["messageId"] for row in recorder.rows] == ["m-0"]


# -- empty batches (kept as in Powertools) ------------------------------------------------------------------------


def test_empty_batch_raises_via_function_but_not_via_context_manager() -> None:
    """Kept for drop-in compatibility: an empty event raises UnexpectedBatchTypeError, an empty list does not."""
    with pytest.raises(pt.exceptions.UnexpectedBatchTypeError):
        pt.process_partial_response({"Records": []}, _handle_body, pt.BatchProcessor(pt.EventType.SQS))
    pt_processor = pt.BatchProcessor(pt.EventType.SQS)
    with pt_processor([], _handle_body):
        assert pt_processor.process() == []
    assert pt_processor.response() == {"batchItemFailures": []}

    with pytest.raises(bl.UnexpectedBatchTypeError):
        bl.process_partial_response({"Records": []}, _handle_body, bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF))
    bl_processor = bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF)
    with bl_processor([], _handle_body):
        assert bl_processor.process() == []
    assert bl_processor.response() == {"batchItemFailures": []}


def test_kafka_model_leaves_the_event_untouched() -> None:
    """Powertools' KafkaRecordModel decodes header values inside the caller's event; batchlens.models does not."""
    record = {
        "topic": "orders",
        "partition": 0,
        "offset": 1,
        "timestamp": 1,
        "timestampType": "CREATE_TIME",
        "value": "e30=",
        "headers": [{"tenant": [97, 98]}],
    }
    pt_raw = copy.deepcopy(record)
    pt_models.KafkaRecordModel.model_validate(pt_raw)
    assert pt_raw["headers"] == [{"tenant": b"ab"}]
    bl_raw = copy.deepcopy(record)
    parsed = bl_models.KafkaRecordModel.model_validate(bl_raw)
    assert bl_raw == record
    assert parsed.headers == [{"tenant": b"ab"}]
    assert json.loads(parsed.value) == {}
