"""Core behaviour of the processors: public surface, exceptions, BaseExceptions, reuse, deprecated decorators."""

from __future__ import annotations

import asyncio
import copy
import functools
import sys
from typing import Any

import pytest
from aws_lambda_powertools.utilities import batch as pt

import batchlens as bl
from _processor_support import FakeContext, _async_handler, _event, _handler
from batchlens import exceptions as bl_exceptions

OFF = bl.Telemetry.disabled()


# -- public surface -------------------------------------------------------------------------------------------

EXPECTED_PUBLIC_NAMES = {
    "AsyncBatchProcessor",
    "BaseBatchProcessingError",
    "BasePartialBatchProcessor",
    "BasePartialProcessor",
    "BatchProcessingError",
    "BatchProcessor",
    "BatchTypeModels",
    "DeadlineExceededError",
    "DynamoDBRecord",
    "EventType",
    "ExceptionInfo",
    "FailureResponse",
    "KafkaEventRecord",
    "KinesisStreamRecord",
    "MissingItemIdentifierError",
    "PartialItemFailureResponse",
    "PartialItemFailures",
    "SQSFifoCircuitBreakerError",
    "SQSFifoMessageGroupCircuitBreakerError",
    "SQSRecord",
    "SqsFifoPartialProcessor",
    "SqsFifoPartialProcessorAsync",
    "StreamCircuitBreakerError",
    "SuccessResponse",
    "Telemetry",
    "UnexpectedBatchTypeError",
    "__version__",
    "async_batch_processor",
    "async_process_partial_response",
    "batch_processor",
    "process_partial_response",
}


def test_all_lists_exactly_the_public_names() -> None:
    """batchlens.__all__ is the expected public API, without duplicates, and every name resolves."""
    assert set(bl.__all__) == EXPECTED_PUBLIC_NAMES
    assert len(bl.__all__) == len(set(bl.__all__))
    for name in bl.__all__:
        assert getattr(bl, name) is not None, name


def test_every_powertools_batch_name_exists_in_batchlens() -> None:
    """Every public name of Powertools' batch utility and its exceptions module has a batchlens counterpart."""
    for name in pt.__all__:
        assert hasattr(bl, name), name
    for name in (
        "BaseBatchProcessingError",
        "BatchProcessingError",
        "UnexpectedBatchTypeError",
        "SQSFifoCircuitBreakerError",
        "SQSFifoMessageGroupCircuitBreakerError",
        "ExceptionInfo",
    ):
        assert hasattr(pt.exceptions, name)
        assert hasattr(bl_exceptions, name), name
    for name in ("PartialItemFailureResponse", "PartialItemFailures", "KafkaItemIdentifier"):
        assert hasattr(pt.types, name)
        assert hasattr(bl.types, name), name


def test_data_classes_are_importable_from_both_places() -> None:
    """The record data classes are the same objects in batchlens and batchlens.data_classes."""
    from batchlens import data_classes

    for name in ("SQSRecord", "KinesisStreamRecord", "DynamoDBRecord", "KafkaEventRecord"):
        assert getattr(bl, name) is getattr(data_classes, name)


def test_event_type_members_match_powertools() -> None:
    """EventType has SQS, KinesisDataStreams, DynamoDBStreams and Kafka, with Powertools' values."""
    assert [member.name for member in bl.EventType] == ["SQS", "KinesisDataStreams", "DynamoDBStreams", "Kafka"]
    assert {member.name: member.value for member in bl.EventType} == {
        member.name: member.value for member in pt.EventType
    }
    assert bl.EventType("Kafka") is bl.EventType.Kafka


def test_processor_accepts_the_event_type_value() -> None:
    """A processor given the enum's value (or rejected junk) behaves predictably."""
    assert bl.BatchProcessor("SQS", telemetry=OFF).event_type is bl.EventType.SQS  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an EventType"):
        bl.BatchProcessor("SNS", telemetry=OFF)  # type: ignore[arg-type]


# -- exceptions -----------------------------------------------------------------------------------------------


