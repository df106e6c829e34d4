"""Training throughput: structures per second for PaiNN on the water data (CPU, float32).

One optimizer step = forward (energy, forces, dipole, polarizability), double backward
through the force loss, AdamW update, EMA update: exactly the trainer's step
(ase_mpnn.training.train), on the 900 B3LYP water geometries in data/.

    python benchmarks/bench_training.py [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ase_mpnn  # noqa: E402
from ase_mpnn.training.data import iterate_batches, make_batch, read_dataset  # noqa: E402
from ase_mpnn.training.train import residuals, weighted_loss  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "water_b3lyp_augccpvdz.extxyz"
WEIGHTS = {"energy": 400.0, "forces": 1.0, "dipole": 20.0, "polarizability": 200.0}


def throughput(sizes: dict, batch_size: int, n_batches: int) -> float:
    """Structures per second over ``n_batches`` training steps (after 3 warm-up steps)."""
    torch.manual_seed(0)
    model = ase_mpnn.build_model("painn", ["H", "O"], cutoff=5.0, **sizes).train()
    ema = ase_mpnn.build_model("painn", ["H", "O"], cutoff=5.0, **sizes).requires_grad_(False)
    dataset = read_dataset(DATA)
    dataset.attach_neighbors(model.cutoff)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = list(iterate_batches(dataset, batch_size, np.random.default_rng(0)))[: n_batches + 3]
    done, start = 0, 0.0
    for k, samples in enumerate(batches):
        if k == 3:
            start, done = time.perf_counter(), 0
        batch = make_batch(samples, model.cutoff, torch.float32, "cpu")
        out = model(batch.graph, set(WEIGHTS), create_graph=True)
        loss = weighted_loss({key: d.pow(2).mean() for key, d in residuals(out, batch, WEIGHTS).items()}, WEIGHTS)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        with torch.no_grad():
            for shadow, p in zip(ema.parameters(), model.parameters()):
                shadow.lerp_(p, 0.01)
        done += len(samples)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, float32, data {DATA.name}")
    print()
    print("| model | batch | structures/s | epoch of 720 structures |")
    print("|---|---:|---:|---:|")
    n_batches = 10 if args.quick else 40
    for label, sizes in (("PaiNN 64×3", dict(n_features=64, n_interactions=3)),
                         ("PaiNN 128×3", dict(n_features=128, n_interactions=3))):
        for batch_size in (8, 32):
            rate = throughput(sizes, batch_size, n_batches)
            print(f"| {label} | {batch_size} | {rate:.0f} | {720 / rate:.1f} s |")


if __name__ == "__main__":
    main()
