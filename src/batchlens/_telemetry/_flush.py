"""One wall-clock deadline for flushing every telemetry pipeline before the Lambda sandbox freezes.

The SDK's ``force_flush`` calls do not always honour their timeout: ``BatchSpanProcessor.force_flush`` waits for
an export in progress, and an OTLP exporter facing a collector that accepts connections and never answers waits
for its own (10 s) timeout. Holding the handler that long times the invocation out, and Lambda retries the whole
batch. So each target (tracer provider, meter provider, Sentry) is flushed by a daemon worker of its own, all of
them at once, and the caller waits for them only until the shared deadline. A flush still running at the deadline
is abandoned, not stopped: it finishes on its own when the exporter answers or gives up.

One worker per target runs one flush at a time, with at most one more waiting. A flush asked for while the
previous one is stuck waits behind it (within its caller's deadline) and joins the one already waiting, so a stuck
exporter costs one thread per target and no backlog, however many invocations pass; the batch processor's queue
keeps taking spans, and the waiting flush exports them once the exporter recovers. Workers are reused across
invocations (starting a thread per flush would cost more than the flush) and end after a minute without work.

A target whose flush was cut, or whose exporter fails, is *bad* (``_health``): later flushes wait for it at most
40 ms until it recovers, so a dead collector costs one invocation its flush budget, not every invocation. After a
SnapStart restore (``_restore``) the workers of the snapshot are retired and new ones start on demand.

A target marked with ``_inline.mark_inline`` (a tracer provider whose only export is a non-blocking UDP send) is
flushed in the caller's thread instead: its flush cannot hang, and the hand-off would cost more than the flush.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from batchlens._telemetry import _health, _restore
from batchlens._telemetry._inline import flushes_inline

__all__ = ["DEFAULT_FLUSH_MS", "FLUSH_SAFETY_MARGIN_MS", "FlushTask", "flush_budget_ms", "flush_within"]

FLUSH_SAFETY_MARGIN_MS = 300
"""Leave this much of the invocation's remaining time unused by the flush."""

DEFAULT_FLUSH_MS = 5000
"""The longest a flush may take (and its budget without a Lambda context)."""

_log = logging.getLogger("batchlens")


class FlushTask(NamedTuple):
    """One thing to flush.

    Attributes:
        name: How the cut report names it (``tracer_provider``, ``meter_provider``, ``sentry``).
        target: What it flushes; flushes of the same target are interchangeable, so one waiting is enough.
        flush: Called with the milliseconds left.
        lane: The worker that runs it (default: one per target); targets sharing a lane are flushed one
            after the other.
        watched: Whether how it went counts for the target's health (not for a shutdown, which ends the target).
    """

    name: str
    target: object
    flush: Callable[[int], object]
    lane: object = None
    watched: bool = True


_IDLE_S = 60.0
"""A worker with nothing to flush for this long ends (and lets go of its lane)."""

_lock = threading.Lock()
_workers: dict[int, _Worker] = {}  # id(lane) -> its worker, while the worker lives


def _forget_workers_in_child() -> None:
    # a forked child has none of the parent's threads, and the lock may have been held at the fork
    global _lock
    _lock = threading.Lock()
    _workers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_in_child)


@_restore.register_after_restore
def _retire_workers() -> None:
    # after a SnapStart restore the snapshot's workers still run (a whole VM is restored), but what they were doing
    # belongs to the snapshot: drop their waiting flushes, let them end, and start new workers for new flushes
    with _lock:
        workers = list(_workers.values())
        _workers.clear()
        for worker in workers:
            worker.retired = True
            worker.pending.clear()
            worker.wake.notify()


# nothing of the snapshot's network holds after a restore: every target starts good
_restore.register_after_restore(_health.reset_all)


class _Request:
    """One flush asked of a worker; callers wait on ``done`` until their deadline."""

    __slots__ = ("budget_ms", "deadline", "done", "errors", "flush", "name", "queued", "target", "watched")

    def __init__(
        self, task: FlushTask, flush: Callable[[int], object], deadline: float, budget_ms: int, queued: bool
    ) -> None:
        self.name = task.name
        self.watched = task.watched
        self.target = task.target
        self.flush = flush
        self.deadline = deadline
        self.budget_ms = budget_ms
        self.queued = queued  # submitted while the worker was busy with another flush
        self.done = threading.Event()
        self.errors: list[BaseException] = []


