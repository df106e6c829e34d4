"""Every architecture with its default hyperparameters: size, speed and memory.

For each model (untrained, float32, 5 Å cutoff, H and O): parameter count, and the
energy + forces forward + backward time on a 192-atom and a 1,029-atom periodic water
box, with the peak memory that pass adds (RSS above the level after building model and
graph). Each model runs in its own process so peak memories do not mix.

    python benchmarks/bench_zoo.py [--threads 2] [--quick] [--only ARCH ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def measure(architecture: str, n_per_side: int, repeats: int) -> dict:
    """Runs inside a child process: time and peak-memory increase of one model."""
    import resource

    import torch

    sys.path.insert(0, os.path.dirname(__file__))
    import systems

    import ase_mpnn

    torch.manual_seed(0)
    model = ase_mpnn.build_model(architecture, ["H", "O"], cutoff=5.0).float().eval().requires_grad_(False)
    atoms = systems.water_box(n_per_side)
    graph = ase_mpnn.build_graph([atoms], model.cutoff, dtype=torch.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # ru_maxrss is a lifetime peak
    model(graph, ("energy", "forces"))  # warm-up
    seconds = systems.median_time(lambda: model(graph, ("energy", "forces")), repeats, warmup=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "atoms": len(atoms),
        "pairs": int(graph.edge_index.shape[1]),
        "ms": seconds * 1e3,
        "peak_mb": max(peak - before, 0) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="192-atom box only, fewer repeats")
    parser.add_argument("--only", nargs="+", metavar="ARCH", help="these architectures only (e.g. --only mace painn)")
    parser.add_argument("--child", nargs=3, metavar=("ARCH", "N", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.child[0], int(args.child[1]), int(args.child[2]))))
        return

    from ase_mpnn.model.zoo import REPRESENTATIONS

    sizes = [(4, 5 if args.quick else 10)] + ([] if args.quick else [(7, 3)])
    print(f"float32, {args.threads} thread(s), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
          "default hyperparameters, 5 Å cutoff; energy + forces forward + backward, median")
    print()
    header = "| model | parameters |" + "".join(
        f" {label} ms | {label} peak MB |" for label in (["192 atoms"] + ([] if args.quick else ["1,029 atoms"]))
    )
    print(header)
    print("|---|---:|" + "---:|---:|" * len(sizes))
    unknown = set(args.only or ()) - set(REPRESENTATIONS)
    if unknown:
        parser.error(f"unknown architectures {sorted(unknown)}; choose from {sorted(REPRESENTATIONS)}")
    for architecture in sorted(args.only or REPRESENTATIONS):
        cells, parameters = [], None
        for n, repeats in sizes:
            cmd = [sys.executable, __file__, "--threads", str(args.threads), "--child", architecture, str(n), str(repeats)]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                cells += ["failed", run.stderr.strip().splitlines()[-1][:40] if run.stderr else ""]
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            parameters = r["parameters"]
            cells += [f"{r['ms']:.0f}", f"{r['peak_mb']:.0f}"]
        count = f"{parameters:,}" if parameters is not None else "?"
        print(f"| {architecture} | {count} | " + " | ".join(cells) + " |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
