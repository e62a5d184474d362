"""Sentry test helpers that work with every supported sentry-sdk major version (2.x and 3.x).

An in-memory transport, a reset of the client between tests, Sentry's own span or transaction around code, and
the spans and transactions an envelope list holds, whichever format the installed version sends them in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

SENTRY_MAJOR = int(sentry_sdk.VERSION.split(".")[0])
TEST_DSN = "https://public@o0.ingest.sentry.io/1"


class KeepingTransport(Transport):
    """A Sentry transport that keeps every envelope in memory and records flush calls."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []
        self.flushes: list[float] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def flush(self, timeout: float, callback: Any = None) -> None:
        self.flushes.append(timeout)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Error and message events (not transactions)."""
        return [event for envelope in self.envelopes if (event := envelope.get_event()) is not None]

    def serialized(self) -> str:
        """Every envelope as the bytes a transport would post, decoded."""
        return "\n".join(envelope.serialize().decode("utf-8", "replace") for envelope in self.envelopes)


def reset_sentry() -> None:
    """Close the client and leave every scope without one (``Scope``'s class methods exist in 2.0 and 3.x)."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=0)
    scope = sentry_sdk.Scope
    for one in (scope.get_global_scope(), scope.get_isolation_scope(), scope.get_current_scope()):
        one.set_client(None)


def current_trace_id() -> str:
    """The trace id of Sentry's current scope (its span's, else its propagation context's)."""
    return str(sentry_sdk.get_traceparent()).split("-", 1)[0]


def as_sentry_sends(text: str) -> str:
    """``text`` as the event carries it: early 2.x releases cut strings to 1,024 bytes, later ones do not."""
    limit = getattr(sentry_sdk.consts, "DEFAULT_MAX_VALUE_LENGTH", None)
    if not limit or len(text.encode("utf-8")) <= limit:
        return text
    return text[: limit - 3] + "..."


def collects_user_info(client: Any) -> bool:
    """Whether the client sends personal data by default, as this sentry-sdk version configures it."""
    collection = client.options.get("data_collection")
    if isinstance(collection, dict):
        return bool(collection.get("user_info"))
    return bool(client.options.get("send_default_pii"))


@contextlib.contextmanager
def sentry_span(name: str) -> Iterator[Any]:
    """The application's own Sentry span: a transaction in 2.x, a segment span in 3.x."""
    if SENTRY_MAJOR >= 3:
        with sentry_sdk.start_span(name=name) as span:
            yield span
    else:
        with sentry_sdk.start_transaction(name=name) as transaction:
            yield transaction


def sent_spans(envelopes: list[Envelope]) -> list[dict[str, Any]]:
    """Every span the envelopes carry as ``{"op", "name", "trace_id", "fields"}``.

    ``fields`` merges what a span was given by ``set_attribute`` (3.x span items), ``set_tag`` and ``set_data``
    (2.x transactions and their child spans).
    """
    spans: list[dict[str, Any]] = []
    for envelope in envelopes:
        for item in envelope.items:
            payload = item.payload.json
            if item.type == "span" and isinstance(payload, dict):
                for span in payload.get("items", []):
                    attributes = {key: value.get("value") for key, value in (span.get("attributes") or {}).items()}
                    spans.append(
                        {
                            "op": attributes.get("sentry.op"),
                            "name": span.get("name"),
                            "trace_id": span.get("trace_id"),
                            "fields": attributes,
                        }
                    )
            elif item.type == "transaction" and isinstance(payload, dict):
                trace = payload.get("contexts", {}).get("trace", {})
                fields = {**(trace.get("data") or {}), **(payload.get("tags") or {})}
                spans.append(
                    {
                        "op": trace.get("op"),
                        "name": payload.get("transaction"),
                        "trace_id": trace.get("trace_id"),
                        "fields": fields,
                    }
                )
                for child in payload.get("spans") or []:
                    spans.append(
                        {
                            "op": child.get("op"),
                            "name": child.get("description"),
                            "trace_id": child.get("trace_id"),
                            "fields": {**(child.get("data") or {}), **(child.get("tags") or {})},
                        }
                    )
    return spans
