"""Fault injection: whatever breaks inside telemetry, processing results are identical to telemetry off."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeter, NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from batchlens import (
    AsyncBatchProcessor,
    BasePartialProcessor,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    SqsFifoPartialProcessorAsync,
    Telemetry,
)
from batchlens._observer import telemetry_fault_count
from batchlens.testing._events import sqs_fifo_event


class TelemetryFault(Exception):
    """Raised by the sabotaged telemetry parts."""


# -- sabotaged telemetry parts ---------------------------------------------------------------------------------
class ExplodingSpanProcessor(SpanProcessor):
    def __init__(self, on_start: bool, on_end: bool) -> None:
        self.explode_on_start = on_start
        self.explode_on_end = on_end

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.explode_on_start:
            raise TelemetryFault("on_start")

    def on_end(self, span: Any) -> None:
        if self.explode_on_end:
            raise TelemetryFault("on_end")


class ExplodingInstrument:
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise TelemetryFault("add")

    def record(self, *args: Any, **kwargs: Any) -> None:
        raise TelemetryFault("record")


class ExplodingMeter(NoOpMeter):
    def create_counter(self, *args: Any, **kwargs: Any) -> Any:
        return ExplodingInstrument()

    def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
        return ExplodingInstrument()


class ExplodingInstrumentsProvider(NoOpMeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        return ExplodingMeter("exploding")


class ExplodingMeterProvider(NoOpMeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        raise TelemetryFault("get_meter")


def exploding_log_processor(logger: Any, method: str, event_dict: Any) -> Any:
    raise TelemetryFault("log pipeline")


def tracer_provider_with(processor: SpanProcessor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    provider.add_span_processor(processor)
    return provider


def _fault_telemetry(kind: str, monkeypatch: pytest.MonkeyPatch) -> Telemetry:
    """A Telemetry (and global setup) in which the ``kind`` part raises."""
    healthy = Telemetry(
        tracer_provider=tracer_provider_with(ExplodingSpanProcessor(False, False)),
        meter_provider=NoOpMeterProvider(),
        sentry=False,
    )
    if kind == "span_on_start":
        return healthy.replace(tracer_provider=tracer_provider_with(ExplodingSpanProcessor(True, False)))
    if kind == "span_on_end":
        return healthy.replace(tracer_provider=tracer_provider_with(ExplodingSpanProcessor(False, True)))
    if kind == "log_pipeline":
        structlog.configure(processors=[exploding_log_processor])
        return healthy
    if kind == "meter_instruments":
        return healthy.replace(meter_provider=ExplodingInstrumentsProvider())
    if kind == "meter_provider":
        return healthy.replace(meter_provider=ExplodingMeterProvider())
    if kind == "response_capture":

        class ExplodingCapture:
            def __init__(self, telemetry: Telemetry) -> None:
                pass

            def new_budget(self) -> object:
                return object()

            def attributes(self, value: Any, budget: object) -> dict[str, Any]:
                raise TelemetryFault("capture")

        module = types.ModuleType("batchlens._telemetry.capture")
        module.ResponseCapture = ExplodingCapture  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "batchlens._telemetry.capture", module)
        return healthy.replace(capture_response=True)
    if kind == "everything":
        structlog.configure(processors=[exploding_log_processor])
        return healthy.replace(
            tracer_provider=tracer_provider_with(ExplodingSpanProcessor(True, True)),
            meter_provider=ExplodingInstrumentsProvider(),
        )
    raise AssertionError(kind)


FAULTS = [
    "span_on_start",
    "span_on_end",
    "log_pipeline",
    "meter_instruments",
    "meter_provider",
    "response_capture",
    "everything",
]


# -- processors under test -----------------------------------------------------------------------------------------
class CustomProcessor(BasePartialProcessor):
    """A custom processor built on the base class."""

    def _prepare(self) -> None:
        self.success_messages.clear()
        self.fail_messages.clear()
        self.exceptions.clear()

    def _clean(self) -> None:
        pass

    def _process_record(self, record: Any) -> Any:
        try:
            result = self.handler(record=_Raw(record))
        except Exception:
            return self.failure_handler(record, sys.exc_info())  # type: ignore[arg-type]
        return self.success_handler(record, result)

    async def _async_process_record(self, record: Any) -> Any:
        raise NotImplementedError

    def response(self) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in self.fail_messages]}


class _Raw:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.body = raw["body"]
        self.message_id = raw["messageId"]


PROCESSORS: dict[str, tuple[Callable[[Telemetry], Any], bool]] = {
    "sync": (lambda t: BatchProcessor(EventType.SQS, telemetry=t), False),
    "threaded": (lambda t: BatchProcessor(EventType.SQS, telemetry=t, max_workers=4), False),
    "async": (lambda t: AsyncBatchProcessor(EventType.SQS, telemetry=t), True),
    "fifo": (lambda t: SqsFifoPartialProcessor(telemetry=t, skip_group_on_error=True), False),
    "fifo_async": (lambda t: SqsFifoPartialProcessorAsync(telemetry=t), True),
    "custom": (lambda t: CustomProcessor(telemetry=t), False),
}


def _event(kind: str) -> dict[str, Any]:
    if kind == "all_fail":
        return sqs_fifo_event(["fail"] * 4, groups=2, seed=1, trace_header=True)
    bodies = ["ok", "fail", "ok", "ok", "fail", "ok", "ok", "ok"]
    event = sqs_fifo_event(bodies, groups=3, seed=2, trace_header=True)
    event["Records"][0]["messageAttributes"] = {
        "traceparent": {"stringValue": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "dataType": "String"}
    }
    return event


def _outcome(
    processor_kind: str, telemetry: Telemetry, event: dict[str, Any], interrupt_at: int | None = None
) -> dict[str, Any]:
    """Run one batch and describe everything observable about its result."""
    factory, is_async = PROCESSORS[processor_kind]
    processor = factory(telemetry)
    calls: list[str] = []

    def handler(record: Any) -> Any:
        calls.append(record.message_id)
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        if "fail" in record.body:
            raise ValueError(f"bad {record.message_id}")
        return {"handled": record.message_id}

    async def async_handler(record: Any) -> Any:
        await asyncio.sleep(0)
        return handler(record)

    raised: tuple[Any, ...] | None = None
    processed: list[Any] = []
    try:
        with processor(event["Records"], async_handler if is_async else handler):
            processed = processor.async_process() if is_async else processor.process()
    except BaseException as exc:  # KeyboardInterrupt included: it is part of what we compare
        raised = (
            type(exc),
            getattr(exc, "msg", str(exc)),
            [(t.__name__, str(e)) for t, e, _ in getattr(exc, "child_exceptions", [])],
        )
    response = None if raised else processor.response()

    def ident(record: Any) -> Any:
        return getattr(record, "message_id", None) or record["messageId"]

    return {
        "raised": raised,
        "response": response,
        "processed": [(entry[0], entry[1], ident(entry[2])) for entry in processed],
        "calls": sorted(calls),
        "call_count": len(calls),
        "fail_messages": [ident(m) for m in processor.fail_messages],
        "current_span": trace.get_current_span(),
    }


# -- the matrix ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("event_kind", ["mixed", "all_fail"])
@pytest.mark.parametrize("processor_kind", list(PROCESSORS))
@pytest.mark.parametrize("fault", FAULTS)
def test_faulty_telemetry_changes_nothing(fault, processor_kind, event_kind, monkeypatch):
    """Responses, raised errors, processed tuples and handler calls are identical to telemetry off."""
    event = _event(event_kind)
    baseline = _outcome(processor_kind, Telemetry.disabled(), event)

    telemetry = _fault_telemetry(fault, monkeypatch)
    faults_before = telemetry_fault_count()
    observed = _outcome(processor_kind, telemetry, event)

    assert observed == baseline
    assert observed["current_span"] is trace.INVALID_SPAN
    if not (fault == "response_capture" and event_kind == "all_fail"):  # nothing succeeds, nothing to capture
        assert telemetry_fault_count() > faults_before, "the injected fault never fired"


@pytest.mark.parametrize("processor_kind", ["sync", "async", "fifo"])
@pytest.mark.parametrize("fault", ["everything", "span_on_end"])
def test_base_exception_propagates_unchanged_through_faulty_telemetry(fault, processor_kind, monkeypatch):
    """A KeyboardInterrupt from the handler propagates the same way with broken telemetry."""
    event = _event("mixed")
    baseline = _outcome(processor_kind, Telemetry.disabled(), event, interrupt_at=3)
    assert baseline["raised"][0] is KeyboardInterrupt

    observed = _outcome(processor_kind, _fault_telemetry(fault, monkeypatch), event, interrupt_at=3)

    assert observed == baseline


def test_healthy_telemetry_also_changes_nothing(telemetry):
    """Working telemetry with every observer on gives the same results as telemetry off."""
    for processor_kind in PROCESSORS:
        for event_kind in ("mixed", "all_fail"):
            event = _event(event_kind)
            assert _outcome(processor_kind, telemetry, event) == _outcome(processor_kind, Telemetry.disabled(), event)


def test_processing_recovers_after_a_faulty_batch(monkeypatch, span_exporter, tracer_provider):
    """A batch after one with exploding span ends still gets complete, correctly parented spans."""
    explosive = ExplodingSpanProcessor(False, True)
    tracer_provider.add_span_processor(explosive)
    processor = BatchProcessor(EventType.SQS, telemetry=Telemetry(tracer_provider=tracer_provider, metrics=False))
    event = _event("mixed")

    def handler(record: Any) -> None:
        if "fail" in record.body:
            raise ValueError("bad")

    with processor(event["Records"], handler):
        processor.process()
    explosive.explode_on_end = False
    span_exporter.clear()
    with processor(event["Records"], handler):
        processor.process()

    spans = span_exporter.get_finished_spans()
    assert len(spans) == len(event["Records"]) + 1
    (batch,) = [s for s in spans if s.parent is None]
    assert all(s.parent.span_id == batch.context.span_id for s in spans if s is not batch)
    assert trace.get_current_span() is trace.INVALID_SPAN
