"""Spans to X-Ray with no collector: what a local UDP socket receives from configure(traces="xray")."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import Link
from structlog.testing import capture_logs

from _configure_support import clean_environment as clean_environment
from _configure_support import handles_fixture as handles_fixture
from _configure_support import make
from _xray_support import MAX_DATAGRAM, Daemon, attributes_of, decode, spans_of
from _xray_support import daemon_fixture as daemon_fixture
from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._telemetry import _flush
from batchlens._telemetry._xray_udp import XRayIdGenerator, XRayUdpSpanExporter, parse_daemon_address
from batchlens.telemetry import TelemetryHandle
from batchlens.testing._events import lambda_context, sqs_event

SRC = str(Path(__file__).resolve().parents[1] / "src")
XRAY_TRACE = "5759e988bd862e3fe1be46a994272793"
XRAY_PARENT = "53995c3f42cd8ad8"
SAMPLED = f"Root=1-{XRAY_TRACE[:8]}-{XRAY_TRACE[8:]};Parent={XRAY_PARENT};Sampled=1;Lineage=a87bd80c:0"
UNSAMPLED = SAMPLED.replace("Sampled=1", "Sampled=0")


def handler(record: Any) -> str:
    if "fail" in record.body:
        raise ValueError("could not process the order")
    return "done"


def xray_handle(handles: list[TelemetryHandle]) -> TelemetryHandle:
    return make(handles, service_name="orders", traces="xray", metrics="none")


def invoke(handle: TelemetryHandle, bodies: list[str]) -> dict[str, Any]:
    telemetry = Telemetry(metrics=False, tracer_provider=handle.tracer_provider)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    return process_partial_response(sqs_event(bodies, seed=3), handler, processor, lambda_context())


# -- sampling ------------------------------------------------------------------------------------------------
def test_every_span_of_a_sampled_invocation_arrives_before_it_returns(
    daemon: Daemon, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch and record spans are in the socket when the handler returns, in the invocation's X-Ray trace."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", SAMPLED)
    handle = xray_handle(handles)
    response = invoke(handle, ["ok", "fail", "ok"])
    assert len(response["batchItemFailures"]) == 1

    spans = spans_of([decode(d) for d in daemon.datagrams(wait_s=0)])  # no waiting: already sent
    assert len(spans) == 4
    assert {span.trace_id.hex() for span in spans} == {XRAY_TRACE}
    (batch,) = [s for s in spans if s.parent_span_id.hex() == XRAY_PARENT]
    assert batch.flags & 0x300 == 0x300  # its parent is remote: the invocation's segment
    assert sorted(s.parent_span_id for s in spans if s is not batch) == [batch.span_id] * 3
    assert [attributes_of(s).get("error.type") for s in spans].count("ValueError") == 1


def test_an_unsampled_invocation_sends_nothing_and_its_logs_keep_the_trace_id(
    daemon: Daemon, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sampled=0: nothing is recorded or sent; the log lines still carry the invocation's trace id."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", UNSAMPLED)
    handle = xray_handle(handles)
    with capture_logs() as logs:
        invoke(handle, ["ok", "fail"])
    assert daemon.datagrams(wait_s=0.3) == []
    record_lines = [entry for entry in logs if "record_id" in entry]
    assert len(record_lines) == 2
    assert {entry["trace_id"] for entry in record_lines} == {XRAY_TRACE}


def test_a_sampled_invocation_after_an_unsampled_one_is_sent(
    daemon: Daemon, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision is per invocation: the header of each one decides."""
    handle = xray_handle(handles)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", UNSAMPLED)
    invoke(handle, ["ok"])
    other = "1-6759e988-bd862e3fe1be46a994272799"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={other};Parent={XRAY_PARENT};Sampled=1")
    invoke(handle, ["ok"])
    spans = spans_of([decode(d) for d in daemon.datagrams()])
    assert {span.trace_id.hex() for span in spans} == {other[2:].replace("-", "")}
    assert len(spans) == 2


