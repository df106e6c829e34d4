"""Shared systems, model and timing helpers for the ase_mpnn benchmarks.

The benchmark scripts put this directory on ``sys.path`` and ``import systems``.
Import it (or set ``OMP_WAIT_POLICY`` yourself) before torch: OpenMP's default
spin-wait makes runs several times slower on a machine that is busy with other jobs.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import statistics  # noqa: E402
import time  # noqa: E402
from typing import Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase import Atoms  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

import ase_mpnn  # noqa: E402

# Water geometry (TIP3P-like): O-H bond length in Å, H-O-H angle in degrees.
R_OH = 0.9572
ANGLE_HOH = 104.52
# Grid spacing of one molecule per cube at ~1 g/cm³: 12.42 Å / 4 (29.9 Å³ per H2O).
SPACING = 3.105
CUTOFF = 5.0


def water_molecule() -> Atoms:
    """One gas-phase H2O (no cell, not periodic), centre of mass at the origin."""
    half = np.radians(ANGLE_HOH) / 2.0
    positions = np.array(
        [
            [0.0, 0.0, 0.0],
            [R_OH * np.sin(half), R_OH * np.cos(half), 0.0],
            [-R_OH * np.sin(half), R_OH * np.cos(half), 0.0],
        ]
    )
    atoms = Atoms("OH2", positions=positions)
    atoms.positions -= atoms.get_center_of_mass()
    return atoms


def water_box(n_per_side: int = 4, box: float | None = None, seed: int = 0) -> Atoms:
    """``n_per_side``³ randomly rotated water molecules on a grid in a periodic cubic box.

    ``box`` defaults to ``n_per_side * 3.105`` Å, i.e. ~1 g/cm³ for any size; the
    default (4, 12.42 Å) is 64 H2O, 192 atoms, about 10.6k pairs within 5 Å.
    Rotations about each molecule's centre of mass come from a fixed seed.
    """
    if box is None:
        box = n_per_side * SPACING
    n_molecules = n_per_side**3
    template = water_molecule().positions  # (3, 3), centred
    rotations = Rotation.random(n_molecules, rng=np.random.default_rng(seed))
    spacing = box / n_per_side
    grid = np.stack(np.meshgrid(*[np.arange(n_per_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    centres = (grid + 0.5) * spacing
    rotated = np.einsum("mij,aj->mai", rotations.as_matrix(), template)
    positions = (rotated + centres[:, None, :]).reshape(-1, 3)
    return Atoms("OH2" * n_molecules, positions=positions, cell=np.eye(3) * box, pbc=True)


def water_box_near(n_atoms: int, seed: int = 0) -> Atoms:
    """The water box at ~1 g/cm³ whose atom count is closest to ``n_atoms`` (log scale)."""
    n = max(1, round((n_atoms / 3.0) ** (1.0 / 3.0)))
    return water_box(n, seed=seed)


def density_g_cm3(atoms: Atoms) -> float:
    return float(atoms.get_masses().sum() / 6.02214076e23 / (atoms.get_volume() * 1e-24))


def count_pairs(atoms: Atoms, cutoff: float = CUTOFF) -> int:
    """Directed pairs (i -> j and j -> i both counted) within ``cutoff``."""
    i, _, _ = ase_mpnn.neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    return int(len(i))


def painn_128x3(
    species: Sequence[str] = ("H", "O"),
    n_features: int = 128,
    n_interactions: int = 3,
    n_rbf: int = 20,
    cutoff: float = CUTOFF,
    seed: int = 0,
):
    """The benchmark model: untrained PaiNN, 128 features x 3 interactions, 20 RBF, 5 Å."""
    torch.manual_seed(seed)
    return ase_mpnn.build_model(
        "painn",
        species=list(species),
        cutoff=cutoff,
        n_features=n_features,
        n_interactions=n_interactions,
        n_rbf=n_rbf,
    )


# Timing helpers ------------------------------------------------------------------


def set_threads(n: int) -> None:
    torch.set_num_threads(int(n))


def thread_info() -> str:
    keys = ["OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS"]
    # glibc malloc tuning changes large-system timings a lot: record it when set.
    keys += [k for k in sorted(os.environ) if k.startswith("MALLOC_")]
    env = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in keys)
    return (
        f"torch {torch.__version__}: get_num_threads()={torch.get_num_threads()}, "
        f"get_num_interop_threads()={torch.get_num_interop_threads()}; {env}; "
        f"os.cpu_count()={os.cpu_count()}"
    )


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_steps(rng: np.random.Generator, n_atoms: int, length: float) -> np.ndarray:
    """One displacement of exactly ``length`` Å in a random direction for every atom."""
    step = rng.normal(size=(n_atoms, 3))
    return length * step / np.linalg.norm(step, axis=1, keepdims=True)


def md_like_call_times(
    atoms: Atoms, calc, n_calls: int, warmup: int = 2, step: float = 0.005, seed: int = 1
) -> list[float]:
    """Seconds per energy + forces call while every atom moves ``step`` Å per call.

    The displacement is applied outside the timed region. With the default skin
    (0.5 Å) the Verlet list is built during warm-up and reused afterwards.
    """
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.calc = calc
    times = []
    for k in range(warmup + n_calls):
        atoms.positions += random_steps(rng, len(atoms), step)
        start = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        elapsed = time.perf_counter() - start
        if k >= warmup:
            times.append(elapsed)
    return times


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


if __name__ == "__main__":
    for n in (1, 3, 4, 5, 7, 8, 10, 15):
        a = water_box(n)
        print(f"n_per_side={n:2d}: {len(a):6d} atoms, box {a.cell[0, 0]:.3f} Å, "
              f"{density_g_cm3(a):.3f} g/cm³, {count_pairs(a)} pairs within {CUTOFF} Å")
