"""Integration tests against real external programs (Prometheus)."""
