"""Event source data classes: typed, read-only views over the raw records of each batch source.

Property names and return types follow Powertools' data classes, so handlers written for
``aws_lambda_powertools.utilities.data_classes`` work unchanged.

Submodules load on first use of one of their names, so a function that only handles SQS never
imports ``decimal`` for the DynamoDB deserializer (cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchlens.data_classes._base import DictWrapper
    from batchlens.data_classes.dynamodb import (
        DynamoDBRecord,
        DynamoDBRecordEventName,
        StreamRecord,
        StreamViewType,
        TypeDeserializer,
    )
    from batchlens.data_classes.kafka import KafkaEventRecord, KafkaEventRecordSchemaMetadata
    from batchlens.data_classes.kinesis import KinesisStreamRecord, KinesisStreamRecordPayload
    from batchlens.data_classes.sqs import (
        SQSMessageAttribute,
        SQSMessageAttributes,
        SQSRecord,
        SQSRecordAttributes,
    )

__all__ = [
    "DictWrapper",
    "DynamoDBRecord",
    "DynamoDBRecordEventName",
    "KafkaEventRecord",
    "KafkaEventRecordSchemaMetadata",
    "KinesisStreamRecord",
    "KinesisStreamRecordPayload",
    "SQSMessageAttribute",
    "SQSMessageAttributes",
    "SQSRecord",
    "SQSRecordAttributes",
    "StreamRecord",
    "StreamViewType",
    "TypeDeserializer",
]

_MODULE_OF = {
    "DictWrapper": "_base",
    "DynamoDBRecord": "dynamodb",
    "DynamoDBRecordEventName": "dynamodb",
    "StreamRecord": "dynamodb",
    "StreamViewType": "dynamodb",
    "TypeDeserializer": "dynamodb",
    "KafkaEventRecord": "kafka",
    "KafkaEventRecordSchemaMetadata": "kafka",
    "KinesisStreamRecord": "kinesis",
    "KinesisStreamRecordPayload": "kinesis",
    "SQSMessageAttribute": "sqs",
    "SQSMessageAttributes": "sqs",
    "SQSRecord": "sqs",
    "SQSRecordAttributes": "sqs",
}


def __getattr__(name: str) -> Any:
    module_name = _MODULE_OF.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    # Later lookups find the name directly and skip this hook.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
