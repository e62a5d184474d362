"""Which OpenTelemetry tracer and meter providers the observers use, resolved once per batch.

Processors are usually built at module import, before the application (or a test) installs its providers, so
observers never capture a provider at construction. At each batch start they ask, in order: the provider
injected through ``Telemetry``, then one set by :func:`override`, then the OpenTelemetry global.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from batchlens._config import Telemetry

__all__ = [
    "DEFAULT_SPAN_LINK_LIMIT",
    "is_noop_meter_provider",
    "is_noop_tracer_provider",
    "meter_provider",
    "override",
    "span_link_limit",
    "tracer_provider",
]

DEFAULT_SPAN_LINK_LIMIT = 128
"""The SDK's default for ``OTEL_SPAN_LINK_COUNT_LIMIT``."""

_lock = threading.Lock()
_tracer_override: TracerProvider | None = None
_meter_override: MeterProvider | None = None


@contextmanager
def override(
    tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> Iterator[None]:
    """Make observers use these providers (instead of the OpenTelemetry globals) while the block runs.

    Process-wide, unlike the OpenTelemetry globals it can be undone: the previous overrides come back when the
    block exits, so blocks nest. A provider left as None keeps whatever was in force. Providers injected through
    ``Telemetry(tracer_provider=..., meter_provider=...)`` still win.

    Args:
        tracer_provider: Tracer provider for batches started inside the block.
        meter_provider: Meter provider for batches started inside the block.
    """
    global _tracer_override, _meter_override
    with _lock:
        previous = (_tracer_override, _meter_override)
        if tracer_provider is not None:
            _tracer_override = tracer_provider
        if meter_provider is not None:
            _meter_override = meter_provider
    try:
        yield
    finally:
        with _lock:
            _tracer_override, _meter_override = previous


def tracer_provider(telemetry: Telemetry) -> TracerProvider:
    """The tracer provider a batch uses: injected, else overridden, else the global one."""
    provider = telemetry.tracer_provider or _tracer_override
    if provider is not None:
        return provider
    from opentelemetry import trace

    return trace.get_tracer_provider()


def meter_provider(telemetry: Telemetry) -> MeterProvider:
    """The meter provider a batch uses: injected, else overridden, else the global one."""
    provider = telemetry.meter_provider or _meter_override
    if provider is not None:
        return provider
    from opentelemetry import metrics

    return metrics.get_meter_provider()


def is_noop_tracer_provider(provider: Any) -> bool:
    """Whether spans from ``provider`` go nowhere (no SDK installed), so per-record work can be skipped."""
    from opentelemetry import trace

    kind = type(provider)
    if kind is trace.NoOpTracerProvider:
        return True
    # The global proxy stands in until a real provider is set; after that it delegates, and
    # get_tracer_provider() no longer returns it.
    return kind is trace.ProxyTracerProvider and trace.get_tracer_provider() is provider


def is_noop_meter_provider(provider: Any) -> bool:
    """Whether measurements through ``provider`` go nowhere (no SDK installed)."""
    from opentelemetry import metrics

    kind = type(provider)
    if kind is metrics.NoOpMeterProvider:
        return True
    return kind.__name__ == "_ProxyMeterProvider" and metrics.get_meter_provider() is provider


def span_link_limit() -> int:
    """The SDK's per-span link limit as configured by ``OTEL_SPAN_LINK_COUNT_LIMIT`` (read without the SDK)."""
    raw = os.environ.get("OTEL_SPAN_LINK_COUNT_LIMIT", "").strip()
    if not raw:
        return DEFAULT_SPAN_LINK_LIMIT
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_SPAN_LINK_LIMIT
    return value if value >= 0 else DEFAULT_SPAN_LINK_LIMIT
