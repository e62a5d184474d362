"""The documentation: README.md is the front door, docs/ holds the reference, and every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# The page names other documents link to; each must exist.
REQUIRED_PAGES = [
    "index", "telemetry", "exporters", "sentry", "dashboards", "poll", "cli",
    "performance", "migration", "privacy", "testing", "deployment",
]  # fmt: skip

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *#* *$", re.MULTILINE)


def _prose(text: str) -> str:
    """The text outside fenced blocks and code spans, where Markdown links are links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _relative_links(page: Path) -> list[str]:
    links = _LINK.findall(_prose(page.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))}


def test_every_docs_page_exists() -> None:
    """The pages README.md and other engineers link to are all there, and docs/index.md lists each of them."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for name in REQUIRED_PAGES:
        assert (DOCS / f"{name}.md").is_file(), name
        if name != "index":
            assert f"]({name}.md)" in index, f"docs/index.md does not link {name}.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page: Path) -> None:
    """Every relative link of README.md and docs/*.md names a file or directory of the repository."""
    links = _relative_links(page)
    assert links or page.name == "index.md" or page.parent == DOCS, "no links found: the parser is broken"
    missing = [link for link in links if link.split("#", 1)[0] and not (page.parent / link.split("#", 1)[0]).exists()]
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_anchors_of_links_are_headings_of_their_page(page: Path) -> None:
    """A link to `page.md#anchor` (or `#anchor` on the same page) names a heading that page has."""
    broken = []
    for link in _relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path) if path else page
        if anchor and target.suffix == ".md" and target.is_file() and anchor not in _anchors(target):
            broken.append(link)
    assert broken == []


def test_link_checks_catch_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    """The checks above can fail: a link to a missing file or heading is reported, one inside code is not."""
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## `configure()` and EMF: the flush\n\n[ok](#configure-and-emf-the-flush) [gone](missing.md) "
        "[bad](#nowhere) [web](https://example.com/x.md) `[code](nothing.md)`\n\n```\n[fenced](nothing.md)\n```\n",
        encoding="utf-8",
    )
    assert _relative_links(page) == ["#configure-and-emf-the-flush", "missing.md", "#nowhere"]
    assert _anchors(page) == {"title", "configure-and-emf-the-flush"}


def test_readme_is_the_front_door() -> None:
    """README.md stays short: the reference lives in docs/, which it links."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 320
    for name in REQUIRED_PAGES:
        assert f"(docs/{name}.md" in readme, f"README.md does not link docs/{name}.md"


def test_readme_test_command_is_the_one_ci_runs() -> None:
    """CI runs "the README's test command": the same `python -m pytest -q` line is in README.md and .ci/run."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "pip install -e '.[test]' && python -m pytest -q\n" in readme
    assert "python -m pytest -q" in ci


def _python_block_after(page: Path, heading: str) -> str:
    text = page.read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text[text.index(heading) :], re.DOTALL)
    assert block is not None, f"no python block after {heading!r}"
    return block.group(1)


def test_readme_minimal_lambda_function_reports_only_the_failed_record() -> None:
    """The README's minimal function runs as written: a body that is not JSON is the only failure reported."""
    from batchlens.testing import lambda_context, sqs_event

    namespace: dict[str, Any] = {}
    exec(_python_block_after(ROOT / "README.md", "## A minimal Lambda function"), namespace)
    event = sqs_event([{"order_id": 1}, "not json", {"order_id": 2}], seed=3)
    response = namespace["lambda_handler"](event, lambda_context())
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
