"""Opt-in OpenTelemetry SDK and structlog setup for applications that have none of their own.

batchlens itself only talks to the OpenTelemetry *API*: without an SDK its spans and metrics cost next to
nothing and go nowhere. :func:`configure` is the one place that builds SDK pipelines, for applications that
want "telemetry on" in one line. It is never called implicitly. It needs the ``sdk`` extra
(``pip install 'batchlens[sdk]'``); importing this module does not import the SDK, ``configure()`` does.

Example::

    from batchlens import BatchProcessor, EventType, process_partial_response
    from batchlens.telemetry import configure

    telemetry = configure(service_name="orders")  # once, at module level (cold start)
    processor = BatchProcessor(event_type=EventType.SQS)

    def handler(event, context):
        try:
            return process_partial_response(event, record_handler, processor, context)
        finally:
            telemetry.flush()  # a frozen Lambda sandbox loses whatever was not exported
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "DEFAULT_PROMETHEUS_ADDR",
    "DEFAULT_PROMETHEUS_PORT",
    "DEFAULT_SPAN_QUEUE_SIZE",
    "LOG_FORMATS",
    "METRICS_EXPORTERS",
    "OTLP_PROTOCOLS",
    "TRACES_EXPORTERS",
    "TelemetryHandle",
    "configure",
]

_logger = logging.getLogger("batchlens.telemetry")

TRACES_EXPORTERS: tuple[str, ...] = ("otlp", "console", "none")
"""Accepted names for ``traces`` / ``OTEL_TRACES_EXPORTER`` (comma-separated combinations allowed)."""

METRICS_EXPORTERS: tuple[str, ...] = ("otlp", "prometheus", "console", "none")
"""Accepted names for ``metrics`` / ``OTEL_METRICS_EXPORTER`` (comma-separated combinations allowed)."""

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

_SDK_HINT = "pip install 'batchlens[sdk]'"

_LAMBDA_LOG_LEVELS = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}


class TelemetryHandle:
    """The pipelines :func:`configure` built, and the way to flush and stop them.

    Attributes:
        tracer_provider: The SDK tracer provider (global when ``is_global``).
        meter_provider: The SDK meter provider (global when ``is_global``).
        resource: The resource attached to every span and metric.
        span_exporters: Exporters behind the span pipeline, in the order they were configured.
        metric_readers: Readers attached to the meter provider.
        log_format: The structlog output that was configured: ``"json"``, ``"console"`` or ``"none"``
            (``"none"`` also when structlog was left as the application configured it).
        is_global: Whether both providers were installed as the OpenTelemetry globals.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        resource: Resource,
        span_exporters: Sequence[SpanExporter],
        metric_readers: Sequence[MetricReader],
        prometheus_server: WSGIServer | None,
        log_format: str,
        is_global: bool,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.resource = resource
        self.span_exporters: tuple[SpanExporter, ...] = tuple(span_exporters)
        self.metric_readers: tuple[MetricReader, ...] = tuple(metric_readers)
        self.log_format = log_format
        self.is_global = is_global
        self._prometheus_server = prometheus_server
        self._shut_down = False

    @property
    def prometheus_port(self) -> int | None:
        """The port ``/metrics`` is served on (the bound one when port 0 was asked), or None."""
        if self._prometheus_server is None:
            return None
        return int(self._prometheus_server.server_address[1])

    def flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span and the current metric values now.

        Call it before a Lambda handler returns: the sandbox is frozen right after, and whatever is still
        queued is lost or arrives late. Never raises; failures are logged through :mod:`logging`.

        Args:
            timeout_millis: Budget shared by the span and the metric flush.

        Returns:
            True when both flushes completed within the budget.
        """
        deadline = time.monotonic() + timeout_millis / 1000
        ok = True
        try:
            ok = bool(self.tracer_provider.force_flush(timeout_millis))
        except Exception:
            _logger.exception("batchlens.telemetry: flushing spans failed")
            ok = False
        # Metric export is a single collect-and-send; it gets whatever budget the spans left, at least 1 ms.
        remaining = max(1, int((deadline - time.monotonic()) * 1000))
        try:
            ok = bool(self.meter_provider.force_flush(remaining)) and ok
        except Exception:
            _logger.exception("batchlens.telemetry: flushing metrics failed")
            ok = False
        return ok

    def shutdown(self, timeout_millis: int = 30_000) -> None:
        """Flush and stop both providers and the ``/metrics`` server. Calling it again does nothing.

        Args:
            timeout_millis: Budget for the metric provider shutdown.
        """
        if self._shut_down:
            return
        self._shut_down = True
        try:
            self.tracer_provider.shutdown()
        except Exception:
            _logger.exception("batchlens.telemetry: shutting down the tracer provider failed")
        try:
            self.meter_provider.shutdown(timeout_millis)
        except Exception:
            _logger.exception("batchlens.telemetry: shutting down the meter provider failed")
        if self._prometheus_server is not None:
            self._prometheus_server.shutdown()
            self._prometheus_server.server_close()

    def __repr__(self) -> str:
        exporters = ", ".join(type(e).__name__ for e in self.span_exporters) or "none"
        readers = ", ".join(type(r).__name__ for r in self.metric_readers) or "none"
        return (
            f"TelemetryHandle(service_name={self.resource.attributes.get('service.name')!r}, "
            f"spans=[{exporters}], metrics=[{readers}], logs={self.log_format!r}, global={self.is_global})"
        )


def configure(
    service_name: str | None = None,
    traces: str | SpanExporter | None = None,
    metrics: str | MetricReader | None = None,
    logs: str | None = None,
    *,
    prometheus_port: int | None = None,
    prometheus_addr: str | None = None,
    log_level: str | int | None = None,
    set_global: bool = True,
) -> TelemetryHandle:
    """Build OpenTelemetry tracing and metric pipelines and, optionally, the application's structlog output.

    Every argument left as None falls back to the standard OpenTelemetry variable, then to the
    OpenTelemetry default. Call it once per process (module level in Lambda): OpenTelemetry lets the global
    providers be set only once, so a second call builds working providers but cannot make them global; it
    logs a warning and returns a handle with ``is_global=False``.

    Args:
        service_name: ``service.name`` of the resource. Defaults to ``OTEL_SERVICE_NAME``, then
            ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, then the Lambda function name.
        traces: ``"otlp"``, ``"console"``, ``"none"`` (comma-separated combinations allowed) or a
            ``SpanExporter`` instance. Defaults to ``OTEL_TRACES_EXPORTER``, then ``"otlp"``.
        metrics: ``"otlp"``, ``"prometheus"``, ``"console"``, ``"none"`` (combinations allowed) or a
            ``MetricReader`` instance. Defaults to ``OTEL_METRICS_EXPORTER``, then ``"otlp"``.
        logs: structlog output for the application: ``"json"`` (one JSON object per line with timestamp
            and level), ``"console"`` (structlog's ConsoleRenderer) or ``"none"`` (leave structlog alone).
            Defaults to ``"json"`` in Lambda and ``"console"`` elsewhere, unless the application already
            configured structlog, which is then left alone.
        prometheus_port: Port of the ``/metrics`` endpoint for ``metrics="prometheus"``; 0 picks a free one.
            Defaults to ``OTEL_EXPORTER_PROMETHEUS_PORT``, then 9464.
        prometheus_addr: Address the endpoint binds. Defaults to ``OTEL_EXPORTER_PROMETHEUS_HOST``, then
            ``127.0.0.1`` (use ``0.0.0.0`` to let a containerised Prometheus scrape it).
        log_level: Lowest structlog level written. Defaults to ``AWS_LAMBDA_LOG_LEVEL``, then ``"INFO"``.
        set_global: Install the providers as the OpenTelemetry globals, which is how batchlens processors
            constructed afterwards find them. With False, pass them through ``Telemetry(tracer_provider=...,
            meter_provider=...)`` instead.

    Returns:
        A handle with ``flush()`` and ``shutdown()`` and the providers it built.

    Raises:
        ValueError: An argument or variable has an unknown value; the message names it and the accepted
            values.
        ImportError: The OpenTelemetry SDK (or the exporter a choice needs) is not installed.
    """
    env: Mapping[str, str] = os.environ
    # Validate everything before building anything, so a typo leaves no half-started pipeline behind.
    trace_names, span_exporter_obj = _resolve_exporters(traces, env, "traces", "OTEL_TRACES_EXPORTER")
    metric_names, metric_reader_obj = _resolve_exporters(metrics, env, "metrics", "OTEL_METRICS_EXPORTER")
    log_format = _resolve_log_format(logs, env)
    level = _resolve_log_level(log_level, env) if log_format != "none" else logging.INFO
    port, addr = _resolve_prometheus_endpoint(prometheus_port, prometheus_addr, env)
    trace_protocol = _resolve_otlp_protocol(env, "TRACES") if "otlp" in trace_names else ""
    metric_protocol = _resolve_otlp_protocol(env, "METRICS") if "otlp" in metric_names else ""
    queue_size = _span_queue_size(env)
    # The SDK rejects an export batch larger than the queue; a small OTEL_BSP_MAX_QUEUE_SIZE shrinks it too.
    export_batch = min(queue_size, _positive_int_env(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))

    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ImportError(f"batchlens.telemetry.configure() needs the OpenTelemetry SDK: {_SDK_HINT}") from exc

    resource = _build_resource(service_name, env)

    span_exporters: list[SpanExporter] = []
    if span_exporter_obj is not None:
        span_exporters.append(span_exporter_obj)
    span_exporters.extend(_make_span_exporter(name, trace_protocol) for name in trace_names)
    tracer_provider = TracerProvider(resource=resource)
    for exporter in span_exporters:
        tracer_provider.add_span_processor(
            BatchSpanProcessor(exporter, max_queue_size=queue_size, max_export_batch_size=export_batch)
        )

    readers: list[MetricReader] = []
    if metric_reader_obj is not None:
        readers.append(metric_reader_obj)
    readers.extend(_make_metric_reader(name, metric_protocol) for name in metric_names if name != "prometheus")
    server: WSGIServer | None = None
    if "prometheus" in metric_names:
        prometheus_reader, server = _start_prometheus(port, addr)
        readers.append(prometheus_reader)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)

    is_global = False
    if set_global:
        is_global = _install_globals(tracer_provider, meter_provider)

    if log_format != "none":
        _configure_structlog(log_format, level)

    return TelemetryHandle(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        resource=resource,
        span_exporters=span_exporters,
        metric_readers=readers,
        prometheus_server=server,
        log_format=log_format,
        is_global=is_global,
    )


# ----------------------------------------------------------------------------------------------------
# argument and environment resolution (the SDK is imported here only to type-check instances)


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
            return ("otlp",), None
        return _parse_names(raw, f"{variable}={raw!r}", accepted), None
    if isinstance(value, str):
        return _parse_names(value, f"{argument}={value!r}", accepted), None
    try:
        from opentelemetry.sdk.metrics.export import MetricReader
        from opentelemetry.sdk.trace.export import SpanExporter
    except ImportError as exc:
        raise ImportError(f"batchlens.telemetry.configure() needs the OpenTelemetry SDK: {_SDK_HINT}") from exc
    base: type = SpanExporter if argument == "traces" else MetricReader
    if not isinstance(value, base):
        raise TypeError(
            f"{argument} must be one of {', '.join(repr(a) for a in accepted)} or a {base.__name__} "
            f"instance, not {type(value).__name__}"
        )
    return (), value


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
        import structlog

        if structlog.is_configured():
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


# ----------------------------------------------------------------------------------------------------
# SDK construction (imports the SDK lazily)


def _build_resource(service_name: str | None, env: Mapping[str, str]) -> Resource:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    detected: dict[str, Any] = {}
    function_name = _env(env, "AWS_LAMBDA_FUNCTION_NAME")
    if function_name is not None:
        detected.update({"cloud.provider": "aws", "cloud.platform": "aws_lambda", "faas.name": function_name})
        optional = {
            "cloud.region": _env(env, "AWS_REGION"),
            "faas.version": _env(env, "AWS_LAMBDA_FUNCTION_VERSION"),
            "faas.instance": _env(env, "AWS_LAMBDA_LOG_STREAM_NAME"),
        }
        detected.update({key: value for key, value in optional.items() if value is not None})
        memory = _env(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        if memory is not None and memory.strip().isdigit():
            # Lambda reports MiB; the semantic conventions want bytes.
            detected["faas.max_memory"] = int(memory) * 1024 * 1024

    # Resource.create() reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME from os.environ; the operator's
    # variables override what was detected, and an explicit argument overrides both.
    from_env = Resource.create()
    resource = Resource(detected).merge(from_env)
    name = service_name or _env(env, "OTEL_SERVICE_NAME")
    if name is None:
        current = str(from_env.attributes.get(SERVICE_NAME, ""))
        if current.startswith("unknown_service") and function_name is not None:
            name = function_name
    if name is not None:
        resource = resource.merge(Resource({SERVICE_NAME: name}))
    return resource


def _make_span_exporter(name: str, protocol: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # The SDK's default stream is the sys.stdout of import time; use the current one.
        return ConsoleSpanExporter(out=sys.stdout)
    cls: Any = _import_otlp(protocol, "trace_exporter", "OTLPSpanExporter")
    exporter: SpanExporter = cls()
    return exporter


def _make_metric_reader(name: str, protocol: str) -> MetricReader:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    if name == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stdout))
    cls: Any = _import_otlp(protocol, "metric_exporter", "OTLPMetricExporter")
    return PeriodicExportingMetricReader(cls())


def _import_otlp(protocol: str, module: str, cls_name: str) -> object:
    package = "grpc" if protocol == "grpc" else "http"
    dist = f"opentelemetry-exporter-otlp-proto-{package}"
    try:
        imported = __import__(f"opentelemetry.exporter.otlp.proto.{package}.{module}", fromlist=[cls_name])
    except ImportError as exc:
        hint = _SDK_HINT if package == "http" else f"pip install {dist}"
        raise ImportError(f"OTLP over {protocol} needs the {dist} package: {hint}") from exc
    cls: object = getattr(imported, cls_name)
    return cls


def _start_prometheus(port: int, addr: str) -> tuple[MetricReader, WSGIServer]:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError as exc:
        raise ImportError(f"metrics='prometheus' needs opentelemetry-exporter-prometheus: {_SDK_HINT}") from exc

    # A registry of its own serves exactly this provider's metrics and lets several handles coexist in
    # one process (tests); exporters older than the ``registry`` argument share the global registry.
    class LatestSnapshotReader(PrometheusMetricReader):
        """Keeps only the newest cumulative snapshot between scrapes.

        A flush (``force_flush`` before the Lambda freeze, or ``handle.flush()``) makes the reader collect;
        the stock reader queues every collection until the next scrape, which then repeats each series once
        per flush and Prometheus rejects the duplicates. Metrics are cumulative, so the newest snapshot holds
        everything the older ones did.
        """

        def _receive_metrics(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> None:
            if metrics_data is None:
                return
            queued = getattr(getattr(self, "_collector", None), "_metrics_datas", None)
            if queued is not None:
                queued.clear()
            super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    registry = CollectorRegistry(auto_describe=True)
    try:
        reader = LatestSnapshotReader(registry=registry)
    except TypeError:
        from prometheus_client import REGISTRY

        registry = REGISTRY
        reader = LatestSnapshotReader()
    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        reader.shutdown()
        raise OSError(exc.errno, f"cannot serve Prometheus metrics on {addr}:{port}: {exc.strerror or exc}") from exc
    return reader, server


def _install_globals(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> bool:
    from opentelemetry import metrics as metrics_api

    # The API silently keeps the first provider it was given; compare afterwards to know what happened.
    trace_api.set_tracer_provider(tracer_provider)
    metrics_api.set_meter_provider(meter_provider)
    installed = (
        trace_api.get_tracer_provider() is tracer_provider and metrics_api.get_meter_provider() is meter_provider
    )
    if not installed:
        _logger.warning(
            "batchlens.telemetry.configure(): OpenTelemetry global providers were already set in this "
            "process, so the new ones are not global. Call configure() once per process, or pass the "
            "handle's providers through batchlens.Telemetry(tracer_provider=..., meter_provider=...)."
        )
    return installed


# ----------------------------------------------------------------------------------------------------
# structlog


def _add_trace_context(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Correlate application log lines with the active span; keys already set (by batchlens) win."""
    context = trace_api.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _configure_structlog(log_format: str, level: int) -> None:
    import structlog

    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if log_format == "json":
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.set_exc_info, structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(),
        # Caching would pin loggers to this configuration and defeat structlog.testing.capture_logs() in
        # the application's tests; the per-call lookup costs about a microsecond.
        cache_logger_on_first_use=False,
    )
