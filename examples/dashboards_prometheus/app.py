"""Dashboards + local Prometheus: watch batchlens metrics on the bundled Grafana dashboard.

Seed counterpart: the Powertools recipe of counting successes and failures in a subclass ("Extending
BatchProcessor"). batchlens emits those metrics itself, through OpenTelemetry; this script exposes them
on a Prometheus ``/metrics`` endpoint while it keeps processing generated batches, so the dashboard has
something to show.

1. ``pip install 'batchlens[sdk]'`` and run ``python examples/dashboards_prometheus/app.py``
   (serves http://127.0.0.1:9464/metrics; ``--help`` for options).
2. ``docker compose -f exporters/local/compose.yaml up`` starts Prometheus (scraping 127.0.0.1:9464) and
   Grafana with the dashboard provisioned; or run ``prometheus --config.file=exporters/prometheus/prometheus.yml``
   and import the JSON from ``batchlens dashboards export ./dashboards`` into your own Grafana.
3. Open http://localhost:3000, folder "batchlens": records per second by outcome, failure ratio,
   failures by error type, duration percentiles and heatmap, batches by outcome, records per batch,
   oldest record age, redeliveries and the top error types.

``--check`` processes a few batches, reads the endpoint once and prints the batchlens series it found
(a quick way to verify the setup without Prometheus).

In a Lambda function you would call ``configure()`` once at module level: there the metrics default to EMF
lines for CloudWatch (``batchlens dashboards export --format cloudwatch``), or go to a collector with
``metrics="otlp"`` (see ``exporters/README.md``); ``process_partial_response`` flushes them given the context.
"""

from __future__ import annotations

import argparse
import random
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
from batchlens.data_classes import SQSRecord
from batchlens.telemetry import configure
from batchlens.testing import sqs_event


class PaymentDeclinedError(Exception):
    """One of the simulated error types, so "failures by error type" has more than one line."""


def record_handler(record: SQSRecord) -> str:
    order = record.json_body
    time.sleep(random.uniform(0.001, 0.02))  # gives the duration histogram something to show
    if order["status"] == "fail":
        if order["quantity"] % 2:
            raise PaymentDeclinedError(f"card declined for {order['order_id']}")
        raise TimeoutError(f"inventory service timed out for {order['order_id']}")
    return str(order["order_id"])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--metrics", default="prometheus", help='"prometheus" (default), "console" or "none"')
    parser.add_argument("--port", type=int, default=9464, help="port of /metrics (0 = any free port)")
    parser.add_argument("--batches", type=int, default=0, help="stop after this many batches (0 = run until Ctrl-C)")
    parser.add_argument("--records", type=int, default=25, help="records per batch")
    parser.add_argument("--fail-rate", type=float, default=0.1, help="share of records that fail")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between batches")
    parser.add_argument("--check", action="store_true", help="run 3 batches, print the scraped batchlens series, exit")
    return parser.parse_args(argv)


def scrape(port: int) -> list[str]:
    """The batchlens series of the /metrics page (histogram buckets left out for brevity)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    wanted = ("batchlens_", "messaging_")
    return [line for line in text.splitlines() if line.startswith(wanted) and "_bucket{" not in line]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    batches = 3 if args.check and not args.batches else args.batches
    # set_global=False plus explicit providers: the script never touches process-wide OpenTelemetry state.
    handle = configure(
        service_name="batchlens-example",
        traces="none",
        metrics=args.metrics,
        logs="none",
        prometheus_port=args.port,
        set_global=False,
    )
    telemetry = Telemetry(
        logging=False,  # a log line per record would flood the terminal; metrics are the point here
        tracer_provider=handle.tracer_provider,
        meter_provider=handle.meter_provider,
    )
    processor = BatchProcessor(event_type=EventType.SQS, telemetry=telemetry)
    port = handle.prometheus_port
    if port is not None:
        print(f"serving metrics on http://127.0.0.1:{port}/metrics", flush=True)
    processed = 0
    try:
        while batches == 0 or processed < batches:
            queue = random.choice(["orders", "payments"])
            event: dict[str, Any] = sqs_event(count=args.records, fail_rate=args.fail_rate, queue=queue)
            # No Lambda context: outside Lambda there is nothing to flush before a freeze, and flushing a
            # pull-based Prometheus reader would queue extra snapshots of every series.
            response = process_partial_response(event, record_handler, processor)
            processed += 1
            print(f"batch {processed}: {queue}, {len(response['batchItemFailures'])} failed", flush=True)
            if batches == 0 or processed < batches:
                time.sleep(args.interval)
        if args.check:
            if port is None:
                print("--check needs --metrics prometheus")
                return 1
            lines = scrape(port)
            print("\n".join(lines))
            return 0 if lines else 1
    except KeyboardInterrupt:
        pass
    finally:
        handle.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
