"""The two stream APIs ``batchlens poll`` reads, behind one small interface: Kinesis and DynamoDB Streams."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from batchlens._poll._events import dynamodb_record, kinesis_record

__all__ = ["DynamoDBStreamApi", "KinesisApi", "StreamApi"]


class StreamApi(Protocol):
    """What the stream poller needs from a stream service."""

    kind: str
    arn: str
    label: str
    max_limit: int  # the most records one GetRecords call returns

    def shards(self) -> list[str]:
        """The shard ids to read."""

    def iterator(self, shard_id: str, position: str, timestamp: datetime | None) -> str | None:
        """A shard iterator at the starting position."""

    def get(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """``GetRecords``: the records, the next iterator (None once a closed shard is read), ms behind latest."""

    def build(self, record: dict[str, Any], shard_id: str) -> dict[str, Any]:
        """The Lambda event record of one API record."""

    def sequence(self, record: dict[str, Any]) -> str:
        """The record's sequence number (the ``itemIdentifier`` of a partial-batch response)."""

    def arrival(self, record: dict[str, Any]) -> float:
        """When the record reached the stream, in epoch seconds (for ``--maximum-record-age``)."""


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


class KinesisApi:
    """A Kinesis data stream, by name or ARN."""

    kind = "kinesis"
    max_limit = 10_000

    def __init__(self, client: Any, stream: str) -> None:
        self._client = client
        key = {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}
        summary = client.describe_stream_summary(**key)["StreamDescriptionSummary"]
        self.arn = summary["StreamARN"]
        self.label = summary["StreamName"]
        self._key = {"StreamARN": self.arn} if stream.startswith("arn:") else {"StreamName": self.label}

    def shards(self) -> list[str]:
        shards: list[str] = []
        kwargs: dict[str, Any] = dict(self._key)
        while True:
            page = self._client.list_shards(**kwargs)
            shards.extend(shard["ShardId"] for shard in page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}

    def iterator(self, shard_id: str, position: str, timestamp: datetime | None) -> str | None:
        kwargs: dict[str, Any] = {**self._key, "ShardId": shard_id, "ShardIteratorType": position}
        if timestamp is not None:
            kwargs["Timestamp"] = timestamp
        iterator: str | None = self._client.get_shard_iterator(**kwargs).get("ShardIterator")
        return iterator

    def get(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None, int | None]:
        page = self._client.get_records(ShardIterator=iterator, Limit=limit)
        return list(page.get("Records") or []), page.get("NextShardIterator"), page.get("MillisBehindLatest")

    def build(self, record: dict[str, Any], shard_id: str) -> dict[str, Any]:
        return kinesis_record(record, shard_id, self.arn)

    def sequence(self, record: dict[str, Any]) -> str:
        return str(record["SequenceNumber"])

    def arrival(self, record: dict[str, Any]) -> float:
        return _epoch(record["ApproximateArrivalTimestamp"])


class DynamoDBStreamApi:
    """The stream of a DynamoDB table (by table name), or a DynamoDB stream ARN."""

    kind = "dynamodb"
    max_limit = 1_000

    def __init__(self, dynamodb: Any, streams: Any, table_or_arn: str) -> None:
        self._streams = streams
        if table_or_arn.startswith("arn:"):
            self.arn = table_or_arn
        else:
            table = dynamodb.describe_table(TableName=table_or_arn)["Table"]
            arn = table.get("LatestStreamArn")
            if not arn or not (table.get("StreamSpecification") or {}).get("StreamEnabled", True):
                raise LookupError(f"table {table_or_arn!r} has no stream enabled")
            self.arn = arn
        self.label = self.arn.split(":table/", 1)[-1].split("/stream/", 1)[0]

    def shards(self) -> list[str]:
        shards: list[str] = []
        kwargs: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(shard["ShardId"] for shard in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs = {"StreamArn": self.arn, "ExclusiveStartShardId": last}

    def iterator(self, shard_id: str, position: str, timestamp: datetime | None) -> str | None:
        iterator: str | None = self._streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard_id, ShardIteratorType=position
        ).get("ShardIterator")
        return iterator

    def get(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None, int | None]:
        page = self._streams.get_records(ShardIterator=iterator, Limit=limit)
        return list(page.get("Records") or []), page.get("NextShardIterator"), None

    def build(self, record: dict[str, Any], shard_id: str) -> dict[str, Any]:
        return dynamodb_record(record, self.arn)

    def sequence(self, record: dict[str, Any]) -> str:
        return str(record["dynamodb"]["SequenceNumber"])

    def arrival(self, record: dict[str, Any]) -> float:
        return _epoch(record["dynamodb"]["ApproximateCreationDateTime"])
