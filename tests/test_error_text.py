"""Tests for the text of the errors batchlens raises: str(BatchProcessingError) sanitised and bounded.

Lambda's runtime client writes str() of an escaping exception to the function's log, the Invoke error response
and X-Ray's error cause; these tests drive its real code (awslambdaric's ``handle_event_request``) as well as
str(), repr() and ``traceback.format_exception``.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import exceptions as pt_exceptions
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, Json

from batchlens import (
    AsyncBatchProcessor,
    BatchProcessingError,
    BatchProcessor,
    EventType,
    MissingItemIdentifierError,
    Telemetry,
    async_process_partial_response,
    process_partial_response,
)
from batchlens._telemetry._batch_error import MAX_BATCH_ERROR_BYTES
from batchlens._telemetry._errors import MAX_MESSAGE_BYTES, MAX_STACKTRACE_BYTES
from batchlens.models import SqsRecordModel
from batchlens.testing import sqs_event

CARD = "4111-1111-1111-1111"
QUIET = Telemetry(tracing=False, metrics=False, logging=False)

# the runtime client ships Linux wheels only (it is a sys_platform == "linux" test requirement)
bootstrap = pytest.importorskip("awslambdaric.bootstrap", reason="awslambdaric has Linux wheels only")
LambdaMarshaller = pytest.importorskip(
    "awslambdaric.lambda_runtime_marshaller", reason="awslambdaric has Linux wheels only"
).LambdaMarshaller


class Payment(BaseModel):
    card_number: str = Field(pattern=r"^\d{16}$")
    amount: int


class PaymentRecord(SqsRecordModel):
    body: Json[Payment]  # type: ignore[assignment]


def payment_event(count: int = 2) -> dict[str, Any]:
    """Records whose card number is not 16 digits and whose amount is not a number: every one fails validation."""
    return sqs_event([json.dumps({"card_number": CARD, "amount": "ten"})] * count, queue="payments", seed=41)


def handler(record: PaymentRecord) -> None:
    return None


async def async_handler(record: PaymentRecord) -> None:
    return None


def raised_by(kind: str, event: dict[str, Any] | None = None) -> BatchProcessingError:
    event = payment_event() if event is None else event
    if kind == "async":
        processor: Any = AsyncBatchProcessor(EventType.SQS, model=PaymentRecord, telemetry=QUIET)
        with pytest.raises(BatchProcessingError) as info:
            async_process_partial_response(event, async_handler, processor)
    else:
        processor = BatchProcessor(EventType.SQS, model=PaymentRecord, telemetry=QUIET)
        with pytest.raises(BatchProcessingError) as info:
            process_partial_response(event, handler, processor)
    return info.value


# -- no record data ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_str_repr_and_traceback_of_a_validation_failure_hold_no_card_number(kind):
    """str(), repr() and the traceback the runtime would print describe the errors without their input."""
    error = raised_by(kind)
    text = str(error)

    assert CARD not in text
    assert CARD not in repr(error)
    assert CARD not in "".join(traceback.format_exception(error))
    assert text.startswith("All records failed processing. 2 individual errors logged separately below.\n\n")
    described = "2 validation errors for PaymentRecord: body.card_number (string_pattern_mismatch); body.amount"
    assert text.count(described) == 2
    assert text.count("Traceback (most recent call last):") == 2


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_msg_children_and_format_exceptions_keep_powertools_content(kind):
    """msg, child_exceptions and format_exceptions() are Powertools' (input included) for code that reads them."""
    error = raised_by(kind)
    children = error.child_exceptions
    powertools = pt_exceptions.BatchProcessingError(error.msg, children)

    assert error.msg == "All records failed processing. 2 individual errors logged separately below."
    assert len(children) == 2
    assert all(CARD in str(exc) for _, exc, _ in children)
    assert error.format_exceptions(error.msg) == powertools.format_exceptions(error.msg)
    assert CARD in error.format_exceptions(error.msg)
    assert CARD in str(powertools)  # what Powertools' str() would have put in the log


class InMemoryRuntimeClient:
    """The runtime client's Runtime API side, in memory: what would be POSTed to Lambda."""

    def __init__(self) -> None:
        self.marshaller = LambdaMarshaller()
        self.errors: list[tuple[Any, Any]] = []
        self.results: list[Any] = []

    def post_invocation_error(self, invoke_id: str, error_data: Any, xray_fault: Any, *args: Any) -> None:
        self.errors.append((error_data, xray_fault))

    def post_invocation_result(self, invoke_id: str, result: Any, *args: Any) -> None:
        self.results.append(result)


class InMemoryLogSink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log_error(self, lines: list[str]) -> None:
        self.lines.extend(lines)


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    processor = BatchProcessor(EventType.SQS, model=PaymentRecord, telemetry=QUIET)
    return process_partial_response(event, handler, processor, context)


