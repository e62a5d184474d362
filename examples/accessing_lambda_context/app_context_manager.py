"""Accessing the Lambda context, context-manager form: pass ``lambda_context=`` to the processor.

Seed section: "Accessing Lambda Context" (As a context manager).
"""

from __future__ import annotations

from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord, lambda_context: Any = None) -> int | None:
    return None if lambda_context is None else int(lambda_context.get_remaining_time_in_millis())


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    with processor(records=event["Records"], handler=record_handler, lambda_context=context):
        processor.process()

    return processor.response()


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context(remaining_ms=60_000))))
