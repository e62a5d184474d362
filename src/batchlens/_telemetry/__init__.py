"""Telemetry observers (tracing, metrics, logs, Sentry), assembled from a ``Telemetry`` configuration.

Each observer module is imported only when its switch is on, so a disabled feature costs no import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchlens._telemetry import _restore

if TYPE_CHECKING:
    from batchlens._config import Telemetry
    from batchlens._observer import Observer

__all__ = ["build_observers"]


def build_observers(telemetry: Telemetry) -> list[Observer]:
    """The observers ``telemetry`` asks for, in call order (tracing first, so its span encloses the others)."""
    observers: list[Observer] = []
    if telemetry.tracing:
        from batchlens._telemetry.tracing import TracingObserver

        observers.append(TracingObserver(telemetry))
    if telemetry.metrics:
        from batchlens._telemetry.metrics import MetricsObserver

        observers.append(MetricsObserver(telemetry))
    if telemetry.logging:
        from batchlens._telemetry.logs import LoggingObserver

        observers.append(LoggingObserver(telemetry))
    if telemetry.sentry:
        from batchlens._telemetry.sentry import SentryObserver

        observers.append(SentryObserver(telemetry))
    if observers and _restore.snap_start():
        # built at init, before the snapshot: register the flush workers' after-restore hooks now, and reseed the
        # trace id randomness in every restored copy (see _restore)
        from batchlens._telemetry import _flush  # noqa: F401
    return observers
