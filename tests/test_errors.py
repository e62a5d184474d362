"""Tests for the exception text telemetry carries: validation errors without input, byte bounds, poison exceptions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Json, ValidationError, field_validator

from batchlens._telemetry._errors import (
    MAX_MESSAGE_BYTES,
    MAX_STACKTRACE_BYTES,
    error_type,
    exception_event,
    exception_message,
    exception_stacktrace,
    format_exception,
    safe_str,
)
from batchlens.exceptions import BatchProcessingError

MARKER = "BODY-4e1d-do-not-export"


class Order(BaseModel):
    id: int
    sku: str


class Envelope(BaseModel):
    body: Json[Order]
    messageId: str


def validation_error(payload: dict[str, Any]) -> ValidationError:
    try:
        Envelope.model_validate(payload)
    except ValidationError as exc:
        return exc
    raise AssertionError("the payload validated")


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as a handler would leave it."""
    try:
        raise exc
    except BaseException as caught:
        return caught


# -- validation errors -------------------------------------------------------------------------------------------
def test_validation_error_is_described_by_count_locations_and_types():
    """A pydantic error becomes its count, title, locations and types; the rejected input is not quoted."""
    exc = validation_error({"body": f'{{"id": "{MARKER}"'})
    assert MARKER in str(exc)  # pydantic's own text quotes the body

    assert exception_message(exc) == "2 validation errors for Envelope: body (json_invalid); messageId (missing)"


def test_nested_validation_error_locations_are_dotted_paths():
    """Errors inside the decoded body are located by their path; values inside it are not quoted."""
    exc = validation_error({"body": f'{{"id": "{MARKER}", "sku": 7}}', "messageId": "m"})
    assert exception_message(exc) == ("2 validation errors for Envelope: body.id (int_parsing); body.sku (string_type)")


def test_custom_validator_message_is_not_quoted():
    """A validator's own message often repeats the value; only the error type is kept."""

    class Strict(BaseModel):
        email: str

        @field_validator("email")
        @classmethod
        def check(cls, value: str) -> str:
            raise ValueError(f"{value} is not allowed")

    with pytest.raises(ValidationError) as info:
        Strict.model_validate({"email": MARKER})

    assert exception_message(info.value) == "1 validation error for Strict: email (value_error)"


def test_many_validation_errors_list_ten_and_count_the_rest():
    """A validation error with 25 problems names the first ten and counts all of them."""

    class Wide(BaseModel):
        values: list[int]

    with pytest.raises(ValidationError) as info:
        Wide.model_validate({"values": [MARKER] * 25})

    message = exception_message(info.value)
    assert message.startswith("25 validation errors for Wide: values.0 (int_parsing); values.1 (int_parsing);")
    assert message.endswith("values.9 (int_parsing); ... 15 more")
    assert MARKER not in message


@pytest.mark.parametrize("suppress", [False, True], ids=["from-exc", "from-None"])
def test_wrapper_repeating_a_validation_error_gets_its_description(suppress):
    """An exception raised from (or while handling) a validation error, quoting it, quotes the description."""
    inner = validation_error({"body": f'"{MARKER}"'})
    try:
        try:
            raise inner
        except ValidationError as exc:
            if suppress:
                raise RuntimeError(f"record rejected: {exc}") from None
            raise RuntimeError(f"record rejected: {exc}") from exc
    except RuntimeError as caught:
        wrapper = caught

    message = exception_message(wrapper)
    stacktrace = exception_stacktrace(wrapper)

    assert message == "record rejected: 2 validation errors for Envelope: body (model_type); messageId (missing)"
    assert MARKER not in stacktrace
    assert stacktrace.endswith(f"RuntimeError: {message}\n")
    if not suppress:
        assert "pydantic_core._pydantic_core.ValidationError: 2 validation errors for Envelope" in stacktrace


def test_pydantic_input_value_text_without_its_exception_is_withheld():
    """Pydantic's text copied into an unrelated exception loses everything after ``input_value=`` per line."""
    text = str(validation_error({"body": f'"{MARKER}"'}))

    message = exception_message(ValueError(f"earlier failure:\n{text}"))

    assert MARKER not in message
    assert "input_value=<withheld>" in message
    assert "messageId" in message


