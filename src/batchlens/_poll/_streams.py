"""Kinesis and DynamoDB Streams as Lambda's event source mapping reads them.

Per shard, in order, one batch in flight per shard (shards take turns here; Lambda reads them concurrently):

- a batch that succeeds moves the shard's checkpoint past its last record;
- with ``ReportBatchItemFailures``, the checkpoint moves to just before the lowest reported sequence number and
  the next batch starts there (so nothing after a failed record is skipped);
- an error, a timeout or a malformed response fails the whole batch: it is retried, or, with
  ``--bisect-on-error``, split in two halves that are retried one after the other (a split does not count as a
  retry, as in Lambda; a partial-batch response is retried from the failed record, without a split);
- after ``--maximum-retry-attempts`` retries (-1: no limit) the failed records are discarded and the checkpoint
  moves past them; records older than ``--maximum-record-age`` seconds (-1: no limit) are discarded before they
  are sent. Lambda would send what it discards to an on-failure destination; here the summary line names it.

The checkpoint lives in memory: a new ``batchlens poll`` starts again at ``--starting-position``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batchlens._poll._context import invocation_note
from batchlens._poll._response import InvalidResponse, failed_identifiers
from batchlens._poll._stream_apis import StreamApi
from batchlens._poll._summary import BatchSummary

__all__ = ["StreamSource"]


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    buffer: list[dict[str, Any]] = field(default_factory=list)  # read, not yet behind the checkpoint
    checkpoint: str | None = None
    attempts: int = 0  # failed invocations at the current head since the checkpoint last moved past a failure
    splits: list[int] = field(default_factory=list)  # sizes of bisected sub-batches still to deliver
    caught_up: bool = False


class StreamSource:
    """Every shard of one Kinesis stream or DynamoDB stream."""

    settled_name = "checkpointed"
    idle_wait_s = 0.5  # between reads of idle shards (Lambda reads each shard about once a second)

    def __init__(
        self,
        api: StreamApi,
        *,
        batch_size: int,
        batching_window_s: float,
        report_batch_item_failures: bool,
        starting_position: str,
        starting_timestamp: datetime | None,
        bisect_on_error: bool,
        maximum_retry_attempts: int,
        maximum_record_age_s: int,
        invoke: Any,
    ) -> None:
        self._api = api
        self.arn = api.arn
        self.label = api.label
        self._batch_size = batch_size
        self._window = batching_window_s
        self._report = report_batch_item_failures
        self._bisect = bisect_on_error
        self._max_retries = maximum_retry_attempts
        self._max_age = maximum_record_age_s
        self._invoke = invoke
        self._shards = [
            _Shard(shard_id, api.iterator(shard_id, starting_position, starting_timestamp)) for shard_id in api.shards()
        ]
        self._turn = 0

    @property
    def checkpoints(self) -> dict[str, str | None]:
        """The sequence number each shard's checkpoint is at (None: nothing checkpointed yet)."""
        return {shard.shard_id: shard.checkpoint for shard in self._shards}

    # -- reading -------------------------------------------------------------------------------------------------
    def _fill(self, shard: _Shard, want: int, stop: threading.Event) -> None:
        deadline = time.monotonic() + self._window
        first = True
        while len(shard.buffer) < want and shard.iterator is not None:
            if not first and time.monotonic() >= deadline and not shard.buffer:
                break
            first = False
            limit = min(self._api.max_limit, want - len(shard.buffer))
            records, shard.iterator, behind = self._api.get(shard.iterator, limit)
            if records:
                shard.buffer.extend(records)
                shard.caught_up = False
                if behind == 0 and time.monotonic() >= deadline:
                    break
                continue
            shard.caught_up = behind is None or behind == 0
            remaining = deadline - time.monotonic()
            if not shard.buffer or remaining <= 0 or stop.is_set():
                break
            stop.wait(min(0.2, remaining))

    def _expire(self, shard: _Shard) -> list[str]:
        if self._max_age < 0:
            return []
        oldest = time.time() - self._max_age
        expired: list[str] = []
        while shard.buffer and self._api.arrival(shard.buffer[0]) < oldest:
            expired.append(self._advance(shard, 1)[0])
        return expired

    def _advance(self, shard: _Shard, count: int) -> list[str]:
        passed = [self._api.sequence(record) for record in shard.buffer[:count]]
        if passed:
            shard.checkpoint = passed[-1]
            del shard.buffer[:count]
        return passed

    # -- one batch -----------------------------------------------------------------------------------------------
    def poll_once(self, number: int, stop: threading.Event) -> BatchSummary | None:
        """Invoke the handler with the next batch of the next shard that has records; None when none has."""
        for _ in range(len(self._shards)):
            shard = self._shards[self._turn % len(self._shards)]
            self._turn += 1
            if stop.is_set():
                return None
            size = shard.splits[0] if shard.splits else self._batch_size
            self._fill(shard, size, stop)
            expired = self._expire(shard)
            if shard.buffer:
                return self._run(number, shard, min(size, len(shard.buffer)), expired)
            if expired:
                return self._expired_only(number, shard, expired)
        return None

    def _expired_only(self, number: int, shard: _Shard, expired: list[str]) -> BatchSummary:
        return BatchSummary(
            number=number,
            source=f"{self.label}/{shard.shard_id}",
            records=0,
            failed=0,
            settled=0,
            retried=0,
            wall_s=0.0,
            outcome="expired",
            settled_name=self.settled_name,
            discarded=len(expired),
            notes=[f"{len(expired)} records older than --maximum-record-age discarded"],
        )

    def _run(self, number: int, shard: _Shard, size: int, expired: list[str]) -> BatchSummary:
        started = time.monotonic()
        batch = shard.buffer[:size]
        ids = [self._api.sequence(record) for record in batch]
        event = {"Records": [self._api.build(record, shard.shard_id) for record in batch]}
        invocation = self._invoke(event, self.arn)
        notes: list[str] = []
        if expired:
            notes.append(f"{len(expired)} records older than --maximum-record-age discarded")
        outcome = invocation.outcome
        failed_at: int | None = 0  # index of the first record to retry; None: the whole batch succeeded
        failed = len(batch)
        if outcome != "ok":
            notes.append(invocation_note(invocation))
        elif not self._report:
            failed_at = None
        else:
            try:
                reported = failed_identifiers(invocation.response, ids)
            except InvalidResponse as problem:
                outcome = "invalid-response"
                notes.append(f"invalid response, the whole batch fails: {problem}")
            else:
                failed_at = min((ids.index(identifier) for identifier in reported), default=None)
                failed = len(reported)
                outcome = "partial" if reported else "ok"

        checkpointed = discarded = 0
        if failed_at is None:
            checkpointed = len(self._advance(shard, len(batch)))
            shard.attempts = 0
            if shard.splits:
                shard.splits.pop(0)
            failed = 0
        elif outcome == "partial":
            checkpointed = len(self._advance(shard, failed_at))
            shard.attempts = 1 if failed_at else shard.attempts + 1
            if shard.splits:
                shard.splits[0] = len(batch) - failed_at
        elif self._bisect and len(batch) > 1:
            halves = [math.ceil(len(batch) / 2), len(batch) // 2]
            shard.splits[:1] = halves
            notes.append(f"bisected into {halves[0]}+{halves[1]}")
        else:
            shard.attempts += 1
        if failed_at is not None and 0 <= self._max_retries < shard.attempts:
            retry = len(batch) - (failed_at if outcome == "partial" else 0)
            dropped = self._advance(shard, retry)
            discarded = len(dropped)
            shard.attempts = 0
            if shard.splits:
                shard.splits.pop(0)
            notes.append(
                f"retries exhausted (--maximum-retry-attempts {self._max_retries}): {discarded} records discarded, "
                f"sequence numbers {dropped[0]}..{dropped[-1]}"
            )
        return BatchSummary(
            number=number,
            source=f"{self.label}/{shard.shard_id}",
            records=len(batch),
            failed=failed,
            settled=checkpointed,
            retried=len(batch) - checkpointed - discarded,
            wall_s=time.monotonic() - started,
            outcome=outcome,
            settled_name=self.settled_name,
            discarded=discarded + len(expired),
            notes=notes,
        )

    def drained(self) -> bool:
        """Every shard has no unprocessed record and its last read found nothing new."""
        return all(not shard.buffer and (shard.caught_up or shard.iterator is None) for shard in self._shards)
