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
            telemetry.flush(context=context)  # within the remaining time: a frozen sandbox loses what is queued
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from batchlens._telemetry._flush import DEFAULT_FLUSH_MS, FlushTask, flush_budget_ms, flush_within
from batchlens._telemetry._resolve import (
    DEFAULT_PROMETHEUS_ADDR,
    DEFAULT_PROMETHEUS_PORT,
    DEFAULT_SPAN_QUEUE_SIZE,
    LOG_FORMATS,
    METRICS_EXPORTERS,
    OTLP_PROTOCOLS,
    SDK_HINT,
    TRACES_EXPORTERS,
    _env,
    _in_lambda,
    _positive_int_env,
    _resolve_exporters,
    _resolve_log_format,
    _resolve_log_level,
    _resolve_otlp_protocol,
    _resolve_prometheus_endpoint,
    _span_queue_size,
    lambda_trace_default,
)
from batchlens._telemetry._sdk import (
    _build_resource,
    _build_tracer_provider,
    _install_globals,
    _installed_tracer_provider,
    _make_metric_reader,
    _make_span_exporter,
    _start_prometheus,
)

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from batchlens._telemetry.emf import EmfMetricExporter

__all__ = [
    "DEFAULT_PROMETHEUS_ADDR",
    "DEFAULT_PROMETHEUS_PORT",
    "DEFAULT_SPAN_QUEUE_SIZE",
    "LOG_FORMATS",
    "METRICS_EXPORTERS",
    "OTLP_PROTOCOLS",
    "TRACES_EXPORTERS",
    "EmfMetricExporter",
    "TelemetryHandle",
    "configure",
]

_logger = logging.getLogger("batchlens.telemetry")
_PROVIDERS = ("tracer_provider", "meter_provider")


