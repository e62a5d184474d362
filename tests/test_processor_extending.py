"""Extension points of the processors: a custom partial processor and overridden success/failure handlers."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
from aws_lambda_powertools.utilities import batch as pt

import batchlens as bl
from _processor_support import FakeContext, _event, _handler

OFF = bl.Telemetry.disabled()


# -- custom processor (the seed's "Create your own partial processor") ---------------------------------------


class InMemoryTable:
    """Stands in for the DynamoDB table of the seed's example."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def batch_write(self, items: list[Any]) -> None:
        self.items.extend(items)


class MyPartialProcessor(bl.BasePartialProcessor):
    """The seed's custom processor: successes are written to a table once the batch is done."""

    DEFAULT_RESPONSE: bl.PartialItemFailureResponse = {"batchItemFailures": []}

    def __init__(self, table: InMemoryTable) -> None:
        self.table = table
        self.batch_response: bl.PartialItemFailureResponse = copy.deepcopy(self.DEFAULT_RESPONSE)
        super().__init__(telemetry=OFF)

    def _prepare(self) -> None:
        self.success_messages.clear()

    def response(self) -> bl.PartialItemFailureResponse:
        return self.batch_response

    def _clean(self) -> None:
        self.table.batch_write(list(self.success_messages))

    def _process_record(self, record: dict[str, Any]) -> Any:
        try:
            result = self.handler(record)
            return self.success_handler(record, result)
        except Exception:
            return self.failure_handler(record, sys.exc_info())

    def success_handler(self, record: Any, result: Any) -> bl.SuccessResponse:
        entry = ("success", result, record)
        self.success_messages.append(record)
        return entry

    async def _async_process_record(self, record: dict[str, Any]) -> Any:
        raise NotImplementedError


def _raw_handler(record: dict[str, Any]) -> int:
    if record["body"] == "fail":
        raise ValueError("failed")
    return len(record["body"])


def test_custom_partial_processor_with_process_partial_response() -> None:
    """A BasePartialProcessor subclass works through process_partial_response, handler called positionally."""
    table = InMemoryTable()
    processor = MyPartialProcessor(table)
    response = bl.process_partial_response(_event("one", "fail", "three"), _raw_handler, processor, FakeContext())
    assert response == {"batchItemFailures": []}
    assert [item["messageId"] for item in table.items] == ["m-0", "m-2"]
    assert [exc[0] for exc in processor.exceptions] == [ValueError]


def test_custom_partial_processor_as_context_manager() -> None:
    """The custom processor's context manager runs _prepare, process and _clean."""
    table = InMemoryTable()
    processor = MyPartialProcessor(table)
    records = _event("a", "bb")["Records"]
    with processor(records, _raw_handler):
        processed = processor.process()
    assert [entry[:2] for entry in processed] == [("success", 1), ("success", 2)]
    assert processed[0][2] is records[0]
    assert len(table.items) == 2


def test_custom_processor_with_telemetry_on() -> None:
    """Custom processors also run with the default (enabled) telemetry configuration."""

    class Processor(MyPartialProcessor):
        def __init__(self, table: InMemoryTable) -> None:
            super().__init__(table)
            bl.BasePartialProcessor.__init__(self, telemetry=bl.Telemetry())

    table = InMemoryTable()
    processor = Processor(table)
    bl.process_partial_response(_event("x", "fail"), _raw_handler, processor)
    assert len(table.items) == 1


# -- extending success_handler / failure_handler --------------------------------------------------------------


def _tracking_processor(base: Any, **kwargs: Any) -> Any:
    class Tracking(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(pt.EventType.SQS if base is pt.BatchProcessor else bl.EventType.SQS, **kwargs)
            self.seen: list[tuple[str, Any]] = []

        def success_handler(self, record: Any, result: Any) -> Any:
            self.seen.append(("ok", record["messageId"]))
            return super().success_handler(record, result)

        def failure_handler(self, record: Any, exception: Any) -> Any:
            self.seen.append(("ko", record.message_id))
            return super().failure_handler(record, exception)

    return Tracking()


def test_success_and_failure_handler_overrides_calling_super() -> None:
    """Subclass hooks see every record and the response is unchanged (and equal to Powertools')."""
    event = _event("a", "fail", "b")
    processor = _tracking_processor(bl.BatchProcessor, telemetry=OFF)
    response = bl.process_partial_response(copy.deepcopy(event), _handler, processor)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert processor.seen == [("ok", "m-0"), ("ko", "m-1"), ("ok", "m-2")]
    reference = _tracking_processor(pt.BatchProcessor)
    assert pt.process_partial_response(copy.deepcopy(event), _handler, reference) == response
    assert reference.seen == processor.seen


def _overriding_without_super(base: Any, event_type: Any, **kwargs: Any) -> Any:
    class NoSuper(base):  # type: ignore[misc, valid-type]
        def success_handler(self, record: Any, result: Any) -> Any:
            return ("success", f"custom:{result}", record)

        def failure_handler(self, record: Any, exception: Any) -> Any:
            # neither tracked nor reported: the record silently counts as handled
            return ("fail", "ignored", record)

    return NoSuper(event_type, **kwargs)


@pytest.mark.parametrize("telemetry", [OFF, bl.Telemetry()], ids=["telemetry-off", "telemetry-on"])
def test_handler_overrides_without_super_behave_like_powertools(telemetry: bl.Telemetry) -> None:
    """Overrides that skip super() change tracking exactly as in Powertools, with or without telemetry."""
    event = _event("a", "fail")
    bl_processor = _overriding_without_super(bl.BatchProcessor, bl.EventType.SQS, telemetry=telemetry)
    pt_processor = _overriding_without_super(pt.BatchProcessor, pt.EventType.SQS)
    with bl_processor(copy.deepcopy(event)["Records"], _handler):
        bl_processed = bl_processor.process()
    with pt_processor(copy.deepcopy(event)["Records"], _handler):
        pt_processed = pt_processor.process()
    assert [entry[:2] for entry in bl_processed] == [entry[:2] for entry in pt_processed]
    assert bl_processed[0][1] == "custom:A"
    assert bl_processor.response() == pt_processor.response() == {"batchItemFailures": []}
    assert bl_processor.success_messages == []
    assert bl_processor.fail_messages == []
