"""C kernels shipped as source next to this file, compiled at first use and cached.

Only standard C and OpenMP, no Python or torch headers: one compiler call of about a
second (``cc -O3 -march=native -fopenmp``), no build step at install time, and any
machine without a compiler keeps working on the torch code paths, which compute the
same numbers. The library goes to ``$ASE_MPNN_CACHE`` (default
``$XDG_CACHE_HOME/ase_mpnn`` or ``~/.cache/ase_mpnn``) under a name that hashes the
source, the flags, the compiler and the CPU's instruction-set flags, so a shared home
directory on a cluster with mixed CPUs keeps one build per CPU kind. Set
``ASE_MPNN_NATIVE=0`` to switch the kernels off.

The library links OpenMP's ``libgomp.so.1``; torch (imported first) has already loaded
its own copy under that name, so both share one OpenMP runtime and thread pool.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch  # noqa: F401  (loads torch's libgomp before ours)

SOURCES = {"painn_messages": Path(__file__).with_name("painn_messages.c")}
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c11")
SWITCH = "ASE_MPNN_NATIVE"

_P = ctypes.c_void_p
_I = ctypes.c_int64
_SIGNATURES = {
    "painn_messages": {
        "painn_forward": [_I, _I, _I, ctypes.c_int] + [_P] * 10 + [_P, _P, ctypes.c_int],
        "painn_backward": [_I, _I, _I, ctypes.c_int] + [_P] * 10 + [_P, _P] + [_P] * 5 + [ctypes.c_int],
        "group_edges": [_I, _I, _P, _P, _P],
    }
}


def enabled() -> bool:
    """False when ``ASE_MPNN_NATIVE=0`` switches the C kernels off."""
    return os.environ.get(SWITCH, "1").strip() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    if os.environ.get("ASE_MPNN_CACHE"):
        return Path(os.environ["ASE_MPNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ase_mpnn"


def _cpu_flags() -> str:
    """The instruction-set flags of this CPU (what ``-march=native`` compiles for)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor()


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@functools.cache
def library(name: str) -> ctypes.CDLL | None:
    """The compiled library ``name`` (a key of :data:`SOURCES`), or None if the kernels are
    switched off or cannot be built here (a warning then says why, once)."""
    if not enabled():
        return None
    compiler = _compiler()
    if compiler is None:
        warnings.warn(f"no C compiler found (cc, gcc or $CC): ase_mpnn's {name} kernels are off and the "
                      "torch code path runs instead (same results, slower on a CPU)", stacklevel=3)
        return None
    source = SOURCES[name].read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), compiler.encode(),
                                     platform.machine().encode(), _cpu_flags().encode()])).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    if not target.exists():
        try:
            _build(compiler, SOURCES[name], target)
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            warnings.warn(f"building ase_mpnn's {name} kernels failed, so the torch code path runs instead "
                          f"(same results, slower on a CPU): {detail.strip()[-2000:]}", stacklevel=3)
            return None
    lib = ctypes.CDLL(str(target))
    for function, argtypes in _SIGNATURES[name].items():
        for suffix in ("_f32", "_f64") if function != "group_edges" else ("",):
            symbol = getattr(lib, function + suffix)
            symbol.argtypes = argtypes
            symbol.restype = ctypes.c_int
    return lib


def _build(compiler: str, source: Path, target: Path) -> None:
    """Compile into a temporary file beside ``target``, then rename: concurrent processes
    never load a half-written library."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        subprocess.run([compiler, *FLAGS, "-o", partial, str(source)], check=True, capture_output=True, text=True)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
