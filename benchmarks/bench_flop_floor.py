"""PaiNN's 192-atom energy + forces call against this machine's FLOP floor, in one run.

The floor is the call's floating-point work divided by the rate this machine reaches on
a large float32 matrix product at the same thread count: the time the call would take
if every operation ran as fast as a 4096 x 4096 ``torch.mm``. No real call reaches it
(gathers, scatters and element-wise work move more bytes per FLOP than a matrix
product), so the ratio measured / floor says how far the call is from the hardware.

* FLOPs of matrix products (forward and backward): ``torch.utils.flop_counter``, counted
  on PaiNN's unchunked torch path (the fused C kernels that run are invisible to the
  counter and recompute the filters in the backward pass: more FLOPs, which would raise
  the floor).
* Other FLOPs: one per output element of every other arithmetic operation (reductions:
  one per input element), counted by a dispatch mode; views and copies count nothing.
* Rate: best of 3 ``torch.mm`` of two 4096 x 4096 float32 matrices (2 · 4096³ FLOPs).
* Calls: the bare model ``model(graph, ("energy", "forces"))`` on a graph built once,
  and the ASE call (energy, forces, stress) along an MD-like sequence (0.005 Å per atom
  per call, Verlet list reused); medians after warm-up, the two interleaved.

Model: untrained PaiNN 128 x 3, 20 radial functions, 5 Å, float32 (benchmarks/systems.py);
system: the 192-atom water box (10,480 pairs), or with ``--system rpmd-water`` the 32
beads of one gas-phase water as a ring-polymer step evaluates them (one batched graph of
32 slightly different copies, 192 pairs; the "call" is ``MPNNCalculator.predict`` of
energy and forces, as ``RingPolymerMD`` makes it every step). The second says how fast
an RPMD step of one molecule could be on this machine: its matrix products alone are a
floor no PaiNN of these sizes, ours or another, can go below.

    python benchmarks/bench_flop_floor.py [--threads 2] [--calls 30] [--system box|rpmd-water]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import systems  # noqa: E402

import ase_mpnn  # noqa: E402
from ase_mpnn.model.nn import native  # noqa: E402

MATMUL_OPS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "_scaled_dot_product_flash_attention",
              "convolution", "_convolution"}
REDUCTIONS = {"sum", "mean", "index_add", "index_add_", "scatter_add", "scatter_add_", "index_reduce",
              "scatter_reduce", "norm", "linalg_vector_norm"}
NO_ARITHMETIC = {"view", "_unsafe_view", "reshape", "expand", "permute", "transpose", "t", "select", "slice",
                 "narrow", "unsqueeze", "squeeze", "as_strided", "split", "split_with_sizes", "clone", "copy_",
                 "_to_copy", "empty", "empty_like", "zeros", "zeros_like", "new_zeros", "new_empty", "fill_",
                 "zero_", "detach", "alias", "index_select", "index", "cat", "stack", "lift_fresh",
                 "lift_fresh_copy", "_local_scalar_dense", "ones_like", "full", "scalar_tensor", "arange",
                 "contiguous", "embedding", "embedding_dense_backward", "new_empty_strided", "empty_strided",
                 "slice_backward", "select_backward", "unbind", "masked_fill", "where", "_index_put_impl_",
                 "index_put_", "index_put", "clamp", "clamp_min", "clamp_max", "gather", "isfinite", "isnan",
                 "eq", "ne", "lt", "le", "gt", "ge", "any", "all", "max", "min", "argmax", "argmin", "item",
                 "_reshape_alias", "unsafe_split", "to", "ones", "set_", "resize_", "logical_not", "bitwise_not"}


N_BEADS = 32  # --system rpmd-water: the beads of bench_anchors.py's RPMD row


class ElementwiseFlops(TorchDispatchMode):
    """Counts ~1 FLOP per output element of arithmetic ops (per input element for
    reductions); matrix products, views, copies and gathers are not counted here."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in MATMUL_OPS or name in NO_ARITHMETIC:
            return out
        if name in REDUCTIONS:
            sizes = [a.numel() for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
            self.flops += max(sizes, default=0)
        else:
            outs = out if isinstance(out, (tuple, list)) else (out,)
            self.flops += sum(o.numel() for o in outs if isinstance(o, torch.Tensor) and o.is_floating_point())
        return out


def matmul_rate(n: int = 4096, repeats: int = 3) -> float:
    """FLOP/s of the best of ``repeats`` float32 n x n matrix products."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--calls", type=int, default=30, help="timed calls of each kind (default 30)")
    parser.add_argument("--system", choices=("box", "rpmd-water"), default="box",
                        help="the 192-atom water box (default) or the 32 beads of one water (an RPMD step)")
    args = parser.parse_args()
    systems.set_threads(args.threads)
    print(systems.thread_info())
    load_before = os.getloadavg()[0]

    rng = np.random.default_rng(1)
    if args.system == "box":
        structures = [systems.water_box()]
        description = "192-atom water box"
    else:
        water = systems.water_molecule()
        structures = [water.copy() for _ in range(N_BEADS)]
        for bead in structures:  # beads spread like a ring polymer's at 300 K (~0.05 Å)
            bead.positions += rng.normal(scale=0.05, size=bead.positions.shape)
        description = f"one water, {N_BEADS} beads in one graph"
    calc = ase_mpnn.MPNNCalculator(systems.painn_128x3(), dtype=torch.float32, num_threads=None)
    model = calc.model  # the calculator's frozen float32 copy: no weight gradients
    graph = ase_mpnn.build_graph(structures, model.cutoff, dtype=torch.float32)

    def bare():
        return model(graph, ("energy", "forces"))

    # FLOPs of the algorithm, counted on the unchunked torch path: the fused C kernels
    # (what runs) are invisible to these counters and, like the chunked path, recompute
    # the filters in the backward pass; counting that would raise the floor.
    counter = FlopCounterMode(display=False)
    elementwise = ElementwiseFlops()
    model.representation.low_memory_edges = 10**12
    fused_usable, native.usable = native.usable, lambda *args: False
    with counter, elementwise:
        bare()
    model.representation.low_memory_edges = None
    native.usable = fused_usable
    matmul_flops = counter.get_total_flops()
    other_flops = elementwise.flops

    moving = [atoms.copy() for atoms in structures]
    moving[0].calc = calc
    times = {"bare": [], "call": []}
    for k in range(args.calls + 3):
        for kind in (("bare", "call") if k % 2 else ("call", "bare")):
            if kind == "call":
                for atoms in moving:
                    atoms.positions += systems.random_steps(rng, len(atoms), 0.005)
            start = time.perf_counter()
            if kind == "bare":
                bare()
            elif args.system == "box":
                moving[0].get_potential_energy()
                moving[0].get_forces()
            else:
                calc.predict(moving, ("energy", "forces"))
            if k >= 3:
                times[kind].append(time.perf_counter() - start)
    rate = matmul_rate()
    load_after = os.getloadavg()[0]

    total = matmul_flops + other_flops
    floor = total / rate
    print(f"PaiNN 128x3, 20 RBF, 5 Å, float32, {args.threads} thread(s); {description}, "
          f"{graph.edge_index.shape[1]} pairs; load average {load_before:.1f} before, {load_after:.1f} after")
    print()
    print("| quantity | value |")
    print("|---|---:|")
    print(f"| matrix-product FLOPs (forward + backward) | {matmul_flops / 1e9:.3f} G |")
    print(f"| other FLOPs (≈ 1 per element) | {other_flops / 1e9:.3f} G |")
    print(f"| this machine's float32 matrix-product rate (4096², {args.threads} threads) | {rate / 1e9:.0f} GFLOP/s |")
    print(f"| FLOP floor = FLOPs / rate | {floor * 1e3:.1f} ms |")
    call = "ASE call E+F+stress" if args.system == "box" else "calculator predict E+F"
    for kind, label in (("bare", "model E+F"), ("call", call)):
        median = statistics.median(times[kind])
        print(f"| {label}: median of {len(times[kind])} | {median * 1e3:.1f} ms = {median / floor:.1f} × floor |")


if __name__ == "__main__":
    main()
