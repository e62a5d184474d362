"""Measure the README set-up under awslambdaric: ``python tests/runtime/measure.py [walls|managed] [--warm N]``.

``walls`` prints the wall time of warm invocations (after one cold one) with traces="none", no collector, a
refusing and a hanging collector, and a local OTLP receiver. ``managed`` prints the Managed Instances figures
(see test_runtime_managed.py). Nothing here asserts; the tests do.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime._collectors import HangingCollector, OtlpReceiver, refusing_endpoint
from runtime._support import warm_walls


def _report(label: str, walls: list[float]) -> None:
    ms = sorted(w * 1000 for w in walls)
    print(
        f"{label:<22} n={len(ms):<3} median={statistics.median(ms):8.1f} ms  max={ms[-1]:8.1f} ms  "
        f"min={ms[0]:8.1f} ms",
        flush=True,
    )


def walls(warm: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _report("traces=none", warm_walls(Path(tmp), {"OTEL_TRACES_EXPORTER": "none"}, count=warm))
    with tempfile.TemporaryDirectory() as tmp, OtlpReceiver() as receiver:
        _report("local OTLP receiver", warm_walls(Path(tmp), {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, count=warm))
    with tempfile.TemporaryDirectory() as tmp:
        _report("no collector", warm_walls(Path(tmp), {}, count=warm))
    with tempfile.TemporaryDirectory() as tmp:
        _report("refusing collector", warm_walls(Path(tmp), {"OTEL_EXPORTER_OTLP_ENDPOINT": refusing_endpoint()}, count=warm))
    with tempfile.TemporaryDirectory() as tmp, HangingCollector() as collector:
        _report("hanging collector", warm_walls(Path(tmp), {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}, count=warm))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["walls", "managed"])
    parser.add_argument("--warm", type=int, default=20)
    args = parser.parse_args()
    if args.what == "walls":
        walls(args.warm)
    else:
        from runtime._managed import report

        report()


if __name__ == "__main__":
    main()
