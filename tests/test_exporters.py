"""The pipeline configurations in exporters/: they parse, their internal references resolve, and they are documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchlens.telemetry import DEFAULT_PROMETHEUS_ADDR, DEFAULT_PROMETHEUS_PORT

ROOT = Path(__file__).resolve().parents[1]
EXPORTERS = ROOT / "exporters"
README = EXPORTERS / "README.md"
COLLECTOR_CONFIGS = sorted((EXPORTERS / "collector").glob("*.yaml"))
YAML_FILES = sorted(p for p in EXPORTERS.rglob("*") if p.suffix in {".yaml", ".yml"})
SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors")
ENV_PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(EXPORTERS)) for p in paths]


def pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    result: dict[str, dict[str, list[str]]] = config["service"]["pipelines"]
    return result


def collector_reference_errors(config: dict[str, Any]) -> list[str]:
    """Names used in pipelines or service.extensions that no section defines, and defined names never used."""
    errors = []
    used: dict[str, set[str]] = {section: set() for section in SECTIONS}
    for name, pipeline in pipelines(config).items():
        if name.split("/")[0] not in {"traces", "metrics", "logs"}:
            errors.append(f"pipeline {name}: unknown signal")
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            errors.append(f"pipeline {name}: needs receivers and exporters")
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section) or []:
                used[section].add(component)
                if component not in (config.get(section) or {}):
                    errors.append(f"pipeline {name}: {section[:-1]} {component!r} is not defined")
    for extension in config["service"].get("extensions") or []:
        used["extensions"].add(extension)
        if extension not in (config.get("extensions") or {}):
            errors.append(f"extension {extension!r} is not defined")
    for section in ("receivers", "processors", "exporters", "extensions"):
        for component in config.get(section) or {}:
            if component not in used[section]:
                errors.append(f"{section[:-1]} {component!r} is defined but never used")
    return errors


@pytest.mark.parametrize("path", YAML_FILES, ids=ids(YAML_FILES))
def test_every_yaml_file_parses(path: Path) -> None:
    """Every YAML file in exporters/ is valid YAML with a mapping at the top."""
    assert load(path)


def test_all_expected_files_exist() -> None:
    """The folder holds the Lambda, forwarding, Prometheus and Grafana configurations the README promises."""
    expected = {
        "collector/lambda-adot.yaml",
        "collector/lambda-otel-layer.yaml",
        "collector/otlp-forward.yaml",
        "prometheus/prometheus.yml",
        "grafana/provisioning/datasources/prometheus.yaml",
        "grafana/provisioning/dashboards/batchlens.yaml",
        "local/compose.yaml",
    }
    assert expected <= set(ids(YAML_FILES))


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=ids(COLLECTOR_CONFIGS))
def test_collector_pipelines_reference_defined_components(path: Path) -> None:
    """Every receiver, processor and exporter a pipeline names is defined, and every defined one is used."""
    assert collector_reference_errors(load(path)) == []


def test_reference_check_reports_broken_configs() -> None:
    """The reference check catches an undefined exporter and an unused processor."""
    broken = {
        "receivers": {"otlp": {}},
        "processors": {"batch": {}},
        "exporters": {"awsxray": {}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["awsxray", "otlphttp"]}}},
    }
    errors = collector_reference_errors(broken)
    assert any("'otlphttp' is not defined" in e for e in errors)
    assert any("'batch' is defined but never used" in e for e in errors)


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=ids(COLLECTOR_CONFIGS))
def test_collector_receives_otlp_on_localhost_standard_ports(path: Path) -> None:
    """The OTLP receiver listens where the SDK sends by default: localhost:4317 (gRPC) and :4318 (HTTP)."""
    protocols = load(path)["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "localhost:4317"
    assert protocols["http"]["endpoint"] == "localhost:4318"


def test_lambda_adot_sends_traces_to_xray_and_metrics_to_emf() -> None:
    """The ADOT config routes traces to awsxray and metrics to awsemf, with no processors the layer lacks."""
    config = load(EXPORTERS / "collector/lambda-adot.yaml")
    assert pipelines(config)["traces"]["exporters"] == ["awsxray"]
    assert pipelines(config)["metrics"]["exporters"] == ["awsemf"]
    assert "processors" not in config
    assert all("processors" not in p for p in pipelines(config).values())
    emf = config["exporters"]["awsemf"]
    selectors = [s for d in emf["metric_declarations"] for s in d["metric_name_selectors"]]
    for metric in CONTRACT_UNITS:
        assert any(re.search(s, metric) for s in selectors), metric
    dimensions = [set(ds) for d in emf["metric_declarations"] for ds in d["dimensions"]]
    assert {"messaging.system", "messaging.destination.name"} in dimensions


# The metric contract: OpenTelemetry unit of each instrument, and the CloudWatch unit it must arrive with.
CONTRACT_UNITS = {
    "messaging.process.duration": ("s", "Seconds"),
    "batchlens.batch.oldest_record_age": ("s", "Seconds"),
    "messaging.client.consumed.messages": ("{message}", "Count"),
    "batchlens.records.failed": ("{record}", "Count"),
    "batchlens.records.redelivered": ("{record}", "Count"),
    "batchlens.batch.size": ("{record}", "Count"),
}


def awsemf_unit(metric: str, otel_unit: str, descriptors: list[dict[str, Any]]) -> str:
    """The unit awsemf writes for a metric: a matching descriptor (when it overwrites, or the unit is empty),
    else its built-in mapping of a few UCUM units, else the OpenTelemetry unit unchanged."""
    for descriptor in descriptors:
        if descriptor["metric_name"] == metric and (otel_unit == "" or descriptor.get("overwrite", False)):
            return str(descriptor["unit"])
    return {"ms": "Milliseconds", "s": "Seconds", "us": "Microseconds", "By": "Bytes"}.get(otel_unit, otel_unit)


def test_lambda_adot_keeps_the_first_point_of_every_label_set() -> None:
    """awsemf is told to send each label set's first value instead of keeping it as a delta baseline (#3425)."""
    emf = load(EXPORTERS / "collector/lambda-adot.yaml")["exporters"]["awsemf"]
    assert emf["retain_initial_value_of_delta_metric"] is True


