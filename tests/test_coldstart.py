"""Cold start of configure(): only the chosen exporters' modules load, and OTLP/HTTP sends through urllib3.

The default Lambda path (X-Ray branch) is checked as deployed: a handler module imported by a fresh interpreter.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from batchlens._telemetry._sdk import _otlp_http_options
from batchlens._telemetry._xray_udp import _host_name
from batchlens.telemetry import TelemetryHandle, configure

SRC = str(Path(__file__).resolve().parents[1] / "src")

# Variables that decide which transport and which trust roots the exporter gets; every test starts without them.
_CLEARED_PREFIXES = ("OTEL_", "AWS_LAMBDA_", "BATCHLENS_")
_CLEARED = {
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NETRC",
}

Sink = tuple[str, list[tuple[str, bytes]]]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OTEL_*, Lambda, proxy, CA-bundle or netrc settings; structlog at its defaults."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name.upper() in _CLEARED:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def handles() -> Iterator[list[TelemetryHandle]]:
    """Collects handles and shuts them all down after the test."""
    created: list[TelemetryHandle] = []
    yield created
    for handle in created:
        handle.shutdown()


def make(handles: list[TelemetryHandle], **kwargs: Any) -> TelemetryHandle:
    handle = configure(set_global=False, logs="none", metrics="none", **kwargs)
    handles.append(handle)
    return handle


def transport_of(handle: TelemetryHandle) -> Any:
    (exporter,) = handle.span_exporters
    return exporter._client._transport  # type: ignore[attr-defined]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, Sink]:
    received: list[tuple[str, bytes]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Receiver", (_Receiver,), {"received": received}))
    scheme = "http"
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, (f"{scheme}://127.0.0.1:{server.server_address[1]}", received)


@pytest.fixture
def receiver() -> Iterator[Sink]:
    """A loopback OTLP/HTTP receiver that keeps every request's path and body."""
    server, sink = serve()
    yield sink
    server.shutdown()
    server.server_close()


def span_names(received: list[tuple[str, bytes]]) -> list[str]:
    names = []
    for path, body in received:
        assert path == "/v1/traces"
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            names.extend(span.name for scope in resource_spans.scope_spans for span in scope.spans)
    return names


