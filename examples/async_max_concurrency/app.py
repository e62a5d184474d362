"""Capping async concurrency with ``max_concurrency`` (batchlens addition).

Not in the seed: Powertools' ``AsyncBatchProcessor`` starts every record of the batch at once, which can
exhaust connection pools or hit a downstream rate limit with batches of hundreds of records.
``AsyncBatchProcessor(..., max_concurrency=N)`` lets at most N record handlers run at the same time; the
others wait for a slot. Results and ``batchItemFailures`` stay in input order, and every record keeps its
own span under the batch span. Configuration alternative: ``BATCHLENS_MAX_CONCURRENCY=3`` (default:
unlimited). With a cap, records start one slot at a time, which is also what lets ``deadline_margin_ms``
hold back the records that have not started yet.

Run it: ``python examples/async_max_concurrency/app.py`` - 10 webhook deliveries, never more than 3 in
flight; the one marked ``fail`` is reported.
"""

from __future__ import annotations

import asyncio
from typing import Any

from batchlens import AsyncBatchProcessor, EventType, PartialItemFailureResponse, async_process_partial_response
from batchlens.data_classes import SQSRecord

MAX_CONCURRENCY = 3
processor = AsyncBatchProcessor(event_type=EventType.SQS, max_concurrency=MAX_CONCURRENCY)


class InFlight:
    """Tracks how many deliveries run at once, to show the cap at work."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0

    def __enter__(self) -> None:
        self.current += 1
        self.peak = max(self.peak, self.current)

    def __exit__(self, *exc_info: object) -> None:
        self.current -= 1


in_flight = InFlight()


async def deliver_webhook(payload: dict[str, Any]) -> int:
    with in_flight:
        await asyncio.sleep(0.02)  # the HTTP call; a real handler would use an async client
    if payload["status"] == "fail":
        raise ConnectionError(f"endpoint refused {payload['order_id']}")
    return 204


async def record_handler(record: SQSRecord) -> int:
    return await deliver_webhook(record.json_body)


def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return async_process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


if __name__ == "__main__":
    import json
    from pathlib import Path

    from batchlens.testing import lambda_context

    sample = json.loads(Path(__file__).with_name("event.json").read_text())
    response = lambda_handler(sample, lambda_context())
    print(f"peak concurrency: {in_flight.peak} (cap {MAX_CONCURRENCY})")
    print(json.dumps(response))
