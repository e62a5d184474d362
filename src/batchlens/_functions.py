"""``process_partial_response`` and friends: run a processor over a Lambda event and return its response."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from batchlens._sentry_guard import guard_sentry_events
from batchlens._sources import CURRENT_EVENT, EventType, source_for
from batchlens._telemetry._flush import DEFAULT_FLUSH_MS, flush_budget_ms
from batchlens._telemetry._lifecycle import background_export
from batchlens.warnings import BatchlensDeprecationWarning

if TYPE_CHECKING:
    from batchlens._processor import BasePartialProcessor
    from batchlens.types import PartialItemFailureResponse

__all__ = ["async_batch_processor", "async_process_partial_response", "batch_processor", "process_partial_response"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _records(event: Any, processor: Any) -> list[Any]:
    guard_sentry_events()  # before anything can raise with the event in a frame's variables
    event_type = getattr(processor, "event_type", None)
    # _source_of inlined (a call fewer per batch)
    source = source_for(event_type) if isinstance(event_type, EventType) else source_for(EventType.SQS)
    try:
        return source.records_from_event(event)
    except AttributeError:
        event_type = getattr(processor, "event_type", None)
        kind = event_type.value if isinstance(event_type, EventType) else "batch"
        names = ", ".join(EventType.__members__)
        raise ValueError(
            f"Invalid event format. Please ensure batch event is a valid {kind} event. \n"
            f"Expected a mapping with the records of one of {names}; got {type(event).__name__}."
        ) from None


def _flush(processor: Any, context: Any) -> None:
    """Flush the processor's telemetry within one deadline: min(remaining time - 300 ms, 5 s).

    With ``flush="auto"`` in a Managed Instances worker (``AWS_LAMBDA_MAX_CONCURRENCY`` set) nothing is flushed
    here: the environment is not frozen between requests, so the exporters' background threads deliver, and the
    SIGTERM flush (``_telemetry._lifecycle``) covers shutdown.

    The processor's ``flush_telemetry`` hands the budget to its ``ObserverChain``, which flushes every provider
    and Sentry at once on daemon threads and returns at the deadline whatever the exporters do.
    """
    telemetry = getattr(processor, "_telemetry", None)
    flush = getattr(processor, "flush_telemetry", None)
    if telemetry is None or flush is None or telemetry.flush == "never":
        return
    if telemetry.flush == "auto" and (context is None or background_export()):
        return  # Managed Instances are not frozen: the span processor exports in the background (SIGTERM flushes)
    flush(flush_budget_ms(context, DEFAULT_FLUSH_MS))


def process_partial_response(
    event: Any,
    record_handler: Callable[..., Any],
    processor: BasePartialProcessor,
    context: Any = None,
) -> PartialItemFailureResponse:
    """Process every record of ``event`` with ``record_handler`` and return the partial-failure response.

    Args:
        event: The Lambda event (SQS, Kinesis, DynamoDB Streams or Kafka batch).
        record_handler: Called as ``record_handler(record=...)`` (plus ``lambda_context=`` when it takes one).
        processor: A ``BatchProcessor``, ``SqsFifoPartialProcessor`` or custom processor.
        context: The Lambda context, injected into handlers that accept ``lambda_context``.

    Raises:
        UnexpectedBatchTypeError: The event holds no records of the processor's kind.
        ValueError: The event is not a mapping.
        BatchProcessingError: Every record failed and the processor raises on entire-batch failure.
    """
    records = _records(event, processor)
    token = CURRENT_EVENT.set(event)  # event-level fields for telemetry (Kafka's bootstrapServers)
    try:
        with processor(records, record_handler, context):
            processor.process()
    finally:
        CURRENT_EVENT.reset(token)
        _flush(processor, context)
    return processor.response()  # type: ignore[attr-defined, no-any-return]


def async_process_partial_response(
    event: Any,
    record_handler: Callable[..., Any],
    processor: BasePartialProcessor,
    context: Any = None,
) -> PartialItemFailureResponse:
    """Like ``process_partial_response`` for async handlers (``AsyncBatchProcessor``); itself synchronous."""
    records = _records(event, processor)
    token = CURRENT_EVENT.set(event)  # event-level fields for telemetry (Kafka's bootstrapServers)
    try:
        with processor(records, record_handler, context):
            processor.async_process()
    finally:
        CURRENT_EVENT.reset(token)
        _flush(processor, context)
    return processor.response()  # type: ignore[attr-defined, no-any-return]


def _deprecated_decorator(name: str, replacement: str, use_async: bool) -> Callable[..., Any]:
    def decorator(
        handler: _F | None = None, *, record_handler: Callable[..., Any], processor: BasePartialProcessor
    ) -> Any:
        def decorate(function: _F) -> _F:
            @functools.wraps(function)
            def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
                guard_sentry_events()
                warnings.warn(
                    f"The `{name}` decorator is deprecated in V3 and will be removed in the next major version. "
                    f"Use `{replacement}` function instead.",
                    category=BatchlensDeprecationWarning,
                    stacklevel=2,
                )
                records = event["Records"]
                try:
                    with processor(records, record_handler, lambda_context=context):
                        if use_async:
                            processor.async_process()
                        else:
                            processor.process()
                finally:
                    _flush(processor, context)
                return function(event, context, *args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate if handler is None else decorate(handler)

    decorator.__name__ = name
    decorator.__doc__ = f"Deprecated: process the event's records before the Lambda handler runs. Use `{replacement}`."
    return decorator


batch_processor = _deprecated_decorator("batch_processor", "process_partial_response", use_async=False)
async_batch_processor = _deprecated_decorator("async_batch_processor", "async_process_partial_response", use_async=True)
