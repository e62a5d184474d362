"""Differential tests of ``model=`` (pydantic record models) with poison pills, against Powertools 3.37.0.

Powertools always runs with its own parser models. batchlens runs once with batchlens.models and once
with Powertools' models (which must work as a drop-in too). Poison pills are records that fail model
validation while keeping their identifier: both implementations report them as ordinary failures.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities import batch as pt
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Json

import batchlens as bl

from . import (
    DIFF_SETTINGS,
    EXAMPLES,
    assert_input_order,
    assert_same,
    bl_models,
    decide,
    model_handler,
    pt_models,
    run,
)
from .strategies import EVENT_TYPES, events, sqs_events

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _processors(event_type: str, models: str, *, is_async: bool, raise_on: bool = True) -> tuple[Any, Any]:
    pt_model = pt_models()[event_type]
    bl_model = pt_model if models == "powertools" else bl_models()[event_type]
    pt_class = pt.AsyncBatchProcessor if is_async else pt.BatchProcessor
    bl_class = bl.AsyncBatchProcessor if is_async else bl.BatchProcessor
    return (
        pt_class(getattr(pt.EventType, event_type), model=pt_model, raise_on_entire_batch_failure=raise_on),
        bl_class(
            getattr(bl.EventType, event_type),
            model=bl_model,
            raise_on_entire_batch_failure=raise_on,
            telemetry=bl.Telemetry.disabled(),
        ),
    )


@pytest.mark.parametrize("models", ["batchlens", "powertools"])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
@DIFF_SETTINGS
@given(data=st.data())
def test_models_with_poison_pills_match(event_type: str, models: str, data: st.DataObject) -> None:
    """Poison pills fail only themselves, with their id reported, exactly like Powertools (sync processor)."""
    event = data.draw(events(event_type, poison=True))
    raise_on = data.draw(st.booleans())
    form = data.draw(st.sampled_from(["function", "context"]))
    pt_processor, bl_processor = _processors(event_type, models, is_async=False, raise_on=raise_on)
    handler = model_handler(event_type)
    expected = run(event, handler, pt_processor, event_type=event_type, form=form, implementation=pt)
    actual = run(event, handler, bl_processor, event_type=event_type, form=form, implementation=bl)
    assert_same(expected, actual, same_model_errors=models == "powertools")


@pytest.mark.parametrize("models", ["batchlens", "powertools"])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(DIFF_SETTINGS, max_examples=max(1, EXAMPLES // 2))
@given(data=st.data())
def test_async_models_with_poison_pills_match(event_type: str, models: str, data: st.DataObject) -> None:
    """The async processor with a model fails the same records as Powertools, reported in input order."""
    event = data.draw(events(event_type, poison=True))
    form = data.draw(st.sampled_from(["function", "context"]))
    pt_processor, bl_processor = _processors(event_type, models, is_async=True)
    handler = model_handler(event_type, is_async=True)
    expected = run(event, handler, pt_processor, event_type=event_type, form=form, is_async=True, implementation=pt)
    actual = run(event, handler, bl_processor, event_type=event_type, form=form, is_async=True, implementation=bl)
    assert_same(expected, actual, ordered=False, same_model_errors=models == "powertools")
    assert_input_order(event, event_type, actual)


class Order(BaseModel):
    """The JSON body the seed's pydantic example types with Json[...]."""

    verdict: str
    note: str
    n: int


def _order_record_model(base: type[Any]) -> type[Any]:
    # the same class name on both sides, so pydantic's error titles (part of the failure strings) match
    class OrderSqsRecord(base):  # type: ignore[misc, valid-type]
        body: Json[Order]  # type: ignore[assignment]

    return OrderSqsRecord


def _order_record_models() -> tuple[type[Any], type[Any]]:
    from aws_lambda_powertools.utilities.parser.models import SqsRecordModel as PtSqsRecordModel

    from batchlens.models import SqsRecordModel as BlSqsRecordModel

    return _order_record_model(PtSqsRecordModel), _order_record_model(BlSqsRecordModel)


def _order_handler(record: Any) -> Any:
    decide(json.dumps(record.body.model_dump()))
    return record.messageId, record.body.n


def _break_bodies(event: dict[str, Any], indexes: list[int]) -> dict[str, Any]:
    for index in indexes:
        if index < len(event["Records"]):
            event["Records"][index]["body"] = "this is not JSON"
    return event


@pytest.mark.parametrize("models", ["batchlens", "powertools"])
@settings(DIFF_SETTINGS, max_examples=max(1, EXAMPLES // 2))
@given(data=st.data())
def test_json_body_model_matches(models: str, data: st.DataObject) -> None:
    """A subclass typing body as Json[Order] treats non-JSON bodies as poison pills, like Powertools."""
    pt_model, bl_json_model = _order_record_models()
    bl_model = pt_model if models == "powertools" else bl_json_model
    event = _break_bodies(data.draw(sqs_events()), data.draw(st.lists(st.integers(0, 9), max_size=3)))
    form = data.draw(st.sampled_from(["function", "context"]))
    pt_processor = pt.BatchProcessor(pt.EventType.SQS, model=pt_model, raise_on_entire_batch_failure=False)
    bl_processor = bl.BatchProcessor(
        bl.EventType.SQS, model=bl_model, raise_on_entire_batch_failure=False, telemetry=bl.Telemetry.disabled()
    )
    expected = run(event, _order_handler, pt_processor, event_type="SQS", form=form, implementation=pt)
    actual = run(event, _order_handler, bl_processor, event_type="SQS", form=form, implementation=bl)
    assert_same(expected, actual, same_model_errors=models == "powertools")
