"""Semantic-convention values derived from event fields: SQS queue URL, Kafka broker and key, DynamoDB keys and time.

Pure functions, used by the source strategies in ``_sources.py``. Everything taken from a record is bounded.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = ["document_name", "iso_time", "kafka_carrier", "kafka_key", "server_attributes", "sqs_queue_url"]

MAX_ATTRIBUTE_TEXT = 256  # keys and document names come from records: user text, bounded
CACHE_SIZE = 1024
W3C_KEYS = frozenset({"traceparent", "tracestate"})
# SQS endpoint domains of the partitions outside ``amazonaws.com`` (aws and aws-us-gov use it)
_PARTITION_DOMAINS = {"aws-cn": "amazonaws.com.cn", "aws-iso": "c2s.ic.gov", "aws-iso-b": "sc2s.sgov.gov"}
_server_cache: dict[str, dict[str, Any]] = {}


def sqs_queue_url(arn: str) -> str | None:
    """The queue URL of an SQS queue ARN (``arn:<partition>:sqs:<region>:<account>:<name>``), or None."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
        return None
    partition, region, account, name = parts[1], parts[3], parts[4], parts[5]
    domain = _PARTITION_DOMAINS.get(partition, "amazonaws.com")
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def server_attributes(servers: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of the first broker of a ``host:port,host:port`` list."""
    try:
        return _server_cache[servers]
    except KeyError:
        pass
    first = servers.split(",", 1)[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not port.isdigit():
        host, port = first, ""
    out: dict[str, Any] = {}
    if host:
        out["server.address"] = host[:MAX_ATTRIBUTE_TEXT]
        if port:
            out["server.port"] = int(port)
    if len(_server_cache) < CACHE_SIZE:
        _server_cache[servers] = out
    return out


def kafka_key(key: Any) -> str | None:
    """A Kafka record key as text: Lambda base64-encodes it; None unless it decodes to printable UTF-8."""
    if not isinstance(key, str) or len(key) > MAX_ATTRIBUTE_TEXT * 2:
        return None
    try:
        text = base64.b64decode(key, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if text.isprintable() else None


_last_time: tuple[Any, str | None] = (None, None)  # records of a batch mostly share their second


def iso_time(seconds: Any) -> str | None:
    """Epoch seconds as ISO 8601 UTC (``2026-01-02T03:04:05Z``), or None when not a number."""
    global _last_time
    last = _last_time
    if last[0] == seconds and type(last[0]) is type(seconds):
        return last[1]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    try:
        text: str | None = datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        text = None
    _last_time = (seconds, text)
    return text


def document_name(keys: Mapping[str, Any]) -> str:
    """DynamoDB ``Keys`` (``{"pk": {"S": "a"}}``) as ``pk=a``, sorted by attribute name, bounded."""
    parts = []
    for name in sorted(k for k in keys if isinstance(k, str)):
        typed = keys[name]
        value = next(iter(typed.values()), None) if isinstance(typed, Mapping) and len(typed) == 1 else None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            parts.append(f"{name}={value}")
    text = ",".join(parts)
    return text if len(text) <= MAX_ATTRIBUTE_TEXT else text[: MAX_ATTRIBUTE_TEXT - 3] + "..."


def kafka_carrier(headers: Any) -> dict[str, str] | None:
    """The W3C ``traceparent``/``tracestate`` of Kafka record headers, as Lambda gives them (``[{name: [bytes]}]``)."""
    if not isinstance(headers, list):
        return None
    carrier: dict[str, str] | None = None
    for header in headers:
        if not isinstance(header, Mapping):
            continue
        for name, value in header.items():
            if not isinstance(name, str) or name.lower() not in W3C_KEYS:
                continue
            if not isinstance(value, list) or len(value) > MAX_ATTRIBUTE_TEXT * 2:
                continue
            try:
                text = bytes(value).decode("ascii")
            except (ValueError, TypeError):
                continue
            if carrier is None:
                carrier = {}
            carrier[name.lower()] = text
    return carrier
