"""Pydantic v2 models for the batch records Lambda receives, for ``BatchProcessor(model=...)``.

The models accept and reject the same input as the Powertools parser models of the same name, so
existing subclasses port by changing the import only::

    from batchlens.models import BaseModel, Json, SqsRecordModel

    class Order(BaseModel):
        item: dict

    class OrderSqsRecord(SqsRecordModel):
        body: Json[Order]

Encoded fields are decoded before field validation, so an overriding annotation sees the decoded
value: Kinesis ``data`` and Kafka ``key`` become bytes, Kafka ``value`` a UTF-8 string, Kafka header
values bytes, and DynamoDB ``Keys``/``NewImage``/``OldImage`` plain Python values. The decoding
validators keep the Powertools method names, so a subclass that overrides one by name keeps working.

Where Powertools lets a raw ``TypeError``/``AttributeError`` escape on malformed input, these models
raise ``pydantic.ValidationError`` instead, so a bad record is an ordinary record failure.

This module needs the ``pydantic`` extra: ``pip install 'batchlens[pydantic]'``.
"""

import base64
import json
import zlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any, Literal

try:
    from pydantic import BaseModel, Json, field_validator
except ImportError as exc:
    raise ImportError("batchlens.models needs pydantic: pip install 'batchlens[pydantic]'") from exc

__all__ = [
    "BaseModel",
    "DynamoDBStreamChangedRecordModel",
    "DynamoDBStreamRecordModel",
    "DynamoDBUserIdentityModel",
    "Json",
    "KafkaRecordModel",
    "KafkaRecordSchemaMetadata",
    "KinesisDataStreamRecord",
    "KinesisDataStreamRecordPayload",
    "SqsAttributesModel",
    "SqsMsgAttributeModel",
    "SqsRecordModel",
]


# ---------------------------------------------------------------------------------------------------------
# Decoding helpers (shared by the validators below)
# ---------------------------------------------------------------------------------------------------------


def _b64decode(value: Any, what: str) -> bytes:
    # Non-strict decoding (characters outside the alphabet are skipped) because that is what the
    # Powertools models accept; a stricter check would reject records that validate there.
    try:
        return base64.b64decode(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not a base64-encoded string: {exc}") from exc


def _header_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, int) for item in value):
        raise ValueError("Kafka header values must be arrays of byte values")
    # Java producers send signed bytes (-128..127); one negative value means the whole array is signed.
    if any(item < 0 for item in value):
        return bytes(item & 0xFF for item in value)
    return bytes(value)  # ValueError for values above 255


# DynamoDB numbers carry up to 38 significant digits; any rounding would silently change stored values.
_DDB_NUMBER_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])
# Used only to fold trailing zeros into the exponent; it must refuse to drop significant digits.
_DDB_TRIM_CONTEXT = Context(prec=38)
_DDB_TRIM_CONTEXT.traps[Inexact] = True


def _ddb_number(raw: Any) -> Decimal:
    # An empty string or a lone "." is read as zero rather than rejected, as Powertools does.
    if raw in ("", "."):
        return _DDB_NUMBER_CONTEXT.create_decimal(0)
    number = Decimal(raw)
    if len(number.as_tuple().digits) > 38:
        number = number.normalize(_DDB_TRIM_CONTEXT)
    return _DDB_NUMBER_CONTEXT.create_decimal(number)


def _ddb_value(attribute: Any) -> Any:
    """Turn one DynamoDB attribute value (``{"S": "x"}``, ``{"N": "1"}``, ...) into a Python value."""
    if not isinstance(attribute, Mapping) or not attribute:
        raise ValueError(f"expected a DynamoDB attribute value such as {{'S': 'text'}}, got {attribute!r}")
    tag = next(iter(attribute))
    payload = attribute[tag]
    # Only the first key counts and tags match case-insensitively, both as in Powertools.
    kind = tag.lower() if isinstance(tag, str) else None
    if kind == "null":
        return None
    if kind in ("bool", "s", "b"):
        return payload  # binary stays as the base64 text Lambda delivers
    if kind == "n":
        return _ddb_number(payload)
    if kind == "ns":
        return {_ddb_number(item) for item in payload}
    if kind in ("ss", "bs"):
        return set(payload)
    if kind == "l":
        return [_ddb_value(item) for item in payload]
    if kind == "m":
        return _ddb_map(payload)
    raise ValueError(f"unsupported DynamoDB type {tag!r}")


