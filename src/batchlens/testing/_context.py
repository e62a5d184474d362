"""A fake Lambda context for calling a handler outside Lambda.

Only the standard library is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from batchlens.testing._common import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, _Generator

__all__ = ["FakeLambdaContext", "lambda_context"]


class FakeLambdaContext:
    """A stand-in for the Lambda runtime's context object, with the same attributes.

    ``get_remaining_time_in_millis()`` counts down from the budget given at creation as real (or injected
    clock) time passes, unless the context was created frozen or with a callable.

    Attributes:
        function_name: Name of the function.
        function_version: Version being executed (``$LATEST`` by default).
        invoked_function_arn: ARN used to invoke the function.
        memory_limit_in_mb: Configured memory.
        aws_request_id: Id of this invocation.
        log_group_name: CloudWatch log group of the function.
        log_stream_name: CloudWatch log stream of the execution environment.
        identity: Cognito identity (``None`` outside mobile SDK invocations).
        client_context: Mobile client context (``None`` outside mobile SDK invocations).
        tenant_id: Tenant id of tenant-isolated functions (``None`` otherwise).
    """

    def __init__(
        self,
        *,
        function_name: str,
        function_version: str,
        invoked_function_arn: str,
        memory_limit_in_mb: int,
        aws_request_id: str,
        log_group_name: str,
        log_stream_name: str,
        remaining: Callable[[], int],
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._remaining = remaining

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left before the invocation times out (never negative)."""
        return max(0, int(self._remaining()))

    def __repr__(self) -> str:
        return (
            f"FakeLambdaContext(function_name={self.function_name!r}, "
            f"aws_request_id={self.aws_request_id!r}, "
            f"remaining_ms={self.get_remaining_time_in_millis()})"
        )


def lambda_context(
    *,
    remaining_ms: int | Callable[[], int] = 30_000,
    frozen: bool = False,
    function_name: str = "batch-handler",
    function_version: str = "$LATEST",
    memory_limit_in_mb: int = 512,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    aws_request_id: str | None = None,
    seed: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> FakeLambdaContext:
    """Build a fake Lambda context for calling a handler outside Lambda.

    Args:
        remaining_ms: Time budget of the invocation in milliseconds, counted down from creation; or a
            callable returning the remaining milliseconds on every call (for full control in tests).
        frozen: Keep returning ``remaining_ms`` instead of counting down.
        function_name: Function name; also used in the ARN and log group.
        function_version: Function version.
        memory_limit_in_mb: Configured memory.
        region: Region used in the function ARN.
        account_id: Account used in the function ARN.
        aws_request_id: Request id; random (or derived from ``seed``) when omitted.
        seed: Makes the generated request id and log stream name deterministic.
        clock: Monotonic clock in seconds driving the countdown; inject one to test deadlines without
            sleeping.
        traceparent: A direct caller's W3C ``traceparent``: the context then has ``w3c()``, as Lambda's runtime
            client (awslambdaric 4.2+) gives it, returning this and ``tracestate`` when given. Without it the
            context has no ``w3c`` method, like a context from an event source mapping.
        tracestate: The caller's ``tracestate``, returned by ``w3c()`` beside ``traceparent``.

    Returns:
        A :class:`FakeLambdaContext`.
    """
    gen = _Generator(seed)
    if callable(remaining_ms):
        remaining: Callable[[], int] = remaining_ms
    elif frozen:
        fixed = int(remaining_ms)

        def remaining() -> int:
            return fixed

    else:
        deadline = clock() + remaining_ms / 1000

        def remaining() -> int:
            return int((deadline - clock()) * 1000)

    day = datetime.fromtimestamp(gen.now_ms / 1000, tz=timezone.utc).strftime("%Y/%m/%d")
    context = FakeLambdaContext(
        function_name=function_name,
        function_version=function_version,
        invoked_function_arn=f"arn:aws:lambda:{region}:{account_id}:function:{function_name}",
        memory_limit_in_mb=memory_limit_in_mb,
        aws_request_id=aws_request_id or gen.uuid4(),
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name=f"{day}/[{function_version}]{gen.hex(32)}",
        remaining=remaining,
    )
    if traceparent is not None:
        carrier = {"traceparent": traceparent}
        if tracestate is not None:
            carrier["tracestate"] = tracestate

        def w3c() -> dict[str, str]:
            return dict(carrier)

        context.w3c = w3c  # type: ignore[attr-defined]
    return context