def __getattr__(name: str) -> Any:
    # EmfMetricExporter subclasses the SDK's MetricExporter: imported on first use, like the SDK itself
    if name == "EmfMetricExporter":
        from batchlens._telemetry.emf import EmfMetricExporter

        return EmfMetricExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        owns_tracer_provider: bool = True,
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
        # False for a provider installed before configure() (a Lambda layer's): shutdown() only flushes it
        self._owns_tracer_provider = owns_tracer_provider

    @property
    def prometheus_port(self) -> int | None:
        """The port ``/metrics`` is served on (the bound one when port 0 was asked), or None."""
        if self._prometheus_server is None:
            return None
        return int(self._prometheus_server.server_address[1])

    def flush(self, timeout_millis: int | None = None, *, context: Any = None) -> bool:
        """Export every finished span and the current metric values now, within one wall-clock deadline.

        Call it before a Lambda handler returns: the sandbox is frozen right after, and whatever is still
        queued is lost or arrives late. Both providers are flushed at once on daemon threads and the call
        returns at the deadline even when an exporter never answers (the export then continues in the
        background, and a warning on the ``batchlens`` logger names what was cut). A provider whose flush was cut
        or whose exporter fails is waited for at most 40 ms until one of its exports succeeds again (see
        ``docs/exporters.md``). Never raises; failures are logged through :mod:`logging`.

        Args:
            timeout_millis: The budget shared by the span and the metric flush; default 5,000 ms.
            context: The Lambda context: the budget is then at most its remaining time minus 300 ms.

        Returns:
            True when both flushes completed, successfully, within the budget.
        """
        if self._shut_down:
            return False
        cap = DEFAULT_FLUSH_MS if timeout_millis is None else int(timeout_millis)
        outcome: dict[str, bool] = {}

        def flushing(name: str, provider: Any) -> Callable[[int], object]:
            def flush(timeout: int) -> None:
                outcome[name] = bool(provider.force_flush(timeout))

            return flush

        tasks = [
            FlushTask(_PROVIDERS[0], self.tracer_provider, flushing(_PROVIDERS[0], self.tracer_provider)),
            FlushTask(_PROVIDERS[1], self.meter_provider, flushing(_PROVIDERS[1], self.meter_provider)),
        ]
        errors: list[int] = []

        def failed(index: int, exc: BaseException) -> None:
            errors.append(index)
            _logger.error("batchlens.telemetry: flushing %s failed", _PROVIDERS[index], exc_info=exc)

        cut = flush_within(tasks, flush_budget_ms(context, cap), on_error=failed)
        # no outcome: the flush joined one a processor had asked for, which completed
        return not cut and not errors and all(outcome.get(name, True) for name in _PROVIDERS)

    def shutdown(self, timeout_millis: int = 30_000) -> None:
        """Flush and stop both providers and the ``/metrics`` server. Calling it again does nothing.

        Both providers shut down at once; the call returns within ``timeout_millis`` of wall-clock time even
        when an exporter never answers.

        Args:
            timeout_millis: Budget for the whole shutdown.
        """
        if self._shut_down:
            return
        self._shut_down = True
        tracer_provider, meter_provider = self.tracer_provider, self.meter_provider
        stop_tracing: Callable[[int], object] = (
            (lambda timeout: tracer_provider.shutdown())
            if self._owns_tracer_provider
            else (lambda timeout: tracer_provider.force_flush(timeout))
        )

        def failed(index: int, exc: BaseException) -> None:
            _logger.error("batchlens.telemetry: shutting down the %s failed", _PROVIDERS[index], exc_info=exc)

        # targets of their own: a shutdown never joins a waiting flush
        flush_within(
            [
                FlushTask(_PROVIDERS[0], object(), stop_tracing, watched=False),
                FlushTask(_PROVIDERS[1], object(), lambda timeout: meter_provider.shutdown(timeout), watched=False),
            ],
            max(1, int(timeout_millis)),
            on_error=failed,
        )
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
        traces: ``"otlp"``, ``"xray"``, ``"console"``, ``"none"`` (comma-separated combinations allowed) or a
            ``SpanExporter`` instance; ``"xray"`` sends spans by UDP to the X-Ray daemon endpoint
            (``AWS_XRAY_DAEMON_ADDRESS``). Defaults to ``OTEL_TRACES_EXPORTER``, then, inside Lambda, to an SDK
            tracer provider already installed globally (used as it is), else ``"otlp"`` when an OTLP endpoint
            variable or a collector extension is found, else ``"xray"``; ``"otlp"`` outside Lambda.
        metrics: ``"emf"`` (CloudWatch Embedded Metric Format lines on stdout, written at each flush),
            ``"otlp"``, ``"prometheus"``, ``"console"``, ``"none"`` (combinations allowed) or a
            ``MetricReader`` instance. Defaults to ``OTEL_METRICS_EXPORTER``, then ``"emf"`` inside Lambda
            (``AWS_LAMBDA_FUNCTION_NAME`` set) and ``"otlp"`` elsewhere.
        logs: structlog output for the application: ``"json"`` (one JSON object per line with timestamp,
            level and the logger's name) to ``sys.stdout`` as it is at each write, ``"console"`` (structlog's
            ConsoleRenderer) or ``"none"`` (leave structlog alone). Defaults to ``"json"`` in Lambda and
            ``"console"`` elsewhere, unless the application already configured structlog, which is then left
            alone. batchlens' own entries use it only while the application does not log through ``logging``
            (Powertools' Logger, Lambda's JSON log format, its own handlers): they take that route otherwise.
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
    lambda_default = traces is None and _env(env, "OTEL_TRACES_EXPORTER") is None and _in_lambda(env)
    why = ""
    if lambda_default:
        default_name, why = lambda_trace_default(env)
        trace_names = (default_name,)
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
    except ImportError as exc:
        raise ImportError(f"batchlens.telemetry.configure() needs the OpenTelemetry SDK: {SDK_HINT}") from exc

    from batchlens._telemetry._watch import Watch

    # a layer's provider (AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-instrument) already exports: use it as it is
    borrowed = _installed_tracer_provider() if lambda_default else None
    if borrowed is not None:
        trace_names = ()
    resource = _build_resource(service_name, env)
    watch = Watch()  # the exporters report each export: a dead collector costs one flush, not every flush

    pairs: list[tuple[SpanExporter, bool]] = []
    if span_exporter_obj is not None:
        pairs.append((span_exporter_obj, False))
    pairs.extend((_make_span_exporter(name, trace_protocol), name == "xray") for name in trace_names)
    span_exporters = [exporter for exporter, _is_xray in pairs]
    if lambda_default:
        _say_trace_default(trace_names, why, borrowed, span_exporters)
    if borrowed is not None:
        tracer_provider = borrowed
    else:
        tracer_provider = _build_tracer_provider(resource, pairs, queue_size, export_batch, watch.span_exporter)

    readers: list[MetricReader] = []
    if metric_reader_obj is not None:
        readers.append(metric_reader_obj)
    readers.extend(
        _make_metric_reader(name, metric_protocol, watch.metric_exporter)
        for name in metric_names
        if name != "prometheus"
    )
    server: WSGIServer | None = None
    if "prometheus" in metric_names:
        prometheus_reader, server = _start_prometheus(port, addr)
        readers.append(prometheus_reader)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    watch.attach(tracer_provider, meter_provider)
    if "emf" in metric_names:
        from batchlens._telemetry._emf_reader import aggregate_in_python

        # EMF alone: batchlens' metrics are aggregated in plain Python and written at each flush (same output); the
        # flush is a write to stdout, which never waits on a network, so the caller runs it (no thread hand-off)
        if aggregate_in_python(meter_provider, readers):
            from batchlens._telemetry._inline import mark_inline

            mark_inline(meter_provider)

    is_global = False
    if set_global:
        is_global = _install_globals(tracer_provider, meter_provider)

    # under a Lambda runtime client: flush both providers within a bounded time when the worker gets SIGTERM
    from batchlens._telemetry._lifecycle import install_sigterm_flush

    install_sigterm_flush(tracer_provider, meter_provider)

    if log_format != "none":
        from batchlens._telemetry._structlog_setup import configure_structlog

        if logs is None and _in_lambda(env):
            # the Lambda default: batchlens' own lines need no structlog, so the application's first import of it
            # (if any) configures it, and a function that never uses structlog does not load it (cold start)
            from batchlens._telemetry._structlog_hook import configure_when_imported

            configure_when_imported(lambda: configure_structlog(log_format, level))
        else:
            configure_structlog(log_format, level)

    return TelemetryHandle(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        resource=resource,
        span_exporters=span_exporters,
        metric_readers=readers,
        prometheus_server=server,
        log_format=log_format,
        is_global=is_global,
        owns_tracer_provider=borrowed is None,
    )


