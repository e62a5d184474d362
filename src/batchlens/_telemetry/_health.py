"""Health of each flush target, so a dead exporter costs one invocation and not all of them.

A target (tracer provider, meter provider, Sentry) becomes *bad* when its flush is cut at the deadline, runs out its
whole timeout, or when one of its exporters fails (an export returns FAILURE or raises, or the exporter logs a
retry line). While a target is bad, a flush waits for it at most :data:`BAD_TARGET_WAIT_MS`; the flush itself
still runs in the background, so what is queued goes out once the far end answers again. It becomes good again when
one of its exports succeeds (targets whose exporters ``configure()`` wrapped, see ``_watch``) or, for targets
without a watched exporter, when a flush of it finishes within its caller's deadline. One warning on the
``batchlens`` logger says when a target goes bad, one when it recovers.

No SDK import here: the flush module uses this on every flush.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

__all__ = [
    "BAD_TARGET_WAIT_MS",
    "WAIT_VARIABLE",
    "TargetHealth",
    "attach",
    "failing_wait_ms",
    "health_of",
    "is_bad",
    "reset_all",
    "tracked",
]

BAD_TARGET_WAIT_MS = 40
"""The longest a flush waits for a target that is bad, unless ``BATCHLENS_FLUSH_FAILING_WAIT_MS`` says otherwise."""

WAIT_VARIABLE = "BATCHLENS_FLUSH_FAILING_WAIT_MS"

_CAUSE_LIMIT = 300
"""Causes quote exporter messages (an endpoint, an errno); never more than this many characters of them."""

_log = logging.getLogger("batchlens")


class TargetHealth:
    """Whether one flush target is bad, why, and which exporter messages were already let through while bad.

    Attributes:
        name: How warnings name the target (``tracer_provider``, ``meter_provider``, ``sentry``).
        monitored: Its exporters report every export (only an export that succeeds makes it good again).
    """

    __slots__ = ("_lines", "_lock", "bad", "cause", "monitored", "name")

    def __init__(self, name: str, *, monitored: bool = False) -> None:
        self.name = name
        self.monitored = monitored
        self.bad = False
        self.cause = ""
        self._lines: set[str] = set()
        self._lock = threading.Lock()

    def failed(self, cause: str, *, announce: bool = True) -> bool:
        """Mark the target bad; the first time (since it was last good) warn, unless the caller reports it.

        Returns:
            True when the target was good until now.
        """
        cause = cause[:_CAUSE_LIMIT]
        with self._lock:
            if self.bad:
                return False
            self.bad, self.cause = True, cause
            self._lines = set()
        if announce:
            _log.warning(
                "batchlens telemetry: %s is failing (%s); until one of its exports succeeds, flushes wait at most "
                "%d ms for it and its exporter's repeated messages are not printed",
                self.name,
                cause,
                failing_wait_ms(),
                extra={"batchlens_unhealthy": self.name, "batchlens_unhealthy_cause": cause},
            )
        return True

    def succeeded(self, how: str = "an export succeeded") -> None:
        """Mark the target good; warn once when it was bad, saying ``how`` it showed it works."""
        with self._lock:
            if not self.bad:
                return
            self.bad, self.cause = False, ""
            self._lines = set()
        _log.warning(
            "batchlens telemetry: %s recovered (%s); flushes wait for it until their deadline again",
            self.name,
            how,
            extra={"batchlens_recovered": self.name},
        )

    def let_through(self, line: str) -> bool:
        """Whether an exporter message should print: always while good, once per kind of message while bad."""
        with self._lock:
            if not self.bad:
                return True
            if line in self._lines:
                return False
            self._lines.add(line)
            return True

    def reset(self) -> None:
        """Good again, silently (after a SnapStart restore nothing of the snapshot's network state holds)."""
        with self._lock:
            self.bad, self.cause = False, ""
            self._lines = set()


# id(target) -> (a weak or strong reference to the target, its health). Targets that cannot be weakly referenced
# (plain objects) are held while bad; unmonitored entries go when their target is good again.
_lock = threading.Lock()
_entries: dict[int, tuple[Any, TargetHealth]] = {}


def _reference(target: object, key: int) -> Any:
    try:
        entry_ref: Any = None

        def gone(_: object) -> None:
            # no lock: the collector may call this on a thread that holds it
            current = _entries.get(key)
            if current is not None and current[0] is entry_ref:
                _entries.pop(key, None)

        entry_ref = weakref.ref(target, gone)
        return entry_ref
    except TypeError:
        return target


def _lookup(target: object) -> TargetHealth | None:
    entry = _entries.get(id(target))
    if entry is None:
        return None
    held = entry[0]
    current = held() if isinstance(held, weakref.ref) else held
    return entry[1] if current is target else None


_reported_variable: list[str] = []  # the invalid value of WAIT_VARIABLE already warned about


def failing_wait_ms() -> int:
    """How long a flush waits for a bad target: ``BATCHLENS_FLUSH_FAILING_WAIT_MS`` (>= 0), else 40 ms.

    A large value (5000) restores waiting the whole budget for every target. An invalid value is reported once and
    the default used: a flush never raises.
    """
    raw = os.environ.get(WAIT_VARIABLE, "").strip()
    if not raw:
        return BAD_TARGET_WAIT_MS
    try:
        value = int(raw)
        if value < 0:
            raise ValueError(raw)
    except ValueError:
        if _reported_variable != [raw]:
            _reported_variable[:] = [raw]
            _log.warning(
                "batchlens: %s=%r is not a whole number >= 0; flushes wait %d ms for failing targets",
                WAIT_VARIABLE,
                raw,
                BAD_TARGET_WAIT_MS,
            )
        return BAD_TARGET_WAIT_MS
    return value


def health_of(target: object) -> TargetHealth | None:
    """The health kept for ``target``, if any (a target without one is good)."""
    with _lock:
        return _lookup(target)


def is_bad(target: object) -> bool:
    """Whether flushes should wait for ``target`` at most :data:`BAD_TARGET_WAIT_MS`."""
    health = health_of(target)
    return health is not None and health.bad


def tracked(target: object, name: str) -> TargetHealth:
    """The health of ``target``, kept from now on (created good when there was none)."""
    with _lock:
        health = _lookup(target)
        if health is None:
            health = TargetHealth(name)
            key = id(target)
            _entries[key] = (_reference(target, key), health)
        return health


def attach(target: object, health: TargetHealth) -> None:
    """Keep ``health`` (fed by the target's watched exporters) as the health of ``target``."""
    with _lock:
        key = id(target)
        _entries[key] = (_reference(target, key), health)


def flush_finished(target: object, *, in_time: bool, timeout_ms: int, name: str) -> None:
    """What a finished flush says about its target: ran out its timeout (bad), or done in time (unmonitored: good).

    Args:
        target: The flushed target.
        in_time: The flush returned, without raising, before its callers' deadline.
        timeout_ms: The timeout it was given, when it ran that long (it gave up with work left); else 0.
        name: How warnings name the target.
    """
    if timeout_ms > 0:
        tracked(target, name).failed(f"its flush ran out its {timeout_ms} ms timeout")
        return
    health = health_of(target)
    if health is None or health.monitored or not in_time:
        return
    health.succeeded("a flush finished in time")
    with _lock:
        if not health.bad and _lookup(target) is health:
            del _entries[id(target)]


def reset_all() -> None:
    """Forget every target's bad state (a restored SnapStart snapshot starts with a network of its own)."""
    with _lock:
        healths = [health for _, health in _entries.values()]
    for health in healths:
        health.reset()


def _renew_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_lock_in_child)
