"""The package tree: every module imports on its own (no import cycles), old paths still work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EVERY_MODULE_ALONE = """
import importlib, pkgutil, sys
import ase_mpnn
names = [m.name for m in pkgutil.walk_packages(ase_mpnn.__path__, "ase_mpnn.")]
failed = []
for name in sorted(names):
    for key in [k for k in sys.modules if k == "ase_mpnn" or k.startswith("ase_mpnn.")]:
        del sys.modules[key]  # each module first, in a fresh package: a cycle would fail here
    try:
        importlib.import_module(name)
    except Exception as err:
        failed.append(f"{name}: {type(err).__name__}: {err}")
print(len(names), "modules")
assert len(names) > 50, names
assert not failed, failed
"""

OLD_PATHS = """
import importlib, warnings
import ase_mpnn
for old, new in ase_mpnn._MOVED.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module("ase_mpnn." + old)
    assert module is importlib.import_module("ase_mpnn." + new), old
    assert any(issubclass(w.category, DeprecationWarning) and "ase_mpnn." + new in str(w.message)
               for w in caught), (old, [str(w.message) for w in caught])
from ase_mpnn.potential import AtomisticModel
from ase_mpnn.model.potential import AtomisticModel as New
assert AtomisticModel is New
import ase_mpnn.zoo.painn, ase_mpnn.model.zoo.painn
assert ase_mpnn.zoo.painn is ase_mpnn.model.zoo.painn
print("ok")
"""


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_module_imports_on_its_own():
    assert "modules" in run(EVERY_MODULE_ALONE)


def test_old_import_paths_are_the_moved_modules_with_a_warning():
    assert run(OLD_PATHS).strip() == "ok"