def _ddb_map(value: Any) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a map of DynamoDB attribute values, got {value!r}")
    return {name: _ddb_value(attribute) for name, attribute in value.items()}


def _ddb_image(value: Any) -> dict[Any, Any]:
    try:
        return _ddb_map(value)
    except (TypeError, ArithmeticError) as exc:
        # TypeError: a set/list payload that is not iterable or hashable; ArithmeticError: a bad number.
        raise ValueError(f"not valid DynamoDB JSON: {exc!r}") from exc


# ---------------------------------------------------------------------------------------------------------
# SQS
# ---------------------------------------------------------------------------------------------------------


class SqsAttributesModel(BaseModel):
    """System attributes of an SQS message.

    Attributes:
        ApproximateReceiveCount: How many times the message has been received.
        ApproximateFirstReceiveTimestamp: When the message was first received (sent as epoch milliseconds).
        MessageDeduplicationId: FIFO deduplication id, if any.
        MessageGroupId: FIFO message group id, if any.
        SenderId: IAM user or role id of the sender.
        SentTimestamp: When the message was sent (sent as epoch milliseconds).
        SequenceNumber: FIFO sequence number, if any.
        AWSTraceHeader: X-Ray trace header, if any.
        DeadLetterQueueSourceArn: Source queue ARN for a message moved to a dead-letter queue.
    """

    ApproximateReceiveCount: str
    ApproximateFirstReceiveTimestamp: datetime
    MessageDeduplicationId: str | None = None
    MessageGroupId: str | None = None
    SenderId: str
    SentTimestamp: datetime
    SequenceNumber: str | None = None
    AWSTraceHeader: str | None = None
    DeadLetterQueueSourceArn: str | None = None


class SqsMsgAttributeModel(BaseModel):
    """One user-defined SQS message attribute.

    The value fields are not cross-checked against ``dataType`` (custom types such as
    ``Number.float`` are allowed).

    Attributes:
        stringValue: The value of a String or Number attribute.
        binaryValue: The base64 value of a Binary attribute (left encoded).
        stringListValues: Reserved by SQS; usually empty.
        binaryListValues: Reserved by SQS; usually empty.
        dataType: ``String``, ``Number``, ``Binary``, optionally with a ``.custom`` suffix.
    """

    stringValue: str | None = None
    binaryValue: str | None = None
    # pydantic copies mutable defaults per instance, so a shared [] is safe here.
    stringListValues: list[str] = []
    binaryListValues: list[str] = []
    dataType: str


class SqsRecordModel(BaseModel):
    """One SQS message as delivered to Lambda.

    Override ``body`` to type the payload, e.g. ``body: Json[Order]``.

    Attributes:
        messageId: Unique message id (the batch item identifier).
        receiptHandle: Handle for deleting the message.
        body: Message body as text.
        attributes: System attributes.
        messageAttributes: User-defined attributes by name.
        md5OfBody: MD5 digest of the body.
        md5OfMessageAttributes: MD5 digest of the message attributes, if any.
        eventSource: Always ``aws:sqs``.
        eventSourceARN: ARN of the queue.
        awsRegion: Region of the queue.
    """

    messageId: str
    receiptHandle: str
    body: str | type[BaseModel] | BaseModel
    attributes: SqsAttributesModel
    messageAttributes: dict[str, SqsMsgAttributeModel]
    md5OfBody: str
    md5OfMessageAttributes: str | None = None
    eventSource: Literal["aws:sqs"]
    eventSourceARN: str
    awsRegion: str


# ---------------------------------------------------------------------------------------------------------
# Kinesis Data Streams
# ---------------------------------------------------------------------------------------------------------