def run_setup(code: str, **env: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter in a Lambda-like environment; return which watched modules it loaded."""
    watched = [
        "requests",
        "charset_normalizer",
        "urllib3",
        "google.protobuf",
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "opentelemetry.proto.metrics.v1.metrics_pb2",
        "prometheus_client",
        "sentry_sdk",
        "pydantic",
        "grpc",
    ]
    script = code + f"\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {watched!r}}}))\n"
    child_env = {**os.environ, "PYTHONPATH": SRC, "AWS_LAMBDA_FUNCTION_NAME": "orders", **env}
    done = subprocess.run(
        [sys.executable, "-c", script], env=child_env, capture_output=True, text=True, check=True, timeout=120
    )
    loaded: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


SETUP = textwrap.dedent(
    """
    import batchlens
    from batchlens.telemetry import configure
    configure(service_name="orders", traces={traces!r}, logs="json")
    batchlens.BatchProcessor(event_type=batchlens.EventType.SQS)
    """
)


def test_lambda_default_setup_imports_only_what_its_exporters_need() -> None:
    """In Lambda, traces="otlp" with the EMF metric default loads no requests, OTLP metric exporter or extras."""
    loaded = run_setup(SETUP.format(traces="otlp"), OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    needed = ("urllib3", "google.protobuf")  # the OTLP/HTTP span exporter's own needs
    assert [name for name in needed if loaded[name]] == list(needed)
    assert [name for name, present in loaded.items() if present and name not in needed] == []


def test_lambda_setup_without_traces_imports_no_protobuf_or_http_client() -> None:
    """traces="none" with EMF metrics needs neither protobuf nor an HTTP client, so neither is imported."""
    loaded = run_setup(SETUP.format(traces="none"))
    assert [name for name, present in loaded.items() if present] == []


DEPLOYED_HANDLER = textwrap.dedent(
    """
    from batchlens import BatchProcessor, EventType, process_partial_response
    from batchlens.telemetry import configure

    configure(service_name="orders")
    processor = BatchProcessor(event_type=EventType.SQS)


    def lambda_handler(event, context):
        return process_partial_response(event, lambda record: record.body, processor, context)
    """
)

INVOKE_DEPLOYED = textwrap.dedent(
    """
    import json, sys, time
    import handler

    class Context:
        function_name = "orders"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:orders"
        aws_request_id = "request-1"
        deadline = time.monotonic() + 30

        def get_remaining_time_in_millis(self):
            return int((self.deadline - time.monotonic()) * 1000)

    record = {
        "messageId": "m-1", "receiptHandle": "r", "body": "hello", "attributes": {"SentTimestamp": "1545082649183"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders", "awsRegion": "us-east-1",
    }
    response = handler.lambda_handler({"Records": [record]}, Context())
    print(json.dumps({"response": response, "modules": sorted(sys.modules)}))
    """
)

# What the default Lambda path (X-Ray branch, EMF metrics, JSON logs) does without: protobuf and the OTLP
# exporters, any HTTP client, the IDNA codec (getaddrinfo of a str host), entry-point scanning, the resource
# detectors' thread pool, the extras.
NOT_ON_THE_DEFAULT_PATH = (
    "concurrent.futures.thread",
    "google.protobuf",
    "opentelemetry.proto",
    "opentelemetry.exporter",
    "grpc",
    "urllib3",
    "requests",
    "http.client",
    "urllib.request",
    "email",
    "encodings.idna",
    "unicodedata",
    "importlib.metadata",
    "importlib_metadata",
    "logging.handlers",
    "sentry_sdk",
    "pydantic",
    "prometheus_client",
    "boto3",
)


def test_the_deployed_lambda_default_imports_none_of_the_exporters_clients_or_extras(tmp_path: Path) -> None:
    """A handler module as the README deploys it, imported and invoked once in Lambda: the X-Ray branch is taken,
    its span datagrams arrive, and none of the modules the default path does without is loaded."""
    (tmp_path / "handler.py").write_text(DEPLOYED_HANDLER)
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(5)
    try:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([SRC, str(tmp_path)]),
            "AWS_LAMBDA_FUNCTION_NAME": "orders",
            "AWS_REGION": "us-east-1",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        }
        done = subprocess.run(
            [sys.executable, "-c", INVOKE_DEPLOYED], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        datagram = daemon.recv(70_000)
    finally:
        daemon.close()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["response"] == {"batchItemFailures": []}
    assert datagram.startswith(b'{"format":"json","version":1}\n')
    modules = set(result["modules"])
    assert "batchlens._telemetry._xray_udp" in modules
    loaded = sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_ON_THE_DEFAULT_PATH))
    assert loaded == []


def test_an_ascii_daemon_host_skips_the_idna_codec() -> None:
    """getaddrinfo() gets an ASCII host as bytes (no IDNA codec import); other names keep the codec."""
    assert _host_name("127.0.0.1") == b"127.0.0.1"
    assert _host_name("localhost") == b"localhost"
    assert _host_name("xn--bcher-kva.example") == b"xn--bcher-kva.example"
    assert _host_name("bücher.example") == "bücher.example"


def test_spans_arrive_through_the_urllib3_transport(
    receiver: Sink, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """traces="otlp" over http/protobuf sends with urllib3, and the spans reach an OTLP/HTTP receiver."""
    endpoint, received = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    handle = make(handles, service_name="cold", traces="otlp")
    assert isinstance(transport_of(handle), Urllib3HTTPTransport)
    tracer = handle.tracer_provider.get_tracer("t")
    for name in ("first", "second"):
        tracer.start_span(name).end()
    assert handle.flush()
    assert sorted(span_names(received)) == ["first", "second"]


def test_otlp_metrics_also_use_the_urllib3_transport(
    receiver: Sink, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """metrics="otlp" gets the same transport, and its export reaches /v1/metrics."""
    endpoint, received = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    handle = configure(set_global=False, logs="none", traces="none", metrics="otlp")
    handles.append(handle)
    (reader,) = handle.metric_readers
    assert isinstance(reader._exporter.exporter._client._transport, Urllib3HTTPTransport)  # type: ignore[attr-defined]
    handle.meter_provider.get_meter("batchlens").create_counter("batchlens.records.failed").add(1)
    assert handle.flush()
    assert [path for path, _ in received] == ["/v1/metrics"]


@pytest.mark.parametrize(
    "variable",
    ["HTTPS_PROXY", "http_proxy", "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER"],
)
def test_requests_only_settings_keep_the_default_transport(
    handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """A proxy or a credential-provider variable needs the requests session, so the exporter keeps its default."""
    monkeypatch.setenv(variable, "http://proxy.invalid:3128" if "PROXY" in variable.upper() else "missing")
    if "CREDENTIAL" in variable:
        # the default transport looks the provider up and fails: proof that it, not urllib3, was chosen
        with pytest.raises(RuntimeError, match="missing"):
            make(handles, traces="otlp")
        return
    handle = make(handles, traces="otlp")
    assert isinstance(transport_of(handle), RequestsHTTPTransport)


def test_a_netrc_file_keeps_the_default_transport(handles: list[TelemetryHandle], tmp_path: Path) -> None:
    """requests adds ~/.netrc logins to its requests; with such a file the exporter keeps the requests session."""
    (tmp_path / ".netrc").write_text("machine collector login u password p\n")
    assert isinstance(transport_of(make(handles, traces="otlp")), RequestsHTTPTransport)


def test_trust_roots_match_the_requests_default(
    handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """certifi's bundle by default; the OTLP certificate when set; requests' own CA variables over both."""
    import certifi

    pool = transport_of(make(handles, traces="otlp"))._pool
    assert pool.connection_pool_kw["ca_certs"] == certifi.where()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otlp-ca.pem")
    assert transport_of(make(handles, traces="otlp"))._pool.connection_pool_kw["ca_certs"] == "/etc/otlp-ca.pem"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/traces-ca.pem")
    assert transport_of(make(handles, traces="otlp"))._pool.connection_pool_kw["ca_certs"] == "/etc/traces-ca.pem"
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/curl-ca.pem")
    assert transport_of(make(handles, traces="otlp"))._pool.connection_pool_kw["ca_certs"] == "/etc/curl-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path))  # a directory: only requests can use it
    assert isinstance(transport_of(make(handles, traces="otlp")), RequestsHTTPTransport)


def test_exporter_without_a_transport_argument_gets_no_options() -> None:
    """An exporter version without ``_transport`` (older releases) is built with its defaults."""

    class OldExporter:
        def __init__(self, endpoint: str | None = None, session: object = None) -> None:
            self.endpoint = endpoint

    assert _otlp_http_options(OldExporter, "TRACES", "http/protobuf") == {}
    assert _otlp_http_options(OTLPSpanExporter, "TRACES", "grpc") == {}
    assert set(_otlp_http_options(OTLPSpanExporter, "TRACES", "http/protobuf")) == {"_transport"}


def _certificates(directory: Path) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "batchlens test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"batchlens test {role}")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if role == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        paths[f"{role}_cert"] = directory / f"{role}.pem"
        paths[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{role}_key"] = directory / f"{role}-key.pem"
        paths[f"{role}_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return paths


def test_mutual_tls_uses_the_otlp_certificate_variables(
    handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Over HTTPS the CA and client-certificate variables reach urllib3: spans arrive only with all three set."""
    pytest.importorskip("cryptography")
    files = _certificates(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(files["server_cert"], files["server_key"])
    tls.load_verify_locations(files["ca"])
    tls.verify_mode = ssl.CERT_REQUIRED  # the receiver demands a client certificate from the test CA
    server, (endpoint, received) = serve(tls)
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{endpoint}/v1/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", str(files["ca"]))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")  # the refused export gives up quickly
        without_client_cert = make(handles, traces="otlp")
        without_client_cert.tracer_provider.get_tracer("t").start_span("refused").end()
        without_client_cert.flush(10_000)
        assert received == []

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10")

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(files["client_cert"]))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", str(files["client_key"]))
        handle = make(handles, traces="otlp")
        assert isinstance(transport_of(handle), Urllib3HTTPTransport)
        handle.tracer_provider.get_tracer("t").start_span("over mtls").end()
        assert handle.flush(10_000)
        assert span_names(received) == ["over mtls"]
    finally:
        server.shutdown()
        server.server_close()
