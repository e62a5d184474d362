"""Argument and environment resolution for ``batchlens.telemetry.configure`` (no SDK import here)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_PROMETHEUS_ADDR",
    "DEFAULT_PROMETHEUS_PORT",
    "DEFAULT_SPAN_QUEUE_SIZE",
    "LOG_FORMATS",
    "METRICS_EXPORTERS",
    "OTLP_PROTOCOLS",
    "SDK_HINT",
    "TRACES_EXPORTERS",
    "lambda_trace_default",
]

TRACES_EXPORTERS: tuple[str, ...] = ("otlp", "xray", "console", "none")
"""Accepted names for ``traces`` / ``OTEL_TRACES_EXPORTER`` (comma-separated combinations allowed).

``xray`` sends OTLP spans by UDP to the X-Ray daemon endpoint (``AWS_XRAY_DAEMON_ADDRESS``); it is the default inside
Lambda when no OTLP endpoint, collector extension or pre-installed tracer provider is found."""

COLLECTOR_EXTENSION = "/opt/extensions/collector"
"""Where the OpenTelemetry (and ADOT) collector Lambda layers install their extension."""

METRICS_EXPORTERS: tuple[str, ...] = ("emf", "otlp", "prometheus", "console", "none")
"""Accepted names for ``metrics`` / ``OTEL_METRICS_EXPORTER`` (comma-separated combinations allowed).

``emf`` writes CloudWatch Embedded Metric Format lines to stdout; it is the default inside Lambda."""

LOG_FORMATS: tuple[str, ...] = ("json", "console", "none")
"""Accepted values for ``logs``."""

OTLP_PROTOCOLS: tuple[str, ...] = ("http/protobuf", "grpc")
"""OTLP transports the Python SDK implements (``http/json`` has no Python exporter)."""

DEFAULT_PROMETHEUS_PORT = 9464
"""Port of the ``/metrics`` endpoint, the OpenTelemetry default for Prometheus exporters."""

DEFAULT_PROMETHEUS_ADDR = "127.0.0.1"
"""Loopback by default: metrics stay private unless the application opts into a wider address."""

DEFAULT_SPAN_QUEUE_SIZE = 32_768
"""Capacity of the span queue between the application and the exporter.

