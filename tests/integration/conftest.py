"""A real Prometheus server for integration tests: started on loopback with a temporary config, always killed."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PROMETHEUS = shutil.which("prometheus")
SCRAPE_INTERVAL_S = 1


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrometheusServer:
    """A running Prometheus and the parts of its HTTP API the tests use."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def api(self, path: str, params: dict[str, Any] | list[tuple[str, Any]]) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns the result vector (``[{"metric": {...}, "value": [ts, "v"]}, ...]``)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("/api/v1/query", params)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, label: str, match: str, start: float, end: float) -> list[str]:
        """What Grafana's ``label_values(match, label)`` variable query returns for a dashboard time range."""
        params = [("match[]", match), ("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
        values: list[str] = self.api(f"/api/v1/label/{label}/values", params)
        return values

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"prometheus exited:\n{self.log.read_text()[-3000:]}"
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.2)

    def last_scrape(self, job: str) -> float | None:
        """Timestamp (seconds) of the latest successful scrape of ``job``, if any."""
        # timestamp() must wrap the bare selector: around `up == 1` it would return the evaluation time.
        up = self.query(f'up{{job="{job}"}}')
        if not up or float(up[0]["value"][1]) != 1:
            return None
        result = self.query(f'timestamp(up{{job="{job}"}})')
        return float(result[0]["value"][1]) if result else None

    def wait_for_scrape_after(self, job: str, moment: float, timeout: float = 30) -> float:
        """Wait until ``job`` has been scraped after ``moment``; return that scrape's timestamp."""

        def scraped() -> float | None:
            stamp = self.last_scrape(job)
            return stamp if stamp is not None and stamp > moment else None

        stamp: float = self.wait_for(f"a scrape of {job} after {moment:.3f}", scraped, timeout)
        return stamp


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, list[str]]], PrometheusServer]]:
    """Start the real ``prometheus`` binary scraping the given ``{job: [host:port, ...]}`` every second."""
    if PROMETHEUS is None:
        pytest.skip("the prometheus binary is not installed (Debian package 'prometheus'; .ci/run installs it)")
    processes: list[subprocess.Popen[bytes]] = []

    def start(jobs: dict[str, list[str]]) -> PrometheusServer:
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": f"{SCRAPE_INTERVAL_S}s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in jobs.items()
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        port = free_port()
        log = tmp_path / "prometheus.log"
        process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        server = PrometheusServer(f"http://127.0.0.1:{port}", process, log)

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        server.wait_for("prometheus to become ready", ready, timeout=60)
        return server

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
