"""SQS FIFO queues, context-manager form.

Seed section: "FIFO queues" (As a context manager).
"""

from __future__ import annotations

from typing import Any

from batchlens import PartialItemFailureResponse, SqsFifoPartialProcessor
from batchlens.data_classes import SQSRecord

processor = SqsFifoPartialProcessor()


def record_handler(record: SQSRecord) -> None:
    if record.json_body["amount"] <= 0:
        raise ValueError("amount must be positive")


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    with processor(records=event["Records"], handler=record_handler, lambda_context=context):
        processor.process()

    return processor.response()


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