A Lambda batch holds at most 10,000 records (SQS with a batching window, Kinesis, DynamoDB Streams, Kafka).
batchlens ends one span per record plus a batch span, and handlers commonly add one or two spans of their own
per record, all before the invocation returns and usually faster than a network exporter drains them. The
queue must therefore hold a whole invocation: 3 x 10,000 plus headroom. The SDK default of 2,048 drops about
8,000 spans of a 10,000-record batch whenever export is slower than processing. The queue is a bounded deque
that grows only as spans arrive, so the large bound costs nothing until it is used.
"""

SDK_HINT = "pip install 'batchlens[sdk]'"

_LAMBDA_LOG_LEVELS = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}


def _env(env: Mapping[str, str], name: str) -> str | None:
    # The specification treats an empty variable as unset.
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    return raw


def _resolve_exporters(
    value: object, env: Mapping[str, str], argument: str, variable: str
) -> tuple[tuple[str, ...], Any]:
    """Return ``(names, instance)``: exporter names to build, or a ready exporter/reader instance."""
    accepted = TRACES_EXPORTERS if argument == "traces" else METRICS_EXPORTERS
    if value is None:
        raw = _env(env, variable)
        if raw is None:
            # In Lambda nothing scrapes and nothing else needs to run: EMF lines on stdout become CloudWatch metrics
            return ("emf",) if argument == "metrics" and _in_lambda(env) else ("otlp",), None
        return _parse_names(raw, f"{variable}={raw!r}", accepted), None
    if isinstance(value, str):
        return _parse_names(value, f"{argument}={value!r}", accepted), None
    try:
        from opentelemetry.sdk.metrics.export import MetricReader
        from opentelemetry.sdk.trace.export import SpanExporter
    except ImportError as exc:
        raise ImportError(f"batchlens.telemetry.configure() needs the OpenTelemetry SDK: {SDK_HINT}") from exc
    base: type = SpanExporter if argument == "traces" else MetricReader
    if not isinstance(value, base):
        raise TypeError(
            f"{argument} must be one of {', '.join(repr(a) for a in accepted)} or a {base.__name__} "
            f"instance, not {type(value).__name__}"
        )
    return (), value


def lambda_trace_default(env: Mapping[str, str], collector_extension: str | None = None) -> tuple[str, str]:
    """``(exporter, why)`` for traces inside Lambda when neither ``traces=`` nor ``OTEL_TRACES_EXPORTER`` is given.

    OTLP when an OTLP endpoint is configured or a collector extension is present (a collector to receive it);
    otherwise ``xray``, which needs nothing that may be missing and never waits.
    """
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if _env(env, variable) is not None:
            return "otlp", f"{variable} is set"
    if _env(env, "OPENTELEMETRY_COLLECTOR_CONFIG_URI") is not None:
        return "otlp", "OPENTELEMETRY_COLLECTOR_CONFIG_URI is set (a collector extension)"
    path = COLLECTOR_EXTENSION if collector_extension is None else collector_extension
    try:
        present = os.path.exists(path)
    except (OSError, ValueError):
        present = False
    if present:
        return "otlp", f"the collector extension {path} is present"
    return "xray", f"no OTEL_EXPORTER_OTLP_ENDPOINT and no collector extension ({path})"


def _parse_names(raw: str, source: str, accepted: tuple[str, ...]) -> tuple[str, ...]:
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    choices = ", ".join(accepted)
    if not names:
        raise ValueError(f"{source} names no exporter; accepted values: {choices} (comma-separated)")
    unknown = [name for name in names if name not in accepted]
    if unknown:
        raise ValueError(
            f"{source}: unknown exporter {', '.join(repr(u) for u in unknown)}; "
            f"accepted values: {choices} (comma-separated)"
        )
    if "none" in names:
        if len(names) > 1:
            raise ValueError(f"{source}: 'none' cannot be combined with other exporters")
        return ()
    return tuple(dict.fromkeys(names))


def _in_lambda(env: Mapping[str, str]) -> bool:
    return _env(env, "AWS_LAMBDA_FUNCTION_NAME") is not None


def _resolve_log_format(logs: str | None, env: Mapping[str, str]) -> str:
    if logs is None:
        # not imported yet: nobody configured it (and importing it only to ask would cost the cold start)
        structlog = sys.modules.get("structlog")
        if structlog is not None and structlog.is_configured():
            return "none"
        return "json" if _in_lambda(env) else "console"
    if not isinstance(logs, str) or logs.strip().lower() not in LOG_FORMATS:
        raise ValueError(f"logs={logs!r} is not supported; accepted values: {', '.join(LOG_FORMATS)}")
    return logs.strip().lower()


def _resolve_log_level(log_level: str | int | None, env: Mapping[str, str]) -> int:
    source = "log_level"
    if log_level is None:
        raw = _env(env, "AWS_LAMBDA_LOG_LEVEL")
        if raw is None:
            return logging.INFO
        log_level, source = raw, "AWS_LAMBDA_LOG_LEVEL"
    if isinstance(log_level, int):
        return log_level
    name = log_level.strip().upper()
    name = _LAMBDA_LOG_LEVELS.get(name, name)
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ValueError(
            f"{source}={log_level!r} is not a log level; accepted values: "
            "DEBUG, INFO, WARNING, ERROR, CRITICAL (and Lambda's TRACE, WARN, FATAL)"
        )
    return level


def _resolve_prometheus_endpoint(port: int | None, addr: str | None, env: Mapping[str, str]) -> tuple[int, str]:
    if port is None:
        raw = _env(env, "OTEL_EXPORTER_PROMETHEUS_PORT")
        if raw is None:
            port = DEFAULT_PROMETHEUS_PORT
        else:
            try:
                port = int(raw)
            except ValueError:
                raise ValueError(
                    f"OTEL_EXPORTER_PROMETHEUS_PORT={raw!r} is not a port; expected a whole number 0-65535"
                ) from None
            if not 0 <= port <= 65535:
                raise ValueError(
                    f"OTEL_EXPORTER_PROMETHEUS_PORT={raw!r} is out of range; expected a whole number 0-65535"
                )
    elif isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"prometheus_port={port!r} is not a port; expected a whole number 0-65535")
    if addr is None:
        addr = _env(env, "OTEL_EXPORTER_PROMETHEUS_HOST") or DEFAULT_PROMETHEUS_ADDR
    return port, addr


def _resolve_otlp_protocol(env: Mapping[str, str], signal: str) -> str:
    variable = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    raw = _env(env, variable)
    if raw is None:
        variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
        raw = _env(env, variable)
    if raw is None:
        return "http/protobuf"
    protocol = raw.strip().lower()
    if protocol not in OTLP_PROTOCOLS:
        raise ValueError(
            f"{variable}={raw!r} is not supported by the Python SDK; accepted values: {', '.join(OTLP_PROTOCOLS)}"
        )
    return protocol


def _span_queue_size(env: Mapping[str, str]) -> int:
    # An explicit OTEL_BSP_MAX_QUEUE_SIZE is the operator's decision and wins over the batch-sized default.
    return _positive_int_env(env, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_SPAN_QUEUE_SIZE)


def _positive_int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _env(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={raw!r} is not valid; expected a whole number >= 1")
    return value