class _Worker:
    """Runs the flushes of one lane on a daemon thread, one at a time; at most one waits per target."""

    __slots__ = ("busy", "key", "lane", "pending", "retired", "thread", "wake")

    def __init__(self, name: str, lane: object) -> None:
        self.key = id(lane)
        self.lane = lane  # keeps id(lane) from being reused while the worker lives
        self.pending: dict[int, _Request] = {}  # id(target) -> request, oldest first
        self.busy = False
        self.retired = False
        self.wake = threading.Condition(_lock)
        # named like the SDK's own workers (OtelBatchSpanRecordProcessor); long-lived, unlike the per-batch
        # "batchlens…" pool threads
        self.thread = threading.Thread(target=self._loop, name=f"BatchlensFlush-{name}", daemon=True)

    def submit(self, task: FlushTask, deadline: float, budget_ms: int) -> _Request:
        """Queue a flush (called with ``_lock`` held); joins the one already waiting for its target, if any."""
        request = self.pending.get(id(task.target))
        if request is not None:
            request.deadline = max(request.deadline, deadline)
            return request
        request = self.pending[id(task.target)] = _Request(
            task, task.flush, deadline, budget_ms, self.busy or bool(self.pending)
        )
        self.wake.notify()
        return request

    def _loop(self) -> None:
        while True:
            with _lock:
                while not self.pending and not self.retired:
                    if not self.wake.wait(_IDLE_S) and not self.pending:
                        self.retired = True
                if self.retired:
                    if _workers.get(self.key) is self:
                        del _workers[self.key]
                    return
                request = self.pending.pop(next(iter(self.pending)))
                self.busy = True
            # a flush started at once gets its whole budget; one that waited behind another gets what is left,
            # and one that starts after every caller gave up still exports, with a budget of its own
            left_ms = round((request.deadline - time.monotonic()) * 1000)
            timeout_ms = (request.budget_ms if not request.queued else left_ms) if left_ms > 0 else DEFAULT_FLUSH_MS
            started = time.monotonic()
            try:
                request.flush(timeout_ms)
            except Exception as exc:  # reported by the callers still waiting
                request.errors.append(exc)
            finally:
                ended = time.monotonic()
                with _lock:
                    self.busy = False
                request.done.set()
                # a flush that ran out its whole timeout gave up with work left (Sentry's returns at its timeout)
                ran_out = timeout_ms > 0 and (ended - started) * 1000 >= timeout_ms
                if request.watched:
                    _health.flush_finished(
                        request.target,
                        in_time=not request.errors and ended <= request.deadline,
                        timeout_ms=timeout_ms if ran_out else 0,
                        name=request.name,
                    )
                del request  # hold nothing of an ended invocation while idle


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


def _submit(task: FlushTask, deadline: float, budget_ms: int) -> _Request:
    lane = task.target if task.lane is None else task.lane
    with _lock:
        worker = _workers.get(id(lane))
        if worker is None or not worker.thread.is_alive():
            worker = _workers[id(lane)] = _Worker(task.name, lane)
            worker.thread.start()
        return worker.submit(task, deadline, budget_ms)


