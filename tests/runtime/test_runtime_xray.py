"""Spans to the X-Ray daemon address over UDP under awslambdaric, sampled and unsampled (datagrams decoded).

``OTEL_TRACES_EXPORTER=xray`` with ``AWS_XRAY_DAEMON_ADDRESS`` pointing at a UDP socket on 127.0.0.1.
"""

from __future__ import annotations

import time
from pathlib import Path

from ._collectors import XrayDaemon
from ._emulator import lambda_runtime
from ._support import INVOKE_WAIT_S, batch_spans, orders

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
TRACE_ID = "5759e988bd862e3fe1be46a994272793"


def _header(sampled: bool) -> str:
    return f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled={int(sampled)}"


def test_sampled_invocation_spans_arrive_over_udp_before_the_freeze(tmp_path: Path) -> None:
    with XrayDaemon() as daemon, lambda_runtime(
        "app.lambda_handler", tmp_path, OTEL_TRACES_EXPORTER="xray", AWS_XRAY_DAEMON_ADDRESS=daemon.address
    ) as (api, _process, _):
        counts = []
        for _ in range(3):
            before = len(daemon.decoded())
            invocation = api.run(orders(10, failing=1), INVOKE_WAIT_S, trace_id=_header(True))
            assert invocation.kind == "response"
            time.sleep(0.2)  # sent before the response; the runtime is frozen now, so only receipt is pending
            datagrams = daemon.decoded()[before:]
            assert datagrams
            assert all(kind == "T1S" for kind, _ in datagrams)
            assert all(len(d) <= 65_507 for d in daemon.datagrams)
            spans = [span for _, spans in datagrams for span in spans]
            counts.append(len(spans))
            assert {span["trace_id"] for span in spans} == {TRACE_ID}
            (batch,) = batch_spans(spans)
            assert batch["attributes"]["faas.invocation_id"] == invocation.request_id
    print("spans received over UDP per sampled invocation:", counts)
    assert counts == [11, 11, 11]  # a batch span and ten record spans


def test_unsampled_invocation_sends_no_sampled_spans(tmp_path: Path) -> None:
    with XrayDaemon() as daemon, lambda_runtime(
        "app.lambda_handler", tmp_path, OTEL_TRACES_EXPORTER="xray", AWS_XRAY_DAEMON_ADDRESS=daemon.address
    ) as (api, _process, _):
        invocation = api.run(orders(10, failing=1), INVOKE_WAIT_S, trace_id=_header(False))
        assert invocation.kind == "response"
        time.sleep(0.2)
        assert [kind for kind, _ in daemon.decoded() if kind == "T1S"] == []
