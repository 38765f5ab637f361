"""README.md's two newcomer commands stay true: the test command is the one .ci/run runs."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return text, blocks


def test_readme_has_install_and_verify_command():
    _, blocks = _readme_commands()
    assert any("pip install torch==2.13.0" in b and "specoracle verify" in b for b in blocks)


def test_readme_test_command_is_what_ci_runs():
    _, blocks = _readme_commands()
    test_blocks = [b for b in blocks if "pytest" in b and "pip install" in b]
    assert test_blocks, "README shows no install-and-test command"
    pytest_line = next(line for line in test_blocks[0].splitlines() if "pytest" in line)
    pytest_cmd = pytest_line.split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert pytest_cmd in ci, f"README's test command {pytest_cmd!r} is not what .ci/run runs"
    assert "torch==2.13.0" in ci and ".[test]" in ci


def test_ci_fails_when_no_test_ran():
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"$status" -eq 5' in ci


def test_readme_python_example_runs(tmp_path):
    """The README's Python example runs and shows block > token acceptance (10/9 vs 11/9)."""
    import subprocess
    import sys

    text, _ = _readme_commands()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    token = float(re.search(r"token-level E\[tau\]: ([0-9.]+)", out).group(1))
    block = float(re.search(r"block\s+E\[tau\]: ([0-9.]+)", out).group(1))
    # 20000 rounds each: the standard error of E[tau] is < 0.007, so 0.04 is > 5 sigma.
    assert abs(token - 10 / 9) < 0.04 and abs(block - 11 / 9) < 0.04
