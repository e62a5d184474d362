"""The deprecated decorators warn like Powertools': same text, a DeprecationWarning subclass of batchlens' own."""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
from aws_lambda_powertools.utilities import batch as powertools_batch

import batchlens
from batchlens.testing import sqs_event
from batchlens.warnings import BatchlensDeprecationWarning

DECORATORS = [
    ("batch_processor", "BatchProcessor", "process_partial_response"),
    ("async_batch_processor", "AsyncBatchProcessor", "async_process_partial_response"),
]


def record_handler(record: Any) -> str:
    return "ok"


async def async_record_handler(record: Any) -> str:
    return "ok"


def call_decorated(module: Any, decorator: str, processor: str) -> tuple[dict[str, Any], list[warnings.WarningMessage]]:
    """Decorate a handler with ``module.<decorator>`` and call it once, recording the warnings."""
    proc = getattr(module, processor)(event_type=module.EventType.SQS)
    handler = async_record_handler if decorator.startswith("async") else record_handler

    @getattr(module, decorator)(record_handler=handler, processor=proc)
    def lambda_handler(event: Any, context: Any) -> Any:
        return proc.response()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = lambda_handler(sqs_event(count=2, seed=1), {})
    return result, [w for w in caught if issubclass(w.category, DeprecationWarning)]


def test_the_warning_class_is_a_deprecation_warning_exported_from_batchlens_warnings():
    """BatchlensDeprecationWarning subclasses DeprecationWarning, so existing filters keep working."""
    assert issubclass(BatchlensDeprecationWarning, DeprecationWarning)
    assert BatchlensDeprecationWarning.__module__ == "batchlens.warnings"


@pytest.mark.parametrize(("decorator", "processor", "replacement"), DECORATORS)
def test_the_message_is_powertools_message(decorator, processor, replacement):
    """batchlens' warning text equals the one Powertools (the installed version) emits for the same decorator."""
    theirs_result, theirs = call_decorated(powertools_batch, decorator, processor)
    ours_result, ours = call_decorated(batchlens, decorator, processor)
    assert ours_result == theirs_result == {"batchItemFailures": []}
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    (warning,) = ours
    assert warning.category is BatchlensDeprecationWarning
    assert warning.filename == __file__  # points at the caller of the decorated handler
    assert str(warning.message) == (
        f"The `{decorator}` decorator is deprecated in V3 and will be removed in the next major version. "
        f"Use `{replacement}` function instead."
    )


@pytest.mark.parametrize(("decorator", "processor", "replacement"), DECORATORS)
def test_powertools_style_expectations_pass(decorator, processor, replacement):
    """The expectation Powertools' own tests write, pytest.warns(DeprecationWarning, match=...), holds for batchlens."""
    proc = getattr(batchlens, processor)(event_type=batchlens.EventType.SQS)
    handler = async_record_handler if decorator.startswith("async") else record_handler

    @getattr(batchlens, decorator)(record_handler=handler, processor=proc)
    def lambda_handler(event: Any, context: Any) -> Any:
        return proc.response()

    with pytest.warns(DeprecationWarning, match=f"The `{decorator}` decorator is deprecated in V3*"):
        lambda_handler(sqs_event(count=1, seed=2), {})
    with pytest.warns(DeprecationWarning, match=re.escape(f"Use `{replacement}` function instead.")):
        lambda_handler(sqs_event(count=1, seed=3), {})
