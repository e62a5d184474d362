"""The function under test in ``test_app.py``.

Seed section: "Testing your code" (getting_started_with_test_app.py).
"""

from __future__ import annotations

import json
from typing import Any

from batchlens import BatchProcessor, EventType, PartialItemFailureResponse, process_partial_response
from batchlens.data_classes import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> str:
    order: dict[str, Any] = json.loads(record.body)
    if "fail" in order.get("status", ""):
        raise ValueError(f"order {order['order_id']} was rejected upstream")
    return str(order["order_id"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
