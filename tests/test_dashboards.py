"""Structure of the Grafana dashboards in dashboards/: portable, documented, and built on the metric contract."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
OVERVIEW = DASHBOARDS / "batchlens-overview.json"

# The metric contract (meter "batchlens"): OpenTelemetry name, instrument kind, unit.
CONTRACT = [
    ("batchlens.records.failed", "counter", "{record}"),
    ("batchlens.records.succeeded", "counter", "{record}"),
    ("messaging.client.consumed.messages", "counter", "{message}"),
    ("messaging.process.duration", "histogram", "s"),
    ("batchlens.batch.size", "histogram", "{record}"),
    ("batchlens.batch.oldest_record_age", "histogram", "s"),
    ("batchlens.records.redelivered", "counter", "{record}"),
]
CONTRACT_LABELS = {
    "messaging_system",
    "messaging_destination_name",
    "messaging_operation_name",
    "error_type",
    "batchlens_batch_outcome",
    "le",
}
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "increase", "histogram_quantile", "or", "and", "unless", "on",
    "ignoring", "group_left", "group_right", "vector", "avg", "max", "min", "count", "clamp_min",
    "label_values", "bool", "offset", "topk",
}  # fmt: skip
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}


def prometheus_series(name: str, kind: str, unit: str) -> set[str]:
    """Prometheus series names the OpenTelemetry exporter derives (checked live by the integration test)."""
    base = name.replace(".", "_")
    if unit == "s":
        base += "_seconds"  # units in braces are annotations and add no suffix
    if kind == "counter":
        return {base + "_total"}
    return {base + "_bucket", base + "_sum", base + "_count"}


CONTRACT_SERIES = set().union(*(prometheus_series(*entry) for entry in CONTRACT))
COUNTER_LIKE = re.compile(r"_(total|bucket|sum|count)$")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def all_dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def strip_labels(expr: str) -> str:
    """Drop string literals, label matchers, range selectors and by/without groupings from a PromQL expression."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    return re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)


def metric_names(expr: str) -> list[str]:
    """Every metric name referenced by a PromQL expression (identifiers that are neither functions nor keywords)."""
    stripped = strip_labels(expr)
    names = []
    for match in re.finditer(r"[A-Za-z_:][\w:]*", stripped):
        word = match.group(0)
        following = stripped[match.end() :].lstrip()
        if word in PROMQL_WORDS or following.startswith("("):
            continue
        names.append(word)
    return names


