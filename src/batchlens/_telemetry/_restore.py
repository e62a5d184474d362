"""SnapStart: what batchlens renews after the runtime restores a snapshot of an initialised sandbox.

With SnapStart, Lambda snapshots the sandbox after init and restores that snapshot, possibly many times. Whatever
init made is resumed in every copy: flush workers (and a flush they were running), pooled exporter connections to a
collector, and the state of the ``random`` generator behind the SDK's trace and span ids, so every copy would make
the same ids. awslambdaric runs the callables registered through ``snapshot_restore_py.register_after_restore``
after each restore; batchlens registers one that runs the callbacks registered here.

The runtime runs those hooks only when ``AWS_LAMBDA_INITIALIZATION_TYPE`` is ``snap-start``, so batchlens imports
``snapshot_restore_py`` only then (or when something already imported it): never otherwise, and it is no dependency.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["install", "register_after_restore", "run_after_restore", "snap_start"]

_Callback = TypeVar("_Callback", bound=Callable[[], object])

_RUNTIME_MODULE = "snapshot_restore_py"
_log = logging.getLogger("batchlens")
_lock = threading.Lock()
_installed = False


def _reseed_random() -> None:
    # the SDK's RandomIdGenerator draws trace and span ids from the module-level generator; seed() without an
    # argument reseeds it from os.urandom, which differs in every restored copy (imported here: cold start)
    import random

    random.seed()


_callbacks: list[Callable[[], object]] = [_reseed_random]


def register_after_restore(callback: _Callback) -> _Callback:
    """Run ``callback`` (without arguments) after every SnapStart restore; usable as a decorator.

    Registering also hooks batchlens into the runtime when the sandbox is a SnapStart one (see :func:`install`).

    Args:
        callback: What to renew: recreate a socket, forget a thread. Exceptions it raises are logged, not raised.

    Returns:
        ``callback``.
    """
    with _lock:
        _callbacks.append(callback)
    install()
    return callback


def run_after_restore() -> None:
    """Run every registered callback, in registration order (what the runtime calls after a restore)."""
    with _lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # a failed after-restore hook makes the runtime end the sandbox (exit 65): log it and go on
            _log.warning("batchlens: renewing %r after a SnapStart restore failed", callback, exc_info=True)


def snap_start() -> bool:
    """Whether this sandbox is initialised for SnapStart (the runtime then runs after-restore hooks)."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


def install() -> bool:
    """Register :func:`run_after_restore` with the runtime's ``snapshot_restore_py``, once, when SnapStart is on.

    Returns:
        Whether the hook is registered (now or before).
    """
    global _installed
    with _lock:
        if _installed:
            return True
        if not snap_start() and _RUNTIME_MODULE not in sys.modules:
            return False
        try:
            runtime = importlib.import_module(_RUNTIME_MODULE)
        except ImportError:
            return False
        register = getattr(runtime, "register_after_restore", None)
        if not callable(register):
            return False
        register(run_after_restore)
        _installed = True
        return True
