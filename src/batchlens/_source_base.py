"""The event-source strategy base: what every source answers (identifier, destination, attributes, producer
context), the event types, and the event being processed. The concrete sources are in ``_source_kinds``."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from batchlens._source_attributes import (
    CACHE_SIZE,
)

__all__ = ["CURRENT_EVENT", "EventType", "MissingField", "Source", "current_event"]


class EventType(enum.Enum):
    """The event sources a batch processor can read."""

    SQS = "SQS"
    KinesisDataStreams = "KinesisDataStreams"
    DynamoDBStreams = "DynamoDBStreams"
    Kafka = "Kafka"


class MissingField(Exception):
    """A record lacks the field that identifies it; ``field`` is its dotted path."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


_BATCH_TYPE_ERROR = "Unexpected batch event type. Possible values are: SQS, KinesisDataStreams, DynamoDBStreams, Kafka"
_KAFKA_TYPE_ERROR = (
    "Invalid Kafka event structure. Expected 'records' to be a non-empty dict with topic-partition keys."
)


# The Lambda event being processed by ``process_partial_response``: event-level fields (Kafka's
# ``bootstrapServers``) are not in the records the processor is given.
CURRENT_EVENT: ContextVar[Any] = ContextVar("batchlens_event", default=None)


def current_event() -> Any:
    """The Lambda event ``process_partial_response`` is processing in this context, or None."""
    return CURRENT_EVENT.get()


