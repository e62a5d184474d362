"""The bundled dashboards: Grafana files copied as they are, the CloudWatch one rendered for a namespace and region.

The CloudWatch dashboard (``cloudwatch/batchlens-overview.json`` in the dashboards folder) is a dashboard body for
``aws cloudwatch put-dashboard`` with two placeholders, ``${Namespace}`` (the EMF namespace, default ``batchlens``)
and ``${Region}``. They are written in CloudFormation's ``Fn::Sub`` form, so the same file can also be substituted
by a template; here they are replaced after the values are checked against CloudWatch's rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

CLOUDWATCH_FOLDER = "cloudwatch"
NAMESPACE_PLACEHOLDER = "${Namespace}"
REGION_PLACEHOLDER = "${Region}"
DEFAULT_NAMESPACE = "batchlens"

# CloudWatch namespaces: 1-255 characters of letters, digits and . - _ / # : (and spaces), not starting with
# ':' nor with the reserved 'AWS/'. No quote or backslash, so the value is safe inside the JSON strings and the
# double-quoted SEARCH schema it replaces the placeholder in.
_NAMESPACE = re.compile(r"[A-Za-z0-9.\-_/#: ]{1,255}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if CloudWatch accepts it as a custom metric namespace, else raise ``ValueError``."""
    if not _NAMESPACE.fullmatch(namespace) or namespace.startswith((":", "AWS/")) or namespace.strip() != namespace:
        raise ValueError(
            f"invalid --namespace {namespace[:80]!r}: use 1-255 letters, digits, spaces and . - _ / # :,"
            " not starting with 'AWS/' or ':'"
        )
    return namespace


def check_region(region: str) -> str:
    """Return ``region`` if it has the form of an AWS region name (e.g. ``eu-west-1``), else raise ``ValueError``."""
    if not _REGION.fullmatch(region):
        raise ValueError(f"invalid --region {region[:80]!r}: expected an AWS region name such as eu-west-1")
    return region


def render_cloudwatch(text: str, namespace: str, region: str) -> str:
    """The dashboard body ``text`` with its placeholders replaced; the result is checked to be JSON."""
    rendered = text.replace(NAMESPACE_PLACEHOLDER, check_namespace(namespace)).replace(
        REGION_PLACEHOLDER, check_region(region)
    )
    json.loads(rendered)  # the values are restricted above, so this only fails for a damaged bundled file
    return rendered


def grafana_files(folder: Path) -> list[Path]:
    """The Grafana dashboards: the JSON files directly in the dashboards folder."""
    return sorted(folder.glob("*.json"))


def cloudwatch_files(folder: Path) -> list[Path]:
    """The CloudWatch dashboard bodies, in the folder's ``cloudwatch/`` subfolder."""
    return sorted((folder / CLOUDWATCH_FOLDER).glob("*.json"))


def listing(folder: Path) -> list[tuple[str, str]]:
    """``(file, title)`` of every bundled dashboard; CloudWatch bodies have no title, so they say what they are."""
    entries = []
    for path in grafana_files(folder):
        try:
            title = str(json.loads(path.read_text(encoding="utf-8")).get("title", ""))
        except (OSError, json.JSONDecodeError, AttributeError):
            title = ""
        entries.append((path.name, title))
    for path in cloudwatch_files(folder):
        entries.append((f"{CLOUDWATCH_FOLDER}/{path.name}", "CloudWatch dashboard (export with --format cloudwatch)"))
    return entries


def export(folder: Path, target: Path, dashboard_format: str, namespace: str, region: str | None) -> list[Path]:
    """Write the dashboards of ``dashboard_format`` (``grafana`` or ``cloudwatch``) into ``target``; return the files.

    Grafana files are copied byte for byte. CloudWatch bodies are rendered for ``namespace`` and ``region``
    (required). Invalid values raise ``ValueError`` before anything is written; file errors raise ``OSError``.
    """
    if dashboard_format == "grafana":
        sources = {path: path.read_bytes() for path in grafana_files(folder)}
    else:
        if not region:
            raise ValueError("--region is required for --format cloudwatch (or set AWS_REGION)")
        sources = {
            path: render_cloudwatch(path.read_text(encoding="utf-8"), namespace, region).encode("utf-8")
            for path in cloudwatch_files(folder)
        }
    if not sources:
        raise ValueError(f"no bundled {dashboard_format} dashboards found in this installation")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path, content in sources.items():
        destination = target / path.name
        destination.write_bytes(content)
        written.append(destination)
    return written
