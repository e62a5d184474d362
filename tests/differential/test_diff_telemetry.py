"""A subset of the differential tests with telemetry switched on: telemetry never changes results.

batchlens processors here use the default ``Telemetry()`` (tracing, metrics and logging on) with in-memory
OpenTelemetry SDK providers injected, and must still match Powertools 3.37.0 exactly.
"""

from __future__ import annotations

from typing import Any

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
    model_handler,
    processor_pair,
    pt_models,
    run,
)
from .strategies import EVENT_TYPES, events, fifo_events

pytest.importorskip("batchlens._telemetry.tracing", reason="the tracing observer is not written yet")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Sdk:
    """In-memory tracer and meter providers."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metrics])

    def telemetry(self) -> bl.Telemetry:
        return bl.Telemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)


@pytest.fixture(scope="module")
def sdk() -> _Sdk:
    return _Sdk()


@pytest.fixture(autouse=True)
def _quiet_logs() -> Any:
    import structlog

    with structlog.testing.capture_logs():
        yield


_SUBSET = settings(DIFF_SETTINGS, max_examples=max(1, EXAMPLES // 3))


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("event_type", EVENT_TYPES)
@_SUBSET
@given(data=st.data())
def test_results_with_telemetry_match(sdk: _Sdk, event_type: str, is_async: bool, data: st.DataObject) -> None:
    """With tracing, metrics and logging on, responses and processed tuples still match Powertools."""
    event = data.draw(events(event_type))
    form = data.draw(st.sampled_from(["function", "context"]))
    context = data.draw(st.sampled_from([None, FakeContext()]))
    kind = "async" if is_async else "sync"
    pt_processor, bl_processor = processor_pair(kind, event_type, telemetry=sdk.telemetry())
    handler = (ASYNC_HANDLERS if is_async else HANDLERS)[event_type]
    sdk.spans.clear()
    expected = run(
        event,
        handler,
        pt_processor,
        event_type=event_type,
        context=context,
        is_async=is_async,
        form=form,
        implementation=pt,
    )
    actual = run(
        event,
        handler,
        bl_processor,
        event_type=event_type,
        context=context,
        is_async=is_async,
        form=form,
        implementation=bl,
    )
    assert_same(expected, actual, ordered=not is_async)
    if is_async:
        assert_input_order(event, event_type, actual)
    assert sdk.spans.get_finished_spans(), "telemetry was meant to be on"


@pytest.mark.parametrize("skip_group_on_error", [False, True])
@_SUBSET
@given(data=st.data())
def test_fifo_results_with_telemetry_match(sdk: _Sdk, skip_group_on_error: bool, data: st.DataObject) -> None:
    """FIFO short-circuits (reported to observers as skipped records) do not change results."""
    event = data.draw(fifo_events())
    pt_processor, bl_processor = processor_pair(
        "fifo", "SQS", telemetry=sdk.telemetry(), skip_group_on_error=skip_group_on_error
    )
    expected = run(event, HANDLERS["SQS"], pt_processor, event_type="SQS", implementation=pt)
    actual = run(event, HANDLERS["SQS"], bl_processor, event_type="SQS", implementation=bl)
    assert_same(expected, actual)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@_SUBSET
@given(data=st.data())
def test_models_with_telemetry_match(sdk: _Sdk, event_type: str, data: st.DataObject) -> None:
    """Poison pills with telemetry on are reported exactly as Powertools reports them."""
    event = data.draw(events(event_type, poison=True))
    model = pt_models()[event_type]
    pt_processor = pt.BatchProcessor(getattr(pt.EventType, event_type), model=model)
    bl_processor = bl.BatchProcessor(getattr(bl.EventType, event_type), model=model, telemetry=sdk.telemetry())
    handler = model_handler(event_type)
    expected = run(event, handler, pt_processor, event_type=event_type, form="context", implementation=pt)
    actual = run(event, handler, bl_processor, event_type=event_type, form="context", implementation=bl)
    assert_same(expected, actual)