def test_exception_hierarchy() -> None:
    """The exception tree matches Powertools' (plus batchlens' own additions)."""
    assert issubclass(bl.BaseBatchProcessingError, Exception)
    assert issubclass(bl.BatchProcessingError, bl.BaseBatchProcessingError)
    assert issubclass(bl.UnexpectedBatchTypeError, bl.BatchProcessingError)
    assert issubclass(bl.MissingItemIdentifierError, bl.BatchProcessingError)
    for name in (
        "SQSFifoCircuitBreakerError",
        "SQSFifoMessageGroupCircuitBreakerError",
        "StreamCircuitBreakerError",
        "DeadlineExceededError",
    ):
        cls = getattr(bl, name)
        assert issubclass(cls, Exception)
        assert not issubclass(cls, bl.BaseBatchProcessingError)


@pytest.mark.parametrize("name", sorted(bl_exceptions.__all__))
def test_exceptions_are_re_exported_from_batchlens(name: str) -> None:
    """Each name of batchlens.exceptions is the very same object at the top level."""
    assert getattr(bl, name) is getattr(bl_exceptions, name)


def _exc_info(error: BaseException) -> Any:
    try:
        raise error
    except BaseException:
        return sys.exc_info()


def test_batch_processing_error_str_includes_child_tracebacks() -> None:
    """str(BatchProcessingError) is the message then each child's traceback: Powertools' text for plain errors.

    (Validation errors and long messages differ on purpose: see tests/test_error_text.py.)
    """
    children = [
        _exc_info(ValueError("first child")),
        _exc_info(KeyError("second")),
        (bl.SQSFifoCircuitBreakerError, bl.SQSFifoCircuitBreakerError("A previous record failed processing"), None),
    ]
    error = bl.BatchProcessingError(
        "All records failed processing. 3 individual errors logged separately below.", children
    )
    text = str(error)
    assert text.startswith("All records failed processing. 3 individual errors logged separately below.\n")
    assert text.count("Traceback (most recent call last)") == 2
    assert "ValueError: first child" in text
    assert "KeyError: 'second'" in text
    assert "SQSFifoCircuitBreakerError: A previous record failed processing" in text
    assert error.msg.startswith("All records failed processing.")
    assert error.child_exceptions == children
    expected = pt.exceptions.BatchProcessingError(error.msg, children)
    assert text == str(expected)


def test_base_error_defaults() -> None:
    """BaseBatchProcessingError defaults to an empty message and no children."""
    error = bl.BaseBatchProcessingError()
    assert error.msg == ""
    assert error.child_exceptions == []
    assert str(bl.BatchProcessingError("only")) == "only\n"


# -- BaseException propagates ---------------------------------------------------------------------------------


def _interrupting(record: Any) -> str:
    if record.body == "stop":
        raise KeyboardInterrupt
    return record.body


async def _async_interrupting(record: Any) -> str:
    await asyncio.sleep(0)
    return _interrupting(record)


@pytest.mark.parametrize("telemetry", [OFF, bl.Telemetry()], ids=["telemetry-off", "telemetry-on"])
@pytest.mark.parametrize(
    ("factory", "is_async"),
    [
        (lambda t: bl.BatchProcessor(bl.EventType.SQS, telemetry=t), False),
        (lambda t: bl.AsyncBatchProcessor(bl.EventType.SQS, telemetry=t), True),
        (lambda t: bl.SqsFifoPartialProcessor(telemetry=t), False),
        (lambda t: bl.SqsFifoPartialProcessorAsync(telemetry=t), True),
    ],
    ids=["sync", "async", "fifo", "fifo-async"],
)
def test_base_exception_from_handler_propagates(factory: Any, is_async: bool, telemetry: bl.Telemetry) -> None:
    """KeyboardInterrupt is not caught as a record failure; the processor still works afterwards."""
    processor = factory(telemetry)
    process = bl.async_process_partial_response if is_async else bl.process_partial_response
    handler = _async_interrupting if is_async else _interrupting
    with pytest.raises(KeyboardInterrupt):
        process(_event("a", "stop", "b"), handler, processor)
    assert process(_event("a", "b"), handler, processor) == {"batchItemFailures": []}


# -- empty batches and reuse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [
        lambda: bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF),
        lambda: bl.BatchProcessor(bl.EventType.Kafka, telemetry=OFF),
        lambda: bl.SqsFifoPartialProcessor(telemetry=OFF),
    ],
    ids=["sqs", "kafka", "fifo"],
)
def test_context_manager_on_empty_list_gives_empty_response(factory: Any) -> None:
    """`with processor([], handler)` processes nothing and reports no failures."""
    processor = factory()
    with processor([], _handler):
        assert processor.process() == []
    assert processor.response() == {"batchItemFailures": []}


