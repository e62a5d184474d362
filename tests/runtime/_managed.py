"""Managed Instances runs: ``AWS_LAMBDA_MAX_CONCURRENCY`` workers, the log socket, no freeze, optional SIGTERM."""

from __future__ import annotations

import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._collectors import OtlpReceiver
from ._emulator import Invocation, lambda_runtime
from ._support import INVOKE_WAIT_S, orders

WORKERS = 4
INVOCATIONS = 40
RECORDS = 10
SPANS_PER_INVOCATION = RECORDS + 1  # a batch span and one span per record
SIGTERM_GRACE_S = 2.0
"""How long the tests give workers between SIGTERM and SIGKILL (Lambda's grace for a runtime is 0.5 to 2 s)."""


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
        AWS_LAMBDA_MAX_CONCURRENCY=str(WORKERS),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        **env,
    ) as (api, process, sock):
        assert sock is not None
        deadline = time.monotonic() + INVOKE_WAIT_S
        while api.next_calls < WORKERS and time.monotonic() < deadline:  # every worker imported and waiting
            time.sleep(0.02)
        assert api.next_calls >= WORKERS, f"only {api.next_calls} of {WORKERS} workers asked for an event"
        events = [orders(RECORDS, failing=1, tag=f"inv{i}") for i in range(invocations)]
        pending = [api.invoke(event) for event in events]
        for invocation in pending:
            invocation.wait(INVOKE_WAIT_S)
        run = ManagedRun(pending, events, [], "")
        if sigterm:
            run.spans_before_sigterm = len(receiver.snapshot())
            process.signal_group(signal.SIGTERM)
            time.sleep(grace_s)
            run.spans_after_sigterm = len(receiver.snapshot())
            process.signal_group(signal.SIGKILL)
        else:
            receiver.wait_for(invocations * SPANS_PER_INVOCATION, 15.0)
        run.spans = receiver.snapshot()
        time.sleep(0.2)  # the last log lines through the socket
        run.logs = sock.text()
        return run


def _summary(label: str, run: ManagedRun) -> str:
    ms = sorted(run.walls_ms)
    p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
    text = f"{label:<44} median={statistics.median(ms):7.1f} ms p95={p95:7.1f} ms max={ms[-1]:7.1f} ms"
    expected = len(run.invocations) * SPANS_PER_INVOCATION
    if run.spans_before_sigterm or run.spans_after_sigterm:
        text += (
            f"  spans: {run.spans_before_sigterm}/{expected} at SIGTERM, {run.spans_after_sigterm}/{expected} "
            f"after it (lost {expected - run.spans_after_sigterm})"
        )
    else:
        text += f"  spans: {len(run.spans)}/{expected}"
    return text


def report(repeat: int = 3) -> None:
    """Print the Managed Instances figures (latency per request, spans lost at SIGTERM) ``repeat`` times."""
    cases = [
        ("blocking flush (BATCHLENS_FLUSH=always)", {"BATCHLENS_FLUSH": "always"}, False),
        ("background export (BATCHLENS_FLUSH=never)", {"BATCHLENS_FLUSH": "never"}, False),
        ("blocking flush, SIGTERM", {"BATCHLENS_FLUSH": "always", "BATCHLENS_SIGTERM_FLUSH": "false"}, True),
        ("background, SIGTERM, no SIGTERM flush", {"BATCHLENS_FLUSH": "never", "BATCHLENS_SIGTERM_FLUSH": "false"}, True),
        ("background, SIGTERM, SIGTERM flush", {"BATCHLENS_FLUSH": "never"}, True),
        ("default (auto), SIGTERM", {}, True),
    ]
    for _ in range(repeat):
        for label, env, sigterm in cases:
            with tempfile.TemporaryDirectory() as tmp:
                print(_summary(label, run_managed(Path(tmp), env, sigterm=sigterm)), flush=True)
