"""OpenTelemetry metrics (meter ``batchlens``): record outcomes, processing durations, batch sizes, outcomes and lag.

Per batch, at its start: one ``batchlens.batch.oldest_record_age`` sample (how far behind the consumer is) and,
when some SQS records were delivered before, one ``batchlens.records.redelivered`` add. At its end: the records'
duration samples, one ``messaging.client.consumed.messages`` add per destination, one ``batchlens.records.failed``
add per destination and error type that occurred, one ``batchlens.records.succeeded`` add per destination with
successes, and one ``batchlens.batch.size`` sample with the batch's outcome. So the per-record path does no
metrics work at all, and attribute dicts are built once per destination, error type and outcome (bounded caches)
instead of once per batch.

Consolidated: ``batchlens.batches`` is ``batchlens.batch.size``'s count by ``batchlens.batch.outcome``.
``batchlens.records.succeeded`` (the attributes of ``batchlens.records.failed`` without ``error.type``) counts
records whose handler returned, exactly; it equals consumed minus failed, which the dashboards fall back to where
it has no data (functions on a version without it, older time ranges).

``messaging.client.consumed.messages`` carries no ``error.type``: the semantic conventions count it once per
message *delivery* ("dispatched to the application in push-based scenarios"), and its ``error.type`` is for a
failed delivery. Lambda has delivered every record batchlens sees; processing failures are counted by
``batchlens.records.failed`` and timed by ``messaging.process.duration`` (which does carry ``error.type``).

Exemplars: the samples are recorded with a context that holds no span, so the SDK's default trace-based exemplar
filter offers none of them to its reservoir. Offering would add about a fifth to every ``Histogram.record`` call
(~3 us per record measured with SDK 1.45 on a 2-vCPU machine), and recorded at batch end an exemplar could only
name the batch span, not the record: the record spans already carry each record's duration with its own trace
and span id, so finding the slow record is a trace query, not an exemplar lookup.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from batchlens._observer import FAILURE, SUCCESS, noop_hook
from batchlens._telemetry._errors import error_type
from batchlens._telemetry._providers import is_noop_meter_provider, meter_provider

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider

    from batchlens._config import Telemetry
    from batchlens._observer import BatchInfo, RecordInfo
    from batchlens._telemetry._emf_direct import DirectMeter

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "DURATION_BUCKETS",
    "METER_NAME",
    "RECORD_AGE_BUCKETS",
    "SCHEMA_URL",
    "MetricsObserver",
]

METER_NAME = "batchlens"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions version the metric names and attributes follow (``opentelemetry.semconv.schemas``)."""

DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""Bucket boundaries (seconds) the messaging semantic conventions recommend for ``messaging.process.duration``."""

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
"""Bucket boundaries (records) of ``batchlens.batch.size``: Lambda batch sizes go up to 10,000."""

RECORD_AGE_BUCKETS: tuple[float, ...] = (
    0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 1209600,
)  # fmt: skip
"""Bucket boundaries (seconds) of ``batchlens.batch.oldest_record_age``: 100 ms to 14 days (SQS's longest retention,
beyond DynamoDB Streams' 24 h; Kinesis' longer retentions land in the overflow bucket)."""

DURATION = "messaging.process.duration"
CONSUMED = "messaging.client.consumed.messages"
FAILED = "batchlens.records.failed"
SUCCEEDED = "batchlens.records.succeeded"
BATCH_SIZE = "batchlens.batch.size"
OLDEST_RECORD_AGE = "batchlens.batch.oldest_record_age"
REDELIVERED = "batchlens.records.redelivered"

MESSAGING_SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
DESTINATION_NAME = "messaging.destination.name"
ERROR_TYPE = "error.type"
BATCH_OUTCOME = "batchlens.batch.outcome"
OTHER_ERROR = "_OTHER"
PARTIAL_FAILURE = "partial_failure"

_STATE_KEY = "batchlens.metrics"
_MAX_CACHED = 256  # attribute sets (destinations x error types x outcomes) and error type names; bounded all the same


class _Instruments:
    __slots__ = ("age", "batch_size", "consumed", "duration", "failed", "lock", "redelivered", "succeeded")

    def __init__(self, meter: Meter) -> None:
        # a DirectMeter's lock is held while a batch records (the SDK's instruments have their own)
        self.lock: threading.Lock | None = getattr(meter, "lock", None)
        self.duration: Histogram = _histogram(
            meter, DURATION, "s", "Duration of processing one record.", DURATION_BUCKETS
        )
        self.consumed: Counter = meter.create_counter(
            CONSUMED, unit="{message}", description="Messages delivered to the application in processed batches."
        )
        self.failed: Counter = meter.create_counter(
            FAILED,
            unit="{record}",
            description="Records reported as failed (handler raised, or skipped by a circuit breaker).",
        )
        self.succeeded: Counter = meter.create_counter(
            SUCCEEDED, unit="{record}", description="Records whose handler returned."
        )
        self.batch_size: Histogram = _histogram(
            meter, BATCH_SIZE, "{record}", "Records per processed batch, by batch outcome.", BATCH_SIZE_BUCKETS
        )
        self.age: Histogram = _histogram(
            meter,
            OLDEST_RECORD_AGE,
            "s",
            "Age of the batch's oldest record when the batch starts: how far behind the consumer is.",
            RECORD_AGE_BUCKETS,
        )
        self.redelivered: Counter = meter.create_counter(
            REDELIVERED,
            unit="{record}",
            description="SQS records delivered more than once (ApproximateReceiveCount > 1).",
        )


def _meter(provider: MeterProvider) -> Meter:
    import batchlens

    version = getattr(batchlens, "__version__", None)
    try:
        return provider.get_meter(METER_NAME, version, schema_url=SCHEMA_URL)
    except TypeError:  # a provider written against an older API signature
        return provider.get_meter(METER_NAME, version)


def _direct_meter(provider: MeterProvider) -> DirectMeter | None:
    """The plain-Python meter configure() registered for a provider whose only exporter is EMF, if any."""
    if "batchlens._telemetry._emf_direct" not in sys.modules:
        return None  # nothing registered one: no need to import it
    from batchlens._telemetry._emf_direct import direct_meter

    return direct_meter(provider)


def _histogram(meter: Meter, name: str, unit: str, description: str, buckets: Sequence[float]) -> Histogram:
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
        )
    except TypeError:  # opentelemetry-api < 1.23 has no bucket advisory; the SDK's defaults apply
        return meter.create_histogram(name, unit=unit, description=description)


class _BatchState:
    """Per-batch view of the instruments."""

    __slots__ = ("instruments", "system")

    def __init__(self, instruments: _Instruments, system: str) -> None:
        self.instruments = instruments
        self.system = system


_NO_EXEMPLAR: Any = None  # a context without a (sampled) span: see the module docstring


def _no_exemplar_context() -> Any:
    global _NO_EXEMPLAR
    context = _NO_EXEMPLAR
    if context is None:
        from opentelemetry import trace

        # non-empty on purpose: the SDK replaces an empty (falsy) context with the current one
        context = _NO_EXEMPLAR = trace.set_span_in_context(trace.INVALID_SPAN)
    return context


_ERROR_TYPES: dict[type[BaseException], str] = {}


def _error_type(record: RecordInfo) -> str:
    exc = record.exception
    if exc is None:
        return OTHER_ERROR
    kind = type(exc)
    name = _ERROR_TYPES.get(kind)
    if name is None:
        name = error_type(exc)
        if len(_ERROR_TYPES) < _MAX_CACHED:
            _ERROR_TYPES[kind] = name
    return name


def _cached(cache: dict[Any, dict[str, Any]], key: Any, attributes: dict[str, Any]) -> dict[str, Any]:
    if len(cache) < _MAX_CACHED:
        cache[key] = attributes
    return attributes


class MetricsObserver:
    """Records ``batchlens.*`` and semantic-convention messaging metrics.

    Args:
        telemetry: The configuration; ``meter_provider`` is read from it.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self._provider: MeterProvider | None = None
        self._instruments: _Instruments | None = None
        # the provider ``_instruments`` belong to, once known not to be a no-op (None while it may be one)
        self._real: MeterProvider | None = None
        # (system, destination, error type) -> duration attributes (error type None: also consumed's attributes)
        self._process_attributes: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
        # (system, destination, error type) -> batchlens.records.failed attributes
        self._failed_attributes: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        # (system, destination, outcome or None) -> batch attributes (outcome None: age and redeliveries)
        self._batch_attributes: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}

    def _instruments_for(self, provider: MeterProvider) -> _Instruments:
        instruments = self._instruments
        if instruments is None or provider is not self._provider:
            direct = _direct_meter(provider)
            # a DirectMeter has the two Meter methods _Instruments calls, and instruments with add/record
            instruments = _Instruments(cast("Meter", direct) if direct is not None else _meter(provider))
            self._instruments = instruments
            self._provider = provider
        return instruments

    def _attributes(self, system: str, destination: str | None, error_type: str | None) -> dict[str, Any]:
        """``messaging.process.duration``'s attributes (and, without an error type, consumed's)."""
        key = (system, destination, error_type)
        try:
            return self._process_attributes[key]
        except KeyError:
            pass
        attributes: dict[str, Any] = {MESSAGING_SYSTEM: system, OPERATION_NAME: "process"}
        if destination is not None:
            attributes[DESTINATION_NAME] = destination
        if error_type is not None:
            attributes[ERROR_TYPE] = error_type
        return _cached(self._process_attributes, key, attributes)

    def _failed(self, system: str, destination: str | None, error_type: str) -> dict[str, Any]:
        key = (system, destination, error_type)
        try:
            return self._failed_attributes[key]
        except KeyError:
            pass
        attributes: dict[str, Any] = {MESSAGING_SYSTEM: system}
        if destination is not None:
            attributes[DESTINATION_NAME] = destination
        attributes[ERROR_TYPE] = error_type
        return _cached(self._failed_attributes, key, attributes)

    def _batch(self, system: str, destination: str | None, outcome: str | None) -> dict[str, Any]:
        key = (system, destination, outcome)
        try:
            return self._batch_attributes[key]
        except KeyError:
            pass
        attributes: dict[str, Any] = {MESSAGING_SYSTEM: system}
        if destination is not None:
            attributes[DESTINATION_NAME] = destination
        if outcome is not None:
            attributes[BATCH_OUTCOME] = outcome
        return _cached(self._batch_attributes, key, attributes)

    # -- batch -------------------------------------------------------------------------------------------
    def batch_start(self, batch: BatchInfo) -> None:
        """Resolve the meter provider; record the oldest record's age and the redeliveries of the batch."""
        provider = meter_provider(self._telemetry)
        instruments = self._instruments
        if provider is not self._real or instruments is None:
            if is_noop_meter_provider(provider):
                self._provider = provider
                self._real = None
                return
            instruments = self._instruments_for(provider)
            # an SDK provider stays one: later batches skip the no-op check (a proxy may still change)
            self._real = provider if type(provider).__name__ != "_ProxyMeterProvider" else None
        source = batch.source
        system = source.messaging_system
        batch.extra[_STATE_KEY] = _BatchState(instruments, system)
        oldest, redelivered = source.enqueue_stats(batch.records)
        if oldest is None and not redelivered:
            return
        attributes = self._batch(system, batch.destination, None)
        lock = instruments.lock
        if lock is not None:
            lock.acquire()
        try:
            if oldest is not None:
                age = time.time() - oldest
                instruments.age.record(
                    age if age > 0.0 else 0.0, attributes, context=_NO_EXEMPLAR or _no_exemplar_context()
                )
            if redelivered:
                instruments.redelivered.add(redelivered, attributes)
        finally:
            if lock is not None:
                lock.release()

    def batch_end(self, batch: BatchInfo) -> None:
        """Record every processed record's duration; add the consumed and failed counts; the size by outcome."""
        state: _BatchState | None = batch.extra.get(_STATE_KEY)
        if state is None:
            return
        lock = state.instruments.lock
        if lock is None:
            self._record_batch(batch, state)
            return
        with lock:
            self._record_batch(batch, state)

    def _record_batch(self, batch: BatchInfo, state: _BatchState) -> None:
        instruments = state.instruments
        system = state.system
        shared = batch.destination
        infos = batch.record_infos
        record_duration = instruments.duration.record
        context = _NO_EXEMPLAR or _no_exemplar_context()
        attributes_of = self._attributes
        success_attributes = attributes_of(system, shared, None)
        fault: Exception | None = None
        # (destination, error type) -> failed records; destination -> records (only when destinations differ)
        failures: dict[tuple[str | None, str], int] = {}
        consumed: dict[str | None, int] | None = None if shared is not None else {}
        destination_of = batch.source.destination
        destination = shared
        for record in infos:
            if consumed is not None:
                destination = destination_of(record.raw)
                consumed[destination] = consumed.get(destination, 0) + 1
            outcome = record.outcome
            if outcome == SUCCESS:
                attributes = success_attributes if consumed is None else attributes_of(system, destination, None)
            else:
                kind = _error_type(record)
                key = (destination, kind)
                failures[key] = failures.get(key, 0) + 1
                if outcome != FAILURE:  # skipped records were never processed, unfinished ones have no end
                    continue
                attributes = attributes_of(system, destination, kind)
            if fault is None:
                try:
                    record_duration((record.end_ns - record.start_ns) / 1e9, attributes, context=context)
                except Exception as exc:  # a broken histogram must not cost the counters: re-raised below
                    fault = exc
        batch_of = self._batch
        if consumed is None:
            if infos:
                instruments.consumed.add(len(infos), success_attributes)
                succeeded = len(infos) - sum(failures.values())
                if succeeded:
                    instruments.succeeded.add(succeeded, batch_of(system, shared, None))
        else:
            for destination, count in consumed.items():
                instruments.consumed.add(count, attributes_of(system, destination, None))
            for (destination, _), count in failures.items():
                consumed[destination] -= count
            for destination, count in consumed.items():
                if count:
                    instruments.succeeded.add(count, batch_of(system, destination, None))
        if failures:
            failed_of = self._failed
            add_failed = instruments.failed.add
            for (destination, kind), count in failures.items():
                add_failed(count, failed_of(system, destination, kind))
        if batch.entire_batch_failed or batch.error is not None:
            # an escaping error fails the invocation, so Lambda retries the whole batch
            outcome_name = FAILURE
        elif batch.failure_count:
            outcome_name = PARTIAL_FAILURE
        else:
            outcome_name = SUCCESS
        instruments.batch_size.record(batch.size, batch_of(system, shared, outcome_name), context=context)
        if fault is not None:
            raise fault

    # -- records -----------------------------------------------------------------------------------------
    # Nothing per record: durations come from the processor's clock and are recorded in batch_end.
    @noop_hook
    def record_start(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Nothing to do: see ``batch_end``."""

    @noop_hook
    def record_success(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Nothing to do: see ``batch_end``."""

    @noop_hook
    def record_failure(self, batch: BatchInfo, record: RecordInfo) -> None:
        """Nothing to do: see ``batch_end``."""

    def flush(self, timeout_millis: int) -> None:
        """Export buffered metrics through the provider's ``force_flush``, when it has one."""
        provider = self._provider or meter_provider(self._telemetry)
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(timeout_millis)
