"""Peak memory and time of PaiNN energy + forces + stress on its three message-step paths.

PaiNN 128×3 (float32, 5 Å) on periodic water boxes; each case runs in its own process
and reports the peak resident memory of two calls (``ru_maxrss``) and the time of the
second. Paths:

* plain: torch autograd over (edges × 3F) tensors (``ASE_MPNN_NATIVE=0``,
  ``low_memory_edges`` huge);
* chunked: ``ChunkedMessages``, the edges in cache-sized chunks, per-edge intermediates
  recomputed in the backward pass (``ASE_MPNN_NATIVE=0``, ``low_memory_edges=0``);
* fused: ``FusedMessages``, the C kernels (the default for a frozen model on a CPU).

    python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def child(n_per_side: int, path: str) -> dict:
    import resource
    import time

    import torch

    sys.path.insert(0, os.path.dirname(__file__))
    import systems

    import ase_mpnn

    torch.manual_seed(0)
    threshold = 10**12 if path == "plain" else 0
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=5.0, low_memory_edges=threshold)
    atoms = systems.water_box(n_per_side)
    atoms.calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32)
    atoms.get_forces()
    atoms.positions += 0.001
    start = time.perf_counter()
    atoms.get_forces()
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"atoms": len(atoms), "seconds": seconds, "peak_gb": peak_gb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,029 atoms only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    sizes = [7] if args.quick else [7, 10]
    print("PaiNN 128x3, float32, 5 Å, energy + forces + stress, 2 threads; peak RSS of the process")
    print()
    print("| atoms | path | call s | peak GB |")
    print("|---:|---|---:|---:|")
    for n in sizes:
        for path in ("plain", "chunked", "fused"):
            env = dict(os.environ, ASE_MPNN_NATIVE="1" if path == "fused" else "0")
            run = subprocess.run([sys.executable, __file__, "--child", str(n), path], capture_output=True, text=True,
                                 env=env)
            if run.returncode != 0:
                print(f"| n={n}³ H2O | {path} | failed | {run.stderr.strip().splitlines()[-1][:60]} |")
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"| {r['atoms']} | {path} | {r['seconds']:.2f} | {r['peak_gb']:.2f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
