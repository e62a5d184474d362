"""The ``Telemetry`` configuration object: every telemetry switch, from code or from the environment."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchlens._env import env_bool, env_choice, env_fraction, env_int, parse_bool, parse_fraction

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["DEFAULT_REDACT_KEYS", "Telemetry"]

DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "auth",
    "apikey",
    "cookie",
    "credential",
    "privatekey",
)
"""Substrings of the dict keys whose values are captured as ``"[REDACTED]"``.

A key matches when, lower-cased and without ``-`` and ``_``, it contains one of them: ``auth`` covers
``Authorization`` and ``oauth_state`` (and ``author``), ``apikey`` covers ``x-api-key``, ``token`` covers
``AWS_SESSION_TOKEN`` and ``refreshToken``, ``secret`` covers ``aws_secret_access_key``.
"""
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
FLUSH_MODES: tuple[str, ...] = ("auto", "always", "never")
LOG_OUTPUTS: tuple[str, ...] = ("auto", "structlog", "stdlib")


@dataclass(frozen=True)
class Telemetry:
    """What batchlens emits for each batch and record.

    Every processor accepts one as ``telemetry=``; without it the processor uses ``Telemetry.from_env()``, read
    once when the processor is constructed.

    Args:
        tracing: Emit a batch span and one span per record (``BATCHLENS_TRACING``).
        metrics: Record counters and the duration histogram (``BATCHLENS_METRICS``).
        logging: Emit one structlog entry per record and per batch (``BATCHLENS_LOGGING``).
        success_log_level: Level of the per-record success entry (``BATCHLENS_SUCCESS_LOG_LEVEL``).
        capture_response: Capture handler results on record spans (``BATCHLENS_CAPTURE_RESPONSE``).
        capture_max_bytes_per_record: UTF-8 byte cap of one captured result.
        capture_max_bytes_per_batch: UTF-8 byte budget of all captured results of one batch.
        redact_keys: Substrings of the dict keys whose values are replaced by ``"[REDACTED]"`` in captured
            results (matched case-insensitively, ``-`` and ``_`` ignored). This list replaces the defaults,
            ``DEFAULT_REDACT_KEYS``; ``BATCHLENS_REDACT_KEYS`` adds to them.
        sentry: Send every failed record to Sentry (``BATCHLENS_SENTRY_ENABLED``).
        sentry_dsn: DSN used to initialise Sentry when the application has not (``BATCHLENS_SENTRY_DSN``,
            falling back to ``SENTRY_DSN``).
        flush: ``auto`` flushes telemetry before returning when a Lambda context is given, ``always`` after
            every batch, ``never`` leaves it to the application (``BATCHLENS_FLUSH``).
        log_output: Where log entries go when the application has not configured structlog (structlog as
            ``batchlens.telemetry.configure()`` set it up counts as not configured): ``auto`` detects an
            application that logs through ``logging``, ``structlog`` and ``stdlib`` force one
            (``BATCHLENS_LOG_OUTPUT``).
        xray_parent: When no span is current, make the invocation's sampled X-Ray trace (``_X_AMZN_TRACE_ID``)
            the batch span's parent (``BATCHLENS_XRAY_PARENT``); with a tracer provider built for the ``xray``
            exporter an unsampled one is the parent too, so nothing of that invocation is recorded. Off, the
            caller's W3C trace (``context.w3c()``) is still joined.
        document_keys: Record a DynamoDB item's keys as ``faas.document.name`` on record spans; off by default,
            since keys can be personal data (``BATCHLENS_DOCUMENT_KEYS``).
        record_sampling: Fraction of records, in [0, 1], that get a record span, a success log line and
            response capture (``BATCHLENS_RECORD_SAMPLING``; default 1.0, every record). Decided per record
            before its handler runs, from a stable hash of its ``messaging.message.id``; failed and skipped
            records are always recorded, and metrics always count every record (see docs/telemetry.md,
            "Record sampling").
        tracer_provider: Tracer provider to use instead of the OpenTelemetry global one.
        meter_provider: Meter provider to use instead of the OpenTelemetry global one.
    """

    tracing: bool = True
    metrics: bool = True
    logging: bool = True
    success_log_level: str = "info"
    capture_response: bool = True
    capture_max_bytes_per_record: int = 1024
    capture_max_bytes_per_batch: int = 32768
    redact_keys: tuple[str, ...] = DEFAULT_REDACT_KEYS
    sentry: bool = False
    sentry_dsn: str | None = None
    flush: str = "auto"
    log_output: str = "auto"
    xray_parent: bool = True
    document_keys: bool = False
    record_sampling: float = 1.0
    tracer_provider: TracerProvider | None = field(default=None, compare=False)
    meter_provider: MeterProvider | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("tracing", "metrics", "logging", "capture_response", "sentry", "xray_parent", "document_keys"):
            value = getattr(self, name)
            # a string such as "false" is truthy: parse it instead of letting it switch the feature on
            if isinstance(value, str):
                object.__setattr__(self, name, parse_bool(name, value))
            elif not isinstance(value, bool):
                raise ValueError(f"{name}={value!r} is not valid; expected True or False")
        for name, choices in (("success_log_level", LOG_LEVELS), ("flush", FLUSH_MODES), ("log_output", LOG_OUTPUTS)):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}={getattr(self, name)!r} is not valid; accepted values: {', '.join(choices)}")
        if self.sentry_dsn is not None:
            object.__setattr__(self, "sentry_dsn", self.sentry_dsn.strip() or None)
        level = self.success_log_level.strip().lower()
        if level not in LOG_LEVELS:
            raise ValueError(
                f"success_log_level={self.success_log_level!r} is not valid; accepted values: {', '.join(LOG_LEVELS)}"
            )
        object.__setattr__(self, "success_log_level", level)
        flush = self.flush.strip().lower()
        if flush not in FLUSH_MODES:
            raise ValueError(f"flush={self.flush!r} is not valid; accepted values: {', '.join(FLUSH_MODES)}")
        object.__setattr__(self, "flush", flush)
        log_output = self.log_output.strip().lower()
        if log_output not in LOG_OUTPUTS:
            raise ValueError(f"log_output={self.log_output!r} is not valid; accepted values: {', '.join(LOG_OUTPUTS)}")
        object.__setattr__(self, "log_output", log_output)
        object.__setattr__(self, "record_sampling", parse_fraction("record_sampling", self.record_sampling))
        for name in ("capture_max_bytes_per_record", "capture_max_bytes_per_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r} is not valid; expected a whole number >= 0")
        if isinstance(self.redact_keys, str):
            keys: tuple[str, ...] = tuple(self.redact_keys.split(","))
        else:
            keys = tuple(self.redact_keys)
        # trimmed, lower-cased, blanks and repeats dropped
        keys = tuple(dict.fromkeys(k.strip().lower() for k in keys if k.strip()))
        object.__setattr__(self, "redact_keys", keys)

    @property
    def enabled(self) -> bool:
        """Whether any telemetry is switched on."""
        return self.tracing or self.metrics or self.logging or self.sentry

    def replace(self, **changes: Any) -> Telemetry:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def disabled(cls) -> Telemetry:
        """A configuration with every kind of telemetry switched off."""
        return cls(tracing=False, metrics=False, logging=False, capture_response=False, sentry=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Telemetry:
        """Build a configuration from ``BATCHLENS_*`` variables, then apply ``overrides``.

        Raises:
            ValueError: A variable holds a value that is not accepted; the message names it.
        """
        env = os.environ if environ is None else environ
        d = cls()
        redact_raw = env.get("BATCHLENS_REDACT_KEYS")
        if redact_raw is not None and not redact_raw.strip():
            redact_raw = None  # blank means unset, as for every other variable: never silently no redaction
        values: dict[str, Any] = {
            "tracing": env_bool(env, "BATCHLENS_TRACING", d.tracing),
            "metrics": env_bool(env, "BATCHLENS_METRICS", d.metrics),
            "logging": env_bool(env, "BATCHLENS_LOGGING", d.logging),
            "success_log_level": env_choice(env, "BATCHLENS_SUCCESS_LOG_LEVEL", d.success_log_level, LOG_LEVELS),
            "capture_response": env_bool(env, "BATCHLENS_CAPTURE_RESPONSE", d.capture_response),
            "capture_max_bytes_per_record": env_int(
                env, "BATCHLENS_CAPTURE_MAX_BYTES_PER_RECORD", d.capture_max_bytes_per_record, minimum=0
            ),
            "capture_max_bytes_per_batch": env_int(
                env, "BATCHLENS_CAPTURE_MAX_BYTES_PER_BATCH", d.capture_max_bytes_per_batch, minimum=0
            ),
            # adds to the defaults: a variable set for one extra key never switches the defaults off
            "redact_keys": (*d.redact_keys, *redact_raw.split(",")) if redact_raw is not None else d.redact_keys,
            "sentry": env_bool(env, "BATCHLENS_SENTRY_ENABLED", d.sentry),
            "sentry_dsn": env.get("BATCHLENS_SENTRY_DSN", "").strip() or env.get("SENTRY_DSN") or None,
            "flush": env_choice(env, "BATCHLENS_FLUSH", d.flush, FLUSH_MODES),
            "log_output": env_choice(env, "BATCHLENS_LOG_OUTPUT", d.log_output, LOG_OUTPUTS),
            "xray_parent": env_bool(env, "BATCHLENS_XRAY_PARENT", d.xray_parent),
            "document_keys": env_bool(env, "BATCHLENS_DOCUMENT_KEYS", d.document_keys),
            "record_sampling": env_fraction(env, "BATCHLENS_RECORD_SAMPLING", d.record_sampling),
        }
        values.update(overrides)
        return cls(**values)
