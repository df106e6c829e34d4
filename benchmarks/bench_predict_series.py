"""Speed of predicting dipoles and polarizabilities along a trajectory (``predict_series``).

Two trajectories of synthetic frames (every atom displaced at random by 0.05 Å rms from the
structure, frame by frame; the cost does not depend on the values):

* (a) one gas-phase H2O (``systems.water_molecule()``), 100,000 frames;
* (b) the periodic 192-atom water box (``systems.water_box(4)``), 10,000 frames.

Model: the benchmark PaiNN 128×3 (``systems.painn_128x3()``), float32, dipole and
polarizability from one forward pass, no autograd. For each trajectory:

* **batched**: ``predict_series`` over all frames with its CPU defaults (batches of up to
  1,500 graph edges, at least one frame: 250 water frames, or one box frame, per forward
  pass; see :mod:`ase_mpnn.spectra.prediction` for why so small on a CPU);
* **one frame at a time**: ``MPNNCalculator.predict([atoms], ["dipole", "polarizability"])``
  per frame on one ``Atoms`` whose positions change (its Verlet neighbor list is reused:
  the best case of a hand-written loop), timed on the first frames (2,000 for (a), 100
  for (b)) and given per second;
* **model share**: the time spent inside the model's forward calls during the batched run
  itself (forward hooks) over that run's whole time (graphs, results, loop): whether the
  batched path is limited by the model (target: ≥ 90 %). (An earlier version divided a
  forward pass timed separately, repeated on one graph, by the batched time per frame;
  two medians taken at different moments, it gave 64-111 % from run to run.)
* **graph ms / model ms per batch**: for one full batch, the pairs and graph assembly
  (numpy, vesin) and the model's forward pass alone, as context;
* **reading**: ``load_series`` of the same frames written as an ASE ``.traj`` and as
  extxyz (10,000 frames of (a), 1,000 of (b)), frames per second, without predictions:
  whether reading a file is slower than predicting.

Run: ``python benchmarks/bench_predict_series.py [--threads N] [--quick]`` (full: (b) is
the long part, ~10,000 forward passes of 192 atoms; ``--quick``: 5,000 and 100 frames, < 1 min).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import ase.io  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.io import Trajectory  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import systems  # noqa: E402

from ase_mpnn import MPNNCalculator  # noqa: E402
from ase_mpnn.calculator import torch_threads  # noqa: E402
from ase_mpnn.spectra import load_series  # noqa: E402
from ase_mpnn.spectra import prediction as ps  # noqa: E402

PROPERTIES = ["dipole", "polarizability"]


def frames_of(atoms: Atoms, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return atoms.positions[None] + 0.05 * rng.normal(size=(n, len(atoms), 3))


def batched_rate(calc: MPNNCalculator, atoms: Atoms, positions: np.ndarray) -> tuple[float, float]:
    """(frames per second, model share) of predict_series over all ``positions`` (after a short warm-up).

    The model share is the time spent inside the model's forward calls during this very
    run (forward hooks on the model) over the run's whole time: it says whether the
    batched path is limited by the model rather than by numpy, vesin or Python.
    """
    cell, pbc = atoms.cell.array, atoms.pbc
    ps.predict_series(positions[:8], atoms.numbers, calc, PROPERTIES, cell=cell, pbc=pbc)
    inside = [0.0, 0.0]  # [start of the current call, total]

    def before(module, args):
        inside[0] = time.perf_counter()

    def after(module, args, output):
        inside[1] += time.perf_counter() - inside[0]

    hooks = [calc.model.register_forward_pre_hook(before), calc.model.register_forward_hook(after)]
    try:
        start = time.perf_counter()
        ps.predict_series(positions, atoms.numbers, calc, PROPERTIES, cell=cell, pbc=pbc)
        elapsed = time.perf_counter() - start
    finally:
        for hook in hooks:
            hook.remove()
    return len(positions) / elapsed, inside[1] / elapsed


def single_rate(calc: MPNNCalculator, atoms: Atoms, positions: np.ndarray) -> float:
    """Frames per second of one calc.predict call per frame."""
    atoms = atoms.copy()
    calc.predict([atoms], PROPERTIES)  # warm-up, builds the neighbor list
    start = time.perf_counter()
    for p in positions:
        atoms.positions[:] = p
        calc.predict([atoms], PROPERTIES)
    return len(positions) / (time.perf_counter() - start)


def batch_split(calc: MPNNCalculator, atoms: Atoms, positions: np.ndarray) -> tuple[int, float, float]:
    """(frames, seconds of pairs + graph, seconds of the forward pass) for one full batch."""
    pbc = np.asarray(atoms.pbc)
    n_atoms = len(atoms)
    pairs = ps._all_pairs if (not pbc.any() and n_atoms <= ps._ALL_PAIRS_ATOMS) else ps._frame_pairs
    edges_per_frame = pairs(positions[:1], atoms.cell.array[None], pbc, calc.model.cutoff)[0].shape[1]
    size = int(max(1, min(ps.DEFAULT_BATCH_FRAMES, ps.DEFAULT_MAX_EDGES_CPU // max(edges_per_frame, 1),
                          len(positions))))
    frames = positions[:size]
    cells = np.broadcast_to(atoms.cell.array, (size, 3, 3))

    def build():
        edge_index, shifts = pairs(frames, cells, pbc, calc.model.cutoff)
        return ps._batch_graph(frames, atoms.numbers, cells, pbc, 0.0, edge_index, shifts).to(
            device=calc.device, dtype=calc.dtype)

    graph = build()

    def forward():
        with torch.no_grad(), torch_threads(calc.threads_for(graph)):
            calc.model(graph, PROPERTIES)

    return size, systems.median_time(build, 3), systems.median_time(forward, 3)


def read_rate(atoms: Atoms, positions: np.ndarray, directory: str) -> tuple[float, float]:
    """Frames per second of load_series on an ASE .traj and on an extxyz file of ``positions``."""
    frames = [Atoms(atoms.numbers, positions=p, cell=atoms.cell, pbc=atoms.pbc) for p in positions]
    traj_path, xyz_path = os.path.join(directory, "frames.traj"), os.path.join(directory, "frames.extxyz")
    with Trajectory(traj_path, "w") as traj:
        for frame in frames:
            traj.write(frame)
    ase.io.write(xyz_path, frames)
    rates = []
    for path in (traj_path, xyz_path):
        start = time.perf_counter()
        load_series(path, dt_fs=0.5)
        rates.append(len(frames) / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="5,000 and 100 frames (numbers not to quote)")
    parser.add_argument("--box-frames", type=int, default=10_000,
                        help="frames of the 192-atom box (default 10,000, ~35 min on 2 cores; the rate "
                             "is per frame, so 1,000 measure the same frames/s in a tenth of the time)")
    args = parser.parse_args()
    systems.set_threads(args.threads)
    print(systems.thread_info())
    calc = MPNNCalculator(systems.painn_128x3(), dtype=torch.float32)
    cases = [
        ("(a) 1 H2O", systems.water_molecule(), 5_000 if args.quick else 100_000, 500 if args.quick else 2_000,
         1_000 if args.quick else 10_000),
        ("(b) 192-atom water box", systems.water_box(4), 100 if args.quick else args.box_frames,
         20 if args.quick else 100,
         100 if args.quick else 1_000),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name, atoms, n_frames, n_single, n_read in cases:
            positions = frames_of(atoms, n_frames)
            batched, share = batched_rate(calc, atoms, positions)
            single = single_rate(calc, atoms, positions[:n_single])
            size, build_s, model_s = batch_split(calc, atoms, positions)
            traj_rate, xyz_rate = read_rate(atoms, positions[:n_read], directory)
            rows.append((name, n_frames, batched, single, size, build_s, model_s, share, traj_rate, xyz_rate))

    print()
    print(f"Dipole + polarizability with PaiNN 128x3, float32, {args.threads} torch threads "
          "(MPNNCalculator num_threads='auto': 1 thread below 500 edges per call)")
    print()
    print("| trajectory | frames | batched frames/s | one frame at a time frames/s | speed-up "
          "| batch (frames) | graph ms / model ms per batch | model share of batched time | read .traj frames/s "
          "| read extxyz frames/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, batched, single, size, build_s, model_s, share, traj_rate, xyz_rate in rows:
        print(f"| {name} | {n:,} | {batched:,.0f} | {single:,.1f} | {batched / single:.0f}x | {size:,} "
              f"| {build_s * 1e3:.1f} / {model_s * 1e3:.1f} | {share:.0%} | {traj_rate:,.0f} | {xyz_rate:,.0f} |")
    print()
    print("Target: model share >= 90 % (the batched path is limited by the model, not by Python or I/O).")


if __name__ == "__main__":
    main()
