"""SDK construction for ``batchlens.telemetry.configure``: resource, exporters, readers, Prometheus endpoint.

Every function imports the OpenTelemetry SDK lazily, so importing this module costs nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api

from batchlens._telemetry._resolve import SDK_HINT, _env

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

_logger = logging.getLogger("batchlens.telemetry")


def _resource_from_env(env: Mapping[str, str]) -> Resource:
    """``Resource.create()``, with its built-in detectors run in this thread when no other detector is configured.

    ``Resource.create()`` runs every detector on a new thread pool, which imports ``concurrent.futures.thread`` and
    starts a thread per detector: a few ms and 0.25 MB of a cold start for detectors that only read variables. The
    same detectors merged in the same order give the same resource; with ``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS``
    set (detectors from entry points), or an SDK without the pieces this relies on, ``Resource.create()`` is used.
    """
    from opentelemetry.sdk import resources

    default = getattr(resources, "_DEFAULT_RESOURCE", None)
    builtin = getattr(resources, "_build_resource_detectors", None)
    if _env(env, "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS") is not None or default is None or builtin is None:
        return resources.Resource.create()
    resource: Resource = default
    for detector in builtin():  # without that variable: the built-in detectors, no entry-point scan
        try:
            detected = detector.detect()
        except Exception as exc:
            if detector.raise_on_error:
                raise
            _logger.warning("batchlens.telemetry: resource detector %s failed: %r", type(detector).__name__, exc)
            continue
        resource = resource.merge(detected)
    if not resource.attributes.get(resources.SERVICE_NAME):
        default_name = f"unknown_service:{os.path.basename(sys.executable)}" if sys.executable else "unknown_service"
        resource = resource.merge(resources.Resource({resources.SERVICE_NAME: default_name}))
    return resource


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
    from_env = _resource_from_env(env)
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
    if name == "xray":
        from batchlens._telemetry._xray_udp import XRayUdpSpanExporter

        return XRayUdpSpanExporter()  # AWS_XRAY_DAEMON_ADDRESS, else 127.0.0.1:2000
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # The SDK's default stream is the sys.stdout of import time; use the current one.
        return ConsoleSpanExporter(out=sys.stdout)
    cls: Any = _import_otlp(protocol, "trace_exporter", "OTLPSpanExporter")
    exporter: SpanExporter = cls(**_otlp_http_options(cls, "TRACES", protocol))
    return exporter


def _build_tracer_provider(
    resource: Resource,
    exporters: list[tuple[SpanExporter, bool]],
    queue_size: int,
    export_batch: int,
    watch: Callable[[SpanExporter], SpanExporter] = lambda exporter: exporter,
) -> TracerProvider:
    """The tracer provider of ``configure()``; ``exporters`` pairs each exporter with whether it is the X-Ray one.

    The X-Ray exporter gets X-Ray-style trace ids, follows Lambda's sampling decision and exports at flush time in
    the flushing thread (a UDP send cannot hang); every other exporter gets a batch processor (a worker thread)
    and is wrapped by ``watch``, so its failures mark its flush target as failing.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    xray = any(is_xray for _exporter, is_xray in exporters)
    options: dict[str, Any] = {}
    if xray and _env(os.environ, "OTEL_PYTHON_ID_GENERATOR") is None:
        from batchlens._telemetry._xray_udp import XRayIdGenerator

        options["id_generator"] = XRayIdGenerator()
    provider = TracerProvider(resource=resource, **options)
    from batchlens._telemetry._lifecycle import managed_instances

    # Managed Instances are not flushed per request: X-Ray spans need the batch processor's thread there too
    inline = not managed_instances()
    for exporter, is_xray in exporters:
        if is_xray and inline:
            from batchlens._telemetry._span_flush import FlushSpanProcessor

            provider.add_span_processor(FlushSpanProcessor(exporter, export_batch))
        else:
            provider.add_span_processor(
                BatchSpanProcessor(watch(exporter), max_queue_size=queue_size, max_export_batch_size=export_batch)
            )
    if xray:
        from batchlens._telemetry._inline import mark_inline
        from batchlens._telemetry._xray import follow_lambda_sampling

        follow_lambda_sampling(provider)
        if inline and all(is_xray for _exporter, is_xray in exporters):
            mark_inline(provider)  # its flush is a UDP send: no worker thread needed
    return provider


