"""Where the Lambda execution environment's life cycle meets telemetry: Managed Instances and SIGTERM.

**Managed Instances** (``AWS_LAMBDA_MAX_CONCURRENCY`` set): the runtime client forks one worker process per
concurrent request and the environment is never frozen between requests, so the span processor's background
thread keeps exporting after the handler returns. Measured under awslambdaric 4.2.2 (docs/deployment.md, "Managed
Instances"), the blocking per-invocation flush only adds latency there; with ``flush="auto"`` batchlens leaves
export to the background (``configure()``'s EMF metrics: one document per ``OTEL_METRIC_EXPORT_INTERVAL``) and
flushes at SIGTERM instead. ``flush="always"`` (``BATCHLENS_FLUSH=always``) keeps the blocking flush.

**SIGTERM**: when the environment shuts a worker down it sends SIGTERM, then SIGKILL after a grace period; what the
span processor still queues is lost unless it is flushed in between. :func:`install_sigterm_flush` installs (once
per process, only under a Lambda runtime client: ``AWS_LAMBDA_RUNTIME_API`` set, and only from the main thread)
a handler that flushes the registered providers (and Sentry, when the application initialised it) within
:data:`SIGTERM_FLUSH_MS`, then hands the signal to the handler that was there before; the default one terminates
the process as SIGTERM always did. ``BATCHLENS_SIGTERM_FLUSH=false`` leaves SIGTERM alone.

The handler runs when the main thread is in Python code: awslambdaric waits for the next event on a thread from
Python 3.12 (``AWS_EXECUTION_ENV``) on, which Managed Instances require (3.13+), so the main thread is interruptible
there. Under older runtimes waiting in the C client, the handler runs only once that call returns.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

from batchlens._env import env_bool

__all__ = [
    "MANAGED_INSTANCES_ENV",
    "SIGTERM_FLUSH_ENV",
    "SIGTERM_FLUSH_MS",
    "background_export",
    "install_sigterm_flush",
    "managed_instances",
]

MANAGED_INSTANCES_ENV = "AWS_LAMBDA_MAX_CONCURRENCY"
"""Set by Lambda Managed Instances: the number of worker processes the runtime client forks."""
SIGTERM_FLUSH_ENV = "BATCHLENS_SIGTERM_FLUSH"
"""``false`` keeps batchlens from installing its SIGTERM handler."""
SIGTERM_FLUSH_MS = 2000
"""The longest the SIGTERM handler flushes before handing the signal on: Lambda's whole shutdown phase. The platform
sends SIGKILL when its own grace ends (300 ms for a runtime with external extensions, 500 ms with an internal one),
which ends a longer flush with whatever it exported by then; the bound is for a stuck exporter where nothing else
ends the process. Measured with 4 workers flushing 440 spans over OTLP/HTTP on a busy machine: 250 ms lost 231 of
them in one run of three, 500 ms none in three."""

_log = logging.getLogger("batchlens")
_lock = threading.Lock()
_providers: list[Any] = []  # what the SIGTERM handler flushes, in registration order
_installed_pid: int | None = None
_previous: Any = None


def managed_instances(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a Lambda Managed Instances worker (``AWS_LAMBDA_MAX_CONCURRENCY`` set)."""
    value = (os.environ if env is None else env).get(MANAGED_INSTANCES_ENV, "")
    return bool(value.strip())


_globals_registered_pid: int | None = None


def background_export() -> bool:
    """Whether ``flush="auto"`` leaves export to the background: in Managed Instances workers, yes.

    The first time it says yes in a process it also registers the global OpenTelemetry providers (when they are
    SDK providers) for the SIGTERM flush, so applications that build their own SDK pipelines lose nothing at
    shutdown either. Called after each batch with a Lambda context; one environment lookup when not in Managed
    Instances.
    """
    global _globals_registered_pid
    if not managed_instances():
        return False
    if _globals_registered_pid != os.getpid():
        _globals_registered_pid = os.getpid()
        try:
            from opentelemetry import metrics, trace

            providers = [trace.get_tracer_provider(), metrics.get_meter_provider()]
            install_sigterm_flush(*(p for p in providers if callable(getattr(p, "force_flush", None))))
        except Exception:  # never let the shutdown hook cost a batch
            _log.warning("batchlens: installing the SIGTERM flush failed", exc_info=True)
    return True


