"""The README's "try your own handler" commands run as written, from the clone's root, and succeed."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_block_after(marker: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(marker)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None, f"no bash block after {marker!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_events_then_run_as_the_readme_says(tmp_path: Path) -> None:
    """`batchlens events sqs ... > event.json` then `batchlens run --handler examples/...` gives no failures."""
    lines = readme_block_after("To try your own handler")
    assert len(lines) == 2
    events, run = (shlex.split(line) for line in lines)
    assert events[0] == run[0] == "batchlens"
    out = events.index(">")
    event_file = tmp_path / events[out + 1]
    command = [sys.executable, "-m", "batchlens"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    made = subprocess.run(
        [*command, *events[1:out]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert made.returncode == 0, made.stderr
    event_file.write_text(made.stdout, encoding="utf-8")
    args = [str(event_file) if arg == events[out + 1] else arg for arg in run[1:]]
    ran = subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == {"batchItemFailures": []}
