"""Tests for the batch span joining the direct caller's W3C trace context (``context.w3c()``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens._telemetry._w3c import caller_parent, parse_traceparent
from batchlens.testing import sqs_event

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{SPAN}-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
XRAY_TRACE = "5759e988bd862e3fe1be46a994272793"
XRAY_PARENT = "53995c3f42cd8ad8"
XRAY_HEADER = f"Root=1-{XRAY_TRACE[:8]}-{XRAY_TRACE[8:]};Parent={XRAY_PARENT};Sampled=1"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders"

# the runtime client ships Linux wheels only (it is a sys_platform == "linux" test requirement)
LambdaContext = pytest.importorskip("awslambdaric.lambda_context", reason="awslambdaric has Linux wheels only").LambdaContext


def runtime_context(w3c: Any) -> LambdaContext:
    """The runtime client's own context, as awslambdaric builds it from a client context carrying ``w3c``."""
    client_context = None if w3c is None else {"w3c": w3c, "custom": {"app": "x"}}
    return LambdaContext("req-1", client_context, None, 2**62, ARN)


def ok(record: Any) -> None:
    return None


def run_batch(telemetry: Telemetry, context: Any) -> Any:
    return process_partial_response(
        sqs_event(count=2, seed=7), ok, BatchProcessor(EventType.SQS, telemetry=telemetry), context
    )


def batch_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = [s for s in exporter.get_finished_spans() if "messaging.batch.message_count" in (s.attributes or {})]
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return spans[0]


def ids(span_context: Any) -> tuple[str, str]:
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


# -- joining ----------------------------------------------------------------------------------------------------
def test_the_callers_traceparent_is_the_batch_span_parent(telemetry, span_exporter):
    """With no current span and no X-Ray trace, context.w3c()'s traceparent parents the batch span."""
    response = run_batch(telemetry, runtime_context({"traceparent": TRACEPARENT, "tracestate": TRACESTATE}))

    assert response == {"batchItemFailures": []}
    batch = batch_span(span_exporter)
    assert batch.parent is not None
    assert batch.parent.is_remote
    assert ids(batch.parent) == (TRACE, SPAN)
    assert format(batch.context.trace_id, "032x") == TRACE
    # tracestate is kept: the batch span and its record spans carry it on
    assert batch.context.trace_state.to_header() == TRACESTATE
    records = [s for s in span_exporter.get_finished_spans() if s is not batch and s.kind is SpanKind.CONSUMER]
    assert len(records) == 2
    assert all(r.parent.span_id == batch.context.span_id for r in records)
    assert all(r.context.trace_state.to_header() == TRACESTATE for r in records)


def test_an_unsampled_traceparent_is_respected(telemetry, span_exporter):
    """Flags 00: the parent-based sampler records nothing, and the batch is processed as usual."""
    response = run_batch(telemetry, runtime_context({"traceparent": f"00-{TRACE}-{SPAN}-00"}))

    assert response == {"batchItemFailures": []}
    assert span_exporter.get_finished_spans() == ()


def test_a_sampled_xray_trace_wins_over_the_w3c_context(telemetry, span_exporter, monkeypatch):
    """The invocation's sampled X-Ray trace comes before the caller's W3C context."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", XRAY_HEADER)
    run_batch(telemetry, runtime_context({"traceparent": TRACEPARENT}))

    assert ids(batch_span(span_exporter).parent) == (XRAY_TRACE, XRAY_PARENT)


def test_an_unsampled_xray_trace_falls_through_to_the_w3c_context(telemetry, span_exporter, monkeypatch):
    """Lambda sets _X_AMZN_TRACE_ID with Sampled=0 when it does not trace: the W3C context is joined then."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", XRAY_HEADER.replace("Sampled=1", "Sampled=0"))
    run_batch(telemetry, runtime_context({"traceparent": TRACEPARENT}))

    assert ids(batch_span(span_exporter).parent) == (TRACE, SPAN)