def test_roots_without_a_header_use_xray_trace_ids(daemon: Daemon, handles: list[TelemetryHandle]) -> None:
    """With no _X_AMZN_TRACE_ID the batch span is a root whose trace id starts with the epoch seconds."""
    handle = xray_handle(handles)
    before = int(time.time())
    invoke(handle, ["ok"])
    spans = spans_of([decode(d) for d in daemon.datagrams()])
    assert len(spans) == 2
    epoch = int(spans[0].trace_id.hex()[:8], 16)
    assert before <= epoch <= int(time.time())


def test_the_id_generator_puts_epoch_seconds_first() -> None:
    """X-Ray-style trace ids: 8 hex digits of epoch seconds, 24 random; span ids are never zero."""
    generator = XRayIdGenerator()
    ids = {generator.generate_trace_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(abs((trace_id >> 96) - time.time()) < 5 for trace_id in ids)
    assert all(generator.generate_span_id() for _ in range(50))


def test_the_flush_runs_in_the_calling_thread(
    daemon: Daemon, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A UDP-only tracer provider is flushed inline: no flush worker is started for it."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", SAMPLED)
    handle = xray_handle(handles)
    invoke(handle, ["ok"])
    assert handle.flush() is True
    assert id(handle.tracer_provider) not in _flush._workers
    assert len(spans_of([decode(d) for d in daemon.datagrams()])) == 2


# -- size ----------------------------------------------------------------------------------------------------
def test_an_export_larger_than_a_datagram_is_split(daemon: Daemon, handles: list[TelemetryHandle]) -> None:
    """300 spans of about 1 kB each arrive in several datagrams, each at most 65,507 bytes, none lost or repeated."""
    handle = xray_handle(handles)
    tracer = handle.tracer_provider.get_tracer("test")
    for index in range(300):
        tracer.start_span(f"work {index}", attributes={"blob": "x" * 1000, "index": index}).end()
    assert handle.flush() is True
    datagrams = daemon.datagrams()
    assert len(datagrams) >= 5
    assert max(len(d) for d in datagrams) <= MAX_DATAGRAM
    assert max(len(d) for d in datagrams) > MAX_DATAGRAM - 2000  # packed, not one span per datagram
    spans = spans_of([decode(d) for d in datagrams])
    assert sorted(attributes_of(s)["index"] for s in spans) == list(range(300))


def test_a_span_too_large_for_a_datagram_loses_its_largest_attributes_first(
    daemon: Daemon, handles: list[TelemetryHandle]
) -> None:
    """The two largest attributes go, the small ones and the event stay, and the span says it was truncated."""
    handle = xray_handle(handles)
    span = handle.tracer_provider.get_tracer("test").start_span(
        "huge", attributes={"big1": "a" * 40_000, "big2": "b" * 30_000, "small": "s"}
    )
    span.add_event("note", {"text": "c" * 20_000})
    span.end()
    handle.tracer_provider.get_tracer("test").start_span("normal").end()
    handle.flush()
    datagrams = daemon.datagrams()
    assert all(len(d) <= MAX_DATAGRAM for d in datagrams)
    spans = {s.name: s for s in spans_of([decode(d) for d in datagrams])}
    huge = spans["huge"]
    assert attributes_of(huge) == {"small": "s", "batchlens.export.truncated": True}
    assert huge.dropped_attributes_count == 2
    assert [e.name for e in huge.events] == ["note"]
    assert "batchlens.export.truncated" not in attributes_of(spans["normal"])


def test_links_go_only_after_every_attribute_and_event(daemon: Daemon, handles: list[TelemetryHandle]) -> None:
    """A span made large by a link's attributes loses its attributes and events first, then the link."""
    handle = xray_handle(handles)
    tracer = handle.tracer_provider.get_tracer("test")
    producer = tracer.start_span("producer")
    producer.end()
    span = tracer.start_span(
        "consumer", attributes={"small": "s"}, links=[Link(producer.get_span_context(), {"blob": "l" * 70_000})]
    )
    span.add_event("note")
    span.end()
    handle.flush()
    spans = {s.name: s for s in spans_of([decode(d) for d in daemon.datagrams()])}
    consumer = spans["consumer"]
    assert attributes_of(consumer) == {"batchlens.export.truncated": True}
    assert (consumer.dropped_attributes_count, consumer.dropped_events_count, consumer.dropped_links_count) == (1, 1, 1)
    assert list(consumer.links) == []
    assert "producer" in spans


def test_a_span_that_cannot_be_shrunk_is_dropped_whole(
    daemon: Daemon, handles: list[TelemetryHandle], caplog: pytest.LogCaptureFixture
) -> None:
    """A span whose name alone exceeds a datagram is never sent cut; the others still go, and a warning says so."""
    handle = xray_handle(handles)
    tracer = handle.tracer_provider.get_tracer("test")
    tracer.start_span("n" * 70_000).end()
    tracer.start_span("fine").end()
    with caplog.at_level(logging.WARNING, logger="batchlens.telemetry"):
        handle.flush()
    assert [s.name for s in spans_of([decode(d) for d in daemon.datagrams()])] == ["fine"]
    assert "too large" in caplog.text


# -- never waits, never raises -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    ["255.255.255.255:2000", "127.0.0.1:9"],
    ids=["send-refused-broadcast", "no-listener"],
)
def test_a_send_error_never_reaches_the_handler(
    address: str,
    handles: list[TelemetryHandle],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EACCES on every send (broadcast without SO_BROADCAST) or nobody listening: invocations succeed at once."""
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", address)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", SAMPLED)
    handle = xray_handle(handles)
    with caplog.at_level(logging.WARNING, logger="batchlens.telemetry"):
        for _ in range(3):
            started = time.monotonic()
            assert invoke(handle, ["ok", "fail"])["batchItemFailures"]
            assert time.monotonic() - started < 2
    warnings = [r for r in caplog.records if r.name == "batchlens.telemetry"]
    if address.startswith("127.0.0.1"):
        assert warnings == []  # UDP cannot tell that nobody listens
    else:
        assert len(warnings) == 1  # once, not once per invocation


def test_export_after_shutdown_fails_quietly() -> None:
    """A shut-down exporter reports failure instead of raising."""
    exporter = XRayUdpSpanExporter("127.0.0.1:9")
    exporter.shutdown()
    assert exporter.export([]).name == "FAILURE"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ("127.0.0.1", 2000)),
        ("", ("127.0.0.1", 2000)),
        ("169.254.79.129:2000", ("169.254.79.129", 2000)),
        ("tcp:127.0.0.1:2000 udp:127.0.0.2:2001", ("127.0.0.2", 2001)),
        ("[::1]:2000", ("::1", 2000)),
    ],
)
def test_daemon_addresses(raw: str | None, expected: tuple[str, int]) -> None:
    """host:port and the X-Ray SDKs' 'tcp:... udp:...' form; the UDP address is used."""
    assert parse_daemon_address(raw) == expected


@pytest.mark.parametrize("raw", ["nonsense", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "tcp:127.0.0.1:2000"])
def test_malformed_daemon_addresses_are_refused_at_configure(
    raw: str, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed AWS_XRAY_DAEMON_ADDRESS is named at configure(), before any invocation."""
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", raw)
    with pytest.raises(ValueError, match="AWS_XRAY_DAEMON_ADDRESS"):
        xray_handle(handles)


def test_the_lambda_default_trace_path_loads_no_protobuf_or_otlp_exporter(daemon: Daemon) -> None:
    """configure() in Lambda with nothing detected, one sampled invocation: no protobuf, OTLP or HTTP module loads."""
    code = textwrap.dedent(
        """
        import sys
        import batchlens
        from batchlens.telemetry import configure
        from batchlens.testing import lambda_context, sqs_event
        handle = configure(service_name="orders", logs="json")
        processor = batchlens.BatchProcessor(event_type=batchlens.EventType.SQS)
        batchlens.process_partial_response(sqs_event(count=3), lambda record: None, processor, lambda_context())
        print([type(e).__name__ for e in handle.span_exporters])
        print(sorted(m for m in sys.modules if m.startswith(
            ("google.protobuf", "opentelemetry.proto", "opentelemetry.exporter", "requests", "urllib3"))))
        """
    )
    env = {
        "PYTHONPATH": SRC,
        "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "AWS_XRAY_DAEMON_ADDRESS": daemon.address,
        "_X_AMZN_TRACE_ID": SAMPLED,
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-2:] == ["['XRayUdpSpanExporter']", "[]"]
    assert len(spans_of([decode(d) for d in daemon.datagrams()])) == 4