def _installed_tracer_provider() -> TracerProvider | None:
    """The OpenTelemetry SDK tracer provider already installed globally (by a Lambda layer, say), or None."""
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace_api.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def _make_metric_reader(
    name: str, protocol: str, watch: Callable[[MetricExporter], MetricExporter] = lambda exporter: exporter
) -> MetricReader:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    if name == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stdout))
    if name == "emf":
        from batchlens._telemetry._emf_reader import FlushMetricReader
        from batchlens._telemetry._lifecycle import managed_instances
        from batchlens._telemetry.emf import EmfMetricExporter

        # No thread: documents are written at each flush (force_flush before the sandbox freezes,
        # handle.flush(), shutdown), so each invocation's metrics leave with the invocation. Managed Instances are
        # never frozen and not flushed per request: a document per OTEL_METRIC_EXPORT_INTERVAL (60 s), and SIGTERM.
        if managed_instances():
            return PeriodicExportingMetricReader(EmfMetricExporter())
        return FlushMetricReader(EmfMetricExporter())
    cls: Any = _import_otlp(protocol, "metric_exporter", "OTLPMetricExporter")
    # watched: its failures mark the meter provider failing (see _telemetry._health)
    return PeriodicExportingMetricReader(watch(cls(**_otlp_http_options(cls, "METRICS", protocol))))


def _import_otlp(protocol: str, module: str, cls_name: str) -> object:
    package = "grpc" if protocol == "grpc" else "http"
    dist = f"opentelemetry-exporter-otlp-proto-{package}"
    try:
        imported = __import__(f"opentelemetry.exporter.otlp.proto.{package}.{module}", fromlist=[cls_name])
    except ImportError as exc:
        hint = SDK_HINT if package == "http" else f"pip install {dist}"
        raise ImportError(f"OTLP over {protocol} needs the {dist} package: {hint}") from exc
    cls: object = getattr(imported, cls_name)
    return cls


# What the exporter's default transport (a requests.Session) takes from the environment beyond the OTLP variables
# and the urllib3 transport cannot do: proxies, a netrc login, a credential-provider plug-in returning a Session.
_REQUESTS_ONLY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NETRC",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
)


def _otlp_http_options(cls: Any, signal: str, protocol: str) -> dict[str, Any]:
    """Keyword arguments that give an OTLP/HTTP exporter the urllib3 transport instead of its requests default.

    Both transports ship in opentelemetry-exporter-http-transport; urllib3 is what requests itself sends with, so
    the result on the wire is the same while the cold start skips importing requests, charset_normalizer, idna
    and certifi. Returns no options (the exporter's default) for gRPC, for exporters without a ``_transport``
    argument, without urllib3, and whenever the environment asks for something only the requests session honours.
    """
    if protocol != "http/protobuf" or not _accepts_keyword(cls, "_transport"):
        return {}
    env = os.environ
    requests_only = (*_REQUESTS_ONLY_VARIABLES, f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal}_CREDENTIAL_PROVIDER")
    if any(_env(env, name) or _env(env, name.lower()) for name in requests_only) or _has_netrc():
        return {}
    try:
        from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

        # The same trust roots as the requests session: its own CA variables win there (they replace the
        # session's verify setting on every request), then the OTLP certificate, then certifi's bundle.
        verify = (
            _env(env, "REQUESTS_CA_BUNDLE")
            or _env(env, "CURL_CA_BUNDLE")
            or _env(env, f"OTEL_EXPORTER_OTLP_{signal}_CERTIFICATE")
            or _env(env, "OTEL_EXPORTER_OTLP_CERTIFICATE")
            or _certifi_bundle()
            or True
        )
        key = _env(env, f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_KEY") or _env(env, "OTEL_EXPORTER_OTLP_CLIENT_KEY")
        certificate = _env(env, f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_CERTIFICATE") or _env(
            env, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
        )
        if isinstance(verify, str) and os.path.isdir(verify):
            return {}  # a CA directory: requests passes it as ca_cert_dir, the urllib3 transport cannot
        cert = (certificate, key) if certificate and key else certificate
        return {"_transport": Urllib3HTTPTransport(verify=verify, cert=cert)}
    except ImportError:
        return {}


def _accepts_keyword(cls: Any, name: str) -> bool:
    code = getattr(getattr(cls, "__init__", None), "__code__", None)
    if code is None:
        return False
    return name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]


def _certifi_bundle() -> str | None:
    """The CA bundle requests verifies against by default (certifi's), located without importing certifi."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("certifi")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        bundle = os.path.join(location, "cacert.pem")
        if os.path.isfile(bundle):
            return bundle
    return None


def _has_netrc() -> bool:
    # requests adds a login from ~/.netrc (or ~/_netrc) to every request when the file names the host.
    try:
        return any(os.path.exists(os.path.expanduser(f"~/{name}")) for name in (".netrc", "_netrc"))
    except (KeyError, RuntimeError):
        return False


def _start_prometheus(port: int, addr: str) -> tuple[MetricReader, WSGIServer]:
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError as exc:
        raise ImportError(f"metrics='prometheus' needs opentelemetry-exporter-prometheus: {SDK_HINT}") from exc

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
    if trace_api.get_tracer_provider() is not tracer_provider:  # a pre-installed provider may be reused
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
