"""Differential tests of the SQS FIFO processors against Powertools' SqsFifoPartialProcessor 3.37.0.

Events have random message groups (one to three groups, some records without MessageGroupId). Powertools
has no async FIFO processor: batchlens' SqsFifoPartialProcessorAsync is compared with Powertools' sync one,
since both process records one at a time in order.
"""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities import batch as pt
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import batchlens as bl

from . import (
    ASYNC_HANDLERS,
    DIFF_SETTINGS,
    EXAMPLES,
    HANDLERS,
    FakeContext,
    assert_same,
    bl_models,
    model_handler,
    processor_pair,
    pt_models,
    run,
)
from .strategies import fifo_events

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("raise_on_entire_batch_failure", [True, False])
@pytest.mark.parametrize("form", ["function", "context"])
@pytest.mark.parametrize("skip_group_on_error", [False, True])
@DIFF_SETTINGS
@given(data=st.data())
def test_fifo_matches(
    skip_group_on_error: bool, form: str, raise_on_entire_batch_failure: bool, data: st.DataObject
) -> None:
    """SqsFifoPartialProcessor short-circuits (whole batch or per group) exactly like Powertools."""
    event = data.draw(fifo_events())
    pt_processor, bl_processor = processor_pair(
        "fifo",
        "SQS",
        skip_group_on_error=skip_group_on_error,
        raise_on_entire_batch_failure=raise_on_entire_batch_failure,
    )
    handler = HANDLERS["SQS"]
    context = data.draw(st.sampled_from([None, FakeContext()]))
    expected = run(event, handler, pt_processor, event_type="SQS", form=form, context=context, implementation=pt)
    actual = run(event, handler, bl_processor, event_type="SQS", form=form, context=context, implementation=bl)
    assert_same(expected, actual)


@pytest.mark.parametrize("form", ["function", "context"])
@pytest.mark.parametrize("skip_group_on_error", [False, True])
@DIFF_SETTINGS
@given(data=st.data())
def test_async_fifo_matches_powertools_sync_fifo(skip_group_on_error: bool, form: str, data: st.DataObject) -> None:
    """SqsFifoPartialProcessorAsync with an async handler matches Powertools' sync FIFO processor."""
    event = data.draw(fifo_events())
    pt_processor, bl_processor = processor_pair("fifo_async", "SQS", skip_group_on_error=skip_group_on_error)
    expected = run(event, HANDLERS["SQS"], pt_processor, event_type="SQS", form=form, implementation=pt)
    actual = run(
        event, ASYNC_HANDLERS["SQS"], bl_processor, event_type="SQS", form=form, is_async=True, implementation=bl
    )
    # Sequential processing: even the async processor reports failures in input order.
    assert_same(expected, actual)


@pytest.mark.parametrize("models", ["powertools", "batchlens"])
@pytest.mark.parametrize("skip_group_on_error", [False, True])
@settings(DIFF_SETTINGS, max_examples=max(1, EXAMPLES // 2))
@given(data=st.data())
def test_fifo_with_models_matches(skip_group_on_error: bool, models: str, data: st.DataObject) -> None:
    """FIFO with a record model and poison pills matches Powertools, except Powertools' escaping ValidationError.

    Powertools validates short-circuited records outside its try block, so a poison pill after the first
    failure escapes as a ValidationError (a pitfall, tests/test_pitfalls.py); batchlens reports it instead.
    """
    event = data.draw(fifo_events(poison=True))
    pt_model = pt_models()["SQS"]
    bl_model = pt_model if models == "powertools" else bl_models()["SQS"]
    pt_processor = pt.SqsFifoPartialProcessor(model=pt_model, skip_group_on_error=skip_group_on_error)
    bl_processor = bl.SqsFifoPartialProcessor(
        model=bl_model, skip_group_on_error=skip_group_on_error, telemetry=bl.Telemetry.disabled()
    )
    handler = model_handler("SQS")
    form = data.draw(st.sampled_from(["function", "context"]))
    expected = run(event, handler, pt_processor, event_type="SQS", form=form, implementation=pt)
    actual = run(event, handler, bl_processor, event_type="SQS", form=form, implementation=bl)
    if isinstance(expected.error, ValidationError):
        assert not isinstance(actual.error, ValidationError)
        return
    assert_same(expected, actual, same_model_errors=models == "powertools")
