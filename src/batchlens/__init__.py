"""batchlens: partial-failure batch processing for AWS Lambda, a drop-in for Powertools, with telemetry built in.

Swap ``from aws_lambda_powertools.utilities.batch import ...`` for ``from batchlens import ...``; every record
then also gets an OpenTelemetry span, a structlog entry and metrics (see ``Telemetry``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchlens._config import Telemetry
from batchlens._fifo import SqsFifoPartialProcessor, SqsFifoPartialProcessorAsync
from batchlens._functions import (
    async_batch_processor,
    async_process_partial_response,
    batch_processor,
    process_partial_response,
)
from batchlens._processor import AsyncBatchProcessor, BasePartialBatchProcessor, BasePartialProcessor, BatchProcessor
from batchlens._sources import EventType
from batchlens.exceptions import (
    BaseBatchProcessingError,
    BatchProcessingError,
    DeadlineExceededError,
    ExceptionInfo,
    MissingItemIdentifierError,
    SQSFifoCircuitBreakerError,
    SQSFifoMessageGroupCircuitBreakerError,
    StreamCircuitBreakerError,
    UnexpectedBatchTypeError,
)
from batchlens.types import FailureResponse, PartialItemFailureResponse, PartialItemFailures, SuccessResponse

if TYPE_CHECKING:
    from batchlens.data_classes import DynamoDBRecord, KafkaEventRecord, KinesisStreamRecord, SQSRecord

BatchTypeModels = Any
"""Type of the ``model=`` argument: a pydantic model class (kept for Powertools compatibility)."""

__version__ = "0.1.0"

__all__ = [
    "AsyncBatchProcessor",
    "BaseBatchProcessingError",
    "BasePartialBatchProcessor",
    "BasePartialProcessor",
    "BatchProcessingError",
    "BatchProcessor",
    "BatchTypeModels",
    "DeadlineExceededError",
    "DynamoDBRecord",
    "EventType",
    "ExceptionInfo",
    "FailureResponse",
    "KafkaEventRecord",
    "KinesisStreamRecord",
    "MissingItemIdentifierError",
    "PartialItemFailureResponse",
    "PartialItemFailures",
    "SQSFifoCircuitBreakerError",
    "SQSFifoMessageGroupCircuitBreakerError",
    "SQSRecord",
    "SqsFifoPartialProcessor",
    "SqsFifoPartialProcessorAsync",
    "StreamCircuitBreakerError",
    "SuccessResponse",
    "Telemetry",
    "UnexpectedBatchTypeError",
    "__version__",
    "async_batch_processor",
    "async_process_partial_response",
    "batch_processor",
    "process_partial_response",
]

_DATA_CLASSES = {
    "SQSRecord": "batchlens.data_classes.sqs",
    "KinesisStreamRecord": "batchlens.data_classes.kinesis",
    "DynamoDBRecord": "batchlens.data_classes.dynamodb",
    "KafkaEventRecord": "batchlens.data_classes.kafka",
}


def __getattr__(name: str) -> Any:
    # data classes are imported on first use: most handlers only need the processor at import time
    module = _DATA_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module 'batchlens' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
