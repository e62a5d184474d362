"""Response and result types, compatible with Powertools' batch utility types."""

from __future__ import annotations

from typing import Any, TypedDict

from batchlens.exceptions import ExceptionInfo

__all__ = [
    "ExceptionInfo",
    "FailureResponse",
    "KafkaItemIdentifier",
    "PartialItemFailureResponse",
    "PartialItemFailures",
    "SuccessResponse",
]


class KafkaItemIdentifier(TypedDict):
    """Kafka records are identified by topic-partition and offset."""

    partition: str
    offset: int


class PartialItemFailures(TypedDict):
    """One failed item: a message id / sequence number, or a Kafka identifier."""

    itemIdentifier: str | KafkaItemIdentifier


class PartialItemFailureResponse(TypedDict):
    """The Lambda response that reports batch item failures."""

    batchItemFailures: list[PartialItemFailures]


SuccessResponse = tuple[str, Any, Any]
"""``("success", handler_result, raw_record_dict)``."""

FailureResponse = tuple[str, str, Any]
"""``("fail", "<class 'X'>:message", record_as_data_class_or_model)``."""
