"""Flush targets whose flush never waits on the network, so the caller runs it itself instead of a worker thread.

A tracer provider whose only span processor exports by non-blocking UDP (the X-Ray exporter) is flushed faster
than a thread hand-off takes; ``configure()`` marks such providers here and the flush machinery asks.
"""

from __future__ import annotations

import weakref

__all__ = ["flushes_inline", "mark_inline"]

_inline: weakref.WeakSet[object] = weakref.WeakSet()


def mark_inline(target: object) -> None:
    """Flush ``target`` in the calling thread from now on (it must never block)."""
    _inline.add(target)


def flushes_inline(target: object) -> bool:
    """Whether ``target`` was marked with :func:`mark_inline`."""
    try:
        return target in _inline
    except TypeError:  # not weak-referenceable: never marked
        return False