def test_lambda_adot_maps_every_contract_unit_to_a_cloudwatch_unit() -> None:
    """Seconds for durations and ages, Count for the curly-brace units, which CloudWatch would not accept."""
    emf = load(EXPORTERS / "collector/lambda-adot.yaml")["exporters"]["awsemf"]
    descriptors = emf["metric_descriptors"]
    for descriptor in descriptors:
        assert set(descriptor) <= {"metric_name", "unit", "overwrite"}, descriptor
    assert {d["metric_name"] for d in descriptors} <= set(CONTRACT_UNITS)
    for metric, (otel_unit, cloudwatch_unit) in CONTRACT_UNITS.items():
        assert awsemf_unit(metric, otel_unit, descriptors) == cloudwatch_unit, metric


def test_unit_check_sees_an_unmapped_annotation_unit() -> None:
    """Without a descriptor, awsemf would pass "{record}" through unchanged: the check above can fail."""
    assert awsemf_unit("batchlens.records.failed", "{record}", []) == "{record}"
    not_overwriting = [{"metric_name": "batchlens.records.failed", "unit": "Count"}]
    assert awsemf_unit("batchlens.records.failed", "{record}", not_overwriting) == "{record}"


def test_lambda_layer_puts_decouple_last_after_batch() -> None:
    """In the collector-layer config every pipeline runs batch, then decouple as the last processor."""
    config = load(EXPORTERS / "collector/lambda-otel-layer.yaml")
    for name, pipeline in pipelines(config).items():
        processors = pipeline["processors"]
        assert processors[-1] == "decouple", name
        assert "batch" in processors[:-1], name


def test_forwarding_collector_limits_memory_first() -> None:
    """The forwarding collector runs memory_limiter before anything else, and batches before export."""
    config = load(EXPORTERS / "collector/otlp-forward.yaml")
    for name, pipeline in pipelines(config).items():
        assert pipeline["processors"][0] == "memory_limiter", name
        assert "batch" in pipeline["processors"], name


def test_backend_configs_take_endpoint_and_headers_from_env() -> None:
    """The OTLP-forwarding configs read the backend endpoint and auth header from environment variables."""
    for name in ("lambda-otel-layer.yaml", "otlp-forward.yaml"):
        exporter = load(EXPORTERS / "collector" / name)["exporters"]["otlphttp"]
        assert ENV_PLACEHOLDER.fullmatch(exporter["endpoint"]), name
        assert exporter["headers"], name
        assert all(ENV_PLACEHOLDER.fullmatch(v) for v in exporter["headers"].values()), name


