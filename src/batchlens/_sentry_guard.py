"""Keeps record bodies out of every Sentry event that shows batchlens' frames, whoever captures it.

sentry-sdk keeps the local variables of every stack frame by default, and batchlens' frames hold the event and
its records (``event`` and ``records`` in ``process_partial_response``): when a whole batch fails and Sentry's
``AwsLambdaIntegration`` (or any other capture) reports the ``BatchProcessingError``, every body would reach
Sentry, even with batchlens' own Sentry capture off. So once sentry-sdk is imported, a global event processor is
registered (once per process; it has nothing to do until a client captures events) that:

* removes ``vars`` from every frame of batchlens' own code (``exception`` and ``threads`` stack traces);
* replaces the text of a ``BaseBatchProcessingError`` (its summary followed by every record's formatted
  traceback, where validation errors quote the body) with batchlens' message for it, the summary alone (as on
  spans and log lines), so no record failure is reported a second time inside the batch's event;
* tags that event ``otel.trace_id`` with the batch span's trace id, when batchlens' Sentry observer noted it;
* drops the event Sentry's ``LoggingIntegration`` makes of batchlens' own ``record failed`` log line (an ERROR
  record of the ``batchlens`` logger) while batchlens' Sentry observer runs the batch, because that observer
  already sends the record's failure as an event of its own, with the exception.

sentry-sdk is never imported here: the check is a lookup in ``sys.modules`` until it succeeds, then a flag. (Asking
for the client instead would cost tens of microseconds per batch on 3.x while none exists: ``get_client()``
builds a ``NonRecordingClient`` each time.)
The application's own frames keep their variables unless it turns them off (``include_local_variables=False``
in 2.x, ``data_collection={"stack_frame_variables": False}`` in 3.x).
"""

from __future__ import annotations

import os
import sys
from contextvars import ContextVar
from typing import Any

from batchlens.exceptions import BaseBatchProcessingError

__all__ = ["OTEL_TRACE_ID_TAG", "RECORDS_SENT", "exception_chain", "guard_sentry_events", "scrub_event"]

OTEL_TRACE_ID_TAG = "otel.trace_id"
"""Tag (on events) and attribute (on Sentry's span) holding batchlens' OpenTelemetry trace id, 32 hex digits."""

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_registered = False

RECORDS_SENT: ContextVar[bool] = ContextVar("batchlens_sentry_records_sent", default=False)
"""True while batchlens' Sentry observer runs a batch: it sends every failed record itself."""


def guard_sentry_events() -> None:
    """Register the event processor if sentry-sdk is imported (once per process)."""
    global _registered
    if _registered:
        return
    # ``import sentry_sdk`` imports sentry_sdk.scope; its module-level list survives re-initialisation
    add = getattr(sys.modules.get("sentry_sdk.scope"), "add_global_event_processor", None)
    if add is None:  # not imported, still being imported, or an unfamiliar version: look again at the next batch
        return
    try:
        add(scrub_event)
    except Exception:
        return
    _registered = True


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """The event processor: batchlens' frames lose their variables, a batch error loses its record texts."""
    if RECORDS_SENT.get() and _is_record_failed_line(event):
        return None
    for section in ("exception", "threads"):
        for value in _values(event, section):
            stacktrace = value.get("stacktrace")
            frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
            if isinstance(frames, list):
                for frame in frames:
                    if isinstance(frame, dict) and "vars" in frame and _is_batchlens_frame(frame):
                        del frame["vars"]
    exc_info = hint.get("exc_info") if isinstance(hint, dict) else None
    exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
    if isinstance(exc, BaseException):
        _describe_batch_errors(event, exc)
    return event


def _is_record_failed_line(event: dict[str, Any]) -> bool:
    logger = event.get("logger")
    if not isinstance(logger, str):
        return False
    # imported here only: batchlens' logging and Sentry observers are running, so these modules are loaded
    from batchlens._telemetry._log_stdlib import LOGGER_NAME
    from batchlens._telemetry.logs import RECORD_FAILED

    if logger != LOGGER_NAME:
        return False
    entry = event.get("logentry")
    message = entry.get("message") if isinstance(entry, dict) else event.get("message")
    return message == RECORD_FAILED


def _values(event: dict[str, Any], section: str) -> list[dict[str, Any]]:
    values = event.get(section)
    if isinstance(values, dict):
        values = values.get("values")
    if not isinstance(values, list):
        return []
    return [value for value in values if isinstance(value, dict)]


def _is_batchlens_frame(frame: dict[str, Any]) -> bool:
    module = frame.get("module")
    if isinstance(module, str) and (module == "batchlens" or module.startswith("batchlens.")):
        return True
    path = frame.get("abs_path")
    return isinstance(path, str) and path.startswith(_PACKAGE_DIR)


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, in the order sentry-sdk walks them."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain) and len(chain) < 100:
        chain.append(current)
        current = current.__cause__ if current.__suppress_context__ else current.__context__
    return chain


def _describe_batch_errors(event: dict[str, Any], exc: BaseException) -> None:
    chain = exception_chain(exc)
    if not any(isinstance(error, BaseBatchProcessingError) for error in chain):
        return
    values = _values(event, "exception")
    # sentry lists the chain root cause first and the raised exception last
    errors = list(reversed(chain))
    if len(errors) != len(values):
        errors, values = errors[-1:], values[-1:]
    for value, error in zip(values, errors, strict=False):
        if isinstance(error, BaseBatchProcessingError) and value.get("type") == type(error).__name__:
            from batchlens._telemetry._errors import exception_message  # on this path only

            value["value"] = exception_message(error)
    trace_id = next((e._otel_trace_id for e in chain if isinstance(e, BaseBatchProcessingError)), None)
    if trace_id is not None:
        tags = event.get("tags")
        if not isinstance(tags, dict):
            tags = event["tags"] = {}
        tags.setdefault(OTEL_TRACE_ID_TAG, trace_id)
