"""Differential tests of invalid events: batchlens raises what Powertools 3.37.0 raises, for every processor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aws_lambda_powertools.utilities import batch as pt

import batchlens as bl

from . import assert_same, processor_pair, run
from .strategies import EVENT_TYPES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_SQS_RECORD = {"messageId": "m-1", "body": "ok", "attributes": {}, "eventSource": "aws:sqs"}

INVALID_EVENTS: list[Any] = [
    None,
    [],
    [_SQS_RECORD],
    0,
    42,
    "Records",
    "",
    {},
    {"Records": []},
    {"Records": "x"},
    {"Records": None},
    {"Records": {"a": 1}},
    {"records": []},
    {"records": {}},
    {"records": "x"},
]

# Valid for some event types only (a Kafka event for the others, and the other way round).
MIXED_EVENTS: list[Any] = [
    {"records": [_SQS_RECORD]},
    {"records": {"t-0": [_SQS_RECORD]}},
    {"records": {"t-0": []}},
    {"Records": [_SQS_RECORD], "records": []},
    {"Records": [_SQS_RECORD]},
]


def _sync_handler(record: Any) -> None:
    return None


async def _async_handler(record: Any) -> None:
    await asyncio.sleep(0)


@pytest.mark.parametrize("event", INVALID_EVENTS, ids=repr)
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_invalid_event_raises_like_powertools(event_type: str, kind: str, event: Any) -> None:
    """An invalid event raises the same exception class (and UnexpectedBatchTypeError message) as Powertools."""
    pt_processor, bl_processor = processor_pair(kind, event_type)
    handler = _async_handler if kind == "async" else _sync_handler
    is_async = kind == "async"
    expected = run(event, handler, pt_processor, event_type=event_type, is_async=is_async, implementation=pt)
    actual = run(event, handler, bl_processor, event_type=event_type, is_async=is_async, implementation=bl)
    assert expected.error is not None, "the event was meant to be invalid for Powertools too"
    assert_same(expected, actual)
    assert actual.response is None
    if isinstance(expected.error, pt.exceptions.UnexpectedBatchTypeError):
        assert str(actual.error).split("\n", 1)[0] == str(expected.error).split("\n", 1)[0]
        assert isinstance(actual.error, bl.UnexpectedBatchTypeError)
        assert isinstance(actual.error, bl.BatchProcessingError)
    else:
        assert type(actual.error) is ValueError


@pytest.mark.parametrize("event", MIXED_EVENTS, ids=repr)
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_events_of_another_type_handled_like_powertools(event_type: str, kind: str, event: Any) -> None:
    """Events holding records under the other type's key are accepted or rejected exactly like Powertools."""
    pt_processor, bl_processor = processor_pair(kind, event_type)
    handler = _async_handler if kind == "async" else _sync_handler
    is_async = kind == "async"
    expected = run(event, handler, pt_processor, event_type=event_type, is_async=is_async, implementation=pt)
    actual = run(event, handler, bl_processor, event_type=event_type, is_async=is_async, implementation=bl)
    assert_same(expected, actual)


@pytest.mark.parametrize("event", INVALID_EVENTS, ids=repr)
def test_invalid_event_raises_like_powertools_fifo(event: Any) -> None:
    """The FIFO processor rejects invalid events like Powertools' SqsFifoPartialProcessor."""
    pt_processor, bl_processor = processor_pair("fifo", "SQS")
    expected = run(event, _sync_handler, pt_processor, event_type="SQS", implementation=pt)
    actual = run(event, _sync_handler, bl_processor, event_type="SQS", implementation=bl)
    assert expected.error is not None
    assert_same(expected, actual)


@pytest.mark.parametrize("event", [None, 7, "x", []], ids=repr)
def test_value_error_message_names_the_event_type(event: Any) -> None:
    """The ValueError for a non-mapping event names the processor's event type, as Powertools' does."""
    for event_type in EVENT_TYPES:
        pt_processor, bl_processor = processor_pair("sync", event_type)
        expected = run(event, _sync_handler, pt_processor, event_type=event_type, implementation=pt)
        actual = run(event, _sync_handler, bl_processor, event_type=event_type, implementation=bl)
        assert isinstance(actual.error, ValueError)
        assert str(actual.error).startswith(
            f"Invalid event format. Please ensure batch event is a valid {event_type} event."
        )
        assert str(expected.error).split("\n", 1)[0] == str(actual.error).split("\n", 1)[0]