def label_names(expr: str) -> set[str]:
    """Label names used in matchers and by/without clauses."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels: set[str] = set()
    for group in re.findall(r"\{([^}]*)\}", expr):
        labels.update(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", group))
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels.update(part.strip() for part in group.split(",") if part.strip())
    return labels


def test_helpers_find_metrics_and_labels() -> None:
    """The PromQL helpers tell metric names from functions, keywords and labels."""
    expr = 'sum by (le) (rate(a_total{x=~"$v", y="1"}[5m])) / sum(b_count) or vector(0)'
    assert metric_names(expr) == ["a_total", "b_count"]
    assert label_names(expr) == {"le", "x", "y"}


def test_contract_series_names() -> None:
    """The contract maps to the Prometheus names the exporter produces (dots to underscores, _total, _seconds)."""
    expected = {
        "batchlens_records_failed_total",
        "batchlens_records_succeeded_total",
        "messaging_client_consumed_messages_total",
        "messaging_process_duration_seconds_bucket",
        "messaging_process_duration_seconds_sum",
        "messaging_process_duration_seconds_count",
        "batchlens_batch_size_bucket",
        "batchlens_batch_size_sum",
        "batchlens_batch_size_count",
        "batchlens_batch_oldest_record_age_seconds_bucket",
        "batchlens_batch_oldest_record_age_seconds_sum",
        "batchlens_batch_oldest_record_age_seconds_count",
        "batchlens_records_redelivered_total",
    }
    assert expected == CONTRACT_SERIES


def test_overview_exists_with_title_and_stable_uid() -> None:
    """The overview dashboard has its title and a fixed uid, so re-imports replace instead of duplicating."""
    dashboard = load(OVERVIEW)
    assert dashboard["title"] == "batchlens — batch processing overview"
    assert dashboard["uid"] == "batchlens-overview"
    assert dashboard.get("id") is None
    assert dashboard["description"]


@pytest.mark.parametrize("path", all_dashboards(), ids=lambda p: p.name)
def test_dashboard_is_portable(path: Path) -> None:
    """No __inputs or baked-in datasource uids: a `datasource` variable of type prometheus feeds every panel."""
    dashboard = load(path)
    text = path.read_text(encoding="utf-8")
    assert "__inputs" not in dashboard
    assert "DS_PROMETHEUS" not in text
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
    for panel, target in targets(dashboard):
        assert target["datasource"] == DATASOURCE_REF, panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE_REF, variable["name"]


def test_overview_filter_variables() -> None:
    """`messaging_system` and `destination` are multi-value label_values variables over contract metrics."""
    variables = {v["name"]: v for v in load(OVERVIEW)["templating"]["list"]}
    system, destination = variables["messaging_system"], variables["destination"]
    assert system["type"] == destination["type"] == "query"
    assert re.fullmatch(r"label_values\(\w+, messaging_system\)", system["query"])
    assert re.fullmatch(
        r'label_values\(\w+\{messaging_system=~"\$messaging_system"\}, messaging_destination_name\)',
        destination["query"],
    )
    for variable in (system, destination):
        assert variable["multi"]
        assert variable["includeAll"]
        assert variable["allValue"] == ".*"
        selector, label = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"]).groups()
        assert set(metric_names(selector)) <= CONTRACT_SERIES
        assert label in CONTRACT_LABELS


@pytest.mark.parametrize("path", all_dashboards(), ids=lambda p: p.name)
def test_every_panel_has_title_description_and_unit(path: Path) -> None:
    """Every panel says what it shows and in which unit."""
    dashboard = load(path)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel.get("title", "").strip()
        assert len(panel.get("description", "").strip()) >= 30, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit", "").strip(), panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["refId"], panel["title"]


@pytest.mark.parametrize("path", all_dashboards(), ids=lambda p: p.name)
def test_queries_use_only_contract_metrics_and_labels(path: Path) -> None:
    """Every expression references metrics and labels of the batchlens metric contract, nothing else."""
    for panel, target in targets(load(path)):
        names = metric_names(target["expr"])
        assert names, panel["title"]
        assert set(names) <= CONTRACT_SERIES, (panel["title"], set(names) - CONTRACT_SERIES)
        assert label_names(target["expr"]) <= CONTRACT_LABELS, panel["title"]


def raw_counters(expr: str, instant: bool = False) -> set[str]:
    """Counter-like series of ``expr`` that are not (always) read through rate/increase over $__rate_interval
    (or, in an instant query, through increase over the dashboard's whole $__range)."""
    bad = set()
    for name in set(metric_names(expr)):
        if not COUNTER_LIKE.search(name):
            continue
        uses = len(re.findall(rf"\b{name}\b", expr))
        selector = rf"{name}(?:\{{[^}}]*\}})?"
        wrapped = len(re.findall(rf"\b(?:rate|increase)\(\s*{selector}\[\$__rate_interval\]\s*\)", expr))
        if instant:
            wrapped += len(re.findall(rf"\bincrease\(\s*{selector}\[\$__range\]\s*\)", expr))
        if uses != wrapped:
            bad.add(name)
    return bad


@pytest.mark.parametrize("path", all_dashboards(), ids=lambda p: p.name)
def test_counters_only_through_rate_with_rate_interval(path: Path) -> None:
    """Counter series (and histogram parts) appear only inside rate()/increase() over [$__rate_interval]; an
    instant (table) query may take increase() over [$__range]."""
    for panel, target in targets(load(path)):
        assert not raw_counters(target["expr"], instant=target.get("instant", False)), panel["title"]


def test_counter_check_catches_a_raw_counter() -> None:
    """The rate check flags a counter read raw or over a fixed window, and accepts the right form."""
    assert raw_counters("sum(batchlens_records_failed_total)") == {"batchlens_records_failed_total"}
    assert raw_counters("rate(batchlens_records_failed_total[5m])") == {"batchlens_records_failed_total"}
    assert raw_counters('increase(batchlens_records_failed_total{a="b"}[$__rate_interval])') == set()
    ranged = "increase(batchlens_records_failed_total[$__range])"
    assert raw_counters(ranged) == {"batchlens_records_failed_total"}
    assert raw_counters(ranged, instant=True) == set()


def test_queries_filter_by_the_variables() -> None:
    """Every selector is narrowed by both the messaging_system and the destination variable."""
    for panel, target in targets(load(OVERVIEW)):
        for selector in re.findall(r"\{[^}]*\}", target["expr"]):
            assert 'messaging_system=~"$messaging_system"' in selector, panel["title"]
            assert 'messaging_destination_name=~"$destination"' in selector, panel["title"]


def _panel(title_part: str) -> dict[str, Any]:
    matches = [p for p in load(OVERVIEW)["panels"] if title_part.lower() in p["title"].lower()]
    assert len(matches) == 1, title_part
    return matches[0]


def _exprs(panel: dict[str, Any]) -> str:
    return "\n".join(t["expr"] for t in panel["targets"])


def test_overview_has_the_issue_panels() -> None:
    """Records/s by outcome, failure ratio, failures by error type, duration quantiles, batches, batch size."""
    records = _panel("records per second by outcome")
    assert set(metric_names(_exprs(records))) == {
        "batchlens_records_succeeded_total",
        "messaging_client_consumed_messages_total",
        "batchlens_records_failed_total",
    }
    assert records["fieldConfig"]["defaults"]["unit"] == "recps"

    ratio = _panel("failure ratio")
    assert ratio["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert "/" in _exprs(ratio)

    by_type = _panel("failures by error type")
    assert "error_type" in label_names(_exprs(by_type))
    assert re.search(r"by \(error_type\)", _exprs(by_type))

    duration = _panel("duration (p50")
    assert duration["fieldConfig"]["defaults"]["unit"] == "s"
    quantiles = re.findall(r"histogram_quantile\(([\d.]+),", _exprs(duration))
    assert sorted(float(q) for q in quantiles) == [0.5, 0.95, 0.99]
    assert set(metric_names(_exprs(duration))) == {"messaging_process_duration_seconds_bucket"}

    batches = _panel("batches by outcome")
    assert re.search(r"by \(batchlens_batch_outcome\)", _exprs(batches))
    assert set(metric_names(_exprs(batches))) == {"batchlens_batch_size_count"}

    size = _panel("records per batch")
    assert set(metric_names(_exprs(size))) <= {
        "batchlens_batch_size_bucket",
        "batchlens_batch_size_sum",
        "batchlens_batch_size_count",
    }


def test_panels_do_not_overlap() -> None:
    """Panels occupy distinct cells of Grafana's 24-column grid."""
    cells: set[tuple[int, int]] = set()
    for panel in load(OVERVIEW)["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))


def test_dashboards_ship_in_the_wheel() -> None:
    """The wheel maps the top-level dashboards/ folder to batchlens/_dashboards."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    force_include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force_include["dashboards"] == "batchlens/_dashboards"
    assert OVERVIEW in all_dashboards()


def test_overview_has_the_lag_redelivery_heatmap_and_top_errors_panels() -> None:
    """Oldest-record age p50/p95/max by destination, redeliveries/s, a duration heatmap, a top-10 error table."""
    age = _panel("oldest record age")
    assert age["fieldConfig"]["defaults"]["unit"] == "s"
    quantiles = re.findall(r"histogram_quantile\(([\d.]+),", _exprs(age))
    assert sorted(float(q) for q in quantiles) == [0.5, 0.95, 1.0]  # 1 = upper bound of the highest used bucket
    assert set(metric_names(_exprs(age))) == {"batchlens_batch_oldest_record_age_seconds_bucket"}
    for target in age["targets"]:
        assert re.search(r"by \(le, messaging_destination_name\)", target["expr"])
        assert "{{messaging_destination_name}}" in target["legendFormat"]

    redeliveries = _panel("redeliveries")
    assert redeliveries["fieldConfig"]["defaults"]["unit"] == "recps"
    assert set(metric_names(_exprs(redeliveries))) == {"batchlens_records_redelivered_total"}

    heatmap = _panel("heatmap")
    assert heatmap["type"] == "heatmap"
    (target,) = heatmap["targets"]
    assert target["format"] == "heatmap"
    assert heatmap["options"]["calculate"] is False  # the buckets are Prometheus'; Grafana must not re-bucket
    assert re.fullmatch(
        r"sum by \(le\) \(increase\(messaging_process_duration_seconds_bucket\{.*\}\[\$__rate_interval\]\)\)",
        target["expr"],
    )

    top = _panel("top 10 error types")
    assert top["type"] == "table"
    (target,) = top["targets"]
    assert target["instant"] is True
    assert target["format"] == "table"
    assert re.fullmatch(
        r"topk\(10, sum by \(error_type\) \(increase\(batchlens_records_failed_total\{.*\}\[\$__range\]\)\)\)",
        target["expr"],
    )


def test_overview_no_longer_reads_the_dropped_metrics() -> None:
    """batchlens.batches is gone from the contract and from every query."""
    text = OVERVIEW.read_text(encoding="utf-8")
    assert "batchlens_batches_total" not in text


def test_successes_read_the_counter_and_fall_back_per_destination() -> None:
    """succeeded = batchlens.records.succeeded, else (per system and destination) consumed minus failed."""
    (success, _failure) = _panel("records per second by outcome")["targets"]
    expr = " ".join(success["expr"].split())
    grouping = "sum by (messaging_system, messaging_destination_name) "
    counter, fallback = (part.strip() for part in expr[len("sum( ") : -len(" )")].split(" or (", 1))
    assert metric_names(counter) == ["batchlens_records_succeeded_total"]
    assert counter.startswith(grouping)
    consumed, failed = (part.strip() for part in fallback.split(" - ", 1))
    assert metric_names(consumed) == ["messaging_client_consumed_messages_total"]
    assert consumed.startswith(grouping)
    # no failures in the window must read as 0 failed, not as no data
    assert metric_names(failed) == ["batchlens_records_failed_total", "messaging_client_consumed_messages_total"]
    assert failed.count(grouping) == 2
    assert failed.rstrip(" )").endswith("* 0")
