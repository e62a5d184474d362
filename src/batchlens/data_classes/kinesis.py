"""Kinesis Data Streams records, property-compatible with Powertools' ``KinesisStreamRecord``."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from batchlens.data_classes._base import DictWrapper

__all__ = ["KinesisStreamRecord", "KinesisStreamRecordPayload"]

# Accept both zlib and gzip headers (CloudWatch Logs subscriptions deliver gzip).
_ZLIB_OR_GZIP = zlib.MAX_WBITS | 32


class KinesisStreamRecordPayload(DictWrapper):
    """The ``kinesis`` part of a record: the data blob and its position in the shard."""

    __slots__ = ()
    _repr_keys = ("partitionKey", "sequenceNumber")

    @property
    def approximate_arrival_timestamp(self) -> float:
        """When the record reached the stream, in epoch seconds."""
        return float(self._data["approximateArrivalTimestamp"])

    @property
    def data(self) -> str:
        """The data blob, base64 encoded."""
        return self._data["data"]  # type: ignore[no-any-return]

    @property
    def kinesis_schema_version(self) -> str:
        """The Kinesis record schema version."""
        return self._data["kinesisSchemaVersion"]  # type: ignore[no-any-return]

    @property
    def partition_key(self) -> str:
        """The key that chose the shard."""
        return self._data["partitionKey"]  # type: ignore[no-any-return]

    @property
    def sequence_number(self) -> str:
        """The record's sequence number in its shard, also the batch item failure identifier."""
        return self._data["sequenceNumber"]  # type: ignore[no-any-return]

    def data_as_bytes(self) -> bytes:
        """Return the data blob base64-decoded."""
        return base64.b64decode(self._data["data"])

    def data_as_text(self) -> str:
        """Return the data blob decoded as UTF-8 text."""
        return self.data_as_bytes().decode("utf-8")

    def data_as_json(self) -> Any:
        """Return the data blob parsed as JSON."""
        return self._json_deserializer(self.data_as_text())

    def data_zlib_compressed_as_json(self) -> Any:
        """Return the data blob decompressed (zlib or gzip) and parsed as JSON."""
        return json.loads(zlib.decompress(self.data_as_bytes(), _ZLIB_OR_GZIP))


class KinesisStreamRecord(DictWrapper):
    """One record of a Kinesis Data Streams event (an element of ``event["Records"]``)."""

    __slots__ = ()
    _repr_keys = ("eventID",)

    @property
    def aws_region(self) -> str:
        """The region of the stream."""
        return self._data["awsRegion"]  # type: ignore[no-any-return]

    @property
    def event_id(self) -> str:
        """``<shard id>:<sequence number>``."""
        return self._data["eventID"]  # type: ignore[no-any-return]

    @property
    def event_name(self) -> str:
        """Always ``aws:kinesis:record``."""
        return self._data["eventName"]  # type: ignore[no-any-return]

    @property
    def event_source(self) -> str:
        """Always ``aws:kinesis``."""
        return self._data["eventSource"]  # type: ignore[no-any-return]

    @property
    def event_source_arn(self) -> str:
        """The ARN of the stream."""
        return self._data["eventSourceARN"]  # type: ignore[no-any-return]

    @property
    def event_version(self) -> str:
        """The record format version, ``<major>.<minor>``."""
        return self._data["eventVersion"]  # type: ignore[no-any-return]

    @property
    def invoke_identity_arn(self) -> str:
        """The ARN of the role the event source mapping invoked the function with."""
        return self._data["invokeIdentityArn"]  # type: ignore[no-any-return]

    @property
    def kinesis(self) -> KinesisStreamRecordPayload:
        """The Kinesis payload: data blob, partition key, sequence number."""
        return KinesisStreamRecordPayload(self._data["kinesis"], self._json_deserializer)
