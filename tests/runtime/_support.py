"""Shared helpers of the runtime tests: events, output parsing, timing runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchlens.testing import sqs_event

from ._emulator import lambda_runtime

WARM = 20
"""Warm invocations per timing run (after the cold one), as the issue's target counts them."""
TARGET_MARGIN_S = 0.050
"""The issue's target: slowest warm invocation <= slowest with traces="none" + 50 ms."""
INVOKE_WAIT_S = 30.0
"""The longest a test waits for one invocation's result (Lambda's own deadline header says 3 s)."""
BATCH_COUNT = "messaging.batch.message_count"


def orders(count: int = 2, *, failing: int = 1, tag: str = "") -> dict[str, Any]:
    """An SQS event of ``count`` orders, the last ``failing`` of them raising in the handler."""
    bodies = [
        {"order_id": i, "tag": tag, **({"fail": True} if i >= count - failing else {})} for i in range(count)
    ]
    return sqs_event(bodies)


def message_ids(event: dict[str, Any]) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


def failing_ids(event: dict[str, Any]) -> list[str]:
    return [r["messageId"] for r in event["Records"] if json.loads(r["body"]).get("fail")]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` that is a JSON object (other lines are skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def probes(text: str) -> list[dict[str, Any]]:
    """The ``{"probe": ...}`` lines the test handlers print, one per invocation."""
    return [line["probe"] for line in json_lines(text) if "probe" in line]


def batch_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [span for span in spans if BATCH_COUNT in span["attributes"]]


def warm_walls(tmp: Path, env: dict[str, str], limit_s: float | None = None, count: int = WARM) -> list[float]:
    """Wall times (s) of ``count`` warm invocations of the README set-up (after one cold one).

    With ``limit_s`` the run stops at the first invocation slower than it (the assertion message names it), so
    a run that misses the target costs one slow invocation, not twenty.
    """
    walls: list[float] = []
    with lambda_runtime("app.lambda_handler", tmp, **env) as (api, _process, _):
        cold = api.run(orders(), INVOKE_WAIT_S)
        assert cold.kind == "response", cold.body
        for index in range(count):
            invocation = api.run(orders(), INVOKE_WAIT_S)
            assert invocation.kind == "response", invocation.body
            walls.append(invocation.wall_s)
            if limit_s is not None:
                assert invocation.wall_s <= limit_s, (
                    f"warm invocation {index + 1} took {invocation.wall_s * 1000:.1f} ms, "
                    f"over the target {limit_s * 1000:.1f} ms"
                )
    return walls
