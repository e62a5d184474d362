"""Read a handler's partial-batch response the way Lambda does (with ``ReportBatchItemFailures`` on).

Success for the whole batch: no response (``null``), an object without ``batchItemFailures``, or a null or empty
list. Failure for the whole batch (Lambda's "invalid response"): anything else that is not an object, a
``batchItemFailures`` that is not a list, an entry that is not an object, an ``itemIdentifier`` missing, null,
empty, not a string, or naming no record of the batch.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["InvalidResponse", "failed_identifiers"]


class InvalidResponse(Exception):
    """The response cannot be read as a partial-batch response: Lambda fails the whole batch."""


def failed_identifiers(response: Any, batch_ids: Collection[str]) -> list[str]:
    """The item identifiers the response reports as failed, in its order, without duplicates.

    Raises:
        InvalidResponse: The response is malformed; the message says how (it never includes record content).
    """
    if response is None:
        return []
    if not isinstance(response, dict):
        raise InvalidResponse(f"the response is a JSON {_kind(response)}, not an object")
    failures = response.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        raise InvalidResponse(f"batchItemFailures is a JSON {_kind(failures)}, not a list")
    found: list[str] = []
    for position, entry in enumerate(failures):
        if not isinstance(entry, dict):
            raise InvalidResponse(f"batchItemFailures[{position}] is a JSON {_kind(entry)}, not an object")
        identifier = entry.get("itemIdentifier")
        if identifier is None:
            raise InvalidResponse(f"batchItemFailures[{position}] has no itemIdentifier (or it is null)")
        if not isinstance(identifier, str):
            raise InvalidResponse(f"batchItemFailures[{position}].itemIdentifier is a JSON {_kind(identifier)}")
        if not identifier:
            raise InvalidResponse(f"batchItemFailures[{position}].itemIdentifier is empty")
        if identifier not in batch_ids:
            raise InvalidResponse(f"batchItemFailures[{position}].itemIdentifier names no record of this batch")
        if identifier not in found:
            found.append(identifier)
    return found


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__
