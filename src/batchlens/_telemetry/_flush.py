"""One wall-clock deadline for flushing every telemetry pipeline before the Lambda sandbox freezes.

The SDK's ``force_flush`` calls do not always honour their timeout: ``BatchSpanProcessor.force_flush`` waits for
an export in progress, and an OTLP exporter facing a collector that accepts connections and never answers waits
for its own (10 s) timeout. Holding the handler that long times the invocation out, and Lambda retries the whole
batch. So each pipeline is flushed on a daemon thread, all of them at once, and the caller waits for them only
until the shared deadline. A flush still running at the deadline is abandoned, not stopped: it finishes on its own
when the exporter answers or gives up.

At most one flush per target (provider, Sentry client) runs at a time. When the next flush arrives while an
abandoned one is still stuck, no second thread is started to queue behind the same lock; the caller waits (within
its own deadline) for the running one and starts a fresh flush if it ends in time. A stuck exporter therefore
costs one thread per target, not one per invocation, and the batch processor's queue keeps taking spans, which
the resumed export sends once the exporter recovers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DEFAULT_FLUSH_MS", "FLUSH_SAFETY_MARGIN_MS", "FlushTask", "flush_budget_ms", "flush_within"]

FLUSH_SAFETY_MARGIN_MS = 300
"""Leave this much of the invocation's remaining time unused by the flush."""

DEFAULT_FLUSH_MS = 5000
"""The longest a flush may take (and its budget without a Lambda context)."""

_log = logging.getLogger("batchlens")

FlushTask = tuple[str, object, Callable[[int], object]]
"""``(name, target, flush)``: a name for the report, the object flushed (one flush at a time per target) and a
callable taking the timeout in milliseconds."""

_lock = threading.Lock()
# target id -> (target, thread): only flushes still running are listed; each removes itself when it ends
_running: dict[int, tuple[object, threading.Thread]] = {}


def flush_budget_ms(context: Any = None, cap_ms: int = DEFAULT_FLUSH_MS) -> int:
    """The flush budget: ``min(remaining time - 300 ms, cap_ms)``, or ``cap_ms`` without a (usable) context.

    Args:
        context: The Lambda context, or None.
        cap_ms: The longest the flush may take.

    Returns:
        Milliseconds, never negative.
    """
    budget = max(0, int(cap_ms))
    if context is None:
        return budget
    try:
        remaining = float(context.get_remaining_time_in_millis())
    except Exception:
        return budget
    if math.isnan(remaining) or math.isinf(remaining):
        return budget
    return max(0, min(budget, int(remaining) - FLUSH_SAFETY_MARGIN_MS))


def _remaining_s(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _run(key: int, flush: Callable[[int], object], timeout_ms: int, errors: list[BaseException]) -> None:
    try:
        flush(timeout_ms)
    except Exception as exc:  # reported by the caller when it is still waiting
        errors.append(exc)
    finally:
        with _lock:
            entry = _running.get(key)
            if entry is not None and entry[1] is threading.current_thread():
                del _running[key]


def _start(
    name: str, target: object, flush: Callable[[int], object], deadline: float
) -> tuple[threading.Thread, list[BaseException], bool]:
    """Start ``flush`` on a daemon thread: ``(thread, errors, True)``; or, when a flush of ``target`` is still
    running, leave it alone and return ``(its thread, [], False)``."""
    key = id(target)
    errors: list[BaseException] = []
    timeout_ms = round(_remaining_s(deadline) * 1000)
    thread = threading.Thread(
        target=_run, args=(key, flush, timeout_ms, errors), name=f"batchlens-flush-{name}", daemon=True
    )
    with _lock:
        entry = _running.get(key)
        if entry is not None and entry[1].is_alive():
            return entry[1], [], False
        _running[key] = (target, thread)
        thread.start()
    return thread, errors, True


def flush_within(
    tasks: Sequence[FlushTask],
    budget_ms: int,
    on_error: Callable[[int, BaseException], None] | None = None,
) -> list[str]:
    """Run every flush at once and wait for them until ``budget_ms`` has passed, never longer.

    A cut flush is reported with one warning on the ``batchlens`` logger naming the cut targets.

    Args:
        tasks: ``(name, target, flush)`` triples; ``flush`` is called with the milliseconds left.
        budget_ms: Wall-clock budget shared by all tasks.
        on_error: Called with the index (in ``tasks``) and exception of a flush that raised within the budget;
            without it the exception is logged.

    Returns:
        The names of the flushes still running at the deadline (empty when everything finished).
    """
    deadline = time.monotonic() + max(0, budget_ms) / 1000
    cut: list[str] = []
    if budget_ms <= 0:
        cut = [name for name, _, _ in tasks]
        if cut:
            _report(cut, budget_ms, "no time was left to flush")
        return cut
    started: list[tuple[int, threading.Thread, list[BaseException]]] = []
    waiting: list[tuple[int, threading.Thread]] = []
    for index, (name, target, flush) in enumerate(tasks):
        thread, errors, fresh = _start(name, target, flush, deadline)
        if fresh:
            started.append((index, thread, errors))
        else:
            waiting.append((index, thread))
    # a flush of the same target is still running (abandoned by an earlier invocation): wait for it, then flush
    for index, previous in waiting:
        previous.join(_remaining_s(deadline))
        if previous.is_alive():
            cut.append(tasks[index][0])
            continue
        thread, errors, _ = _start(*tasks[index], deadline)
        started.append((index, thread, errors))
    for index, thread, errors in started:
        thread.join(_remaining_s(deadline))
        if thread.is_alive():
            cut.append(tasks[index][0])
        elif errors:
            if on_error is not None:
                on_error(index, errors[0])
            else:
                _log.warning("batchlens: flushing %s failed", tasks[index][0], exc_info=errors[0])
    if cut:
        _report(cut, budget_ms, "an exporter did not finish in time")
    return cut


def _report(cut: list[str], budget_ms: int, why: str) -> None:
    _log.warning(
        "batchlens telemetry flush cut at its %d ms deadline (%s): %s; the invocation returns now and the "
        "export continues in the background",
        max(0, budget_ms),
        why,
        ", ".join(cut),
        extra={"batchlens_flush_cut": list(cut), "batchlens_flush_budget_ms": max(0, budget_ms)},
    )


_OBSERVER_NAMES = {
    "TracingObserver": "tracer_provider",
    "MetricsObserver": "meter_provider",
    "SentryObserver": "sentry",
    "LoggingObserver": "logs",
}


def observer_task(observer: Any) -> FlushTask:
    """The flush task of one observer: named after what it flushes, keyed by the provider or client it flushes.

    Processors built per invocation have new observers each time but share the providers; keying by the provider
    keeps a stuck provider at one flush thread however many processors flush it.
    """
    kind = type(observer).__name__
    name = _OBSERVER_NAMES.get(kind, kind)
    target: object = observer
    telemetry = getattr(observer, "_telemetry", None)
    try:
        if name == "tracer_provider" and telemetry is not None:
            from batchlens._telemetry._providers import tracer_provider

            target = getattr(observer, "_provider", None) or tracer_provider(telemetry)
        elif name == "meter_provider" and telemetry is not None:
            from batchlens._telemetry._providers import meter_provider

            target = getattr(observer, "_provider", None) or meter_provider(telemetry)
        elif name == "sentry":
            target = getattr(observer, "_sdk", observer)
    except Exception:
        target = observer
    return name, target, observer.flush
