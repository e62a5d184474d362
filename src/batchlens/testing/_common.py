"""What the event factories share: the seeded generator, sample payloads and payload encoding.

Only the standard library is used.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_ACCOUNT_ID", "DEFAULT_COUNT", "DEFAULT_REGION", "Payload"]

DEFAULT_COUNT = 10
"""Records generated when neither payloads nor ``count`` are given (SQS's default batch size)."""

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"

# A fixed instant used instead of "now" when a seed is given, so seeded events are byte-for-byte stable.
_SEEDED_EPOCH_MS = 1_700_000_000_000

Payload = str | bytes | Mapping[str, Any]
"""A record payload: text, raw bytes, or a mapping that is JSON-encoded."""


# ----------------------------------------------------------------------------------------------------
# shared helpers


class _Generator:
    """Random source and clock shared by one factory call."""

    def __init__(self, seed: int | None, now_ms: int | None = None) -> None:
        self.rng = random.Random(seed)
        if now_ms is None:
            now_ms = _SEEDED_EPOCH_MS if seed is not None else int(time.time() * 1000)
        self.now_ms = now_ms

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(length * 4):0{length}x}"

    def token(self, length: int) -> str:
        # Opaque tokens (receipt handles, ids) leave out f/i/l/a so they never contain "fail" by chance.
        alphabet = "BCDEGHJKMNOPQRSTUVWXYZbcdeghjkmnopqrstuvwxyz0123456789"
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def failing_indexes(self, count: int, fail_rate: float) -> set[int]:
        failures = round(count * fail_rate)
        return set(self.rng.sample(range(count), failures))


def _check_fail_rate(fail_rate: float) -> None:
    # Written so that NaN fails the range check too.
    if not (isinstance(fail_rate, int | float) and 0.0 <= fail_rate <= 1.0):
        raise ValueError(f"fail_rate must be between 0.0 and 1.0, got {fail_rate!r}")


def _resolve_payloads(
    payloads: Sequence[Payload] | None,
    count: int | None,
    fail_rate: float,
    gen: _Generator,
    make: Callable[[int, bool], Payload],
    what: str,
) -> list[Payload]:
    """Return the explicit payloads, or ``count`` generated ones of which a ``fail_rate`` share fail."""
    _check_fail_rate(fail_rate)
    if payloads is not None:
        if isinstance(payloads, str | bytes | Mapping):
            raise TypeError(f"{what} must be a sequence of payloads, not a single {type(payloads).__name__}")
        if count is not None and count != len(payloads):
            raise ValueError(f"count={count} does not match the {len(payloads)} {what} given")
        if fail_rate:
            raise ValueError(f"fail_rate applies to generated payloads only; put 'fail' in the {what} instead")
        return list(payloads)
    n = DEFAULT_COUNT if count is None else count
    if n < 0:
        raise ValueError(f"count must not be negative, got {n}")
    failing = gen.failing_indexes(n, fail_rate)
    return [make(i, i in failing) for i in range(n)]


_ITEMS = ("keyboard", "mouse", "monitor", "headset")


def _sample_order(index: int, fails: bool) -> dict[str, Any]:
    # the fields the examples/getting_started_* handlers (and examples/sqs_fifo) read; a failing order's item
    # starts with "fail" and its amount is 0, so the examples that check those fail it too
    item = _ITEMS[index % len(_ITEMS)]
    return {
        "order_id": f"order-{index + 1:04d}",
        "status": "fail" if fails else "ok",
        "quantity": index + 1,
        "item": f"fail-{item}" if fails else item,
        "amount": 0 if fails else round(9.5 * (index % 7 + 1), 2),
    }


def _sample_click(index: int, fails: bool) -> dict[str, Any]:
    return {**_sample_order(index, fails), "page": f"/items/{_ITEMS[index % len(_ITEMS)]}", "user": f"user-{index % 5}"}


def _sample_payment(index: int, fails: bool) -> dict[str, Any]:
    return {**_sample_order(index, fails), "payment_id": f"payment-{index + 1:04d}"}


def _to_bytes(payload: Payload) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":")).encode()


def _to_text(payload: Payload) -> str:
    if isinstance(payload, bytes):
        return payload.decode()
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, separators=(",", ":"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