class KinesisDataStreamRecordPayload(BaseModel):
    """The ``kinesis`` part of a Kinesis Data Streams record.

    ``data`` arrives base64-encoded and is decoded to bytes before validation, so an override such as
    ``data: Json[Order]`` parses the decoded bytes.

    Attributes:
        kinesisSchemaVersion: Record format version.
        partitionKey: Partition key the producer used.
        sequenceNumber: Sequence number within the shard (the batch item identifier).
        data: The decoded payload.
        approximateArrivalTimestamp: Arrival time in the stream, Unix seconds.
    """

    kinesisSchemaVersion: str
    partitionKey: str
    sequenceNumber: str
    data: bytes | type[BaseModel] | BaseModel
    approximateArrivalTimestamp: float

    @field_validator("data", mode="before")
    @classmethod
    def data_base64_decode(cls, value: Any) -> Any:
        """Decode the base64 payload to bytes."""
        return _b64decode(value, "Kinesis data")


class KinesisDataStreamRecord(BaseModel):
    """One Kinesis Data Streams record as delivered to Lambda.

    Attributes:
        eventSource: Always ``aws:kinesis``.
        eventVersion: Event format version.
        eventID: Shard id and sequence number.
        eventName: Always ``aws:kinesis:record``.
        invokeIdentityArn: Role Lambda used to read the stream.
        awsRegion: Region of the stream.
        eventSourceARN: ARN of the stream.
        kinesis: The record payload.
    """

    eventSource: Literal["aws:kinesis"]
    eventVersion: str
    eventID: str
    eventName: Literal["aws:kinesis:record"]
    invokeIdentityArn: str
    awsRegion: str
    eventSourceARN: str
    kinesis: KinesisDataStreamRecordPayload

    def decompress_zlib_record_data_as_json(self) -> Any:
        """Inflate zlib/gzip-compressed ``data`` (e.g. a CloudWatch Logs subscription) and parse it as JSON.

        Returns:
            The parsed JSON document.

        Raises:
            ValueError: If ``data`` was overridden with a model, so there are no bytes to inflate.
            zlib.error: If the data is not zlib or gzip compressed.
        """
        data = self.kinesis.data
        if not isinstance(data, bytes):
            raise ValueError("only bytes data can be decompressed, not a parsed model")
        # MAX_WBITS | 32 lets zlib detect either a zlib or a gzip header.
        return json.loads(zlib.decompress(data, zlib.MAX_WBITS | 32))


# ---------------------------------------------------------------------------------------------------------
# DynamoDB Streams
# ---------------------------------------------------------------------------------------------------------


class DynamoDBStreamChangedRecordModel(BaseModel):
    """The ``dynamodb`` part of a DynamoDB Streams record.

    ``Keys``, ``NewImage`` and ``OldImage`` arrive as DynamoDB JSON and are deserialized before
    validation (NULL to None, BOOL, N to Decimal, S, B left as base64 text, NS/SS/BS to sets, L, M),
    so an override such as ``NewImage: OrderImage | None`` validates plain Python values. An explicit
    ``null`` image is rejected, as in Powertools; a missing image is None.

    Attributes:
        ApproximateCreationDateTime: When the change was made (sent as Unix seconds), if given.
        Keys: Primary key attributes.
        NewImage: The item after the change, if the stream view includes it.
        OldImage: The item before the change, if the stream view includes it.
        SequenceNumber: Stream sequence number (the batch item identifier).
        SizeBytes: Size of the stream record.
        StreamViewType: Which images the stream carries.
    """

    ApproximateCreationDateTime: datetime | None = None
    Keys: dict[str, Any]
    NewImage: dict[str, Any] | type[BaseModel] | BaseModel | None = None
    OldImage: dict[str, Any] | type[BaseModel] | BaseModel | None = None
    SequenceNumber: str
    SizeBytes: int
    StreamViewType: Literal["NEW_AND_OLD_IMAGES", "KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE"]

    @field_validator("Keys", "NewImage", "OldImage", mode="before")
    @classmethod
    def deserialize_field(cls, value: Any) -> Any:
        """Deserialize a map of DynamoDB attribute values into Python values."""
        return _ddb_image(value)


