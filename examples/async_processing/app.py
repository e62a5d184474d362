"""Processing records concurrently with asyncio.

Seed section: "Processing messages asynchronously".

``AsyncBatchProcessor`` with ``async_process_partial_response`` starts every record's coroutine at once, so
while one record awaits I/O (here a simulated database write) the others make progress. Use it only when
records do not depend on each other's order. Unlike Powertools, failures are reported in input order.

The Lambda handler itself stays synchronous: ``async_process_partial_response`` runs the event loop.

Run it: ``python examples/async_processing/app.py`` - bob's negative points are rejected.
"""

from __future__ import annotations

import asyncio
from typing import Any

from batchlens import AsyncBatchProcessor, EventType, PartialItemFailureResponse, async_process_partial_response
from batchlens.data_classes import SQSRecord

processor = AsyncBatchProcessor(event_type=EventType.SQS)

# Stands in for a database table; a real handler would await an async client (aiobotocore, httpx, ...).
POINTS: dict[str, int] = {}


async def save_points(customer: str, points: int) -> int:
    await asyncio.sleep(0.01)  # the network round trip other records overlap with
    POINTS[customer] = POINTS.get(customer, 0) + points
    return POINTS[customer]


async def async_record_handler(record: SQSRecord) -> int:
    entry = record.json_body
    if entry["points"] < 0:
        raise ValueError(f"points must not be negative, got {entry['points']}")
    return await save_points(entry["customer"], entry["points"])


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return async_process_partial_response(
        event=event,
        record_handler=async_record_handler,
        processor=processor,
        context=context,
    )


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    print(json.dumps(lambda_handler(sample, lambda_context())))
