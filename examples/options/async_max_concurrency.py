"""Capping an async handler's concurrency: ``AsyncBatchProcessor(..., max_concurrency=N)``.

``AsyncBatchProcessor`` starts every record's handler at once. When each one calls a rate-limited API or
takes a connection from a small pool, ``max_concurrency=N`` keeps at most N handlers running; the rest wait
their turn. Results and failures stay in input order. ``BATCHLENS_MAX_CONCURRENCY=N`` does the same from the
environment; the default is unlimited.

Run it: ``python examples/options/async_max_concurrency.py`` - 50 records, never more than 5 in flight.
"""

from __future__ import annotations

import asyncio
from typing import Any

from batchlens import AsyncBatchProcessor, EventType, async_process_partial_response
from batchlens.data_classes import SQSRecord

processor = AsyncBatchProcessor(EventType.SQS, max_concurrency=5)

in_flight = 0
peak = 0


async def record_handler(record: SQSRecord) -> str:
    global in_flight, peak
    in_flight += 1
    peak = max(peak, in_flight)
    try:
        await asyncio.sleep(0.01)  # stands for a call to a service that allows 5 concurrent requests
        item = record.json_body
        if item["status"] == "fail":
            raise ValueError(f"item {item['item']} was rejected")
        return f"item {item['item']} done"
    finally:
        in_flight -= 1


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return async_process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


if __name__ == "__main__":
    from batchlens.testing import lambda_context, sqs_event

    sample = sqs_event([{"item": i, "status": "fail" if i == 7 else "ok"} for i in range(50)], seed=1)
    response = lambda_handler(sample, lambda_context())
    print(f"peak concurrency: {peak} (cap 5); failures: {response['batchItemFailures']}")
