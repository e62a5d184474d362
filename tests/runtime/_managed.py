"""Managed Instances runs: ``AWS_LAMBDA_MAX_CONCURRENCY`` workers, the log socket, no freeze, optional SIGTERM."""

from __future__ import annotations

import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._collectors import HangingCollector, OtlpReceiver
from ._emulator import Invocation, lambda_runtime
from ._support import INVOKE_WAIT_S, json_lines, orders, probes

WORKERS = 4
INVOCATIONS = 40
RECORDS = 10
SPANS_PER_INVOCATION = RECORDS + 1  # a batch span and one span per record
SIGTERM_GRACE_S = 2.0
"""How long the tests give workers between SIGTERM and SIGKILL (Lambda's grace for a runtime is 0.5 to 2 s)."""


def ended(pid: int) -> bool:
    """Whether ``pid`` has exited (gone, or a zombie nobody reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


def consumed(logs: str) -> float:
    """The records counted by the EMF documents in ``logs`` (``messaging.client.consumed.messages``)."""
    total = 0.0
    for line in json_lines(logs):
        if "_aws" in line:
            value = line.get("messaging.client.consumed.messages", 0)
            total += value["Sum"] if isinstance(value, dict) else value
    return total


@dataclass
class ManagedRun:
    invocations: list[Invocation]
    events: list[dict[str, Any]]
    spans: list[dict[str, Any]]
    logs: str
    spans_before_sigterm: int = 0
    spans_after_sigterm: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def walls_ms(self) -> list[float]:
        return [i.wall_s * 1000 for i in self.invocations]


def run_managed(
    tmp: Path,
    env: dict[str, str],
    *,
    invocations: int = INVOCATIONS,
    sigterm: bool = False,
    grace_s: float = SIGTERM_GRACE_S,
    expect_spans: bool = True,
    sequential: bool = False,
    trace_id: str | None = None,
    until: Callable[[], bool] | None = None,
) -> ManagedRun:
    """Start 4 workers, hand them ``invocations`` events at once, optionally SIGTERM them after the last response.

    With ``sigterm``, the spans counted are those that arrived by ``grace_s`` after SIGTERM (the process group is
    then killed, as Lambda kills it after its grace period).
    """
    with OtlpReceiver() as receiver, lambda_runtime(
        "app.lambda_handler",
        tmp,
        freeze=False,
        log_socket=True,
        **{"AWS_LAMBDA_MAX_CONCURRENCY": str(WORKERS), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **env},
    ) as (api, process, sock):
        assert sock is not None
        deadline = time.monotonic() + INVOKE_WAIT_S
        while api.next_calls < WORKERS and time.monotonic() < deadline:  # every worker imported and waiting
            time.sleep(0.02)
        assert api.next_calls >= WORKERS, f"only {api.next_calls} of {WORKERS} workers asked for an event"
        events = [orders(RECORDS, failing=1, tag=f"inv{i}") for i in range(invocations)]
        if sequential:  # one request in flight at a time: the latency of a request, without queueing
            pending = [api.run(event, INVOKE_WAIT_S, trace_id=trace_id) for event in events]
        else:
            pending = [api.invoke(event, trace_id=trace_id) for event in events]
        for invocation in pending:
            invocation.wait(INVOKE_WAIT_S)
        run = ManagedRun(pending, events, [], "")
        if sigterm:
            run.spans_before_sigterm = len(receiver.snapshot())
            run.extra["consumed_at_sigterm"] = consumed(sock.text())
            process.signal_group(signal.SIGTERM)
            time.sleep(grace_s)
            run.spans_after_sigterm = len(receiver.snapshot())
            pids = {p["pid"] for p in probes(sock.text())}
            run.extra["workers"] = pids
            run.extra["alive_after_grace"] = {pid for pid in pids if not ended(pid)}
            process.signal_group(signal.SIGKILL)
        elif expect_spans:
            receiver.wait_for(invocations * SPANS_PER_INVOCATION, 15.0)
        if until is not None:  # the workers stay up until the condition holds (bounded)
            deadline = time.monotonic() + 15.0
            while not until() and time.monotonic() < deadline:
                time.sleep(0.05)
        run.spans = receiver.snapshot()
        time.sleep(0.2)  # the last log lines through the socket
        run.logs = sock.text()
        return run


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(share * len(ordered)) - 1)]


def report(repeat: int = 3) -> None:
    """Print the Managed Instances figures, pooled over ``repeat`` runs of each case (cases interleaved)."""
    cases: list[tuple[str, dict[str, str], bool]] = [
        ("blocking flush (BATCHLENS_FLUSH=always)", {"BATCHLENS_FLUSH": "always"}, False),
        ("background export (BATCHLENS_FLUSH=never)", {"BATCHLENS_FLUSH": "never"}, False),
        ("default flush=auto", {}, False),
        ("blocking flush, SIGTERM", {"BATCHLENS_FLUSH": "always", "BATCHLENS_SIGTERM_FLUSH": "false"}, True),
        ("background, SIGTERM, no SIGTERM flush", {"BATCHLENS_FLUSH": "never", "BATCHLENS_SIGTERM_FLUSH": "false"}, True),
        ("background, SIGTERM, SIGTERM flush", {"BATCHLENS_FLUSH": "never"}, True),
        ("default flush=auto, SIGTERM", {}, True),
    ]
    walls: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    lost: dict[str, list[int]] = {label: [] for label, _, _ in cases}
    for _ in range(repeat):
        for label, env, sigterm in cases:
            with tempfile.TemporaryDirectory() as tmp:
                run = run_managed(Path(tmp), env, sigterm=sigterm)
            walls[label].extend(run.walls_ms)
            expected = len(run.invocations) * SPANS_PER_INVOCATION
            lost[label].append(expected - (run.spans_after_sigterm if sigterm else len(run.spans)))
    for label, _, _ in cases:
        ms = walls[label]
        print(
            f"{label:<42} n={len(ms)} median={statistics.median(ms):6.1f} ms p95={_percentile(ms, 0.95):6.1f} ms "
            f"max={max(ms):6.1f} ms  spans lost per run (of {INVOCATIONS * SPANS_PER_INVOCATION}): {lost[label]}",
            flush=True,
        )
    # one request at a time (4 workers idle but one): the latency a request gets from the flush alone
    for _ in range(repeat):
        for label, env in (("sequential, blocking flush", {"BATCHLENS_FLUSH": "always"}), ("sequential, default", {})):
            with tempfile.TemporaryDirectory() as tmp:
                walls.setdefault(label, []).extend(run_managed(Path(tmp), env, sequential=True).walls_ms)
    for label in ("sequential, blocking flush", "sequential, default"):
        ms = walls[label]
        print(
            f"{label:<42} n={len(ms)} median={statistics.median(ms):6.1f} ms p95={_percentile(ms, 0.95):6.1f} ms "
            f"max={max(ms):6.1f} ms",
            flush=True,
        )
    # a collector that accepts and never answers: what the blocking flush costs each request
    for label, env in (("hanging collector, blocking flush", {"BATCHLENS_FLUSH": "always"}), ("hanging collector, default", {})):
        with HangingCollector() as collector, tempfile.TemporaryDirectory() as tmp:
            run = run_managed(Path(tmp), {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}, expect_spans=False)
        ms = run.walls_ms
        print(f"{label:<42} n={len(ms)} median={statistics.median(ms):6.1f} ms max={max(ms):6.1f} ms", flush=True)