@pytest.mark.parametrize(
    "factory",
    [
        lambda: bl.AsyncBatchProcessor(bl.EventType.SQS, telemetry=OFF),
        lambda: bl.SqsFifoPartialProcessorAsync(telemetry=OFF),
    ],
    ids=["async", "fifo-async"],
)
def test_async_context_manager_on_empty_list_gives_empty_response(factory: Any) -> None:
    """The async processors accept an empty list too."""
    processor = factory()
    with processor([], _async_handler):
        assert processor.async_process() == []
    assert processor.response() == {"batchItemFailures": []}


def test_response_is_reset_between_invocations() -> None:
    """A reused processor does not carry failures, successes or exceptions over to the next batch."""
    processor = bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF)
    assert bl.process_partial_response(_event("fail", "ok"), _handler, processor) == {
        "batchItemFailures": [{"itemIdentifier": "m-0"}]
    }
    with pytest.raises(bl.BatchProcessingError):
        bl.process_partial_response(_event("fail"), _handler, processor)
    assert bl.process_partial_response(_event("ok"), _handler, processor) == {"batchItemFailures": []}
    assert len(processor.success_messages) == 1
    assert processor.fail_messages == []
    assert processor.exceptions == []


def test_fifo_processor_rejects_parallel_workers() -> None:
    """FIFO order rules out a thread pool: max_workers > 1 is refused with a pointer to BatchProcessor."""
    with pytest.raises(ValueError, match="max_workers"):
        bl.SqsFifoPartialProcessor(max_workers=4, telemetry=OFF)


# -- deprecated decorators ----------------------------------------------------------------------------------------


def test_batch_processor_decorator_works_and_warns() -> None:
    """@batch_processor processes the event before the handler runs and emits a DeprecationWarning."""
    processor = bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF)
    seen: list[Any] = []

    def record_handler(record: Any, lambda_context: Any) -> str:
        seen.append(lambda_context.aws_request_id)
        return _handler(record)

    @bl.batch_processor(record_handler=record_handler, processor=processor)
    def lambda_handler(event: Any, context: Any) -> Any:
        return processor.response()

    with pytest.warns(DeprecationWarning, match="process_partial_response"):
        response = lambda_handler(_event("a", "fail"), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert seen == ["req-1", "req-1"]
    assert lambda_handler.__name__ == "lambda_handler"


def test_async_batch_processor_decorator_works_and_warns() -> None:
    """@async_batch_processor awaits the async record handler and emits a DeprecationWarning."""
    processor = bl.AsyncBatchProcessor(bl.EventType.SQS, telemetry=OFF)

    @bl.async_batch_processor(record_handler=_async_handler, processor=processor)
    def lambda_handler(event: Any, context: Any) -> Any:
        return processor.response()

    with pytest.warns(DeprecationWarning, match="async_process_partial_response"):
        response = lambda_handler(_event("fail", "b", "fail"), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-2"}]}


def test_batch_processor_decorator_raises_on_entire_failure() -> None:
    """The decorator lets BatchProcessingError out when every record failed, as Powertools' does."""
    processor = bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF)

    @bl.batch_processor(record_handler=_handler, processor=processor)
    def lambda_handler(event: Any, context: Any) -> Any:
        return processor.response()

    with pytest.warns(DeprecationWarning, match="batch_processor"), pytest.raises(bl.BatchProcessingError):
        lambda_handler(_event("fail"), FakeContext())


# -- odd handlers and errors inside the with block (compared with Powertools) ---------------------------------


class _CallableHandler:
    """A callable object taking lambda_context, as some frameworks build handlers."""

    def __call__(self, record: Any, lambda_context: Any = None) -> Any:
        return record.body, getattr(lambda_context, "aws_request_id", None)


def _partial_target(prefix: str, record: Any, lambda_context: Any = None) -> Any:
    return prefix + record.body, getattr(lambda_context, "aws_request_id", None)


def _kwargs_handler(record: Any, **kwargs: Any) -> Any:
    return record.body, sorted(kwargs)


@pytest.mark.parametrize(
    "handler",
    [_CallableHandler(), functools.partial(_partial_target, "p:"), _kwargs_handler],
    ids=["callable-object", "partial", "kwargs"],
)
def test_lambda_context_injection_for_unusual_handlers_matches_powertools(handler: Any) -> None:
    """Callable objects, partials and **kwargs handlers get lambda_context exactly when Powertools passes it."""
    event = _event("a", "b")
    bl_processor = bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF)
    pt_processor = pt.BatchProcessor(pt.EventType.SQS)
    for _ in range(2):  # the second run exercises batchlens' signature cache
        with bl_processor(copy.deepcopy(event)["Records"], handler, lambda_context=FakeContext()):
            bl_processed = bl_processor.process()
        with pt_processor(copy.deepcopy(event)["Records"], handler, lambda_context=FakeContext()):
            pt_processed = pt_processor.process()
        assert [entry[:2] for entry in bl_processed] == [entry[:2] for entry in pt_processed]


