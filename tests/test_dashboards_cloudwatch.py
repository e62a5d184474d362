"""The CloudWatch dashboard in dashboards/cloudwatch/: well-formed, built on what the real EMF exporter writes, and
rendered for a namespace and region by `batchlens dashboards export --format cloudwatch`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from batchlens._dashboard_export import DEFAULT_NAMESPACE

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
OVERVIEW = DASHBOARDS / "batchlens-overview.json"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def all_dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


# -- CloudWatch ---------------------------------------------------------------------------------------------------------
CLOUDWATCH = DASHBOARDS / "cloudwatch" / "batchlens-overview.json"
SEARCH = re.compile(
    r"SEARCH\('\{(?P<schema>(?:[^}\"]|\"[^\"]*\")*)\} MetricName=\"(?P<metric>[^\"]+)\"', '(?P<stat>[^']+)'\)"
)  # the schema's quoted names may hold braces: the ${Namespace} placeholder
CLOUDWATCH_STATS = re.compile(r"Sum|SampleCount|Average|Maximum|Minimum|p\d{1,2}(\.\d+)?")
PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


def cloudwatch_metric_widgets() -> list[dict[str, Any]]:
    return [w for w in load(CLOUDWATCH)["widgets"] if w["type"] == "metric"]


def expressions(widget: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry[0] for entry in widget["properties"]["metrics"]]


def searches(text: str) -> list[tuple[str, tuple[str, ...], str, str]]:
    """(namespace, dimension names, metric name, statistic) of every SEARCH() in ``text``."""
    found = []
    for match in SEARCH.finditer(text):
        names = [part.strip() for part in match.group("schema").split(",")]
        assert all(n.startswith('"') and n.endswith('"') for n in names), names  # dotted names must be quoted
        namespace, *dimensions = (n[1:-1] for n in names)
        found.append((namespace, tuple(dimensions), match.group("metric"), match.group("stat")))
    return found


def cloudwatch_references() -> set[tuple[str, frozenset[str]]]:
    """Every (metric name, dimension set) the CloudWatch dashboard reads."""
    return {
        (metric, frozenset(dimensions))
        for widget in cloudwatch_metric_widgets()
        for entry in expressions(widget)
        for _, dimensions, metric, _ in searches(entry["expression"])
    }


def test_search_parser_reads_schema_metric_and_statistic() -> None:
    """The SEARCH parser splits the quoted schema and finds metric name and statistic; unquoted dots are refused."""
    text = """SUM(SEARCH('{"ns","a.b"} MetricName="m.x"', 'p95'))"""
    assert searches(text) == [("ns", ("a.b",), "m.x", "p95")]
    with pytest.raises(AssertionError):
        searches("""SEARCH('{ns,a.b} MetricName="m"', 'Sum')""")


def test_cloudwatch_dashboard_has_only_the_two_placeholders() -> None:
    """The body is JSON whose only placeholders are ${Namespace} (every SEARCH) and ${Region} (every widget)."""
    text = CLOUDWATCH.read_text(encoding="utf-8")
    assert set(PLACEHOLDER.findall(text)) == {"${Namespace}", "${Region}"}
    widgets = cloudwatch_metric_widgets()
    assert widgets
    for widget in widgets:
        assert widget["properties"]["region"] == "${Region}", widget["properties"]["title"]
        for entry in expressions(widget):
            for namespace, *_ in searches(entry["expression"]):
                assert namespace == "${Namespace}"


def test_cloudwatch_widgets_are_well_formed() -> None:
    """Widgets fit the 24-column grid without overlap; expression ids are unique, lowercase-first and resolvable."""
    cells: set[tuple[int, int]] = set()
    for widget in load(CLOUDWATCH)["widgets"]:
        assert widget["x"] + widget["width"] <= 24
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells, widget
                cells.add((x, y))
    for widget in cloudwatch_metric_widgets():
        properties = widget["properties"]
        assert properties["title"].strip()
        entries = expressions(widget)
        ids = [entry["id"] for entry in entries]
        assert len(ids) == len(set(ids)), properties["title"]
        assert all(re.fullmatch(r"[a-z]\w*", i) for i in ids), ids
        assert any(entry.get("visible", True) for entry in entries), properties["title"]
        for entry in entries:
            found = searches(entry["expression"])
            assert entry["expression"].count("SEARCH(") == len(found), entry["expression"]
            for *_, stat in found:
                assert CLOUDWATCH_STATS.fullmatch(stat), stat
            rest = SEARCH.sub("", entry["expression"])
            words = set(re.findall(r"\b[a-z]\w*\b", rest))
            assert words <= set(ids) - {entry["id"]}, (properties["title"], words)


def test_cloudwatch_dashboard_has_the_grafana_panels_cloudwatch_can_draw() -> None:
    """Outcomes, failure ratio, error types, duration quantiles, batches, batch size, record age, redeliveries, top 10."""
    by_title = {w["properties"]["title"]: w for w in cloudwatch_metric_widgets()}
    grafana_titles = {p["title"] for p in load(OVERVIEW)["panels"]}
    assert set(by_title) == (grafana_titles - {"Record processing duration heatmap"}) - {
        "Records per second by outcome",
        "Redeliveries per second",
    } | {"Records by outcome", "Redeliveries"}
    age = "\n".join(
        e["expression"] for e in expressions(by_title["Oldest record age by destination (p50 / p95 / max)"])
    )
    assert {stat for *_, stat in searches(age)} == {"p50", "p95", "Maximum"}
    top = expressions(by_title["Top 10 error types"])
    assert any(re.fullmatch(r"SORT\(\w+, SUM, DESC, 10\)", e["expression"]) for e in top)


def test_succeeded_records_read_the_counter_and_fall_back_to_consumed_minus_failed() -> None:
    """Succeeded = SUM of batchlens.records.succeeded where it has data in a period, else consumed - failed."""
    (widget,) = [w for w in cloudwatch_metric_widgets() if w["properties"]["title"] == "Records by outcome"]
    by_id = {entry["id"]: entry for entry in expressions(widget)}
    (search,) = searches(by_id["succeededall"]["expression"])
    assert search[1:] == (("messaging.system", "messaging.destination.name"), "batchlens.records.succeeded", "Sum")
    assert by_id["counted"]["expression"] == "SUM(succeededall)"
    assert by_id["c"]["expression"] == "SUM(consumed)"
    assert by_id["f"]["expression"] == "SUM(failedall)"
    # FILL(counted, -1) marks the periods without the counter (counts are never negative); failed is missing
    # in periods without failures, hence FILL(f, 0)
    assert by_id["s"]["expression"] == "IF(FILL(counted, -1) >= 0, FILL(counted, 0), c - FILL(f, 0))"
    assert by_id["s"].get("visible", True)
    assert not any(by_id[i].get("visible", True) for i in ("succeededall", "counted", "consumed", "failedall"))


# What each instrument records (attribute names), per the metric contract, and the EMF dimension rules: the present
# attributes among DIMENSION_ORDER, plus the [messaging.system, messaging.destination.name] rollup when that set
# holds error.type or batchlens.batch.outcome.
DIMENSION_ORDER = ("messaging.system", "messaging.destination.name", "error.type", "batchlens.batch.outcome")
CONTRACT_ATTRIBUTE_SETS = {
    "messaging.process.duration": [("success",), ("error.type",)],
    "messaging.client.consumed.messages": [("success",)],  # no error.type: one count per delivery
    "batchlens.records.failed": [("error.type",)],
    "batchlens.records.succeeded": [()],  # failed's attributes without error.type
    "batchlens.batch.size": [("batchlens.batch.outcome",)],
    "batchlens.batch.oldest_record_age": [()],
    "batchlens.records.redelivered": [()],
}


def contract_dimension_sets() -> set[tuple[str, frozenset[str]]]:
    emitted = set()
    base = ("messaging.system", "messaging.destination.name")
    for metric, attribute_sets in CONTRACT_ATTRIBUTE_SETS.items():
        for extra in attribute_sets:
            present = [d for d in DIMENSION_ORDER if d in (*base, *extra)]
            emitted.add((metric, frozenset(present)))
            if {"error.type", "batchlens.batch.outcome"} & set(present):
                emitted.add((metric, frozenset(base)))
    return emitted


def test_cloudwatch_dashboard_reads_only_contract_dimension_sets() -> None:
    """Every metric name and dimension set the CloudWatch dashboard reads is one the EMF rules produce."""
    references = cloudwatch_references()
    assert references <= contract_dimension_sets(), references - contract_dimension_sets()
    assert {metric for metric, _ in references} == set(CONTRACT_ATTRIBUTE_SETS)


def test_dimension_model_rejects_sets_the_exporter_never_writes() -> None:
    """Dimension sets without the destination, or consumed messages by error type, are not in the model."""
    base = {"messaging.system", "messaging.destination.name"}
    emitted = contract_dimension_sets()
    assert ("batchlens.records.failed", frozenset({"messaging.system", "error.type"})) not in emitted
    assert ("messaging.client.consumed.messages", frozenset(base | {"error.type"})) not in emitted
    assert ("batchlens.records.failed", frozenset(base)) in emitted  # the roll-up


# -- the `dashboards export` command ------------------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from batchlens.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "BATCHLENS_EMF_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_aws_env")
def test_export_cloudwatch_substitutes_namespace_and_region(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`--format cloudwatch --namespace NS --region R DIR` writes the body with NS in every SEARCH and R per widget."""
    code, out, err = run_cli(
        capsys, "dashboards", "export", "--format", "cloudwatch", "--namespace", "shop/orders", "--region",
        "eu-central-1", str(tmp_path / "cw"),
    )  # fmt: skip
    assert (code, err) == (0, "")
    written = tmp_path / "cw" / "batchlens-overview.json"
    assert out.splitlines() == [str(written)]
    text = written.read_text(encoding="utf-8")
    assert not PLACEHOLDER.search(text)
    body = json.loads(text)
    metric_widgets = [w for w in body["widgets"] if w["type"] == "metric"]
    assert {w["properties"]["region"] for w in metric_widgets} == {"eu-central-1"}
    namespaces = {
        ns for w in metric_widgets for e in w["properties"]["metrics"] for ns, *_ in searches(e[0]["expression"])
    }
    assert namespaces == {"shop/orders"}
    assert text == CLOUDWATCH.read_text(encoding="utf-8").replace("${Namespace}", "shop/orders").replace(
        "${Region}", "eu-central-1"
    )