class DynamoDBUserIdentityModel(BaseModel):
    """Who made a change; present for items deleted by TTL.

    Attributes:
        type: Always ``Service``.
        principalId: Always ``dynamodb.amazonaws.com``.
    """

    type: Literal["Service"]
    principalId: Literal["dynamodb.amazonaws.com"]


class DynamoDBStreamRecordModel(BaseModel):
    """One DynamoDB Streams record as delivered to Lambda.

    Attributes:
        eventID: Unique event id.
        eventName: ``INSERT``, ``MODIFY`` or ``REMOVE``.
        eventVersion: Event format version.
        eventSource: Always ``aws:dynamodb``.
        awsRegion: Region of the table.
        eventSourceARN: ARN of the stream.
        dynamodb: The change itself.
        userIdentity: Set when DynamoDB itself made the change (TTL expiry).
    """

    eventID: str
    eventName: Literal["INSERT", "MODIFY", "REMOVE"]
    eventVersion: float
    eventSource: Literal["aws:dynamodb"]
    awsRegion: str
    eventSourceARN: str
    dynamodb: DynamoDBStreamChangedRecordModel
    userIdentity: DynamoDBUserIdentityModel | None = None


# ---------------------------------------------------------------------------------------------------------
# Kafka (Amazon MSK and self-managed)
# ---------------------------------------------------------------------------------------------------------


class KafkaRecordSchemaMetadata(BaseModel):
    """Schema registry metadata for a Kafka key or value.

    Attributes:
        dataFormat: ``AVRO``, ``JSON`` or ``PROTOBUF``.
        schemaId: Schema id in the registry.
    """

    dataFormat: str
    schemaId: str


class KafkaRecordModel(BaseModel):
    """One Kafka record as delivered to Lambda.

    ``key`` is base64-decoded to bytes, ``value`` to a UTF-8 string (so ``value: Json[Order]`` works)
    and each header value from an array of (possibly signed) byte values to bytes. The raw event is
    not modified.

    Attributes:
        topic: Topic name.
        partition: Partition number.
        offset: Offset within the partition.
        timestamp: Record timestamp (sent as epoch milliseconds).
        timestampType: ``CREATE_TIME`` or ``LOG_APPEND_TIME``.
        key: Decoded key, or None for records without a key.
        value: Decoded value.
        headers: Headers as name-to-bytes maps.
        keySchemaMetadata: Schema registry metadata for the key, if any.
        valueSchemaMetadata: Schema registry metadata for the value, if any.
    """

    topic: str
    partition: int
    offset: int
    timestamp: datetime
    timestampType: str
    key: bytes | None = None
    value: str | type[BaseModel]
    headers: list[dict[str, bytes]]
    keySchemaMetadata: KafkaRecordSchemaMetadata | None = None
    valueSchemaMetadata: KafkaRecordSchemaMetadata | None = None

    @field_validator("key", mode="before")
    @classmethod
    def decode_key(cls, value: Any) -> Any:
        """Decode a base64 key to bytes; a null key stays None."""
        return None if value is None else _b64decode(value, "Kafka key")

    @field_validator("value", mode="before")
    @classmethod
    def data_base64_decode(cls, value: Any) -> Any:
        """Decode the base64 value to a UTF-8 string."""
        raw = _b64decode(value, "Kafka value")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"Kafka value is not UTF-8 text: {exc}") from exc

    @field_validator("headers", mode="before")
    @classmethod
    def decode_headers_list(cls, value: Any) -> Any:
        """Turn each header's byte-value array into bytes, without touching the raw event."""
        if not isinstance(value, (list, tuple)):
            return value  # pydantic reports the wrong type
        decoded: list[dict[Any, bytes]] = []
        for header in value:
            if not isinstance(header, Mapping):
                raise ValueError(f"each Kafka header must be an object, got {header!r}")
            decoded.append({name: _header_bytes(raw) for name, raw in header.items()})
        return decoded
