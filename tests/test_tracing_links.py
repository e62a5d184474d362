"""Tests for producer links: X-Ray and W3C headers on records, the link limit, the X-Ray header parser."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.trace import TraceFlags

from _tracing_support import by_message_id, failing_handler, spans_by_kind
from batchlens import (
    BatchProcessor,
    EventType,
    Telemetry,
    process_partial_response,
)
from batchlens._telemetry._xray import parse_xray_header
from batchlens._telemetry.tracing import producer_contexts
from batchlens.testing._events import (
    sqs_event,
)

TRACE_HEX = "5759e988bd862e3fe1be46a994272793"
PARENT_HEX = "53995c3f42cd8ad8"
XRAY = f"Root=1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]};Parent={PARENT_HEX};Sampled=1"
W3C_TRACE_HEX = "0af7651916cd43dd8448eb211c80319c"
W3C_SPAN_HEX = "b7ad6b7169203331"
TRACEPARENT = f"00-{W3C_TRACE_HEX}-{W3C_SPAN_HEX}-01"


# -- helpers -----------------------------------------------------------------------------------------------
def with_w3c(event: dict[str, Any], traceparent: str = TRACEPARENT, tracestate: str | None = None) -> dict[str, Any]:
    for record in event["Records"]:
        attributes = {"traceparent": {"stringValue": traceparent, "dataType": "String"}}
        if tracestate is not None:
            attributes["tracestate"] = {"stringValue": tracestate, "dataType": "String"}
        record["messageAttributes"] = attributes
    return event


# -- producer links --------------------------------------------------------------------------------------------
def test_xray_trace_header_links_record_and_batch_spans(telemetry, span_exporter):
    """AWSTraceHeader yields a link on the record span and on the batch span, with messaging.message.id."""
    event = sqs_event(count=2, seed=23)
    event["Records"][0]["attributes"]["AWSTraceHeader"] = XRAY
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    message_id = event["Records"][0]["messageId"]
    (batch_link,) = batch.links
    assert format(batch_link.context.trace_id, "032x") == TRACE_HEX
    assert format(batch_link.context.span_id, "016x") == PARENT_HEX
    assert batch_link.context.is_remote
    assert batch_link.attributes["messaging.message.id"] == message_id
    spans = by_message_id(records)
    (record_link,) = spans[message_id].links
    assert record_link.context.trace_id == int(TRACE_HEX, 16)
    assert not spans[event["Records"][1]["messageId"]].links
    # links do not make the producer the parent
    assert spans[message_id].context.trace_id == batch.context.trace_id != int(TRACE_HEX, 16)


def test_w3c_traceparent_in_message_attributes_links_spans(telemetry, span_exporter):
    """A W3C traceparent message attribute is extracted with the global propagator into links."""
    event = with_w3c(sqs_event(count=2, seed=24), tracestate="vendor=value")
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    assert [link.attributes["messaging.message.id"] for link in batch.links] == [
        r["messageId"] for r in event["Records"]
    ]
    for span in records:
        (link,) = span.links
        assert format(link.context.trace_id, "032x") == W3C_TRACE_HEX
        assert format(link.context.span_id, "016x") == W3C_SPAN_HEX
        assert link.context.trace_state.get("vendor") == "value"
        assert not link.attributes  # the record span carries messaging.message.id itself


def test_both_header_kinds_give_two_links_and_identical_contexts_one(telemetry, span_exporter):
    """A record with both an X-Ray header and a different traceparent gets two links; the same context once."""
    event = with_w3c(sqs_event(count=2, seed=25))
    event["Records"][0]["attributes"]["AWSTraceHeader"] = XRAY
    same = f"Root=1-{W3C_TRACE_HEX[:8]}-{W3C_TRACE_HEX[8:]};Parent={W3C_SPAN_HEX};Sampled=1"
    event["Records"][1]["attributes"]["AWSTraceHeader"] = same
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    spans = by_message_id(records)
    first = spans[event["Records"][0]["messageId"]]
    assert {format(link.context.trace_id, "032x") for link in first.links} == {TRACE_HEX, W3C_TRACE_HEX}
    assert len(spans[event["Records"][1]["messageId"]].links) == 1
    assert len(batch.links) == 3


def test_batch_links_are_capped_at_the_link_limit(span_exporter, tracer_provider, monkeypatch):
    """The batch span gets at most OTEL_SPAN_LINK_COUNT_LIMIT links; record spans keep theirs."""
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "3")
    telemetry = Telemetry(tracer_provider=tracer_provider, metrics=False, logging=False)
    event = sqs_event(count=6, seed=26, trace_header=True)
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    process_partial_response(event, failing_handler, processor)

    batch, records = spans_by_kind(span_exporter)
    assert len(batch.links) == 3
    assert [link.attributes["messaging.message.id"] for link in batch.links] == [
        r["messageId"] for r in event["Records"][:3]
    ]
    assert all(len(s.links) == 1 for s in records)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8;Sampled=1",  # 23 hex digits
        "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",  # unknown version
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",  # no parent
        "Parent=53995c3f42cd8ad8;Sampled=1",  # no root
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad;Sampled=1",  # short parent
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0x995c3f42cd8ad8;Sampled=1",  # 0x prefix
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f_2cd8ad8;Sampled=1",  # underscore
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=zz995c3f42cd8ad8;Sampled=1",
        "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8;Sampled=1",  # zero trace id
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000;Sampled=1",  # zero span id
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Root=x",  # later bad root
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=" + "a" * 3000,
    ],
)
def test_malformed_xray_headers_are_ignored(header):
    """Malformed X-Ray headers parse to None instead of raising."""
    assert parse_xray_header(header) is None


@pytest.mark.parametrize(
    ("header", "sampled"),
    [
        (XRAY, True),
        (f"Sampled=0;Parent={PARENT_HEX};Root=1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]}", False),
        (
            f" Root = 1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]} ; Parent={PARENT_HEX} ;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
            True,
        ),
        (f"Root=1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]};Parent={PARENT_HEX.upper()}", False),
        (
            f"Self=1-67891234-abcdef012345678912345678;Root=1-{TRACE_HEX[:8]}-{TRACE_HEX[8:]};Parent={PARENT_HEX};Sampled=?",
            False,
        ),
    ],
)
def test_valid_xray_headers_parse_in_any_field_order(header, sampled):
    """Valid headers parse regardless of field order, spaces, case of hex digits and extra fields."""
    context = parse_xray_header(header)
    assert context is not None
    assert format(context.trace_id, "032x") == TRACE_HEX
    assert format(context.span_id, "016x") == PARENT_HEX
    assert context.is_remote
    assert context.trace_flags.sampled is sampled
    assert context.trace_flags == (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=50), st.integers(), st.none()))
def test_xray_parser_never_raises(header):
    """Arbitrary input never makes the X-Ray parser raise."""
    result = parse_xray_header(header)
    assert result is None or result.is_valid


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["Root", "Parent", "Sampled", "Lineage", "Self", "root", ""]).flatmap(
            lambda key: st.tuples(st.just(key), st.text(alphabet="0123456789abcdef-=; x", max_size=40))
        ),
        max_size=6,
    )
)
def test_xray_parser_never_raises_on_header_like_input(fields):
    """Header-shaped input with arbitrary field values never makes the parser raise."""
    header = ";".join(f"{k}={v}" for k, v in fields)
    result = parse_xray_header(header)
    assert result is None or result.is_valid


def test_malformed_headers_in_a_batch_do_not_change_processing(telemetry, span_exporter):
    """Records with malformed X-Ray and W3C headers are processed normally, with no links."""
    event = with_w3c(sqs_event(count=3, seed=27), traceparent="00-zz-not-a-context")
    for record in event["Records"]:
        record["attributes"]["AWSTraceHeader"] = "Root=broken;Parent=;Sampled=yes"
    event["Records"][2]["messageAttributes"] = {"traceparent": "not a mapping"}
    processor = BatchProcessor(EventType.SQS, telemetry=telemetry)

    response = process_partial_response(event, failing_handler, processor)

    assert response == {"batchItemFailures": []}
    batch, records = spans_by_kind(span_exporter)
    assert len(records) == 3
    assert not batch.links
    assert all(not s.links for s in records)


def test_producer_contexts_dedupes_identical_contexts():
    """producer_contexts returns one context when the X-Ray and W3C headers name the same span."""
    same = f"Root=1-{W3C_TRACE_HEX[:8]}-{W3C_TRACE_HEX[8:]};Parent={W3C_SPAN_HEX};Sampled=1"
    assert len(producer_contexts(same, {"traceparent": TRACEPARENT})) == 1
    assert len(producer_contexts(XRAY, {"traceparent": TRACEPARENT})) == 2
    assert producer_contexts(None, {"tracestate": "a=b"}) == []
    assert producer_contexts(None, None) == []


def test_w3c_extraction_ignores_the_current_span(telemetry, tracer_provider):
    """A carrier without traceparent yields no context even while a span is current."""
    with tracer_provider.get_tracer("app").start_as_current_span("current"):
        assert producer_contexts(None, {"tracestate": "a=b"}) == []
