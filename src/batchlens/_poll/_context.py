"""The Lambda side of an invocation: a context whose remaining time counts down, and a call bounded by it.

The handler runs on a worker thread and ``invoke`` stops waiting at the function timeout, as Lambda does. Unlike
Lambda, which ends the execution environment, Python cannot kill a thread: a handler that overran keeps running
in the background until it returns (its thread is a daemon, so it does not keep the process alive). Its late
result is ignored; side effects it has after the timeout still happen, so a handler that should stop at its
deadline should look at ``context.get_remaining_time_in_millis()``, as it would have to in Lambda.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FUNCTION_NAME", "Invocation", "invocation_note", "invoke", "make_context"]

FUNCTION_NAME = "batchlens-poll"
"""The function name the context carries (and its ARN and log group names)."""


def make_context(function_timeout_s: float, region: str, account_id: str) -> Any:
    """A Lambda context for one invocation: a fresh request id, remaining time counting down from the timeout."""
    from batchlens.testing import lambda_context

    return lambda_context(
        remaining_ms=int(function_timeout_s * 1000),
        function_name=FUNCTION_NAME,
        region=region,
        account_id=account_id,
        aws_request_id=str(uuid.uuid4()),
    )


@dataclass(frozen=True)
class Invocation:
    """How one invocation ended: ``ok`` with the handler's (JSON round-tripped) response, ``error`` or ``timeout``."""

    outcome: str
    response: Any = None
    error: BaseException | None = None
    duration_s: float = 0.0


def invoke(handler: Callable[[Any, Any], Any], event: dict[str, Any], context: Any, timeout_s: float) -> Invocation:
    """Call ``handler(event, context)`` on a worker thread, waiting at most ``timeout_s`` seconds for it."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["response"] = handler(event, context)
        except BaseException as exc:  # everything the handler raises is the invocation's error, as in Lambda
            box["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=run, name="batchlens-poll-invocation", daemon=True)
    worker.start()
    worker.join(timeout_s)
    duration = time.monotonic() - started
    if worker.is_alive():
        return Invocation("timeout", duration_s=duration)
    if "error" in box:
        return Invocation("error", error=box["error"], duration_s=duration)
    try:
        # Lambda serializes the response to JSON; what cannot be serialized fails the invocation
        response = json.loads(json.dumps(box.get("response")))
    except (TypeError, ValueError) as exc:
        return Invocation("error", error=exc, duration_s=duration)
    return Invocation("ok", response=response, duration_s=duration)


def invocation_note(invocation: Invocation) -> str:
    """The summary note of a failed invocation: the error's type and bounded message, or the timeout."""
    if invocation.outcome == "timeout":
        return "the handler ran past --function-timeout; the whole batch fails (its thread may still be running)"
    from batchlens._telemetry._errors import error_type, exception_message

    error = invocation.error
    if error is None:
        return "the invocation failed; the whole batch fails"
    first_line = " ".join((exception_message(error).splitlines() or [""])[0].split())
    if len(first_line) > 200:
        first_line = first_line[:199] + "…"
    return f"the handler raised {error_type(error)}: {first_line}; the whole batch fails"
