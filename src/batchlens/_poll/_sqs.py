"""SQS as Lambda's event source mapping polls it: gather a batch, invoke, delete what succeeded.

- With ``ReportBatchItemFailures`` the messages the response names stay in the queue and reappear after the
  visibility timeout; all others are deleted.
- Without it the response is not read (a ``batchItemFailures`` list in it is ignored, and every message is
  deleted, as Lambda does); the summary line says so.
- An error, a timeout or a malformed response leaves the whole batch in the queue.
- Redrive to a dead-letter queue is the queue's own ``RedrivePolicy``: SQS moves a message once its receive
  count passes ``maxReceiveCount``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from batchlens._poll._context import invocation_note
from batchlens._poll._events import sqs_record
from batchlens._poll._response import InvalidResponse, failed_identifiers
from batchlens._poll._summary import BatchSummary

__all__ = ["POLL_WAIT_S", "SqsSource"]

POLL_WAIT_S = 2
"""Long-poll wait of one ReceiveMessage call while the batch is empty (Lambda waits up to 20 s; 2 s keeps Ctrl-C
and ``--max-batches`` responsive)."""

_MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
_MAX_MESSAGE = 256 * 1024


class SqsSource:
    """One SQS queue, standard or FIFO."""

    settled_name = "deleted"
    idle_wait_s = 0.0  # the long poll already waits

    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        batch_size: int,
        batching_window_s: float,
        report_batch_item_failures: bool,
        invoke: Callable[[dict[str, Any], str], Any],
    ) -> None:
        self._client = client
        self._url = queue_url
        self._batch_size = batch_size
        self._window = batching_window_s
        self._report = report_batch_item_failures
        self._invoke = invoke
        self.until_empty = False  # set by the runner: look without waiting first, so a drained queue ends at once
        self.on_wait: Callable[[str], None] | None = None  # set by the runner: told what until_empty waits for
        self._last_wait: str | None = None
        names = ["QueueArn", "RedrivePolicy", "VisibilityTimeout"]
        attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names).get("Attributes", {})
        self.arn: str = attributes["QueueArn"]
        self.label = self.arn.rsplit(":", 1)[-1]
        self._visibility_s = attributes.get("VisibilityTimeout")
        self._counts: dict[str, str] = {}
        self._max_receive: int | None = None
        if attributes.get("RedrivePolicy"):
            try:
                self._max_receive = int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"])
            except (ValueError, KeyError, TypeError):
                self._max_receive = None

    # -- receiving -----------------------------------------------------------------------------------------------
    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        response = self._client.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages") or [])

    def next_batch(self, stop: threading.Event) -> list[dict[str, Any]]:
        """Gather up to the batch size within the batching window; empty when a long poll found nothing."""
        if stop.is_set():
            return []
        messages = self._receive(min(10, self._batch_size), 0) if self.until_empty else []
        if not messages and not (self.until_empty and self.drained()):
            if self.until_empty:
                self._announce_wait()
            messages = self._receive(min(10, self._batch_size), POLL_WAIT_S)
        if not messages:
            return []
        deadline = time.monotonic() + self._window
        size = sum(len(m.get("Body", "")) for m in messages)
        while len(messages) < self._batch_size and size + _MAX_MESSAGE <= _MAX_PAYLOAD:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(min(10, self._batch_size - len(messages)), min(20, math.floor(remaining)))
            if not more and remaining < 1:
                time.sleep(min(0.05, remaining))
            messages.extend(more)
            size += sum(len(m.get("Body", "")) for m in more)
        return messages

    # -- one batch -----------------------------------------------------------------------------------------------
    def poll_once(self, number: int, stop: threading.Event) -> BatchSummary | None:
        """Receive a batch, invoke the handler, delete what Lambda would delete; None when nothing came."""
        messages = self.next_batch(stop)
        if not messages:
            return None
        started = time.monotonic()
        records = [sqs_record(message, self.arn) for message in messages]
        ids = [record["messageId"] for record in records]
        invocation = self._invoke({"Records": records}, self.arn)
        notes: list[str] = []
        keep: set[str]
        outcome = invocation.outcome
        if outcome != "ok":
            keep = set(ids)
            notes.append(invocation_note(invocation))
        elif not self._report:
            keep = set()
            ignored = _reported_count(invocation.response)
            if ignored:
                notes.append(
                    f"{ignored} batchItemFailures ignored: --report-batch-item-failures is off (Lambda's default), "
                    f"so every message was deleted"
                )
        else:
            try:
                keep = set(failed_identifiers(invocation.response, ids))
            except InvalidResponse as problem:
                outcome = "invalid-response"
                keep = set(ids)
                notes.append(f"invalid response, the whole batch fails: {problem}")
            else:
                outcome = "partial" if keep else "ok"
        to_delete = [(m["MessageId"], m["ReceiptHandle"]) for m in messages if m["MessageId"] not in keep]
        not_deleted = self._delete(to_delete)
        if not_deleted:
            notes.append(f"{not_deleted} deletes failed (receipt handle expired?); those messages come back")
        if self._max_receive is not None and keep:
            last = sum(
                1
                for m in messages
                if m["MessageId"] in keep
                and int((m.get("Attributes") or {}).get("ApproximateReceiveCount", "0")) >= self._max_receive
            )
            if last:
                notes.append(f"{last} go to the DLQ on their next receive (maxReceiveCount={self._max_receive})")
        else:
            last = 0
        return BatchSummary(
            number=number,
            source=self.label,
            records=len(messages),
            failed=len(keep),
            settled=len(to_delete) - not_deleted,
            retried=len(keep) + not_deleted,
            wall_s=time.monotonic() - started,
            outcome=outcome,
            notes=notes,
            to_dlq=last,
        )

    def _delete(self, entries: list[tuple[str, str]]) -> int:
        """Delete in chunks of ten; return how many deletes failed."""
        failed = 0
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            response = self._client.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": handle} for i, (_, handle) in enumerate(chunk)],
            )
            failed += len(response.get("Failed") or [])
        return failed

    def drained(self) -> bool:
        """No message visible, in flight or delayed."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self._url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        ).get("Attributes", {})
        self._counts = attributes
        return all(int(value) == 0 for value in attributes.values())

    @property
    def has_dlq(self) -> bool:
        """Whether the queue has a redrive policy (a dead-letter queue)."""
        return self._max_receive is not None

    def _announce_wait(self) -> None:
        note = self.waiting_note()
        if note and note != self._last_wait and self.on_wait is not None:
            self.on_wait(note)
        self._last_wait = note

    def waiting_note(self) -> str | None:
        """What ``--until-empty`` waits for when the last :meth:`drained` said no, or None."""
        in_flight = int(self._counts.get("ApproximateNumberOfMessagesNotVisible", 0) or 0)
        delayed = int(self._counts.get("ApproximateNumberOfMessagesDelayed", 0) or 0)
        if not in_flight and not delayed:
            return None
        parts = []
        if in_flight:
            timeout = f", visibility timeout {self._visibility_s} s" if self._visibility_s else ""
            parts.append(f"{in_flight} in-flight message(s) to come back{timeout}")
        if delayed:
            parts.append(f"{delayed} delayed message(s)")
        return f"waiting for {' and '.join(parts)} before the queue counts as empty"


def _reported_count(response: Any) -> int:
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    return len(failures) if isinstance(failures, list) else 0
