"""Accessing processed messages: inspect every record's outcome after the batch.

Seed section: "Accessing processed messages".

``processor.process()`` returns one tuple per record, in input order:

* success: ``("success", <what record_handler returned>, <the raw record dict>)``
* failure: ``("fail", "<class 'ExceptionType'>:message", <the record as SQSRecord, or as your pydantic
  model when it validated>)``

``processor.success_messages`` / ``processor.fail_messages`` keep the same records after the block.

Run it: ``python examples/accessing_processed_messages/app.py``.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
logger = structlog.get_logger()


def record_handler(record: SQSRecord) -> str:
    if "fail" in record.body:
        raise RuntimeError("the message asked to fail")
    return f"stored {record.json_body['order_id']}"


def process(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Run the batch and return the processed-message tuples (the part this example is about)."""
    with processor(records=records, handler=record_handler):  # the context manager needs the record list
        processed: list[tuple[Any, ...]] = processor.process()
    return processed


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    for status, outcome, record in process(event["Records"]):
        verdict: Literal["success", "fail"] = status
        # outcome: the handler's return value on success, "<class 'X'>:message" on failure
        message_id = record["messageId"] if verdict == "success" else record.message_id
        logger.info("record processed", status=verdict, outcome=outcome, message_id=message_id)
    return processor.response()


if __name__ == "__main__":
    import json
    from pathlib import Path

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, None)))