def _say_trace_default(
    names: tuple[str, ...], why: str, borrowed: TracerProvider | None, exporters: list[SpanExporter]
) -> None:
    """The one line naming the trace pipeline chosen inside Lambda without an explicit choice, and how to change it."""
    change = "choose with OTEL_TRACES_EXPORTER (otlp, xray, console, none) or configure(traces=...)"
    if borrowed is not None:
        _logger.info(
            "batchlens.telemetry.configure(): traces use the OpenTelemetry SDK TracerProvider already installed "
            "(%s, e.g. by an OpenTelemetry or ADOT Lambda layer); batchlens adds no span exporter to it. To build "
            "batchlens' own pipeline instead, %s.",
            type(borrowed).__name__,
            change,
        )
    elif names == ("xray",):
        host, port = getattr(exporters[-1], "address", ("127.0.0.1", 2000))
        _logger.info(
            "batchlens.telemetry.configure(): traces go to X-Ray through the Lambda daemon endpoint at %s:%d "
            "(%s); only invocations Lambda samples (active tracing) are recorded. To send OTLP instead (e.g. to a "
            "collector on localhost:4318), set OTEL_EXPORTER_OTLP_ENDPOINT; or %s.",
            host,
            port,
            why,
            change,
        )
    else:
        _logger.info("batchlens.telemetry.configure(): traces go over OTLP (%s); %s.", why, change)
