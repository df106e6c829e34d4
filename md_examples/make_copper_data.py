"""Make periodic reference data: bulk fcc copper labelled with ASE's EMT potential.

EMT is cheap and built into ASE, so this data set (energies, forces and stresses of
strained, heated 32-atom cells) exercises periodic training and stress without a
quantum-chemistry code. Frames come from Langevin MD at several temperatures in cells
scaled by random isotropic and shear strains up to ±3 %. Then ``--near-lattice``
108-atom cells close to the ideal crystal (a = 3.59–3.63 Å, Gaussian displacements of
0.01–0.05 Å per coordinate, ``info["sampling"] = "near-lattice"``): force constants and phonons are the curvature at the
ideal lattice, which the heated frames sample only sparsely.

    python md_examples/make_copper_data.py -o data/copper_emt.extxyz
    python md_examples/make_copper_data.py --strained-lattice 200 -o data/copper_emt_strained.extxyz

    python md_examples/make_copper_data.py --large-lattice 40 -o data/copper_emt_large.extxyz

The second file holds perfect cells under random strains up to ±1.5 % (stress only,
``info["sampling"] = "strained-lattice"``): the elastic constants, which set the acoustic
phonons near Γ. The third holds near-lattice 256-atom cells (4×4×4 cubic): the
displacement patterns of the zone-boundary phonons at L, W and K fit only into cells
that are multiples of 2 and 4 cubic cells, not into the 3×3×3 cells above (X fits both).
"""

from __future__ import annotations

import argparse

import ase.io
import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin
from ase.md import velocitydistribution
from tqdm import tqdm

# ASE ≥ 3.29 renamed MaxwellBoltzmannDistribution to thermalize_momenta.
thermalize = getattr(velocitydistribution, "thermalize_momenta", velocitydistribution.MaxwellBoltzmannDistribution)


def frames(n_frames: int, seed: int):
    rng = np.random.default_rng(seed)
    for k in range(n_frames):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)  # 32 atoms
        strain = rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.calc = EMT()
        temperature = [300.0, 600.0, 900.0][k % 3]
        thermalize(atoms, temperature_K=temperature, rng=rng)
        Langevin(atoms, 2 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng).run(20)
        labelled = atoms.copy()
        labelled.calc = SinglePointCalculator(
            labelled, energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=atoms.get_stress()
        )
        labelled.info["sampling_temperature_K"] = temperature
        yield labelled


def near_lattice_frames(n_frames: int, seed: int, repeat: int = 3):
    """Ideal fcc cells, slightly scaled, with small random displacements (EMT labels)."""
    rng = np.random.default_rng(seed)
    sigmas = [0.01, 0.02, 0.03, 0.05]
    for k in range(n_frames):
        # 108 atoms: a 2-layer model with a 4.5 Å cutoff sees 9 Å, more than half the
        # 7.2 Å of a 32-atom cell, so in 32-atom cells a displaced atom also feels its
        # own displaced images; force constants learned there do not carry over to
        # larger cells (phonon supercells). 3×3×3 cells (10.8 Å) have no such coupling.
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.59, 3.63), cubic=True).repeat(repeat)
        sigma = sigmas[k % len(sigmas)]
        atoms.positions += rng.normal(scale=sigma, size=atoms.positions.shape)
        atoms.calc = EMT()
        labelled = atoms.copy()
        labelled.calc = SinglePointCalculator(
            labelled, energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=atoms.get_stress()
        )
        labelled.info["displacement_sigma_A"] = sigma
        labelled.info["sampling"] = "near-lattice"
        yield labelled


def strained_lattice_frames(n_frames: int, seed: int):
    """Perfect fcc cells under random small strains (EMT energy and stress; forces vanish).

    The slopes of the acoustic phonon branches near Γ are set by the elastic constants,
    i.e. by the stress response to homogeneous strain. The heated MD frames carry that
    response under thermal noise, and the near-lattice cells are only scaled isotropically,
    so C11 − C12 and C44 would be pinned by noisy data alone. A perfect fcc crystal has
    one atom per primitive cell and no internal relaxation: its stress under strain is the
    elastic response itself, the same in any supercell.
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_frames):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)  # 32 atoms, all equivalent
        strain = rng.uniform(-0.015, 0.015, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.calc = EMT()
        labelled = atoms.copy()
        labelled.calc = SinglePointCalculator(
            labelled, energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=atoms.get_stress()
        )
        labelled.info["sampling"] = "strained-lattice"
        yield labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--near-lattice", type=int, default=100, help="near-ideal 108-atom cells after the MD frames")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--large-lattice", type=int, default=0, metavar="N",
                        help="instead of the above, write N near-lattice 256-atom (4x4x4 cubic) cells "
                             "(data/copper_emt_large.extxyz uses 40)")
    parser.add_argument("--strained-lattice", type=int, default=0, metavar="N",
                        help="instead of the above, write N strained perfect 32-atom cells "
                             "(data/copper_emt_strained.extxyz uses 200)")
    args = parser.parse_args()
    if args.large_lattice:
        ase.io.write(args.output, list(near_lattice_frames(args.large_lattice, args.seed + 3, repeat=4)))
        return
    if args.strained_lattice:
        ase.io.write(args.output, list(strained_lattice_frames(args.strained_lattice, args.seed + 2)))
        return
    data = list(tqdm(frames(args.frames, args.seed), total=args.frames, desc="frames"))
    data += list(near_lattice_frames(args.near_lattice, args.seed + 1))
    ase.io.write(args.output, data)


if __name__ == "__main__":
    main()
