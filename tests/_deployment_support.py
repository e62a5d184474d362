"""The Lambda layer command of docs/deployment.md, read from the page so tests run what readers run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT_PAGE = ROOT / "docs" / "deployment.md"
_MARKER = "<!-- layer-command"


def layer_command() -> list[str]:
    """The words of the one command in the fenced block after the layer-command marker."""
    text = DEPLOYMENT_PAGE.read_text(encoding="utf-8")
    after = text[text.index(_MARKER) :]
    block = re.search(r"```bash\n(.*?)```", after, re.DOTALL)
    assert block is not None, "no bash block after the layer-command marker"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, "the layer is built by one command on one line"
    return shlex.split(lines[0])


def option(words: list[str], name: str) -> str:
    """The value of `--name VALUE` or `--name=VALUE` in a command."""
    for index, word in enumerate(words):
        if word == name:
            return words[index + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    raise AssertionError(f"{name} is missing from {words}")


def layer_directory() -> Path:
    """The directory a SAM layer's ContentUri must name: the parent of the command's `python/` target."""
    target = Path(option(layer_command(), "--target"))
    assert target.name == "python", "Lambda puts a layer's python/ directory on sys.path"
    return ROOT / target.parent
