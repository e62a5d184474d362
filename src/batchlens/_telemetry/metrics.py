"""OpenTelemetry metrics (meter ``batchlens``): record outcomes, processing durations, batch sizes and outcomes.

Counters are aggregated per batch and added once in ``batch_end`` (one ``add`` per attribute set instead of
one per record). The duration histogram still gets one sample per record, but all of a batch's samples are
recorded in ``batch_end`` from the durations the processor measured, so the per-record path does no metrics work
at all. Instruments are created once per meter provider.

Exemplars: the samples are recorded with a context that holds no span, so the SDK's default trace-based exemplar
filter offers none of them to its reservoir. Offering would add about a fifth to every ``Histogram.record`` call
(~3 us per record measured with SDK 1.45 on a 2-vCPU machine), and recorded at batch end an exemplar could only
name the batch span, not the record: the record spans already carry each record's duration with its own trace
and span id, so finding the slow record is a trace query, not an exemplar lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from batchlens._observer import FAILURE, SUCCESS, noop_hook
from batchlens._telemetry._providers import is_noop_meter_provider, meter_provider

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider

    from batchlens._config import Telemetry
    from batchlens._observer import BatchInfo, RecordInfo

__all__ = ["BATCH_SIZE_BUCKETS", "DURATION_BUCKETS", "METER_NAME", "MetricsObserver"]

METER_NAME = "batchlens"

DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""Bucket boundaries (seconds) the messaging semantic conventions recommend for ``messaging.process.duration``."""

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
"""Bucket boundaries (records) of ``batchlens.batch.size``: Lambda batch sizes go up to 10,000."""

MESSAGING_SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
DESTINATION_NAME = "messaging.destination.name"
ERROR_TYPE = "error.type"
BATCH_OUTCOME = "batchlens.batch.outcome"
OTHER_ERROR = "_OTHER"

_STATE_KEY = "batchlens.metrics"
_MAX_CACHED_ATTRIBUTE_SETS = 256  # error types x destinations seen by one processor; bounded all the same


class _Instruments:
    __slots__ = ("batch_size", "batches", "consumed", "duration", "failed", "succeeded")

    def __init__(self, meter: Meter) -> None:
        self.succeeded: Counter = meter.create_counter(
            "batchlens.records.succeeded", unit="{record}", description="Records whose handler returned."
        )
        self.failed: Counter = meter.create_counter(
            "batchlens.records.failed",
            unit="{record}",
            description="Records reported as failed (handler raised, or skipped by a circuit breaker).",
        )
        self.consumed: Counter = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Messages received in processed batches.",
        )
        self.batches: Counter = meter.create_counter(
            "batchlens.batches", unit="{batch}", description="Batches processed, by outcome."
        )
        self.duration: Histogram = _histogram(
            meter, "messaging.process.duration", "s", "Duration of processing one record.", DURATION_BUCKETS
        )
        self.batch_size: Histogram = _histogram(
            meter, "batchlens.batch.size", "{record}", "Records per processed batch.", BATCH_SIZE_BUCKETS
        )


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


def _error_type(record: RecordInfo) -> str:
    exc = record.exception
    return type(exc).__name__ if exc is not None else OTHER_ERROR


class MetricsObserver:
    """Records ``batchlens.*`` and semantic-convention messaging metrics.

    Args:
        telemetry: The configuration; ``meter_provider`` is read from it.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self._provider: MeterProvider | None = None
        self._instruments: _Instruments | None = None
        # (system, destination, error type) -> the duration histogram's attribute dict, reused across records
        self._duration_attributes: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}

    def _instruments_for(self, provider: MeterProvider) -> _Instruments:
        instruments = self._instruments
        if instruments is None or provider is not self._provider:
            import batchlens

            meter = provider.get_meter(METER_NAME, getattr(batchlens, "__version__", None))
            instruments = _Instruments(meter)
            self._instruments = instruments
            self._provider = provider
        return instruments

    def _attributes(self, system: str, destination: str | None, error_type: str | None) -> dict[str, Any]:
        key = (system, destination, error_type)
        cache = self._duration_attributes
        try:
            return cache[key]
        except KeyError:
            pass
        attributes: dict[str, Any] = {MESSAGING_SYSTEM: system, OPERATION_NAME: "process"}
        if destination is not None:
            attributes[DESTINATION_NAME] = destination
        if error_type is not None:
            attributes[ERROR_TYPE] = error_type
        if len(cache) < _MAX_CACHED_ATTRIBUTE_SETS:
            cache[key] = attributes
        return attributes

    # -- batch -------------------------------------------------------------------------------------------
    def batch_start(self, batch: BatchInfo) -> None:
        """Resolve the meter provider for this batch (nothing is recorded without an SDK)."""
        provider = meter_provider(self._telemetry)
        if is_noop_meter_provider(provider):
            self._provider = provider
            return
        instruments = self._instruments_for(provider)
        batch.extra[_STATE_KEY] = _BatchState(instruments, batch.source.messaging_system)

    def batch_end(self, batch: BatchInfo) -> None:
        """Record every processed record's duration; add the aggregated record counts, the outcome and the size."""
        state: _BatchState | None = batch.extra.get(_STATE_KEY)
        if state is None:
            return
        instruments = state.instruments
        system = state.system
        source = batch.source
        shared = batch.destination
        record_duration = instruments.duration.record
        context = _no_exemplar_context()
        attributes_of = self._attributes
        success_attributes = attributes_of(system, shared, None)
        fault: Exception | None = None
        # (destination, error type or None for success) -> records
        counts: dict[tuple[str | None, str | None], int] = {}
        for record in batch.record_infos:
            outcome = record.outcome
            destination = shared if shared is not None else source.destination(record.raw)
            attributes: dict[str, Any] | None
            if outcome == SUCCESS:
                error_type = None
                attributes = success_attributes if shared is not None else attributes_of(system, destination, None)
            else:
                error_type = _error_type(record)
                # skipped records were never processed and unfinished ones have no end: counted, not timed
                attributes = attributes_of(system, destination, error_type) if outcome == FAILURE else None
            key = (destination, error_type)
            counts[key] = counts.get(key, 0) + 1
            if attributes is not None and fault is None:
                try:
                    record_duration((record.end_ns - record.start_ns) / 1e9, attributes, context=context)
                except Exception as exc:  # a broken histogram must not cost the counters: re-raised below
                    fault = exc
        for (destination, error_type), count in counts.items():
            attributes = self._attributes(system, destination, error_type)
            instruments.consumed.add(count, attributes)
            outcome_attributes: dict[str, Any] = {MESSAGING_SYSTEM: system}
            if destination is not None:
                outcome_attributes[DESTINATION_NAME] = destination
            if error_type is None:
                instruments.succeeded.add(count, outcome_attributes)
            else:
                outcome_attributes[ERROR_TYPE] = error_type
                instruments.failed.add(count, outcome_attributes)
        batch_attributes: dict[str, Any] = {MESSAGING_SYSTEM: system}
        if shared is not None:
            batch_attributes[DESTINATION_NAME] = shared
        instruments.batch_size.record(batch.size, batch_attributes)
        if batch.entire_batch_failed or batch.error is not None:
            # an escaping error fails the invocation, so Lambda retries the whole batch
            outcome_name = FAILURE
        elif batch.failure_count:
            outcome_name = "partial_failure"
        else:
            outcome_name = SUCCESS
        instruments.batches.add(1, {**batch_attributes, BATCH_OUTCOME: outcome_name})
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
