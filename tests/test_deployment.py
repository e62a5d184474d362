"""docs/deployment.md's layer command builds a layer a Lambda function can import batchlens from."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from _deployment_support import ROOT, layer_command, option
from _sam_support import SAM_DIR, load

EXAMPLE = ROOT / "examples" / "getting_started_sqs"

# What the function runs in the layer: imports batchlens from the first path entry that has it, processes the
# example's event and prints where batchlens came from and the response.
_INVOKE = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
sys.path.append(sys.argv[3])
import batchlens, app
event = json.loads(open(sys.argv[4], encoding="utf-8").read())
print(json.dumps({"batchlens": batchlens.__file__, "response": app.lambda_handler(event, None)}))
"""


def test_command_targets_the_runtime_and_architecture_of_the_templates() -> None:
    """The command asks pip for wheels of the templates' runtime (python3.13) and architecture (arm64)."""
    words = layer_command()
    assert words[:3] == ["pip", "install", "--target"]
    assert "--only-binary=:all:" in words
    assert option(words, "--implementation") == "cp"
    for name in sorted(p.name for p in SAM_DIR.glob("*.yaml")):
        function = load(name)["Globals"]["Function"]
        assert function["Runtime"] == f"python{option(words, '--python-version')}", name
        assert function["Architectures"] == ["arm64"], name
        assert option(words, "--platform").endswith("_aarch64"), name


@pytest.mark.slow
def test_layer_built_by_the_command_runs_an_example_handler(tmp_path: Path) -> None:
    """Run offline, the command lays out python/ with batchlens (and its dashboards); a fresh interpreter that
    has only that directory, the function's code and the dependencies imports batchlens from the layer, not from
    the clone, and returns the example's response."""
    words = layer_command()
    target = tmp_path / "layer" / "python"
    words[words.index("--target") + 1] = str(target)
    # Offline: no index, batchlens' own dependencies come from this environment (added to sys.path below), and
    # the build backend is the installed hatchling instead of one downloaded into an isolated environment.
    command = [sys.executable, "-m", *words[:2], *words[2:], "--no-index", "--no-deps", "--no-build-isolation"]
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (target / "batchlens" / "__init__.py").is_file()
    assert (target / "batchlens" / "_dashboards" / "batchlens-overview.json").is_file()
    assert not (target / "batchlens" / "__init__.py").is_symlink()

    dependencies = sysconfig.get_paths()["purelib"]  # its .pth files (the editable install) are not read
    args = [str(EXAMPLE), str(target), dependencies, str(EXAMPLE / "event.json")]
    ran = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _INVOKE, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.splitlines()[-1])
    assert Path(result["batchlens"]).is_relative_to(target)
    assert result["response"] == json.loads((EXAMPLE / "response.json").read_text(encoding="utf-8"))
