"""Records, events and handlers shared by the processor test modules."""

from __future__ import annotations

import asyncio
from typing import Any


def _sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders",
        "awsRegion": "us-east-1",
    }


def _event(*bodies: str) -> dict[str, Any]:
    return {"Records": [_sqs_record(f"m-{index}", body) for index, body in enumerate(bodies)]}


def _handler(record: Any) -> str:
    if "fail" in record.body:
        raise ValueError(f"cannot process {record.body}")
    return record.body.upper()


async def _async_handler(record: Any) -> str:
    await asyncio.sleep(0)
    return _handler(record)


class FakeContext:
    """A minimal Lambda context."""

    aws_request_id = "req-1"
    function_name = "fn"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
