"""Create your own partial processor: store every result in a DynamoDB table.

Seed section: "Create your own partial processor".

Subclass ``BasePartialProcessor`` and implement:

* ``_prepare()`` - called when the ``with`` block starts: reset the state of the previous batch;
* ``_process_record(record)`` - handle one raw record, calling ``self.handler``, and return
  ``self.success_handler(...)`` or ``self.failure_handler(...)``;
* ``_async_process_record(record)`` - the async variant (not supported here);
* ``_clean()`` - called when the ``with`` block ends: here, write all results in one batch;
* ``response()`` - what ``process_partial_response`` returns.

batchlens wraps ``_process_record`` with its per-record telemetry, so a custom processor still gets
spans, logs and metrics. The table is injectable: Lambda uses boto3 (imported only then), tests pass
an in-memory fake with the same ``batch_writer()``/``put_item()`` interface. The table is defined in
``examples/sam/custom_partial_processor_dynamodb_table.yaml``.

Run it: ``python examples/custom_partial_processor/app.py`` (uses an in-memory table).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Protocol

from batchlens import BasePartialProcessor, EventType, FailureResponse, SuccessResponse, process_partial_response
from batchlens.data_classes import SQSRecord
from batchlens.types import PartialItemFailureResponse

RESULT_TTL_SECONDS = 7 * 24 * 3600


class ResultsTable(Protocol):
    """The part of boto3's ``dynamodb.Table`` this processor uses."""

    def batch_writer(self) -> Any: ...


class ResultsTableProcessor(BasePartialProcessor):
    """Processes SQS records and stores each successful result as an item keyed by ``messageId``.

    Args:
        table_name: Name of the results table (defaults to the ``TABLE_NAME`` environment variable).
        table: A ready table object; when omitted, a boto3 ``Table`` is created on first use.
    """

    # Tells process_partial_response where the records are, as for the built-in processors.
    event_type = EventType.SQS

    def __init__(self, table_name: str | None = None, *, table: ResultsTable | None = None) -> None:
        super().__init__()
        self.table_name = table_name or os.getenv("TABLE_NAME", "batch_results")
        self._table = table
        self._items: list[dict[str, Any]] = []
        self.batch_response: PartialItemFailureResponse = {"batchItemFailures": []}

    @property
    def table(self) -> ResultsTable:
        if self._table is None:
            import boto3  # available in the Lambda runtime; imported only when no table was injected

            self._table = boto3.resource("dynamodb").Table(self.table_name)
        return self._table

    def _prepare(self) -> None:
        # The processor lives across warm invocations: forget the previous batch.
        self.success_messages.clear()
        self.fail_messages.clear()
        self.exceptions.clear()
        self._items = []
        self.batch_response = {"batchItemFailures": []}

    def _process_record(self, record: dict[str, Any]) -> SuccessResponse | FailureResponse:
        try:
            result = self.handler(SQSRecord(record))
        except Exception:
            return self.failure_handler(SQSRecord(record), sys.exc_info())
        return self.success_handler(record, result)

    async def _async_process_record(self, record: dict[str, Any]) -> SuccessResponse | FailureResponse:
        raise NotImplementedError("ResultsTableProcessor is synchronous")

    def success_handler(self, record: dict[str, Any], result: Any) -> SuccessResponse:
        expiration = int(time.time()) + RESULT_TTL_SECONDS
        self._items.append({"messageId": record["messageId"], "result": result, "expiration": expiration})
        return super().success_handler(record, result)

    def _clean(self) -> None:
        # One batch write for the whole batch instead of a request per record.
        with self.table.batch_writer() as batch:
            for item in self._items:
                batch.put_item(Item=item)
        failed: list[SQSRecord] = self.fail_messages
        self.batch_response = {"batchItemFailures": [{"itemIdentifier": r.message_id} for r in failed]}

    def response(self) -> PartialItemFailureResponse:
        return self.batch_response


processor = ResultsTableProcessor()


def record_handler(record: SQSRecord) -> dict[str, str]:
    job = record.json_body
    if job["image"].startswith("fail"):
        raise ValueError(f"cannot decode {job['image']}")
    name, _, extension = job["image"].rpartition(".")
    return {"job": job["job"], "output": f"{name}-256.{extension}"}


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


if __name__ == "__main__":
    import json
    from contextlib import contextmanager
    from pathlib import Path

    class InMemoryTable:
        def __init__(self) -> None:
            self.items: dict[str, dict[str, Any]] = {}

        @contextmanager
        def batch_writer(self) -> Any:
            yield self

        def put_item(self, Item: dict[str, Any]) -> None:  # boto3 spells it this way
            self.items[Item["messageId"]] = Item

    table = InMemoryTable()
    processor = ResultsTableProcessor(table=table)
    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(f"stored: {sorted(item['result']['output'] for item in table.items.values()) or 'nothing yet'}")
    response = lambda_handler(sample, None)
    print(f"stored: {sorted(item['result']['output'] for item in table.items.values())}")
    print(json.dumps(response))
