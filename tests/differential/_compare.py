"""Comparison of two outcomes of the differential harness: Powertools 3.37.0's and batchlens'.

The response must be byte-identical JSON; the raised exception the same class and summary; the recorded
exceptions and processed-message tuples the same. ``str()`` of a batch error differs on purpose, in the ways
``_same_batch_error_text`` names one by one.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import exceptions as pt_exceptions
from pydantic import ValidationError

from batchlens import exceptions as bl_exceptions
from batchlens._telemetry._batch_error import MAX_BATCH_ERROR_BYTES
from batchlens._telemetry._errors import exception_message

if TYPE_CHECKING:
    from . import Outcome

__all__ = ["assert_same"]


def _normalized(text: str) -> str:
    """Failure strings name the exception class; the circuit-breaker classes live in each library's module."""
    return text.replace("aws_lambda_powertools.utilities.batch.exceptions.", "batchlens.exceptions.")


_INPUT_VALUE = re.compile(r"input_value=.*?, input_type=", re.S)


def _without_inputs(text: str) -> str:
    """A pydantic error text without the echoed input values.

    Powertools' Kafka model decodes header values in place before validation fails, so its error text
    echoes bytes where batchlens.models (which leaves the input alone) echoes the raw lists.
    """
    return _INPUT_VALUE.sub("input_value=..., input_type=", text)


def _first_line(error: BaseException) -> str:
    return str(error).split("\n", 1)[0]


def _same_error(pt_error: BaseException | None, bl_error: BaseException | None) -> None:
    assert (pt_error is None) == (bl_error is None), (pt_error, bl_error)
    if pt_error is None or bl_error is None:
        return
    name = type(pt_error).__name__
    assert type(bl_error).__name__ == name, (pt_error, bl_error)
    expected = getattr(bl_exceptions, name, None)
    if expected is not None:
        assert isinstance(bl_error, expected)
        assert isinstance(pt_error, getattr(pt_exceptions, name))
    else:
        assert type(bl_error) is type(pt_error)
    assert _first_line(bl_error) == _first_line(pt_error)
    if isinstance(bl_error, bl_exceptions.BatchProcessingError):
        assert isinstance(pt_error, pt_exceptions.BatchProcessingError)
        _same_batch_error_text(pt_error, bl_error)