@pytest.mark.parametrize("bodies", [("ok", "fail"), ("fail", "fail")], ids=["partial", "entire"])
def test_error_inside_the_with_block_matches_powertools(bodies: tuple[str, ...]) -> None:
    """An exception in the caller's with block still builds the response (or raises the batch error) as Powertools."""
    outcomes = []
    for processor in (bl.BatchProcessor(bl.EventType.SQS, telemetry=OFF), pt.BatchProcessor(pt.EventType.SQS)):
        try:
            with processor(_event(*bodies)["Records"], _handler):
                processor.process()
                raise RuntimeError("caller failed")
        except Exception as error:
            outcomes.append((type(error).__name__, str(error).split("\n", 1)[0], processor.response()))
    assert outcomes[0] == outcomes[1]


def test_nested_processor_does_not_change_the_outer_records_telemetry_outcome() -> None:
    """A handler that runs its own (telemetry-off) batch and then fails is still reported as failed by the outer span/log."""
    from opentelemetry.trace import StatusCode

    from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
    from batchlens.testing import capture_telemetry, lambda_context, sqs_event

    inner = BatchProcessor(EventType.SQS, telemetry=Telemetry.disabled())
    outer = BatchProcessor(EventType.SQS, telemetry=Telemetry(metrics=False))
    inner_event = sqs_event(["inner-ok"], seed=1)

    def handler(record):  # type: ignore[no-untyped-def]
        def inner_handler(record, lambda_context):  # type: ignore[no-untyped-def]
            return "fine"

        process_partial_response(inner_event, inner_handler, inner, lambda_context())
        if record.body == "fail":
            raise RuntimeError("outer failure after an inner batch")
        return "ok"

    event = sqs_event(["ok", "fail"], seed=2)
    with capture_telemetry() as telemetry:
        response = process_partial_response(event, handler, outer)
    failed_id = event["Records"][1]["messageId"]
    assert response == {"batchItemFailures": [{"itemIdentifier": failed_id}]}
    spans = {s.attributes["messaging.message.id"]: s for s in telemetry.record_spans()}
    assert spans[failed_id].status.status_code is StatusCode.ERROR
    assert [e["record_id"] for e in telemetry.log_events("record failed")] == [failed_id]


def test_batch_destination_is_shared_only_when_every_record_names_it():
    """BatchInfo.destination is the queue all records came from, None when any record names another or none."""
    from batchlens._observer import BatchInfo
    from batchlens._sources import SQS

    def record(arn: Any) -> dict[str, Any]:
        return {"messageId": "m", "eventSourceARN": arn}

    orders = "arn:aws:sqs:us-east-1:123456789012:orders"
    other = "arn:aws:sqs:us-east-1:123456789012:other"
    assert BatchInfo(SQS, [record(orders)] * 3, None, 0).destination == "orders"
    assert BatchInfo(SQS, [record(orders), record(other)], None, 0).destination is None
    assert BatchInfo(SQS, [record(orders), {"messageId": "m"}], None, 0).destination is None
    # an empty ARN falls back to the lower-case key, which may differ from record to record
    mixed = [{"eventSourceARN": "", "eventSourceArn": orders}, {"eventSourceARN": "", "eventSourceArn": other}]
    assert BatchInfo(SQS, mixed, None, 0).destination is None
    same = [{"eventSourceARN": "", "eventSourceArn": orders}] * 2
    assert BatchInfo(SQS, same, None, 0).destination == "orders"