@pytest.mark.usefixtures("no_aws_env")
def test_export_cloudwatch_defaults_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without flags the region comes from AWS_REGION and the namespace from BATCHLENS_EMF_NAMESPACE, else batchlens."""
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    code, _, _ = run_cli(capsys, "dashboards", "export", "--format", "cloudwatch", str(tmp_path / "a"))
    assert code == 0
    body = (tmp_path / "a" / "batchlens-overview.json").read_text(encoding="utf-8")
    assert '"region": "us-west-2"' in body
    assert '{\\"batchlens\\",' in body
    monkeypatch.setenv("BATCHLENS_EMF_NAMESPACE", "payments")
    assert run_cli(capsys, "dashboards", "export", "--format", "cloudwatch", str(tmp_path / "b"))[0] == 0
    assert '{\\"payments\\",' in (tmp_path / "b" / "batchlens-overview.json").read_text(encoding="utf-8")


@pytest.mark.usefixtures("no_aws_env")
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "--region is required"),
        (["--region", "Europe"], "invalid --region"),
        (["--region", "eu-west-1", "--namespace", "AWS/Lambda"], "invalid --namespace"),
        (["--region", "eu-west-1", "--namespace", 'a"b'], "invalid --namespace"),
        (["--region", "eu-west-1", "--namespace", ""], "invalid --namespace"),
    ],
)
def test_export_cloudwatch_rejects_bad_values_before_writing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    """A missing region or a value CloudWatch would refuse exits 2 with one line, and writes nothing."""
    target = tmp_path / "never"
    code, out, err = run_cli(capsys, "dashboards", "export", "--format", "cloudwatch", *flags, str(target))
    assert (code, out) == (2, "")
    assert err.startswith("batchlens: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not target.exists()


@pytest.mark.usefixtures("no_aws_env")
def test_export_grafana_is_still_the_default(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Without --format the Grafana files are copied unchanged, and the CloudWatch body is not among them."""
    code, _, _ = run_cli(capsys, "dashboards", "export", str(tmp_path))
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in all_dashboards())
    assert (tmp_path / "batchlens-overview.json").read_bytes() == OVERVIEW.read_bytes()
    assert run_cli(capsys, "dashboards", "export", "--format", "grafana", str(tmp_path / "g"))[0] == 0


