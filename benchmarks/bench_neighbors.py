"""Benchmark ase_mpnn.model.neighbors against ase.neighborlist.neighbor_list.

Run with ``python benchmarks/bench_neighbors.py`` (add ``--quick`` for a short
run without the ~20,000-atom systems). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from ase_mpnn.model.neighbors import VerletNeighborList, neighbor_list

CUTOFF = 5.0
SKIN = 0.5
ASE_LIMIT_S = 30.0


def water_box(n_per_side: int, seed: int = 0) -> Atoms:
    """Randomly rotated water molecules on a cubic grid at about 1 g/cm^3."""
    rng = np.random.default_rng(seed)
    # 18.015 g/mol at 1 g/cm^3 is 29.9 A^3 per molecule.
    spacing = (18.015 / 6.02214076e23 * 1e24) ** (1.0 / 3.0)
    half_angle = np.radians(104.52) / 2.0
    r_oh = 0.9572
    template = np.array([
        [0.0, 0.0, 0.0],
        [r_oh * np.sin(half_angle), r_oh * np.cos(half_angle), 0.0],
        [-r_oh * np.sin(half_angle), r_oh * np.cos(half_angle), 0.0],
    ])
    grid = np.stack(np.meshgrid(*[np.arange(n_per_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    # QR of a Gaussian matrix gives uniformly distributed orthogonal matrices.
    q, r = np.linalg.qr(rng.normal(size=(len(grid), 3, 3)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    molecules = np.einsum("mij,aj->mai", q, template) + (grid[:, None, :] + 0.5) * spacing
    return Atoms(
        "OH2" * len(grid),
        positions=molecules.reshape(-1, 3),
        cell=np.eye(3) * spacing * n_per_side,
        pbc=True,
    )


def copper(repeat: tuple[int, int, int]) -> Atoms:
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def md_like(atoms: Atoms, n_steps: int, seed: int = 1) -> tuple[float, int]:
    """Mean seconds per step and rebuilds for VerletNeighborList along a trajectory.

    Atoms fly freely with Maxwell-Boltzmann velocities at 300 K, 0.5 fs per step:
    hydrogens cross skin/2 = 0.25 A in about 10 steps. Real atoms turn around, so MD
    rebuilds less often than this; the first (unavoidable) build is included.
    """
    rng = np.random.default_rng(seed)
    positions = atoms.get_positions()
    sigma = np.sqrt(units.kB * 300.0 / atoms.get_masses())[:, None]  # ASE velocity units
    step = rng.normal(size=positions.shape) * sigma * (0.5 * units.fs)  # A per step
    cell, pbc, numbers = np.asarray(atoms.cell), atoms.pbc, atoms.numbers
    verlet = VerletNeighborList(CUTOFF, skin=SKIN)
    total = 0.0
    for _ in range(n_steps):
        positions = positions + step
        start = time.perf_counter()
        verlet.update(positions, cell, pbc, numbers)
        total += time.perf_counter() - start
    return total / n_steps, verlet.n_builds


def single_water_overhead_us() -> float:
    atoms = water_box(1)
    atoms.pbc = False
    positions, cell, pbc = atoms.get_positions(), np.asarray(atoms.cell), atoms.pbc
    n = 20000
    for _ in range(200):
        neighbor_list(positions, cell, pbc, CUTOFF)
    start = time.perf_counter()
    for _ in range(n):
        neighbor_list(positions, cell, pbc, CUTOFF)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the ~20k-atom systems")
    args = parser.parse_args()

    systems = [
        ("water", water_box(4)),
        ("water", water_box(9)),
        ("fcc Cu", copper((4, 4, 3))),
        ("fcc Cu", copper((8, 8, 8))),
    ]
    if not args.quick:
        systems += [("water", water_box(19)), ("fcc Cu", copper((17, 17, 17)))]
    systems.sort(key=lambda s: (s[0] != "water", len(s[1])))
    n_steps = 20 if args.quick else 50

    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
          f"os.cpu_count()={os.cpu_count()}, cutoff={CUTOFF} A, skin={SKIN} A")
    overhead = single_water_overhead_us()
    print(f"single H2O (3 atoms, non-periodic) neighbor_list: {overhead:.1f} us/call")
    print()
    print("| system | atoms | pairs | ours (ms) | ase (ms) | speed-up "
          f"| ours + skin reuse, {n_steps}-step 300 K free flight, 0.5 fs (ms/step, rebuilds) |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    ase_seconds_per_atom: dict[str, float] = {}
    for name, atoms in systems:
        positions, cell, pbc = atoms.get_positions(), np.asarray(atoms.cell), atoms.pbc
        n_atoms = len(atoms)
        repeats = 3 if n_atoms > 10000 else (5 if args.quick else 11)

        i, _, _ = neighbor_list(positions, cell, pbc, CUTOFF)  # warm-up
        ours = median_time(lambda: neighbor_list(positions, cell, pbc, CUTOFF), repeats)

        # ASE cost grows about linearly with size; skip it when the estimate
        # from the smaller system of the same kind exceeds the time limit.
        estimate = ase_seconds_per_atom.get(name, 0.0) * n_atoms
        if estimate > ASE_LIMIT_S:
            ase_cell = speedup_cell = "—"
        else:
            ase = median_time(lambda: ase_neighbor_list("ij", atoms, CUTOFF), 1)
            if ase < 1.0:  # cheap enough for a median like ours
                ase = median_time(lambda: ase_neighbor_list("ij", atoms, CUTOFF), repeats)
            ase_seconds_per_atom[name] = ase / n_atoms
            ase_cell, speedup_cell = f"{ase * 1e3:.1f}", f"{ase / ours:.1f}x"

        per_step, builds = md_like(atoms, n_steps)
        print(f"| {name} | {n_atoms} | {len(i)} | {ours * 1e3:.2f} | {ase_cell} | {speedup_cell} "
              f"| {per_step * 1e3:.2f} ({builds} builds) |")


if __name__ == "__main__":
    main()
