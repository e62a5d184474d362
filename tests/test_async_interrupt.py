"""A KeyboardInterrupt or SystemExit from an async record handler leaves the event loop cleanly.

asyncio re-raises such exceptions straight out of the event loop from inside the task that raised them, which
leaves tasks whose exception nobody retrieves ("Task exception was never retrieved" at some later garbage
collection) and records still running. batchlens catches them inside the record's task, cancels the records in
flight, ends their spans, and raises the exception from ``async_process`` once every task has finished.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from typing import Any

import pytest

from batchlens import (
    AsyncBatchProcessor,
    EventType,
    SqsFifoPartialProcessorAsync,
    Telemetry,
    async_process_partial_response,
)
from batchlens.testing import capture_telemetry, kinesis_event, sqs_event, sqs_fifo_event


class Interrupting:
    """An async handler: the record with body ``{"stop": ...}`` raises ``exc``; the others wait ``hold`` s."""

    def __init__(self, exc: type[BaseException], hold: float = 0.0) -> None:
        # a class, not an instance: a raised instance keeps its traceback, whose frames keep the tasks alive
        self.exc = exc
        self.hold = hold
        self.cancelled: list[str] = []
        self.finished: list[str] = []

    async def __call__(self, record: Any) -> str:
        if hasattr(record, "message_id"):
            key, body = record.message_id, record.body
        else:  # Kinesis
            key, body = record.kinesis.sequence_number, record.kinesis.data_as_text()
        try:
            await asyncio.sleep(0)
            if "stop" in body:
                raise self.exc
            await asyncio.sleep(self.hold)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        self.finished.append(key)
        return str(key)


def _event(stop_at: int, count: int = 6, kind: str = "sqs") -> dict[str, Any]:
    bodies = [{"stop": True} if i == stop_at else {"n": i} for i in range(count)]
    return {"sqs": sqs_event, "fifo": sqs_fifo_event, "kinesis": kinesis_event}[kind](bodies)


@pytest.fixture
def never_retrieved(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    """Collects garbage, then returns asyncio's "exception was never retrieved" reports so far."""
    caplog.set_level(logging.ERROR, logger="asyncio")

    def reports() -> list[logging.LogRecord]:
        gc.collect()
        return [r for r in caplog.records if "never retrieved" in r.getMessage()]

    return reports


PROCESSORS = [
    pytest.param(lambda t: AsyncBatchProcessor(EventType.SQS, telemetry=t), "sqs", id="gather"),
    pytest.param(lambda t: AsyncBatchProcessor(EventType.SQS, telemetry=t, max_concurrency=2), "sqs", id="capped"),
    pytest.param(
        lambda t: AsyncBatchProcessor(EventType.KinesisDataStreams, telemetry=t, stop_on_first_failure=True),
        "kinesis",
        id="sequential",
    ),
    pytest.param(lambda t: SqsFifoPartialProcessorAsync(telemetry=t), "fifo", id="fifo"),
]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize(("factory", "kind"), PROCESSORS)
def test_interrupt_propagates_without_unretrieved_task_exceptions(
    factory: Any, kind: str, exc: type[BaseException], never_retrieved: Callable[[], list[logging.LogRecord]]
) -> None:
    processor = factory(Telemetry.disabled())
    handler = Interrupting(exc)
    with pytest.raises(exc) as raised:
        async_process_partial_response(_event(stop_at=2, kind=kind), handler, processor)
    assert raised.type is exc
    del raised  # its traceback's frames would keep the tasks alive, hiding what the collector would report
    assert never_retrieved() == []
    # the processor is usable afterwards
    assert async_process_partial_response(_event(stop_at=-1, kind=kind), handler, processor) == {
        "batchItemFailures": []
    }


def test_records_in_flight_are_cancelled_not_awaited() -> None:
    """The interrupt does not wait for the other records' handlers: they are cancelled."""
    handler = Interrupting(KeyboardInterrupt, hold=30.0)
    processor = AsyncBatchProcessor(EventType.SQS, telemetry=Telemetry.disabled())
    event = _event(stop_at=3, count=6)
    with pytest.raises(KeyboardInterrupt):
        async_process_partial_response(event, handler, processor)
    others = [r["messageId"] for i, r in enumerate(event["Records"]) if i != 3]
    assert sorted(handler.cancelled) == sorted(others)
    assert handler.finished == []


def test_every_started_span_ends_when_interrupted() -> None:
    handler = Interrupting(KeyboardInterrupt, hold=30.0)
    event = _event(stop_at=1, count=5)
    with capture_telemetry() as captured:
        processor = AsyncBatchProcessor(EventType.SQS)
        with pytest.raises(KeyboardInterrupt):
            async_process_partial_response(event, handler, processor)
    assert len(captured.record_spans()) == 5
    assert len(captured.batch_spans()) == 1
    error_types = {str((s.attributes or {}).get("error.type")) for s in captured.record_spans()}
    assert error_types == {"KeyboardInterrupt", "asyncio.exceptions.CancelledError"}


def test_lambda_loop_is_left_without_pending_tasks(
    monkeypatch: pytest.MonkeyPatch, never_retrieved: Callable[[], list[logging.LogRecord]]
) -> None:
    """In Lambda the thread's event loop is reused across invocations: an interrupt must not leave tasks on it."""
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        handler = Interrupting(SystemExit, hold=30.0)
        processor = AsyncBatchProcessor(EventType.SQS, telemetry=Telemetry.disabled())
        with pytest.raises(SystemExit) as raised:
            async_process_partial_response(_event(stop_at=0), handler, processor)
        del raised
        assert asyncio.all_tasks(loop) == set()
        assert async_process_partial_response(_event(stop_at=-1), Interrupting(SystemExit), processor) == {
            "batchItemFailures": []
        }
        assert never_retrieved() == []
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_exception_escaping_a_custom_async_processor_waits_for_the_other_records() -> None:
    """A custom processor's _async_process_record that raises (instead of returning a failure entry) fails the
    batch with that exception, after the other records finished: nothing is left running behind the caller."""
    from batchlens import BasePartialProcessor

    finished: list[str] = []

    class Raising(BasePartialProcessor):
        def _prepare(self) -> None:
            pass

        def _clean(self) -> None:
            pass

        def _process_record(self, record: Any) -> Any:
            raise NotImplementedError

        async def _async_process_record(self, record: Any) -> Any:
            if "stop" in record["body"]:
                raise RuntimeError("custom processor bug")
            await asyncio.sleep(0.01)
            finished.append(record["messageId"])
            return self.success_handler(record, None)

    event = _event(stop_at=0, count=4)
    processor = Raising(telemetry=Telemetry.disabled())
    with pytest.raises(RuntimeError, match="custom processor bug"), processor(event["Records"], lambda r: r):
        processor.async_process()
    assert sorted(finished) == sorted(r["messageId"] for r in event["Records"][1:])