def _exception_line(exc: BaseException) -> str:
    """The last line of a formatted traceback, as the interpreter writes it (``module.Type: message``)."""
    return _normalized("".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n"))


def _same_batch_error_text(pt_error: pt_exceptions.BatchProcessingError, bl_error: Any) -> None:
    """``str()`` of a batch error: Powertools' summary and layout, with the differences named here.

    Kept from Powertools, exactly: ``msg``, ``child_exceptions`` and ``format_exceptions()``; in ``str()`` the
    summary line, the blank line after it, and each record's ``Type: message`` line when that record's exception
    is not a validation error. Different, on purpose (the migration guide lists them):

    1. **Validation input.** A record's validation error is described by count, locations and types
       (``2 validation errors for X: body.card (string_pattern_mismatch)``) instead of pydantic's text, which
       quotes the input (``input_value=...``); so is an exception that repeats that text.
    2. **Bounds.** Each message is capped at 2,048 UTF-8 bytes, each traceback at 8 KiB, the whole text at
       ``MAX_BATCH_ERROR_BYTES`` (16 KiB); the tracebacks that do not fit are counted on a last line.
    3. **Formatting.** No column carets (``^^^^``) under source lines; the frames are each library's own
       (not compared here).
    """
    assert bl_error.msg == pt_error.msg
    children = bl_error.child_exceptions
    assert sorted(type(c[1]).__name__ for c in children) == sorted(
        type(c[1]).__name__ for c in pt_error.child_exceptions
    )
    # Powertools' content stays reachable: format_exceptions() is Powertools' own algorithm on the same children
    kept = pt_exceptions.BaseBatchProcessingError.format_exceptions(bl_error, bl_error.msg)
    assert bl_error.format_exceptions(bl_error.msg) == kept

    text, pt_text = str(bl_error), str(pt_error)
    assert text.split("\n", 2)[:2] == pt_text.split("\n", 2)[:2]  # same: summary, blank line
    assert len(text.encode("utf-8")) <= MAX_BATCH_ERROR_BYTES  # difference 2
    if not children:
        assert text == pt_text
        return
    ours = []
    for pt_child, bl_child in zip(
        sorted((c[1] for c in pt_error.child_exceptions), key=_exception_line),
        sorted((c[1] for c in children), key=_exception_line),
        strict=True,
    ):
        line = _exception_line(bl_child)
        if isinstance(bl_child, ValidationError):
            # difference 1: described without input, where Powertools quotes it
            assert "input_value=" in pt_text
            line = f"{type(bl_child).__module__}.{type(bl_child).__qualname__}: {exception_message(bl_child)}"
            assert "input_value=" not in line
        else:
            assert line == _exception_line(pt_child)  # same: the record's exception line
        ours.append(line)
    if "more failed record" not in text:  # difference 2 did not leave any out
        assert all(f"\n{line}\n" in text for line in ours), (ours, text)
    assert "input_value=" not in text  # difference 1


def _record_payload(obj: Any) -> Any:
    """A comparable form of a failed record: the model's dump, else the data class's raw event."""
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return ("model", dump())
    return ("raw", obj.raw_event)


def _same_processed(
    pt_entries: list[Any] | None,
    bl_entries: list[Any] | None,
    bl_inputs: list[Any],
    same_model_errors: bool,
    normalize: Callable[[str], str],
) -> None:
    assert (pt_entries is None) == (bl_entries is None)
    if pt_entries is None or bl_entries is None:
        return
    assert len(bl_entries) == len(pt_entries)
    for index, (pt_entry, bl_entry) in enumerate(zip(pt_entries, bl_entries, strict=True)):
        assert len(bl_entry) == 3, index
        assert bl_entry[0] == pt_entry[0], index
        if pt_entry[0] == "success":
            assert bl_entry[1] == pt_entry[1], (index, pt_entry[1], bl_entry[1])
        else:
            assert normalize(bl_entry[1]) == normalize(_normalized(pt_entry[1])), (index, pt_entry[1], bl_entry[1])
        if pt_entry[0] == "success":
            assert type(bl_entry[2]) is dict, index
            if same_model_errors:
                assert bl_entry[2] == pt_entry[2], index
            else:
                # different models: Powertools' may have decoded its raw record in place; batchlens' must not
                assert bl_entry[2] == bl_inputs[index], index
        else:
            expected = _record_payload(pt_entry[2])
            actual = _record_payload(bl_entry[2])
            if not same_model_errors and expected[0] == "raw":
                assert actual == ("raw", bl_inputs[index]), index
            else:
                assert actual == expected, index


def _failure_ids(response: Any) -> list[str]:
    return [json.dumps(item, sort_keys=True) for item in response["batchItemFailures"]]


def assert_same(
    pt_outcome: Outcome, bl_outcome: Outcome, *, ordered: bool = True, same_model_errors: bool = True
) -> None:
    """Assert both outcomes match.

    ``ordered=False`` compares failures as sets (Powertools' async processor reports completion order).
    ``same_model_errors=False`` (the two sides validate with different model classes) ignores the input
    values pydantic echoes in validation error texts.
    """
    _same_error(pt_outcome.error, bl_outcome.error)
    if pt_outcome.response is not None or bl_outcome.response is not None:
        assert bl_outcome.response is not None
        assert pt_outcome.response is not None
        if ordered:
            assert json.dumps(bl_outcome.response) == json.dumps(pt_outcome.response)
        else:
            assert sorted(_failure_ids(bl_outcome.response)) == sorted(_failure_ids(pt_outcome.response))
    normalize = (lambda text: text) if same_model_errors else _without_inputs
    pt_exceptions_seen = [normalize(_normalized(text)) for text in pt_outcome.exceptions]
    bl_exceptions_seen = [normalize(text) for text in bl_outcome.exceptions]
    if ordered:
        assert bl_exceptions_seen == pt_exceptions_seen
    else:
        assert sorted(bl_exceptions_seen) == sorted(pt_exceptions_seen)
    _same_processed(pt_outcome.processed, bl_outcome.processed, bl_outcome.inputs, same_model_errors, normalize)
