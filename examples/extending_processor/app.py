"""Extending BatchProcessor: hook into every success and failure.

Seed section: "Extending BatchProcessor".

Subclass ``BatchProcessor`` and override ``success_handler`` / ``failure_handler``; call ``super()`` so the
response is still built. ``success_handler`` receives the raw record dict and the handler's result;
``failure_handler`` receives the record as a data class (or your pydantic model) and the
``sys.exc_info()`` triple.

The Powertools recipe uses this to publish success/failure metrics. batchlens already records
``messaging.client.consumed.messages`` and ``messaging.process.duration`` per record through
OpenTelemetry; this example keeps its own in-process tallies (per error type) to show the hooks.

Run it: ``python examples/extending_processor/app.py``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from batchlens import (
    BatchProcessor,
    EventType,
    ExceptionInfo,
    FailureResponse,
    PartialItemFailureResponse,
    SuccessResponse,
    process_partial_response,
)
from batchlens.data_classes import SQSRecord


class CountingProcessor(BatchProcessor):
    """A BatchProcessor that counts outcomes, by error type for failures."""

    def __init__(self, event_type: EventType) -> None:
        super().__init__(event_type=event_type)
        self.counts: Counter[str] = Counter()

    def success_handler(self, record: dict[str, Any], result: Any) -> SuccessResponse:
        self.counts["success"] += 1
        return super().success_handler(record, result)

    def failure_handler(self, record: SQSRecord, exception: ExceptionInfo) -> FailureResponse:
        error_type = exception[0].__name__ if exception[0] is not None else "unknown"
        self.counts[f"failure.{error_type}"] += 1
        return super().failure_handler(record, exception)


processor = CountingProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    return str(record.json_body["item"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(dict(processor.counts) or "no records yet")
    response = lambda_handler(sample, lambda_context())
    print(dict(processor.counts))
    print(json.dumps(response))
