"""What one batch did, and the one line ``batchlens poll`` prints for it on stderr."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["BatchSummary", "Totals"]


@dataclass
class BatchSummary:
    """The outcome of one invocation and what was done with its records.

    ``outcome`` is ``ok``, ``partial`` (some records reported failed), ``error`` (the handler raised),
    ``timeout`` or ``invalid-response``. For SQS, ``settled`` counts deleted messages; for streams, records the
    checkpoint moved past. ``retried`` counts records that will be delivered again, ``discarded`` stream records
    dropped after the retry limit or maximum age.
    """

    number: int
    source: str
    records: int
    failed: int
    settled: int
    retried: int
    wall_s: float
    outcome: str
    settled_name: str = "deleted"
    discarded: int = 0
    notes: list[str] = field(default_factory=list)
    to_dlq: int = 0  # SQS: failed messages past maxReceiveCount, which SQS moves to the DLQ at their next receive

    def line(self) -> str:
        """The summary line: ``key=value`` pairs after a fixed prefix, notes after ``--``."""
        parts = [
            f"batchlens poll: batch {self.number}",
            f"source={self.source}",
            f"records={self.records}",
            f"failed={self.failed}",
            f"{self.settled_name}={self.settled}",
            f"retried={self.retried}",
        ]
        if self.discarded:
            parts.append(f"discarded={self.discarded}")
        parts.append(f"wall={self.wall_s:.3f}s")
        parts.append(f"outcome={self.outcome}")
        text = " ".join(parts)
        if self.notes:
            text += " -- " + "; ".join(self.notes)
        return text


@dataclass
class Totals:
    """Sums over every batch of a run, for the closing line."""

    batches: int = 0
    records: int = 0
    failed: int = 0
    settled: int = 0
    retried: int = 0
    discarded: int = 0
    to_dlq: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, summary: BatchSummary) -> None:
        """Count one batch."""
        self.batches += 1
        self.records += summary.records
        self.failed += summary.failed
        self.settled += summary.settled
        self.retried += summary.retried
        self.discarded += summary.discarded
        self.to_dlq += summary.to_dlq
        self.outcomes[summary.outcome] = self.outcomes.get(summary.outcome, 0) + 1

    def write(self, out: TextIO, settled_name: str, wall_s: float, reason: str, dlq: bool = False) -> None:
        """Print the closing line; ``dlq``: the source has a dead-letter queue, so say how many went there."""
        outcomes = ",".join(f"{name}:{count}" for name, count in sorted(self.outcomes.items())) or "none"
        to_dlq = f" dlq={self.to_dlq}" if dlq else ""
        print(
            f"batchlens poll: stopped ({reason}) batches={self.batches} records={self.records} "
            f"failed={self.failed} {settled_name}={self.settled} retried={self.retried} "
            f"discarded={self.discarded}{to_dlq} wall={wall_s:.3f}s outcomes={outcomes}",
            file=out,
            flush=True,
        )