def test_powertools_schema_validation_error_drops_the_data():
    """Powertools' SchemaValidationError appends ``Data: <input>``; telemetry names the rule and path instead."""
    # the real class's package imports fastjsonschema, which is not installed: the same name and module
    fake = type("SchemaValidationError", (Exception,), {"__module__": "aws_lambda_powertools.utilities.validation"})
    exc = fake(f"Failed schema validation. Error: data.id must be integer, Path: ['data', 'id'], Data: {MARKER}")
    exc.path, exc.rule, exc.value = ["data", "id"], "type", MARKER

    assert exception_message(exc) == "Failed schema validation: rule type at data.id"


def test_jsonschema_validation_error_names_rule_and_path():
    """A jsonschema ValidationError (its message quotes the instance) is named by validator and path."""
    fake = type("ValidationError", (Exception,), {"__module__": "jsonschema.exceptions"})
    exc = fake(f"{MARKER!r} is not of type 'integer'")
    exc.validator = "type"
    exc.absolute_path = ["order", 0, "id"]

    assert exception_message(exc) == "Failed schema validation: rule type at order.0.id"


def test_validation_error_that_cannot_be_described_is_withheld():
    """A validation error whose details cannot be read is named, never quoted."""
    fake = type("ValidationError", (ValueError,), {"__module__": "pydantic_core._pydantic_core"})
    exc = fake(MARKER)

    assert (
        exception_message(exc)
        == "pydantic_core._pydantic_core.ValidationError (details withheld: they may quote the input)"
    )


def test_batch_error_is_described_by_its_summary_without_record_tracebacks():
    """format_exceptions() holds every record's full traceback; telemetry keeps the summary, str() sanitises."""
    child = raised(validation_error({"body": f'"{MARKER}"'}))
    error = BatchProcessingError(
        "All records failed processing. 1 individual errors logged separately below.",
        [(type(child), child, child.__traceback__)],
    )
    assert MARKER in error.format_exceptions(error.msg)
    assert MARKER not in str(error)

    assert exception_message(error) == error.msg
    assert MARKER not in exception_stacktrace(raised(error))


