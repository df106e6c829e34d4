"""Ring-polymer MD (PILE-L) of one water molecule with the shipped PaiNN model.

One gas-phase H2O with ``models/painn_water.pt``, ``--beads`` beads (default 32), PILE-L
thermostat (critical damping of the internal modes, centroid τ = 100 fs), 300 K, 0.25 fs.
All beads are evaluated in ONE batched model call per step (``MPNNCalculator.predict``).

Every ``--interval`` steps one frame is recorded; at the end the frames are written to
``--output`` (a plain ``.npz``; ``numpy.load`` reads it):

    step                 (F,)        int
    time                 (F,)        fs
    centroid_positions   (F, 3, 3)   Å (bead average; atoms O, H, H)
    dipole               (F, 3)      e·Å, bead-averaged
    polarizability       (F, 3, 3)   e²Å²/eV, bead-averaged (× 14.3996 for Å³)
    kinetic_cv           (F,)        eV, centroid-virial quantum kinetic energy
    potential_energy     (F,)        eV, bead-averaged
    temperature          (F,)        K, bead kinetic temperature / P (→ T)
    conserved_energy     (F,)        eV, (H_P − thermostat heat)/P: drifts only by integration error
    numbers, masses      (3,)        static; attribute-like scalars n_beads, temperature_K, timestep_fs

At the end the full ring-polymer state is saved to ``--checkpoint`` (``RingPolymerMD.save_checkpoint``).
``--restart CHECKPOINT`` continues that run exactly for ``--steps`` more steps; frames of an
existing ``--output`` file are kept and the new ones appended.

The quantum kinetic energy K_cv of water is dominated by the zero-point motion of the
O–H stretches and the bend (ħω ≫ k_B T): ≈ 0.3–0.4 eV at 300 K, against the classical
9/2 k_B T = 0.116 eV for 3 atoms.

Run from the repository root:

    python md_examples/water_rpmd.py                       # 32 beads, 6000 steps (1.5 ps), ~40 s on 2 cores
    python md_examples/water_rpmd.py --restart water_rpmd_checkpoint.npz --steps 2000
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from ase import units
from ase.build import molecule
from tqdm.auto import tqdm

from ase_mpnn import MPNNCalculator
from ase_mpnn.md import RingPolymerMD

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "painn_water.pt"
FIELDS = ("step", "time", "centroid_positions", "dipole", "polarizability", "kinetic_cv",
          "potential_energy", "temperature", "conserved_energy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6000, help="steps to run (default 6000 = 1.5 ps)")
    parser.add_argument("--beads", type=int, default=32, help="number of beads P (default 32)")
    parser.add_argument("--interval", type=int, default=10, help="record every N steps (default 10)")
    parser.add_argument("--equil", type=float, default=100.0,
                        help="fs left out of the averages printed at the end of a fresh run (default 100)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--timestep", type=float, default=0.25, help="fs (default 0.25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="water_rpmd.npz", help="frames (npz)")
    parser.add_argument("--checkpoint", default="water_rpmd_checkpoint.npz", help="state written at the end")
    parser.add_argument("--restart", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = parser.parse_args()

    calc = MPNNCalculator(MODEL)
    if args.restart:
        md = RingPolymerMD.from_checkpoint(args.restart, calc)
        print(f"restarted from {args.restart} at step {md.nsteps} ({md.n_beads} beads)")
    else:
        md = RingPolymerMD(molecule("H2O"), calc, n_beads=args.beads, temperature_K=args.temperature,
                           timestep=args.timestep * units.fs, thermostat="pile_l", tau=100.0 * units.fs,
                           seed=args.seed, observables=("dipole", "polarizability"))
    dt_fs = md.dt / units.fs
    print(f"RPMD: 1 H2O, {md.n_beads} beads, {md.thermostat}, {md.temperature_K:g} K, {dt_fs:g} fs, "
          f"{args.steps} steps, record every {args.interval}")

    frames: dict[str, list] = {name: [] for name in FIELDS}
    if args.restart and os.path.exists(args.output):
        with np.load(args.output) as old:
            keep = old["step"] <= md.nsteps  # frames the checkpointed run had written
            for name in FIELDS:
                frames[name] = list(old[name][keep])

    def record() -> None:
        frames["step"].append(md.nsteps)
        frames["time"].append(md.nsteps * dt_fs)
        frames["centroid_positions"].append(md.centroid_positions)
        frames["dipole"].append(md.dipole)
        frames["polarizability"].append(md.polarizability)
        frames["kinetic_cv"].append(md.centroid_virial_kinetic_energy)
        frames["potential_energy"].append(md.potential_energy)
        frames["temperature"].append(md.temperature)
        frames["conserved_energy"].append(md.conserved_energy)

    md.attach(record, interval=args.interval)
    start_step = md.nsteps
    with tqdm(total=args.steps, unit="step", disable=args.no_progress) as bar:
        done = 0
        while done < args.steps:
            n = min(100, args.steps - done)
            md.run(n)
            done += n
            bar.update(n)

    md.save_checkpoint(args.checkpoint)
    data = {name: np.array(values) for name, values in frames.items()}
    np.savez(args.output, **data, numbers=md.atoms.numbers, masses=md.masses, n_beads=md.n_beads,
             temperature_K=md.temperature_K, timestep_fs=dt_fs)

    # Averages over this run's frames (after --equil fs for a fresh start).
    if args.restart:
        skip = start_step * dt_fs
        sel = data["step"] > start_step
    else:
        skip = args.equil
        sel = data["time"] >= skip
    if not sel.any():  # run shorter than the equilibration: average what there is
        sel = data["step"] >= start_step
    k_cl = 4.5 * units.kB * md.temperature_K
    k_cv = data["kinetic_cv"][sel]
    mu = np.linalg.norm(data["dipole"][sel], axis=1)
    alpha = np.trace(data["polarizability"][sel], axis1=1, axis2=2) / 3.0 * 14.3996
    drift = data["conserved_energy"][sel]
    print()
    print(f"frames: {len(data['step'])} in {args.output} (averages over {sel.sum()} frames after t = {skip:g} fs)")
    print(f"checkpoint: {args.checkpoint} (step {md.nsteps}); continue with --restart {args.checkpoint}")
    print(f"bead temperature    : {data['temperature'][sel].mean():.1f} K (target {md.temperature_K:g} K)")
    blocks = [b.mean() for b in np.array_split(k_cv, min(10, len(k_cv)))]
    error = np.std(blocks) / np.sqrt(max(1, len(blocks) - 1))
    print(f"quantum K (cv)      : {k_cv.mean():.4f} ± {error:.4f} eV (± : {len(blocks)}-block standard error)")
    print(f"classical 9/2 k_B T : {k_cl:.4f} eV  -> K_cv / K_classical = {k_cv.mean() / k_cl:.2f}")
    print(f"mean |dipole|       : {mu.mean():.4f} e·Å; mean isotropic alpha {alpha.mean():.4f} Å³")
    print(f"mean <V> (beads)    : {data['potential_energy'][sel].mean():.4f} eV; "
          f"conserved energy range {np.ptp(drift) * 1e3:.2f} meV")


if __name__ == "__main__":
    main()
