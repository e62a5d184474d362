"""Tests for the exception text on record spans: format_exception against the interpreter's own."""

from __future__ import annotations

import re
import sys
import traceback

import pytest

from batchlens._telemetry.tracing import format_exception


# -- exception formatting ---------------------------------------------------------------------------------------
def _raise_plain() -> None:
    raise ValueError("plain failure")


def _raise_from() -> None:
    try:
        _raise_plain()
    except ValueError as exc:
        raise KeyError("wrapped") from exc


def _raise_during() -> None:
    try:
        _raise_plain()
    except ValueError:
        {}["missing"]


def _raise_from_none() -> None:
    try:
        _raise_plain()
    except ValueError:
        raise RuntimeError("context hidden") from None


def _raise_with_note() -> None:
    error = TypeError("noted")
    error.add_note("first note\nsecond line")
    raise error


class _CustomError(Exception):
    pass


def _raise_custom() -> None:
    raise _CustomError()


@pytest.mark.parametrize(
    "raiser",
    [
        _raise_plain,
        _raise_from,
        _raise_during,
        _raise_from_none,
        # the interpreter prints notes from 3.11 on (add_note is 3.11+)
        pytest.param(
            _raise_with_note, marks=pytest.mark.skipif(sys.version_info < (3, 11), reason="notes are 3.11+")
        ),
        _raise_custom,
    ],
)
def test_format_exception_matches_the_interpreter_without_carets(raiser):
    """The cheap formatter prints what traceback.format_exception prints, minus the column caret lines."""
    try:
        raiser()
    except Exception as exc:
        caught = exc

    expected = "".join(traceback.format_exception(type(caught), caught, caught.__traceback__))
    expected = "".join(line for line in expected.splitlines(True) if not re.fullmatch(r"\s*[\^~]+\s*", line))
    assert format_exception(caught) == expected


def test_format_exception_survives_cycles_and_unprintable_exceptions():
    """Cyclic exception chains terminate and an exception whose str() raises is still formatted."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    first, second = ValueError("a"), Unprintable()
    first.__context__, second.__context__ = second, first

    text = format_exception(second)

    assert "ValueError: a" in text
    last_line = text.splitlines()[-1]
    assert last_line.startswith("test_tracing_format.")
    assert "Unprintable: <" in last_line
    assert last_line.endswith("Unprintable: str() failed>")