# -- bounds ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", ["x", "é", "€", "😀"], ids=["ascii", "2-byte", "3-byte", "4-byte"])
def test_message_and_stacktrace_are_bounded_in_utf8_bytes(unit):
    """A 5 MB message of 1- to 4-byte characters is cut to valid UTF-8 within the byte bounds."""
    exc = raised(ValueError(unit * (5_000_000 // len(unit.encode()))))

    message = exception_message(exc)
    stacktrace = exception_stacktrace(exc)

    assert MAX_MESSAGE_BYTES - 4 <= len(message.encode()) <= MAX_MESSAGE_BYTES
    assert message.endswith("...")
    assert message.startswith(unit * 10)
    assert len(stacktrace.encode()) <= MAX_STACKTRACE_BYTES
    assert stacktrace.endswith(f"ValueError: {message}\n")


def test_every_exception_of_a_chain_is_bounded_and_the_trace_keeps_head_and_tail():
    """Ten chained 5 MB messages: each message line is bounded, the trace keeps its start and its end."""
    exc: BaseException | None = None
    for n in range(10):
        following = raised(RuntimeError(f"level {n} " + "y" * 5_000_000))
        following.__cause__ = exc
        exc = following
    assert exc is not None

    full = format_exception(exc)
    stacktrace = exception_stacktrace(exc)

    assert len(full.encode()) < 12 * MAX_MESSAGE_BYTES
    assert len(stacktrace.encode()) <= MAX_STACKTRACE_BYTES
    assert stacktrace.startswith("Traceback (most recent call last):\n")
    assert "bytes in all, the middle omitted" in stacktrace
    assert stacktrace.splitlines()[-1].startswith("RuntimeError: level 9 yyy")


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(st.characters(exclude_categories=()), max_size=3000),
    repeat=st.integers(min_value=1, max_value=5),
)
def test_any_text_gives_valid_utf8_within_the_bounds(text, repeat):
    """Whatever the characters (surrogates included) and length, the texts encode and respect the byte bounds."""
    exc = raised(ValueError(text * repeat))
    exc.__notes__ = [text]  # what add_note() sets (3.11+); the formatter reads the attribute on 3.10 too

    message = exception_message(exc)
    stacktrace = exception_stacktrace(exc)

    assert len(message.encode("utf-8")) <= MAX_MESSAGE_BYTES
    assert len(stacktrace.encode("utf-8")) <= MAX_STACKTRACE_BYTES


def test_lone_surrogates_become_question_marks():
    """Text that is not valid UTF-8 is made encodable, so an exporter never refuses it."""
    exc = raised(ValueError("bad \ud800 surrogate"))

    assert exception_message(exc) == "bad ? surrogate"
    exception_stacktrace(exc).encode("utf-8")


def test_small_messages_are_unchanged():
    """Below the bounds the message is str(exc) and the event carries type, message and trace."""
    exc = raised(KeyError("sku"))
    event = exception_event(exc)
    assert event["exception.type"] == "KeyError"
    assert event["exception.message"] == "'sku'"
    assert event["exception.stacktrace"].endswith("KeyError: 'sku'\n")


# -- poison exceptions -------------------------------------------------------------------------------------------
class PoisonStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class PoisonBoth(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class NotAString(Exception):
    def __str__(self) -> Any:
        return 42


class Shouty(str):
    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("poisoned encode")

    def isascii(self) -> bool:
        raise RuntimeError("poisoned isascii")


class SubclassStr(Exception):
    def __str__(self) -> str:
        return Shouty("looks fine")


class PoisonNotes(Exception):
    @property
    def __notes__(self) -> list[str]:
        raise RuntimeError("no notes")


class UnprintableNote:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize("kind", [PoisonStr, PoisonBoth, NotAString])
def test_poison_str_gives_a_placeholder_naming_the_class(kind):
    """An exception whose __str__ raises or returns a non-string is named, and nothing raises."""
    exc = raised(kind())

    assert safe_str(exc) == f"<{kind.__qualname__}: str() failed>"
    assert exception_message(exc) == f"<{kind.__qualname__}: str() failed>"
    assert exception_stacktrace(exc).endswith(f"{error_type(exc)}: <{kind.__qualname__}: str() failed>\n")
    assert exception_event(exc)["exception.type"] == f"{__name__}.{kind.__qualname__}"


def test_str_subclass_result_is_used_as_plain_text():
    """A __str__ returning a str subclass with poisoned methods is read as its characters."""
    exc = raised(SubclassStr())
    assert type(safe_str(exc)) is str
    assert exception_message(exc) == "looks fine"
    assert exception_stacktrace(exc).endswith("SubclassStr: looks fine\n")


def test_poison_notes_do_not_break_the_stack_trace():
    """A raising __notes__ or a note whose repr raises still gives a stack trace."""
    assert exception_stacktrace(raised(PoisonNotes("text"))).endswith("PoisonNotes: text\n")
    exc = ValueError("noted")
    exc.__notes__ = [UnprintableNote()]  # type: ignore[list-item]
    assert exception_stacktrace(raised(exc)).endswith("ValueError: noted\n<UnprintableNote: repr() failed>\n")


def test_base_exception_raised_by_str_propagates():
    """A __str__ raising KeyboardInterrupt is not swallowed (documented: interruption must reach the runtime)."""

    class Interrupting(Exception):
        def __str__(self) -> str:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        exception_message(Interrupting())


def test_error_type_is_qualname_for_builtins_and_module_qualified_otherwise():
    """error.type: ``ValueError`` for builtins, ``module.qualname`` for everything else."""
    assert error_type(ValueError()) == "ValueError"
    assert error_type(PoisonStr()) == f"{__name__}.PoisonStr"
    assert error_type(BatchProcessingError()) == "batchlens.exceptions.BatchProcessingError"