def flush_within(
    tasks: Sequence[FlushTask],
    budget_ms: int,
    on_error: Callable[[int, BaseException], None] | None = None,
) -> list[str]:
    """Run every flush at once and wait for them until ``budget_ms`` has passed, never longer.

    A target that is bad (its last flush was cut, or its exporter fails: see ``_health``) is waited for at most
    40 ms (``BATCHLENS_FLUSH_FAILING_WAIT_MS``), and not at all while its worker is still busy with an earlier
    flush; its flush still runs, in the background, with the whole budget. A target that was good and is cut at the
    deadline becomes bad; one warning on the ``batchlens`` logger names those targets. A target whose exporter starts
    failing during the flush (a refused connection) is not waited for any longer either. Cutting a target that was
    already bad is logged at debug level only, so a dead collector does not print a warning every invocation.

    Args:
        tasks: What to flush; each ``flush`` is called with the milliseconds left.
        budget_ms: Wall-clock budget shared by all tasks.
        on_error: Called with the index (in ``tasks``) and exception of a flush that raised within the budget;
            without it the exception is logged.

    Returns:
        The names of the flushes still running when their caller stopped waiting (empty when everything finished).
    """
    cut: list[str] = []
    if budget_ms <= 0:
        cut = [task.name for task in tasks]
        if cut:
            _report(cut, budget_ms, "no time was left to flush")
        return cut
    started = time.monotonic()
    deadline = started + budget_ms / 1000
    failing_wait_ms = _health.failing_wait_ms()
    short_deadline = min(deadline, started + failing_wait_ms / 1000)
    bad = [task.watched and _health.is_bad(task.target) for task in tasks]
    # a target that never waits (UDP export) is flushed here, after the others were handed to their workers
    inline = [flushes_inline(task.target) for task in tasks]
    requests = [
        _Request(t, t.flush, deadline, budget_ms, False) if i else _submit(t, deadline, budget_ms)
        for t, i in zip(tasks, inline, strict=True)
    ]
    for request, is_inline in zip(requests, inline, strict=True):
        if is_inline:
            _run_inline(request)
    newly_cut: list[FlushTask] = []  # cut while healthy (and shutdowns)
    for index, request in enumerate(requests):
        wait_until = deadline
        if bad[index]:
            # a failing target still busy with an earlier flush (stuck on its exporter) will not finish this one
            # within the short wait: do not wait for it at all
            skip = request.queued and failing_wait_ms < budget_ms
            wait_until = started if skip else short_deadline
        if not _wait(request, tasks[index], wait_until, watch=not bad[index] and failing_wait_ms < budget_ms):
            cut.append(tasks[index].name)
            if not bad[index]:
                newly_cut.append(tasks[index])
        elif request.errors:
            if on_error is not None:
                on_error(index, request.errors[0])
            else:
                _log.warning("batchlens: flushing %s failed", tasks[index].name, exc_info=request.errors[0])
    if newly_cut:
        cause = f"its flush was cut at the {budget_ms} ms deadline"
        failing = [
            task.name
            for task in newly_cut
            if task.watched and _health.tracked(task.target, task.name).failed(cause, announce=False)
        ]
        _report([task.name for task in newly_cut], budget_ms, "an exporter did not finish in time", failing)
    if len(cut) > len(newly_cut):
        waited_less = [tasks[index].name for index in range(len(tasks)) if bad[index] and tasks[index].name in cut]
        _log.debug("batchlens telemetry flush did not wait for failing targets: %s", ", ".join(waited_less))
    return cut


def _run_inline(request: _Request) -> None:
    try:
        request.flush(request.budget_ms)
    except Exception as exc:  # reported like a worker's
        request.errors.append(exc)
    request.done.set()


def _remaining_s(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


_HEALTH_POLL_S = 0.025
"""While waiting for a healthy target, how often to look whether its exporter has started failing meanwhile."""


def _wait(request: _Request, task: FlushTask, until: float, *, watch: bool) -> bool:
    """Wait for ``request`` until ``until``; give up early when ``watch`` and the target starts failing meanwhile.

    An exporter that reports a refused connection in the middle of this flush (its first retry line) makes its
    target fail: waiting on for its backoff and retries would cost the invocation its whole budget for nothing.

    Returns:
        Whether the flush finished.
    """
    if not (watch and task.watched):
        return request.done.wait(_remaining_s(until))
    while True:
        remaining = _remaining_s(until)
        if request.done.wait(min(remaining, _HEALTH_POLL_S)):
            return True
        if remaining <= _HEALTH_POLL_S or _health.is_bad(task.target):
            return request.done.is_set()


def _report(cut: list[str], budget_ms: int, why: str, failing: Sequence[str] = ()) -> None:
    later = ""
    if failing:
        later = (
            f"; until one of its exports succeeds, later flushes wait at most {_health.failing_wait_ms()} ms for "
            + ", ".join(failing)
        )
    _log.warning(
        "batchlens telemetry flush cut at its %d ms deadline (%s): %s; the invocation returns now and the "
        "export continues in the background%s",
        max(0, budget_ms),
        why,
        ", ".join(cut),
        later,
        extra={
            "batchlens_flush_cut": list(cut),
            "batchlens_flush_budget_ms": max(0, budget_ms),
            "batchlens_flush_failing": list(failing),
        },
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
    keeps a stuck provider at one flush thread however many processors flush it. Other observers (the log
    observer, custom ones) get one worker per class.
    """
    kind = type(observer).__name__
    name = _OBSERVER_NAMES.get(kind, kind)
    target: object = observer
    lane: object = type(observer)  # observers of one kind share a worker, whatever processor they belong to
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
    if target is not observer:
        lane = target
    return FlushTask(name, target, observer.flush, lane)
