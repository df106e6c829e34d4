"""Every Python block of README.md runs as written.

The blocks run in order, each in a fresh interpreter, in one scratch directory that has
the repository's ``models/`` and ``data/``: a block may read files an earlier block
wrote (the MD block's record feeds the spectra block), never variables. Long runs are
shortened by dividing the step counts in the :data:`SHORTER` patterns by 100, unless
``ASE_MPNN_README_FULL=1`` (then the blocks run exactly as printed, for minutes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Step counts (and correlation lengths that must fit into the shortened runs).
SHORTER = [
    (re.compile(r"\bsteps=(\d+)"), "steps={}"),
    (re.compile(r"\.run\((\d+)\)"), ".run({})"),
    (re.compile(r"\bmax_lag_fs=(\d+)"), "max_lag_fs={}"),
]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block."""
    blocks, lines = [], text.splitlines()
    start = None
    for number, line in enumerate(lines, 1):
        if start is None and line.strip() == "```python":
            start = number
        elif start is not None and line.strip() == "```":
            blocks.append((start, "\n".join(lines[start:number - 1]) + "\n"))
            start = None
    return blocks


def shortened(code: str) -> str:
    if os.environ.get("ASE_MPNN_README_FULL") == "1":
        return code
    for pattern, template in SHORTER:
        code = pattern.sub(lambda m: template.format(max(1, int(m.group(1)) // 100)), code)
    return code


BLOCKS = python_blocks((ROOT / "README.md").read_text())


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    where = tmp_path_factory.mktemp("readme")
    for name in ("models", "data"):
        (where / name).symlink_to(ROOT / name)
    return where


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs(scratch, line, code):
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
           "OMP_WAIT_POLICY": "PASSIVE", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", shortened(code)], cwd=scratch, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"README.md block at line {line} failed:\n{done.stderr[-3000:]}"
