"""Classical Langevin MD of one water molecule with the shipped PaiNN model, recorded to HDF5.

One gas-phase H2O with ``models/painn_water.pt`` (energy, forces, dipole, polarizability)
in ASE's Langevin integrator (via :func:`ase_mpnn.md.langevin`) at 300 K with a 0.5 fs
time step and friction 0.01/fs:

1. equilibration (``--equil`` steps, not recorded);
2. production (``--steps`` steps) with an :class:`ase_mpnn.md.MDRecorder` that writes
   step, time, positions, velocities, potential/kinetic energy, temperature, dipole and
   polarizability every ``--interval`` steps to ``--output`` (HDF5, SWMR). The dipole and
   polarizability come from the same forward pass as the forces (no extra model call).

Run from the repository root:

    python md_examples/water_langevin.py                  # 4000 steps (2 ps), ~10-20 s on 2 cores
    python md_examples/water_langevin.py --steps 20000 --output long.h5

Read the file back with ``ase_mpnn.md.read_record("water_langevin.h5")`` (dict of arrays,
first axis = frame; units in ``ase_mpnn.md.read_units``). The polarizability is in
e²Å²/eV (ASE's convention: multiply by 14.3996 for Å³).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.build import molecule

try:  # ASE >= 3.27
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

from ase_mpnn import MPNNCalculator
from ase_mpnn.md import MDRecorder, langevin, read_record, run_md

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "painn_water.pt"
POLARIZABILITY_TO_A3 = 14.3996  # e²Å²/eV → Å³


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000, help="production steps (default 4000 = 2 ps)")
    parser.add_argument("--equil", type=int, default=1000, help="equilibration steps (default 1000 = 0.5 ps)")
    parser.add_argument("--interval", type=int, default=1, help="record every N steps (default 1)")
    parser.add_argument("--output", default="water_langevin.h5", help="HDF5 output file")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    parser.add_argument("--friction", type=float, default=0.01, help="1/fs (default 0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = parser.parse_args()

    atoms = molecule("H2O")
    atoms.calc = MPNNCalculator(MODEL)
    thermalize_momenta(atoms, temperature_K=args.temperature, rng=np.random.default_rng(args.seed))
    rng = np.random.default_rng(args.seed + 1)

    # 1. Equilibration: no recorder.
    print(f"equilibrating: {args.equil} steps of {args.timestep} fs at {args.temperature:g} K")
    equil = langevin(atoms, args.temperature, args.timestep, args.friction, seed=rng)
    run_md(equil, args.equil, progress=not args.no_progress)

    # 2. Production: a fresh dynamics (step counter from 0, same random stream), recorded.
    print(f"production: {args.steps} steps, recording every {args.interval} step(s) to {args.output}")
    dyn = langevin(atoms, args.temperature, args.timestep, args.friction, seed=rng)
    with MDRecorder(atoms, args.output, interval=args.interval,
                    properties=("dipole", "polarizability"), dynamics=dyn) as recorder:
        run_md(dyn, args.steps, recorder=recorder, progress=not args.no_progress)
        extra = recorder.extra_evaluations

    data = read_record(args.output)
    n_frames = len(data["step"])
    mu = np.linalg.norm(data["dipole"], axis=1)
    alpha_iso = np.trace(data["polarizability"], axis1=1, axis2=2) / 3.0 * POLARIZABILITY_TO_A3
    e_tot = data["potential_energy"] + data["kinetic_energy"]
    print()
    print(f"frames written      : {n_frames} (steps {data['step'][0]}..{data['step'][-1]}, "
          f"{data['time'][-1] - data['time'][0]:.1f} fs) -> {args.output}")
    print(f"mean T              : {data['temperature'].mean():.1f} K (target {args.temperature:g} K; "
          f"3 atoms fluctuate strongly: std {data['temperature'].std():.0f} K)")
    print(f"mean |dipole|       : {mu.mean():.4f} e·Å ({mu.mean() / 0.2081943:.3f} D), std {mu.std():.4f}")
    print(f"mean isotropic alpha: {alpha_iso.mean():.4f} Å³")
    print(f"mean E_pot / E_tot  : {data['potential_energy'].mean():.4f} / {e_tot.mean():.4f} eV")
    print(f"extra model calls for the recorder: {extra}")


if __name__ == "__main__":
    main()
