"""DynamoDB Streams records, property-compatible with Powertools' ``DynamoDBRecord``.

Also home of :class:`TypeDeserializer`, which turns DynamoDB attribute values
(``{"N": "1.5"}``, ``{"M": {...}}``) into Python values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from enum import Enum
from typing import Any, ClassVar

from batchlens.data_classes._base import DictWrapper

__all__ = [
    "DynamoDBRecord",
    "DynamoDBRecordEventName",
    "StreamRecord",
    "StreamViewType",
    "TypeDeserializer",
]

# DynamoDB numbers carry at most 38 significant digits within these exponent bounds; trapping every
# lossy signal means a number that DynamoDB could not have stored raises instead of being rounded.
_DYNAMODB_CONTEXT = Context(
    prec=38,
    Emin=-128,
    Emax=126,
    traps=[Clamped, Overflow, Inexact, Rounded, Underflow],
)

# Used only to drop trailing zeros from over-long digit strings: "1" followed by 40 zeros is a
# valid 1-digit DynamoDB number. Inexact is trapped so significant digits are never lost.
_TRIM_CONTEXT = Context(prec=38, traps=[Inexact])

_MAX_DIGITS = 38


class TypeDeserializer:
    """Converts DynamoDB attribute values to Python values.

    ``NULL`` -> None, ``BOOL`` -> bool, ``N`` -> Decimal, ``S`` -> str, ``B`` -> the value unchanged
    (base64 text in stream events), ``NS``/``SS``/``BS`` -> set, ``L`` -> list, ``M`` -> dict.
    Type names are matched case-insensitively, like Powertools.
    """

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[Any], Any]] = {
            "null": _to_none,
            "bool": _same,
            "n": _to_number,
            "s": _same,
            "b": _same,
            "ns": _to_number_set,
            "ss": set,
            "bs": set,
            "l": self._to_list,
            "m": self._to_map,
        }

    def deserialize(self, value: dict[str, Any]) -> Any:
        """Convert one DynamoDB attribute value such as ``{"N": "42"}`` to Python.

        Args:
            value: A single-entry dict from DynamoDB type name to the serialized value.

        Returns:
            The Python value; see the class docstring for the mapping.

        Raises:
            TypeError: The type name is not a DynamoDB type, or ``value`` is empty or not a dict.
            decimal.DecimalException: An ``N`` value is not a number DynamoDB can store.
        """
        try:
            type_name = next(iter(value.keys()))
        except (AttributeError, StopIteration):
            # Name the shape, not the value: attribute values can be large or sensitive.
            got = "an empty dict" if isinstance(value, dict) else type(value).__name__
            raise TypeError(f"Expected a DynamoDB attribute value like {{'S': 'text'}}, got {got}")
        handler = self._handlers.get(str(type_name).lower())
        if handler is None:
            raise TypeError(f"Dynamodb type {type_name} is not supported")
        return handler(value[type_name])

    def _to_list(self, items: Iterable[dict[str, Any]]) -> list[Any]:
        return [self.deserialize(item) for item in items]

    def _to_map(self, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if not isinstance(entries, Mapping):
            raise TypeError(f"Expected the value of a DynamoDB 'M' attribute to be a map, got {type(entries).__name__}")
        return {name: self.deserialize(item) for name, item in entries.items()}


def _to_none(_value: Any) -> None:
    return None


def _same(value: Any) -> Any:
    return value


def _to_number(text: str) -> Decimal:
    # Powertools (and so existing users) read these degenerate strings as zero.
    if text == "" or text == ".":
        return _DYNAMODB_CONTEXT.create_decimal(0)
    number = Decimal(text)
    if len(number.as_tuple().digits) > _MAX_DIGITS:
        number = number.normalize(_TRIM_CONTEXT)
    return _DYNAMODB_CONTEXT.create_decimal(number)


def _to_number_set(texts: Iterable[str]) -> set[Decimal]:
    return {_to_number(text) for text in texts}


class StreamViewType(Enum):
    """Which images a DynamoDB stream record carries (the table's stream view type)."""

    KEYS_ONLY = 0
    NEW_IMAGE = 1
    OLD_IMAGE = 2
    NEW_AND_OLD_IMAGES = 3

    # Handlers written for Powertools may compare against Powertools' own enum; members with the
    # same class and member name compare (and hash) equal so those comparisons keep working.
    def __eq__(self, other: object) -> bool:
        return _same_enum_member(self, other)

    def __hash__(self) -> int:
        return hash(self.name)


class DynamoDBRecordEventName(Enum):
    """The kind of change a DynamoDB stream record describes."""

    INSERT = 0
    MODIFY = 1
    REMOVE = 2

    def __eq__(self, other: object) -> bool:
        return _same_enum_member(self, other)

    def __hash__(self) -> int:
        return hash(self.name)


def _same_enum_member(member: Enum, other: object) -> bool:
    if member is other:
        return True
    return isinstance(other, Enum) and type(other).__name__ == type(member).__name__ and other.name == member.name


class StreamRecord(DictWrapper):
    """The ``dynamodb`` part of a stream record: keys, images and stream metadata.

    ``keys``, ``new_image`` and ``old_image`` are deserialized on first access and then reused.
    As in Powertools, ``keys`` is the item's key attributes, which hides ``Mapping.keys()``.
    """

    __slots__ = ("_keys", "_new_image", "_old_image")
    _repr_keys = ("SequenceNumber",)
    _deserializer: ClassVar[TypeDeserializer] = TypeDeserializer()
    _keys: dict[str, Any]
    _new_image: dict[str, Any]
    _old_image: dict[str, Any]

    def _deserialize_item(self, field: str) -> dict[str, Any]:
        item = self._data.get(field) or {}
        deserialize = self._deserializer.deserialize
        return {name: deserialize(value) for name, value in item.items()}

    @property
    def approximate_creation_date_time(self) -> int | None:
        """When the change happened, in epoch seconds."""
        value = self._data.get("ApproximateCreationDateTime")
        return None if value is None else int(value)

    @property
    def keys(self) -> dict[str, Any]:  # type: ignore[override]
        """The key attributes of the changed item, deserialized."""
        try:
            return self._keys
        except AttributeError:
            pass
        self._keys = self._deserialize_item("Keys")
        return self._keys

    @property
    def new_image(self) -> dict[str, Any]:
        """The item after the change, deserialized; empty when the stream view has no new image."""
        try:
            return self._new_image
        except AttributeError:
            pass
        self._new_image = self._deserialize_item("NewImage")
        return self._new_image

    @property
    def old_image(self) -> dict[str, Any]:
        """The item before the change, deserialized; empty when the stream view has no old image."""
        try:
            return self._old_image
        except AttributeError:
            pass
        self._old_image = self._deserialize_item("OldImage")
        return self._old_image

    @property
    def sequence_number(self) -> str | None:
        """The record's sequence number, also the batch item failure identifier."""
        return self._data.get("SequenceNumber")

    @property
    def size_bytes(self) -> int | None:
        """The size of the stream record in bytes."""
        value = self._data.get("SizeBytes")
        return None if value is None else int(value)

    @property
    def stream_view_type(self) -> StreamViewType | None:
        """Which images the stream captures."""
        value = self._data.get("StreamViewType")
        return None if value is None else StreamViewType[str(value)]


class DynamoDBRecord(DictWrapper):
    """One record of a DynamoDB Streams event (an element of ``event["Records"]``)."""

    __slots__ = ("_stream_record",)
    _repr_keys = ("eventID", "eventName")
    _stream_record: StreamRecord | None

    @property
    def aws_region(self) -> str | None:
        """The region of the table."""
        return self._data.get("awsRegion")

    @property
    def dynamodb(self) -> StreamRecord | None:
        """Keys, images and metadata of the change; the same object on every access."""
        try:
            return self._stream_record
        except AttributeError:
            pass
        raw = self._data.get("dynamodb")
        self._stream_record = None if raw is None else StreamRecord(raw, self._json_deserializer)
        return self._stream_record

    @property
    def event_id(self) -> str | None:
        """A unique identifier of this stream record."""
        return self._data.get("eventID")

    @property
    def event_name(self) -> DynamoDBRecordEventName | None:
        """INSERT, MODIFY or REMOVE."""
        value = self._data.get("eventName")
        return None if value is None else DynamoDBRecordEventName[value]

    @property
    def event_source(self) -> str | None:
        """Always ``aws:dynamodb``."""
        return self._data.get("eventSource")

    @property
    def event_source_arn(self) -> str | None:
        """The ARN of the table's stream."""
        return self._data.get("eventSourceARN")

    @property
    def event_version(self) -> str | None:
        """The stream record format version."""
        return self._data.get("eventVersion")

    @property
    def user_identity(self) -> dict[str, Any]:
        """Who made the change (TTL deletions name the DynamoDB service); empty when absent."""
        return self._data.get("userIdentity") or {}