def install_sigterm_flush(*providers: Any, env: Mapping[str, str] | None = None) -> bool:
    """Flush ``providers`` (each with ``force_flush(timeout_millis)``) when the process gets SIGTERM.

    Registers the providers and, the first time in this process, installs the handler. Does nothing outside a
    Lambda runtime (``AWS_LAMBDA_RUNTIME_API`` unset), with ``BATCHLENS_SIGTERM_FLUSH=false``, or off the main
    thread (where Python cannot install signal handlers). Never raises.

    Returns:
        True when the handler is installed in this process (now or before).
    """
    global _installed_pid, _previous
    environ = os.environ if env is None else env
    try:
        if not environ.get("AWS_LAMBDA_RUNTIME_API") or not env_bool(environ, SIGTERM_FLUSH_ENV, True):
            return False
    except ValueError as exc:  # a typo in the variable: say so, and leave SIGTERM alone
        _log.warning("batchlens: %s; SIGTERM is left alone", exc)
        return False
    with _lock:
        for provider in providers:
            if not any(provider is known for known in _providers):
                _providers.append(provider)
        if _installed_pid == os.getpid():
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        try:
            previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError, RuntimeError):
            return False
        # a handler inherited over fork is ours already: chain to what was there before it
        if previous is not _on_sigterm:
            _previous = previous
        _installed_pid = os.getpid()
        return True


def _flush_providers(budget_ms: int) -> list[str]:
    from batchlens._telemetry._flush import FlushTask, flush_within

    providers = list(_providers)  # no lock: the signal may have interrupted its holder on this very thread

    def flushing(provider: Any) -> Any:
        return lambda timeout: provider.force_flush(timeout)

    tasks = [FlushTask(type(p).__name__, p, flushing(p)) for p in providers]
    client = _sentry_client()
    if client is not None:
        tasks.append(FlushTask("sentry", client, lambda timeout: client.flush(timeout=timeout / 1000)))
    return flush_within(tasks, budget_ms) if tasks else []


def _sentry_client() -> Any:
    """Sentry's active client when the application imported and initialised sentry_sdk, else None."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None:
        return None
    try:
        client = sentry_sdk.get_client()
        return client if client.is_active() else None
    except Exception:
        return None


def _flush_in_thread(budget_ms: int) -> None:
    """Flush on a thread of its own and wait for it at most ``budget_ms`` (plus a little for the hand-over).

    The handler runs on the main thread between two bytecodes of whatever it interrupted, possibly while that
    code holds a lock the flush needs (the flush workers' own); waiting for another thread keeps that case
    bounded too: the flush is abandoned and the signal handed on.
    """

    def flush() -> None:
        try:
            _flush_providers(budget_ms)
        except Exception:  # the signal must still be handed on
            _log.warning("batchlens: flushing at SIGTERM failed", exc_info=True)

    thread = threading.Thread(target=flush, name="BatchlensSigtermFlush", daemon=True)
    thread.start()
    thread.join(budget_ms / 1000 + 0.05)


def _on_sigterm(signum: int, frame: Any) -> None:
    _flush_in_thread(SIGTERM_FLUSH_MS)
    previous = _previous
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # SIG_DFL (or unknown): terminate by SIGTERM, as without batchlens
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _reset_for_tests() -> None:
    """Forget providers and restore the previous handler (tests only)."""
    global _installed_pid, _previous, _globals_registered_pid
    _globals_registered_pid = None
    with _lock:
        if _installed_pid == os.getpid() and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, _previous if _previous is not None else signal.SIG_DFL)
        _providers.clear()
        _installed_pid = None
        _previous = None