def _nonempty_str(value: Any, field: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise MissingField(field)


class Source:
    """Behaviour shared by all sources; subclasses fill in what differs."""

    event_type: EventType | None = None
    messaging_system = "unknown"
    event_source = "unknown"
    faas_trigger = "pubsub"  # semconv faas.trigger of a Lambda invoked by this source
    id_field = "id"
    data_class_path = ""

    def __init__(self) -> None:
        self._data_class: type[Any] | None = None
        self._destinations: dict[str, str | None] = {}
        self._destination_attributes: dict[str, dict[str, Any]] = {}
        # whether ``destination`` is a function of the record's source ARN alone (not overridden)
        self.destination_from_arn = type(self).destination is Source.destination

    # -- records -----------------------------------------------------------------------------------------
    def records_from_event(self, event: Any) -> list[Any]:
        """Return the batch's records; AttributeError when ``event`` is not a mapping."""
        records = event.get("Records", [])
        if not records or not isinstance(records, list):
            from batchlens.exceptions import UnexpectedBatchTypeError

            raise UnexpectedBatchTypeError(_BATCH_TYPE_ERROR)
        return records

    @property
    def data_class(self) -> type[Any]:
        """The event source data class wrapping a raw record (imported on first use)."""
        cls = self._data_class
        if cls is None:
            import importlib

            module_name, _, name = self.data_class_path.rpartition(".")
            cls = getattr(importlib.import_module(module_name), name)
            self._data_class = cls
        return cls

    def wrap(self, raw: Any) -> Any:
        """Wrap a raw record in its data class."""
        return self.data_class(raw)

    def enqueue_stats(self, records: list[Any]) -> tuple[float | None, int]:
        """The records' oldest enqueue time (Unix seconds; None when none has one) and SQS redeliveries.

        Enqueue times: SQS ``SentTimestamp`` (ms), Kinesis ``approximateArrivalTimestamp`` (s), DynamoDB
        ``ApproximateCreationDateTime`` (s), Kafka ``timestamp`` (ms). Redeliveries: SQS records whose
        ``ApproximateReceiveCount`` is above 1. Malformed or missing values are left out.
        """
        system = self.messaging_system
        oldest: float | None = None
        redelivered = 0
        for raw in records:
            try:
                if system == "aws_sqs":
                    attributes = raw["attributes"]
                    count = attributes.get("ApproximateReceiveCount")
                    if count is not None and count != "1" and int(count) > 1:
                        redelivered += 1
                    sent = int(attributes["SentTimestamp"]) / 1000
                elif system == "aws.kinesis":
                    sent = float(raw["kinesis"]["approximateArrivalTimestamp"])
                elif system == "aws.dynamodb":
                    sent = float(raw["dynamodb"]["ApproximateCreationDateTime"])
                elif system == "kafka":
                    sent = int(raw["timestamp"]) / 1000
                else:
                    return None, 0
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                continue
            if sent > 0 and (oldest is None or sent < oldest):
                oldest = sent
        return oldest, redelivered

    # -- identity ----------------------------------------------------------------------------------------
    def identifier(self, raw: Any) -> Any:
        """The ``itemIdentifier`` reported for a failed raw record. Raises MissingField."""
        try:
            return _nonempty_str(raw[self.id_field], self.id_field)
        except (KeyError, TypeError, IndexError):
            raise MissingField(self.id_field) from None

    def identifier_of_model(self, model: Any) -> Any:
        """The ``itemIdentifier`` of a record parsed into a pydantic model."""
        return getattr(model, self.id_field)

    def identifier_of(self, obj: Any) -> Any:
        """The ``itemIdentifier`` of a failed record as handed to ``failure_handler``. Raises MissingField."""
        raw = getattr(obj, "raw_event", None)
        if raw is not None or obj is None or isinstance(obj, Mapping):
            return self.identifier(obj if raw is None else raw)
        try:
            return self.identifier_of_model(obj)
        except AttributeError:
            raise MissingField(self.id_field) from None

    def message_id(self, raw: Any) -> str | None:
        """The ``messaging.message.id`` of a raw record, or None when it has none."""
        try:
            return self.identifier(raw)  # type: ignore[no-any-return]
        except MissingField:
            return None

    # -- destination and attributes ------------------------------------------------------------------------
    def _name_from_arn(self, arn: str) -> str | None:
        return None

    def destination(self, raw: Any) -> str | None:
        """The queue, stream, table or topic the record came from."""
        try:
            arn = raw.get("eventSourceARN") or raw.get("eventSourceArn")
        except AttributeError:
            return None
        if not isinstance(arn, str):
            return None
        cache = self._destinations
        try:
            return cache[arn]
        except KeyError:
            name = self._name_from_arn(arn)
            if len(cache) < 1024:
                cache[arn] = name
            return name

    def _attributes_from_arn(self, arn: str) -> dict[str, Any]:
        return {}

    def destination_attributes(self, raw: Any) -> dict[str, Any]:
        """Span attributes that follow from the record's source ARN (queue URL, stream, table). Shared: read only."""
        try:
            arn = raw.get("eventSourceARN") or raw.get("eventSourceArn")
        except AttributeError:
            return {}
        if not isinstance(arn, str):
            return {}
        cache = self._destination_attributes
        try:
            return cache[arn]
        except KeyError:
            attributes = self._attributes_from_arn(arn)
            if len(cache) < CACHE_SIZE:
                cache[arn] = attributes
            return attributes

    def event_attributes(self, event: Any) -> dict[str, Any]:
        """Span attributes from event-level fields (outside the records), e.g. Kafka's ``server.address``."""
        return {}

    def may_carry_producer_context(self, records: list[Any]) -> bool:
        """False only when no record can carry producer trace context; checked once per batch, in C loops."""
        return type(self).producer_headers is not Source.producer_headers

    def record_attributes(self, raw: Any) -> dict[str, Any]:
        """Source-specific span attributes of one record (set at span start)."""
        out: dict[str, Any] = {}
        self.add_record_attributes(raw, out)
        return out

    def add_record_attributes(self, raw: Any, into: dict[str, Any]) -> None:
        """Write the source-specific span attributes of one record into ``into`` (no dict of its own per record)."""

    def add_document_name(self, raw: Any, into: dict[str, Any]) -> None:
        """Write ``faas.document.name`` (DynamoDB Streams only; opt-in, see ``Telemetry.document_keys``)."""

    def producer_headers(self, raw: Any) -> tuple[str | None, Mapping[str, str] | None]:
        """The producer's trace context: (X-Ray trace header, W3C carrier) — None where absent."""
        return None, None
