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

import numpy as np
import torch  # also loads torch's libgomp before ours
from torch._C._functorch import is_functorch_wrapped_tensor

_is_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling  # torch < 2.3

#: Below this much work (inner-loop rows of a call: edges × features for PaiNN, edges or
#: atoms × couplings for MACE) a kernel call runs on one thread.
MIN_PARALLEL_WORK = 2**16

#: The C sources, compiled together into one library.
SOURCES = tuple(Path(__file__).with_name(name) for name in ("edge_groups.c", "painn_messages.c",
                                                            "equivariant_conv.c", "symmetric_contraction.c"))
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c11")
SWITCH = "ASE_MPNN_NATIVE"

_P = ctypes.c_void_p
_I = ctypes.c_int64
_INT = ctypes.c_int
_D = ctypes.c_double
#: Argument types of each exported function; those ending in "_" exist as ``_f32`` and ``_f64``.
_SIGNATURES = {
    "group_edges": [_I, _I, _P, _P, _P],
    "painn_forward_": [_I, _I, _I, _INT, _D, _D] + [_P] * 11 + [_INT],
    "painn_backward_": [_I, _I, _I, _INT, _D, _D] + [_P] * 15 + [_INT],
    "conv_forward_": [_P, _I] + [_P] * 8 + [_INT],
    "conv_backward_": [_P, _I] + [_P] * 11 + [_INT],
    "contraction_forward_": [_P, _I] + [_P] * 5 + [_INT],
    "contraction_backward_": [_P, _I] + [_P] * 6 + [_INT],
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
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None if they are switched off or cannot be built here (a
    warning then says why, once)."""
    if not enabled():
        return None
    compiler = _compiler()
    if compiler is None:
        warnings.warn("no C compiler found (cc, gcc or $CC): ase_mpnn's C kernels are off and the torch code "
                      "paths run instead (same results, slower on a CPU)", stacklevel=3)
        return None
    parts = [path.read_bytes() for path in SOURCES]
    parts += [" ".join(FLAGS).encode(), compiler.encode(), platform.machine().encode(), _cpu_flags().encode()]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    target = cache_dir() / f"kernels-{key}.so"
    if not target.exists():
        try:
            _build(compiler, target)
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            warnings.warn("building ase_mpnn's C kernels failed, so the torch code paths run instead (same "
                          f"results, slower on a CPU): {detail.strip()[-2000:]}", stacklevel=3)
            return None
    lib = ctypes.CDLL(str(target))
    for function, argtypes in _SIGNATURES.items():
        for name in (function + "f32", function + "f64") if function.endswith("_") else (function,):
            symbol = getattr(lib, name)
            symbol.argtypes = argtypes
            symbol.restype = ctypes.c_int
    return lib


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the kernels can run on these tensors: on a CPU, float32 or float64, none
    needing gradients with respect to itself (weights of a frozen model; training takes
    the torch paths), not under ``torch.compile`` tracing or ``vmap``, library built."""
    first = tensors[0]
    return (
        first.device.type == "cpu"
        and first.dtype in (torch.float32, torch.float64)
        and not any(t.requires_grad for t in tensors[1:])
        and not _is_compiling()
        and not any(is_functorch_wrapped_tensor(t) for t in tensors)
        and library() is not None
    )


def suffix(dtype: torch.dtype) -> str:
    """The name suffix of a kernel's copy for ``dtype``."""
    return {torch.float32: "_f32", torch.float64: "_f64"}[dtype]


def pointer(t: torch.Tensor | np.ndarray | None) -> int | None:
    """Address of the first element (tensors and arrays must be contiguous), None for None."""
    if t is None:
        return None
    return t.ctypes.data if isinstance(t, np.ndarray) else t.data_ptr()


def threads_for(work: int) -> int:
    """OpenMP threads for a kernel call of ``work`` inner-loop rows: below
    :data:`MIN_PARALLEL_WORK` a second thread costs more than it saves."""
    return torch.get_num_threads() if work >= MIN_PARALLEL_WORK else 1


def _build(compiler: str, target: Path) -> None:
    """Compile into a temporary file beside ``target``, then rename: concurrent processes
    never load a half-written library."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        subprocess.run([compiler, *FLAGS, "-o", partial, *map(str, SOURCES)], check=True, capture_output=True,
                       text=True)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