def test_every_env_placeholder_is_documented() -> None:
    """Each ${env:NAME} used anywhere in exporters/ appears in the README's variable table."""
    readme = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", readme, flags=re.MULTILINE))
    used: set[str] = set()
    for path in EXPORTERS.rglob("*"):
        if path.is_file() and path.suffix in {".yaml", ".yml"}:
            text = path.read_text(encoding="utf-8")
            used.update(ENV_PLACEHOLDER.findall(text))
            # Old-style ${NAME} placeholders are deprecated in the collector; only ${env:NAME} is allowed.
            assert not re.search(r"\$\{(?!env:)[^}]*\}", text), path
    assert used, "the backend configs are expected to use env placeholders"
    assert used <= documented, used - documented


def test_placeholders_are_not_sdk_variables() -> None:
    """Collector placeholders avoid OTEL_* names, which the SDK inside the function would also read."""
    for path in COLLECTOR_CONFIGS:
        for name in ENV_PLACEHOLDER.findall(path.read_text(encoding="utf-8")):
            assert not name.startswith("OTEL_"), (path.name, name)


def test_readme_links_resolve() -> None:
    """Every relative link in exporters/README.md points to an existing file, and every config is linked."""
    readme = README.read_text(encoding="utf-8")
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", readme) if "://" not in link]
    assert links
    for link in links:
        assert (EXPORTERS / link).exists(), link
    for path in YAML_FILES:
        assert str(path.relative_to(EXPORTERS)) in readme, path


def _prometheus_config() -> dict[str, Any]:
    return load(EXPORTERS / "prometheus/prometheus.yml")


def test_prometheus_scrapes_the_configure_default_endpoint() -> None:
    """The scrape target is configure()'s default /metrics address and port."""
    jobs = _prometheus_config()["scrape_configs"]
    targets = [t for job in jobs for sc in job["static_configs"] for t in sc["targets"]]
    assert f"{DEFAULT_PROMETHEUS_ADDR}:{DEFAULT_PROMETHEUS_PORT}" in targets


def test_prometheus_config_passes_promtool() -> None:
    """promtool accepts the scrape configuration (skipped when promtool is not installed)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(EXPORTERS / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_datasource_matches_prometheus() -> None:
    """The provisioned datasource is Prometheus with timeInterval equal to the scrape interval."""
    datasources = load(EXPORTERS / "grafana/provisioning/datasources/prometheus.yaml")
    assert datasources["apiVersion"] == 1
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    prometheus = _prometheus_config()
    intervals = {
        job.get("scrape_interval", prometheus["global"]["scrape_interval"]) for job in prometheus["scrape_configs"]
    }
    assert intervals == {datasource["jsonData"]["timeInterval"]}
    compose = load(EXPORTERS / "local/compose.yaml")
    listen = [a for a in compose["services"]["prometheus"]["command"] if a.startswith("--web.listen-address=")]
    port = listen[0].rsplit(":", 1)[1]
    assert datasource["url"] == f"http://localhost:{port}"


def _compose_mounts() -> dict[str, Path]:
    """Container path -> host path of every bind mount in local/compose.yaml."""
    compose_dir = EXPORTERS / "local"
    mounts = {}
    for service in load(compose_dir / "compose.yaml")["services"].values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts[target] = (compose_dir / source).resolve()
    return mounts


def test_compose_mounts_exist() -> None:
    """Every bind mount of the local compose file points to a file or folder of the repository."""
    for target, source in _compose_mounts().items():
        assert source.exists(), (target, source)
        assert ROOT in source.parents, source


def test_grafana_dashboard_provider_loads_the_dashboards_folder() -> None:
    """The dashboard provider's path is where compose mounts dashboards/, which holds dashboard JSON."""
    providers = load(EXPORTERS / "grafana/provisioning/dashboards/batchlens.yaml")
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    mounts = _compose_mounts()
    source = mounts[provider["options"]["path"]]
    assert source == (ROOT / "dashboards").resolve()
    assert list(source.glob("*.json"))
    assert mounts["/etc/grafana/provisioning/dashboards"] == (EXPORTERS / "grafana/provisioning/dashboards").resolve()
    assert mounts["/etc/prometheus/prometheus.yml"] == (EXPORTERS / "prometheus/prometheus.yml").resolve()