def test_switching_the_xray_parent_off_leaves_w3c_joining_on(span_exporter, tracer_provider, monkeypatch):
    """BATCHLENS_XRAY_PARENT=false skips the sampled X-Ray trace and still joins context.w3c()."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", XRAY_HEADER)
    monkeypatch.setenv("BATCHLENS_XRAY_PARENT", "false")
    telemetry = Telemetry.from_env(tracer_provider=tracer_provider, metrics=False, logging=False)
    run_batch(telemetry, runtime_context({"traceparent": TRACEPARENT}))

    assert ids(batch_span(span_exporter).parent) == (TRACE, SPAN)


def test_a_current_span_wins_over_the_w3c_context(telemetry, span_exporter, tracer_provider):
    """When a span is current the batch span is its child, whatever context.w3c() says."""
    with tracer_provider.get_tracer("app").start_as_current_span("handler", kind=SpanKind.SERVER) as outer:
        run_batch(telemetry, runtime_context({"traceparent": TRACEPARENT}))

    assert batch_span(span_exporter).parent.span_id == outer.get_span_context().span_id


def test_each_invocation_joins_its_own_caller(telemetry, span_exporter):
    """One processor, two invocations with different callers: each batch span has its own caller as parent."""
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)
    callers = [(f"{n:032x}", f"{n + 100:016x}") for n in (1, 2)]
    for trace_hex, span_hex in callers:
        context = runtime_context({"traceparent": f"00-{trace_hex}-{span_hex}-01"})
        process_partial_response(sqs_event(count=1, seed=8), ok, processor, context)

    parents = [ids(s.parent) for s in span_exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER and s.parent]
    assert [p for p in parents if p in callers] == callers


# -- never failing the batch ------------------------------------------------------------------------------------
class Raising:
    def w3c(self) -> Any:
        raise RuntimeError("broken client context")


class Returning:
    def __init__(self, value: Any) -> None:
        self.value = value

    def w3c(self) -> Any:
        return self.value


class NotCallable:
    w3c = {"traceparent": TRACEPARENT}


class BadMapping(dict):  # type: ignore[type-arg]
    def get(self, key: Any, default: Any = None) -> Any:
        raise KeyError(key)


@pytest.mark.parametrize(
    "context",
    [
        Raising(),
        Returning(None),
        Returning([("traceparent", TRACEPARENT)]),
        Returning(TRACEPARENT),
        Returning({"traceparent": 7}),
        Returning({"traceparent": TRACEPARENT.encode()}),
        Returning(BadMapping(traceparent=TRACEPARENT)),
        NotCallable(),
        runtime_context(None),
        runtime_context("not a dict"),
        runtime_context({"traceparent": 1234}),
        object(),
    ],
    ids=repr,
)
def test_a_context_without_a_usable_w3c_leaves_a_root_span(telemetry, span_exporter, context):
    """A w3c() that is missing, raises or returns junk never fails the batch: the batch span is a root span."""
    response = run_batch(telemetry, context)

    assert response == {"batchItemFailures": []}
    assert batch_span(span_exporter).parent is None


# -- parsing ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE.upper()}-{SPAN}-01",  # W3C: lowercase hex only
        f"00-{TRACE}-{SPAN.upper()}-01",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 ends at the flags
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE[:-1]}g-{SPAN}-01",
        f"00-{TRACE}-{SPAN}",
        f"0-{TRACE}-{SPAN}-01",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE}-{SPAN}-01" + " " * 600,  # absurdly long
        "",
        None,
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ],
    ids=repr,
)
def test_invalid_traceparents_are_refused(value):
    """Malformed, upper-case, all-zero, version ff and over-long traceparents give no span context."""
    assert parse_traceparent(value) is None


def test_a_later_version_may_append_fields():
    """A version above 00 is read by its first four fields; what it appends after a dash is ignored."""
    parsed = parse_traceparent(f"01-{TRACE}-{SPAN}-01-whatever-comes-next")

    assert parsed is not None
    assert ids(parsed) == (TRACE, SPAN)
    assert parsed.trace_flags.sampled
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01x") is None


def test_tracestate_is_kept_when_valid_and_dropped_when_not():
    """A valid tracestate rides on the span context; an invalid or over-long one leaves it empty."""
    kept = parse_traceparent(TRACEPARENT, TRACESTATE)
    invalid = parse_traceparent(TRACEPARENT, "not a tracestate")
    long = parse_traceparent(TRACEPARENT, ",".join(f"k{i}={'v' * 250}" for i in range(40)))

    assert kept is not None
    assert dict(kept.trace_state) == {"rojo": "00f067aa0ba902b7", "congo": "t61rcWkgMzE"}
    assert invalid is not None
    assert len(invalid.trace_state) == 0
    assert long is not None
    assert len(long.trace_state) == 0
    assert not parse_traceparent(f"00-{TRACE}-{SPAN}-00").trace_flags.sampled  # type: ignore[union-attr]


@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=80)))
def test_parsing_any_text_never_raises(traceparent, tracestate):
    """Whatever the caller sends, parsing yields a valid remote span context or None."""
    parsed = parse_traceparent(traceparent, tracestate)
    assert parsed is None or (parsed.is_valid and parsed.is_remote)


@given(
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    st.integers(0, 255),
)
def test_every_well_formed_traceparent_round_trips(trace_hex, span_hex, flags):
    """A well-formed version-00 traceparent gives back its ids and flags (all-zero ids refused)."""
    parsed = parse_traceparent(f"00-{trace_hex}-{span_hex}-{flags:02x}")
    if int(trace_hex, 16) == 0 or int(span_hex, 16) == 0:
        assert parsed is None
    else:
        assert parsed is not None
        assert ids(parsed) == (trace_hex, span_hex)
        assert int(parsed.trace_flags) == flags


def test_caller_parent_reads_the_runtime_context():
    """caller_parent turns awslambdaric's context.w3c() into a parent context; none without a traceparent."""
    from opentelemetry import trace

    parent = caller_parent(runtime_context({"traceparent": TRACEPARENT, "baggage": "k=v"}))
    assert parent is not None
    assert ids(trace.get_current_span(parent).get_span_context()) == (TRACE, SPAN)
    assert caller_parent(runtime_context({"tracestate": TRACESTATE})) is None
    assert caller_parent(None) is None


def test_the_testing_context_carries_a_callers_traceparent(telemetry, span_exporter):
    """batchlens.testing.lambda_context(traceparent=..., tracestate=...) gives w3c() as the runtime client does."""
    from batchlens.testing import lambda_context

    context = lambda_context(traceparent=TRACEPARENT, tracestate=TRACESTATE)
    assert context.w3c() == {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    run_batch(telemetry, context)
    batch = batch_span(span_exporter)
    assert batch.parent is not None
    assert ids(batch.parent) == (TRACE, SPAN)
    assert batch.context.trace_state.to_header() == TRACESTATE
    assert not hasattr(lambda_context(), "w3c")  # like a context from an event source mapping
