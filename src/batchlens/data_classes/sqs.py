"""Amazon SQS records, property-compatible with Powertools' ``SQSRecord``."""

from __future__ import annotations

from collections.abc import ItemsView, ValuesView
from typing import Any

from batchlens.data_classes._base import DictWrapper

__all__ = ["SQSMessageAttribute", "SQSMessageAttributes", "SQSRecord", "SQSRecordAttributes"]


class SQSRecordAttributes(DictWrapper):
    """The system attributes SQS attaches to a received message (the record's ``attributes``)."""

    __slots__ = ()
    _repr_keys = ("ApproximateReceiveCount", "MessageGroupId")

    @property
    def aws_trace_header(self) -> str | None:
        """The X-Ray trace header, when the sender was traced."""
        return self._data.get("AWSTraceHeader")

    @property
    def approximate_receive_count(self) -> str:
        """How many times the message has been received without being deleted (a numeric string)."""
        return self._data["ApproximateReceiveCount"]  # type: ignore[no-any-return]

    @property
    def sent_timestamp(self) -> str:
        """When the message was sent, in epoch milliseconds (a numeric string)."""
        return self._data["SentTimestamp"]  # type: ignore[no-any-return]

    @property
    def sender_id(self) -> str:
        """The IAM user or role id of the sender."""
        return self._data["SenderId"]  # type: ignore[no-any-return]

    @property
    def approximate_first_receive_timestamp(self) -> str:
        """When the message was first received, in epoch milliseconds (a numeric string)."""
        return self._data["ApproximateFirstReceiveTimestamp"]  # type: ignore[no-any-return]

    @property
    def sequence_number(self) -> str | None:
        """The FIFO sequence number; None on standard queues."""
        return self._data.get("SequenceNumber")

    @property
    def message_group_id(self) -> str | None:
        """The FIFO message group; None on standard queues."""
        return self._data.get("MessageGroupId")

    @property
    def message_deduplication_id(self) -> str | None:
        """The FIFO deduplication token; None on standard queues."""
        return self._data.get("MessageDeduplicationId")

    @property
    def dead_letter_queue_source_arn(self) -> str | None:
        """The ARN of the queue that moved this message here, when reading from a dead-letter queue."""
        return self._data.get("DeadLetterQueueSourceArn")


class SQSMessageAttribute(DictWrapper):
    """One user-defined message attribute (name omitted; it is the key in ``message_attributes``)."""

    __slots__ = ()
    _repr_keys = ("dataType",)

    @property
    def string_value(self) -> str | None:
        """The value of a String or Number attribute; None when the attribute carries none.

        Powertools raises KeyError here for Binary attributes; this returns None as the type promises.
        """
        return self._data.get("stringValue")

    @property
    def binary_value(self) -> str | None:
        """The base64 text of a Binary attribute; None when the attribute carries none."""
        return self._data.get("binaryValue")

    @property
    def data_type(self) -> str:
        """``String``, ``Number`` or ``Binary``, optionally with a custom suffix (``Number.float``)."""
        return self._data["dataType"]  # type: ignore[no-any-return]


class SQSMessageAttributes(dict[str, Any]):
    """Message attributes by name; lookups give an :class:`SQSMessageAttribute`, or None if absent.

    Like Powertools, ``attributes["missing"]`` returns None instead of raising KeyError.
    """

    __slots__ = ()

    def __getitem__(self, key: str) -> SQSMessageAttribute | None:
        item = dict.get(self, key)
        return None if item is None else SQSMessageAttribute(item)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the attribute called ``key``, or ``default`` when there is none."""
        item = dict.get(self, key)
        return default if item is None else SQSMessageAttribute(item)

    def items(self) -> ItemsView[str, SQSMessageAttribute]:  # type: ignore[override]
        """Pairs of attribute name and wrapped attribute."""
        return {name: SQSMessageAttribute(value) for name, value in dict.items(self)}.items()

    def values(self) -> ValuesView[SQSMessageAttribute]:  # type: ignore[override]
        """The wrapped attributes."""
        return {name: SQSMessageAttribute(value) for name, value in dict.items(self)}.values()


class SQSRecord(DictWrapper):
    """One message of an SQS event (an element of ``event["Records"]``)."""

    __slots__ = ("_json_body",)
    _repr_keys = ("messageId",)
    _json_body: Any

    @property
    def message_id(self) -> str:
        """The message id, which is also the batch item failure identifier."""
        return self._data["messageId"]  # type: ignore[no-any-return]

    @property
    def receipt_handle(self) -> str:
        """The handle of this particular receive, needed to delete or change visibility."""
        return self._data["receiptHandle"]  # type: ignore[no-any-return]

    @property
    def body(self) -> str:
        """The message body as sent."""
        return self._data["body"]  # type: ignore[no-any-return]

    @property
    def json_body(self) -> Any:
        """The body parsed as JSON; parsed on first access and then reused."""
        try:
            return self._json_body
        except AttributeError:
            pass
        parsed = self._json_deserializer(self._data["body"])
        self._json_body = parsed
        return parsed

    @property
    def attributes(self) -> SQSRecordAttributes:
        """The system attributes of the message."""
        return SQSRecordAttributes(self._data["attributes"])

    @property
    def message_attributes(self) -> SQSMessageAttributes:
        """The user-defined message attributes by name."""
        return SQSMessageAttributes(self._data["messageAttributes"])

    @property
    def md5_of_body(self) -> str:
        """The MD5 digest of the body."""
        return self._data["md5OfBody"]  # type: ignore[no-any-return]

    @property
    def event_source(self) -> str:
        """Always ``aws:sqs``."""
        return self._data["eventSource"]  # type: ignore[no-any-return]

    @property
    def event_source_arn(self) -> str:
        """The ARN of the queue."""
        return self._data["eventSourceARN"]  # type: ignore[no-any-return]

    @property
    def aws_region(self) -> str:
        """The region of the queue."""
        return self._data["awsRegion"]  # type: ignore[no-any-return]

    @property
    def queue_url(self) -> str:
        """The queue URL, rebuilt from the region, account and name in the queue ARN."""
        # arn:aws:sqs:<region>:<account>:<name>
        parts = self._data["eventSourceARN"].split(":")
        return f"https://sqs.{parts[3]}.amazonaws.com/{parts[4]}/{parts[5]}"
