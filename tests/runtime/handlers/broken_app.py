"""A handler module whose import fails: the runtime client posts an init error and exits."""

from batchlens.telemetry import configure

telemetry = configure(service_name="orders", traces="bogus")  # ValueError: an unknown exporter name


def lambda_handler(event, context):  # pragma: no cover - never reached
    return {}
