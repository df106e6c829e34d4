#!/usr/bin/env bash
# Make the two "anchor" virtual environments that bench_anchors.py times side by side
# with ase_mpnn:
#
#   benchmarks/anchors/.venvs/schnetpack  schnetpack (current release) + torch 2.13.0 + ase + vesin
#   benchmarks/anchors/.venvs/mace        mace-torch (current release) + torch 2.13.0 + ase + vesin
#
# Everything comes from PyPI (torch 2.13.0 may come from a local wheel when pip is set up
# with one). Idempotent: an environment that passes its check (it imports what the
# workers use) is left as it is; one that is missing or fails it is (re)made. Prints the versions actually installed.
#
# schnetpack: its current release (2.2.0) declares Requires-Python >= 3.12, while the
# torch 2.13.0 CPU wheel here (and ase_mpnn's interpreter) is CPython 3.11; the release
# before it (2.1.1) pins sympy <= 1.12, which torch 2.13 (sympy >= 1.13.3) cannot share an
# environment with. So the schnetpack environment is made with the same Python 3.11 and
# the same torch build as ase_mpnn's, and schnetpack is installed with
# --ignore-requires-python (its code compiles and runs on 3.11; the check below builds
# its modules, and the workers check every result for finite numbers). Set
# SCHNETPACK_PYTHON to a Python >= 3.12 to build that environment with its declared
# Python instead (torch 2.13.0 then comes from PyPI as its CUDA build, not the same
# binary as ase_mpnn's). Older schnetpack releases (2.0.x) also fail to import under
# torch 2.13 (T_co no longer in torch.utils.data.dataloader); 2.2.0 does not.
#
# mace-torch needs the run-time shim shim_e3nn_torch_load.py (see that file): its pinned
# e3nn 0.4.4 cannot load its own constants under torch >= 2.6's torch.load defaults.
#
# Usage: bash benchmarks/anchors/setup_anchors.sh [PYTHON]   (default: python3)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS="$HERE/.venvs"
PYTHON="${1:-${PYTHON:-python3}}"
SCHNETPACK_PYTHON="${SCHNETPACK_PYTHON:-$PYTHON}"
TORCH_VERSION="2.13.0"

mkdir -p "$VENVS"

# pip's output without the notes about extra index folders that do not exist here
quiet_pip() {
    "$@" 2>&1 | { grep -v -E "^WARNING: Location .* is ignored" || true; }
    return "${PIPESTATUS[0]}"
}

# What each environment must import (run from this folder, so the shims are found).
CHECK_schnetpack="import torch, ase, vesin, schnetpack, schnetpack.transform; schnetpack.transform.VesinNeighborList; schnetpack.interfaces.SpkCalculator"
CHECK_mace="import shim_e3nn_torch_load, torch, ase, vesin, mace.modules, mace.data; from mace.calculators import MACECalculator"

works() {  # venv python, check code
    (cd "$HERE" && "$1" -c "$2" >/dev/null 2>&1)
}

# name, python, check variable, pip arguments for the anchor package ...
make_venv() {
    local name="$1" python="$2" check="$3"
    shift 3
    local venv="$VENVS/$name"
    if [ -x "$venv/bin/python" ] && works "$venv/bin/python" "$check"; then
        echo "== $name: $venv exists and works: skipped"
        return
    fi
    echo "== $name: creating $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    quiet_pip "$venv/bin/python" -m pip install --quiet --upgrade pip
    # torch first and pinned again with the package, so no dependency can move it.
    quiet_pip "$venv/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" ase vesin
    quiet_pip "$venv/bin/python" -m pip install --quiet "torch==$TORCH_VERSION" "$@"
    quiet_pip "$venv/bin/python" -m pip check || echo "(pip check reported the conflicts above)"
    if ! (cd "$HERE" && "$venv/bin/python" -c "$check"); then
        echo "== $name: the new environment fails its check (above)" >&2
        exit 1
    fi
}

SPK_FLAGS=()
if ! "$SCHNETPACK_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    SPK_FLAGS=(--ignore-requires-python)
fi
make_venv schnetpack "$SCHNETPACK_PYTHON" "$CHECK_schnetpack" "${SPK_FLAGS[@]}" schnetpack
make_venv mace "$PYTHON" "$CHECK_mace" mace-torch

echo
echo "== installed versions"
for name in schnetpack mace; do
    "$VENVS/$name/bin/python" - "$name" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError

name = sys.argv[1]
anchor = {"schnetpack": "schnetpack", "mace": "mace-torch"}[name]
packages = [anchor, "torch", "ase", "vesin", "numpy", "e3nn", "matscipy"]
found = []
for p in packages:
    try:
        found.append(f"{p} {version(p)}")
    except PackageNotFoundError:
        pass
print(f"{name:10s} python {sys.version.split()[0]}: " + ", ".join(found))
PY
done