def test_dashboards_list_names_both_formats(capsys: pytest.CaptureFixture[str]) -> None:
    """`dashboards list` shows the Grafana dashboard with its title and the CloudWatch body in its subfolder."""
    code, out, _ = run_cli(capsys, "dashboards", "list")
    assert code == 0
    names = [line.split("\t")[0] for line in out.splitlines()]
    assert names == ["batchlens-overview.json", "cloudwatch/batchlens-overview.json"]


# -- the CloudWatch dashboard against the real EMF exporter -------------------------------------------------------------
def emf_documents(text: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines of ``text`` (JSON objects with an ``_aws`` key)."""
    documents = []
    for line in text.splitlines():
        if line.startswith("{"):
            document = json.loads(line)
            if "_aws" in document:
                documents.append(document)
    return documents


def emitted_dimension_sets(documents: list[dict[str, Any]]) -> dict[tuple[str, frozenset[str]], set[str]]:
    """(metric name, dimension set) -> namespaces, for every metric every directive of every document declares."""
    emitted: dict[tuple[str, frozenset[str]], set[str]] = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    emitted.setdefault((metric["Name"], frozenset(dimensions)), set()).add(directive["Namespace"])
    return emitted


def run_batches_through_emf(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """SQS and Kinesis batches with successes, two error types and redeliveries through configure(metrics="emf")."""
    pytest.importorskip("opentelemetry.sdk")
    from batchlens import BatchProcessor, EventType, Telemetry, process_partial_response
    from batchlens.exceptions import BatchProcessingError
    from batchlens.telemetry import configure
    from batchlens.testing import kinesis_event, sqs_event

    def handler(record: Any) -> str:
        payload = record.kinesis.data_as_json() if hasattr(record, "kinesis") else json.loads(record.body)
        if payload.get("raise") == "value":
            raise ValueError("bad order")
        if payload.get("raise") == "key":
            raise KeyError("order_id")
        return "ok"

    handle = configure(service_name="dashboard-check", traces="none", metrics="emf", logs="none", set_global=False)
    telemetry = Telemetry(meter_provider=handle.meter_provider, tracing=False, logging=False)
    sqs = BatchProcessor(event_type=EventType.SQS, telemetry=telemetry)
    kinesis = BatchProcessor(event_type=EventType.KinesisDataStreams, telemetry=telemetry)
    capsys.readouterr()
    try:
        event = sqs_event([{"n": 1}, {"raise": "value"}, {"raise": "key"}, {"n": 4}], queue="orders", seed=1)
        event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "3"
        process_partial_response(event, handler, sqs)
        process_partial_response(sqs_event([{"n": 1}], queue="orders", seed=2), handler, sqs)
        with pytest.raises(BatchProcessingError):
            process_partial_response(sqs_event([{"raise": "value"}], queue="refunds", seed=3), handler, sqs)
        process_partial_response(kinesis_event([{"n": 1}, {"n": 2}], stream="clicks", seed=4), handler, kinesis)
        assert handle.flush(timeout_millis=10_000)
        return emf_documents(capsys.readouterr().out)
    finally:
        handle.shutdown()


def test_cloudwatch_dashboard_reads_what_the_emf_exporter_writes(capsys: pytest.CaptureFixture[str]) -> None:
    """Every metric name and dimension set of the CloudWatch dashboard is one the real EMF exporter emits."""
    documents = run_batches_through_emf(capsys)
    assert documents
    emitted = emitted_dimension_sets(documents)
    missing = cloudwatch_references() - set(emitted)
    assert not missing, (missing, sorted(emitted, key=str))
    assert {namespace for namespaces in emitted.values() for namespace in namespaces} == {DEFAULT_NAMESPACE}
    # and the contract model the structural test uses is what the exporter does
    assert set(emitted) == contract_dimension_sets()
