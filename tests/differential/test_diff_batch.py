"""Differential tests of BatchProcessor / AsyncBatchProcessor against Powertools 3.37.0, every event type.

Generated batches per event type and run (40 examples per hypothesis test by default, BATCHLENS_DIFF_EXAMPLES):
sync function form x2 (raise_on_entire_batch_failure on/off), sync context manager, async function form x2,
async context manager, lambda_context injection (4 variants, a third of the examples each), processor reuse
(sync and async, 2-4 invocations each).
"""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities import batch as pt
from hypothesis import given, settings
from hypothesis import strategies as st

import batchlens as bl

from . import (
    ASYNC_HANDLERS,
    DIFF_SETTINGS,
    EXAMPLES,
    HANDLERS,
    FakeContext,
    assert_input_order,
    assert_same,
    context_handlers,
    processor_pair,
    run,
)
from .strategies import EVENT_TYPES, batches, events

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("raise_on_entire_batch_failure", [True, False])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
@DIFF_SETTINGS
@given(data=st.data())
def test_sync_function_form_matches(event_type: str, raise_on_entire_batch_failure: bool, data: st.DataObject) -> None:
    """process_partial_response gives the same response, error and recorded exceptions as Powertools."""
    event = data.draw(events(event_type))
    pt_processor, bl_processor = processor_pair(
        "sync", event_type, raise_on_entire_batch_failure=raise_on_entire_batch_failure
    )
    handler = HANDLERS[event_type]
    expected = run(event, handler, pt_processor, event_type=event_type, implementation=pt)
    actual = run(event, handler, bl_processor, event_type=event_type, implementation=bl)
    assert_same(expected, actual)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@DIFF_SETTINGS
@given(data=st.data())
def test_sync_context_manager_matches(event_type: str, data: st.DataObject) -> None:
    """The context-manager form gives the same processed-message tuples as Powertools."""
    event = data.draw(events(event_type))
    pt_processor, bl_processor = processor_pair("sync", event_type)
    handler = HANDLERS[event_type]
    expected = run(event, handler, pt_processor, event_type=event_type, form="context")
    actual = run(event, handler, bl_processor, event_type=event_type, form="context")
    assert_same(expected, actual)


@pytest.mark.parametrize("raise_on_entire_batch_failure", [True, False])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
@DIFF_SETTINGS
@given(data=st.data())
def test_async_function_form_matches(event_type: str, raise_on_entire_batch_failure: bool, data: st.DataObject) -> None:
    """async_process_partial_response fails the same set of records; batchlens reports them in input order."""
    event = data.draw(events(event_type))
    pt_processor, bl_processor = processor_pair(
        "async", event_type, raise_on_entire_batch_failure=raise_on_entire_batch_failure
    )
    handler = ASYNC_HANDLERS[event_type]
    expected = run(event, handler, pt_processor, event_type=event_type, is_async=True, implementation=pt)
    actual = run(event, handler, bl_processor, event_type=event_type, is_async=True, implementation=bl)
    assert_same(expected, actual, ordered=False)
    assert_input_order(event, event_type, actual)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@DIFF_SETTINGS
@given(data=st.data())
def test_async_context_manager_matches(event_type: str, data: st.DataObject) -> None:
    """The async context-manager form returns the same tuples, in input order, as Powertools."""
    event = data.draw(events(event_type))
    pt_processor, bl_processor = processor_pair("async", event_type)
    handler = ASYNC_HANDLERS[event_type]
    expected = run(event, handler, pt_processor, event_type=event_type, is_async=True, form="context")
    actual = run(event, handler, bl_processor, event_type=event_type, is_async=True, form="context")
    assert_same(expected, actual, ordered=False)


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("with_context", [False, True])
@pytest.mark.parametrize("takes_context", [False, True])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(DIFF_SETTINGS, max_examples=max(1, EXAMPLES // 3))
@given(data=st.data())
def test_lambda_context_injection_matches(
    event_type: str, takes_context: bool, with_context: bool, is_async: bool, data: st.DataObject
) -> None:
    """lambda_context is injected exactly when Powertools injects it (handler parameter named lambda_context)."""
    event = data.draw(events(event_type))
    if takes_context:
        handler = context_handlers(event_type, is_async=is_async)
    else:
        handler = (ASYNC_HANDLERS if is_async else HANDLERS)[event_type]
    context = FakeContext() if with_context else None
    pt_processor, bl_processor = processor_pair("async" if is_async else "sync", event_type)
    expected = run(
        event, handler, pt_processor, event_type=event_type, context=context, is_async=is_async, form="context"
    )
    actual = run(
        event, handler, bl_processor, event_type=event_type, context=context, is_async=is_async, form="context"
    )
    assert_same(expected, actual, ordered=not is_async)
    if takes_context and actual.processed:
        seen = {entry[1][1] for entry in actual.processed if entry[0] == "success"}
        assert seen <= {FakeContext.aws_request_id if with_context else None}


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(DIFF_SETTINGS, max_examples=max(1, EXAMPLES // 2))
@given(data=st.data())
def test_processor_reuse_matches(event_type: str, is_async: bool, data: st.DataObject) -> None:
    """One processor instance reused over several invocations resets its state like Powertools'."""
    invocations = data.draw(batches(event_type))
    pt_processor, bl_processor = processor_pair("async" if is_async else "sync", event_type)
    handler = (ASYNC_HANDLERS if is_async else HANDLERS)[event_type]
    form = data.draw(st.sampled_from(["function", "context"]))
    for event in invocations:
        expected = run(
            event, handler, pt_processor, event_type=event_type, is_async=is_async, form=form, implementation=pt
        )
        actual = run(
            event, handler, bl_processor, event_type=event_type, is_async=is_async, form=form, implementation=bl
        )
        assert_same(expected, actual, ordered=not is_async)
        assert len(bl_processor.success_messages) == len(pt_processor.success_messages)
        assert len(bl_processor.fail_messages) == len(pt_processor.fail_messages)


@pytest.mark.parametrize("form", ["function", "context"])
@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(DIFF_SETTINGS, max_examples=max(1, EXAMPLES // 3))
@given(data=st.data())
def test_entire_batch_failure_raises_like_powertools(
    event_type: str, is_async: bool, form: str, data: st.DataObject
) -> None:
    """When every record fails both raise BatchProcessingError('All records failed processing. ...')."""
    event = data.draw(events(event_type))

    def always_fails(record: object) -> None:
        raise RuntimeError("down")

    async def always_fails_async(record: object) -> None:
        raise RuntimeError("down")

    handler = always_fails_async if is_async else always_fails
    pt_processor, bl_processor = processor_pair("async" if is_async else "sync", event_type)
    expected = run(event, handler, pt_processor, event_type=event_type, is_async=is_async, form=form, implementation=pt)
    actual = run(event, handler, bl_processor, event_type=event_type, is_async=is_async, form=form, implementation=bl)
    assert_same(expected, actual, ordered=not is_async)
    assert isinstance(actual.error, bl.BatchProcessingError)
    assert str(actual.error).startswith("All records failed processing.")
    assert "RuntimeError: down" in str(actual.error)