def test_the_runtime_reports_the_failure_without_the_card_number():
    """awslambdaric's own error path: the log lines, Invoke error response and X-Ray fault carry no input."""
    client, sink = InMemoryRuntimeClient(), InMemoryLogSink()
    body = json.dumps(payment_event()).encode()
    arn = "arn:aws:lambda:us-east-1:123456789012:function:payments"
    bootstrap.handle_event_request(
        client, lambda_handler, "req-9", body, "application/json", None, None, arn, 2**62, None, sink
    )

    assert client.results == []
    ((error_data, xray_fault),) = client.errors
    response = json.loads(error_data)
    fault = json.loads(xray_fault)
    assert response["errorType"] == "BatchProcessingError"
    assert response["errorMessage"].startswith("All records failed processing.")
    assert "body.card_number (string_pattern_mismatch)" in response["errorMessage"]
    assert fault["exceptions"][0]["message"] == response["errorMessage"]
    for text in (error_data, xray_fault, "\n".join(sink.lines)):
        assert CARD not in text
    assert "body.card_number (string_pattern_mismatch)" in "\n".join(sink.lines)


def test_a_wrapper_quoting_the_validation_error_is_described_too():
    """A handler that re-raises with the validation text in its message does not leak it through str() either."""

    def validating(record: Any) -> None:
        try:
            Payment.model_validate_json(record.body)
        except ValueError as exc:
            raise RuntimeError(f"payment rejected: {exc}") from exc

    with pytest.raises(BatchProcessingError) as info:
        process_partial_response(payment_event(), validating, BatchProcessor(EventType.SQS, telemetry=QUIET))

    text = str(info.value)
    assert CARD not in text
    assert "RuntimeError: payment rejected: 2 validation errors for Payment: card_number" in text
    assert CARD in info.value.format_exceptions(info.value.msg)


def test_a_missing_item_identifier_error_is_sanitised_too():
    """MissingItemIdentifierError is a BatchProcessingError: its str() quotes no validation input either."""
    child = raised_by("sync").child_exceptions[0]
    error = MissingItemIdentifierError(1, "messageId", [child])

    text = str(error)
    assert text.startswith("Record 1 of the batch failed and has no usable 'messageId'")
    assert CARD not in text
    assert "body.card_number (string_pattern_mismatch)" in text


def test_an_input_value_in_the_summary_is_withheld():
    """A summary built from a validation error's text loses what follows input_value=."""
    error = BatchProcessingError(f"failed: input_value='{CARD}', input_type=str", [])

    assert str(error) == "failed: input_value=<withheld>\n"
    assert CARD in error.msg


# -- layout and bounds ---------------------------------------------------------------------------------------------
def exc_info(exc: BaseException) -> Any:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def test_plain_errors_keep_powertools_layout():
    """Short messages without input: the same text as Powertools' (summary, blank line, each traceback)."""
    children = [exc_info(ValueError("first")), exc_info(KeyError("second"))]
    error = BatchProcessingError(
        "All records failed processing. 2 individual errors logged separately below.", children
    )

    assert str(error) == str(pt_exceptions.BatchProcessingError(error.msg, children))


@pytest.mark.parametrize("unit", ["x", "😀"], ids=["ascii", "emoji"])
def test_the_text_is_bounded_and_counts_what_it_leaves_out(unit):
    """200 records failing with 100 KB messages: at most MAX_BATCH_ERROR_BYTES, each message capped, rest counted."""
    message = unit * (100_000 // len(unit.encode()))
    children = [exc_info(ValueError(message)) for _ in range(200)]
    error = BatchProcessingError(
        "All records failed processing. 200 individual errors logged separately below.", children
    )

    text = str(error)
    size = len(text.encode("utf-8"))
    shown = text.count("Traceback (most recent call last):")
    assert size <= MAX_BATCH_ERROR_BYTES
    assert shown >= 1
    assert text.endswith(f"... {200 - shown} more failed records not shown here (exc.child_exceptions has them all)\n")
    first = text.split("ValueError: ", 1)[1].split("\n", 1)[0]
    assert len(first.encode("utf-8")) <= MAX_MESSAGE_BYTES
    assert first.startswith(unit * 100)


def test_a_single_traceback_is_bounded_like_telemetrys():
    """A deep recursion's traceback keeps the head and tail within MAX_STACKTRACE_BYTES, as spans do."""

    def ping(depth: int) -> None:
        if depth == 0:
            raise ValueError("bottom")
        pong(depth - 1)

    def pong(depth: int) -> None:
        ping(depth - 1)  # alternating frames: the interpreter's "[Previous line repeated]" does not shorten them

    try:
        ping(300)
    except ValueError:
        child = sys.exc_info()
    text = str(BatchProcessingError("summary", [child]))

    assert len(text.encode()) <= len("summary\n\n") + MAX_STACKTRACE_BYTES
    assert text.endswith("ValueError: bottom\n")


class Poison(Exception):
    def __str__(self) -> str:
        raise RuntimeError("poisoned")


def test_str_never_raises():
    """A child whose __str__ raises gets a placeholder; children that are not triples give a placeholder str()."""
    error = BatchProcessingError("summary", [exc_info(Poison())])
    assert str(error).endswith(f"{__name__}.Poison: <Poison: str() failed>\n")

    broken = BatchProcessingError("summary", [None])  # type: ignore[list-item]
    assert str(broken) == "<BatchProcessingError: str() failed>"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=3000), min_size=10, max_size=30), st.text(max_size=3000))
def test_any_messages_give_a_bounded_text(messages, summary):
    """Whatever the messages (any characters, lone surrogates included), str() is valid, bounded UTF-8."""
    error = BatchProcessingError(summary, [exc_info(ValueError(m + "x" * 2000)) for m in messages])

    text = str(error)
    assert len(text.encode("utf-8")) <= MAX_BATCH_ERROR_BYTES
