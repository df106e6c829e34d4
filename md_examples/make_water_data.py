"""Make reference data for water the way data/water_b3lyp_augccpvdz.extxyz was made.

1. Sampling: Langevin MD of one H2O with GFN2-xTB (tblite through ASE) at each
   temperature; after equilibration, a frame every ``--stride`` steps.
2. Labels: B3LYP/aug-cc-pVDZ with PySCF (density fitting): energy, forces, dipole and
   the analytic (CPHF) static polarizability (pyscf-properties).

Each labelled frame is appended to the output file at once, so a killed run keeps
what it finished and ``--resume`` carries on from there.

Install the reference codes first:  python -m pip install -e ".[reference]"
Run (≈ 2.5 s per frame on 2 cores, ~40 min for the full 900 frames):

    python md_examples/make_water_data.py -o water.extxyz
    python md_examples/make_water_data.py -o test.extxyz --frames 2 --temperatures 300   # a quick check
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io
import numpy as np
from ase import units
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin
from ase.md import velocitydistribution
from tqdm import tqdm

# ASE ≥ 3.29 renamed MaxwellBoltzmannDistribution to thermalize_momenta.
thermalize = getattr(velocitydistribution, "thermalize_momenta", velocitydistribution.MaxwellBoltzmannDistribution)

# Atomic units of polarizability (e² a0² / Eh) in ASE's e²Å²/eV.
AU_POLARIZABILITY = units.Bohr**2 / units.Hartree


def sample_xtb(temperature: float, n_frames: int, stride: int, equilibration: int, seed: int):
    """Yield ``n_frames`` GFN2-xTB Langevin snapshots of one water at ``temperature``."""
    from tblite.ase import TBLite

    atoms = molecule("H2O")
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    rng = np.random.default_rng(seed)
    thermalize(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng)
    dyn.run(equilibration)
    for _ in range(n_frames):
        dyn.run(stride)
        yield atoms.copy()


def label_b3lyp(atoms, basis: str = "aug-cc-pvdz", xc: str = "b3lyp"):
    """Energy (eV), forces (eV/Å), dipole (e·Å) and polarizability (e²Å²/eV) from PySCF."""
    from pyscf import dft, gto
    from pyscf.prop.polarizability.rks import Polarizability

    mol = gto.M(
        atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
        basis=basis, unit="Angstrom", verbose=0,
    )
    mf = dft.RKS(mol).density_fit()
    mf.xc = xc
    mf.conv_tol = 1e-10
    energy = mf.kernel() * units.Hartree
    if not mf.converged:
        raise RuntimeError("PySCF SCF did not converge")
    forces = -mf.nuc_grad_method().kernel() * units.Hartree / units.Bohr
    dipole = mf.dip_moment(unit="AU", verbose=0) * units.Bohr
    alpha = Polarizability(mf).polarizability() * AU_POLARIZABILITY
    return energy, forces, dipole, 0.5 * (alpha + alpha.T)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0, 1000.0])
    parser.add_argument("--frames", type=int, default=300, help="frames per temperature")
    parser.add_argument("--stride", type=int, default=17, help="MD steps between frames")
    parser.add_argument("--equilibration", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="skip the frames already in OUTPUT")
    args = parser.parse_args()

    output = Path(args.output)
    done = len(ase.io.read(output, ":")) if args.resume and output.is_file() else 0
    if not args.resume and output.exists():
        raise SystemExit(f"{output} exists: use --resume to continue it or choose another name")
    total = args.frames * len(args.temperatures)
    bar = tqdm(total=total, initial=done, desc="frames")
    index = 0
    for k, temperature in enumerate(args.temperatures):
        # Sampling is deterministic (seeded), so a resumed run regenerates the same frames.
        for atoms in sample_xtb(temperature, args.frames, args.stride, args.equilibration, args.seed + k):
            index += 1
            if index <= done:
                continue
            energy, forces, dipole, alpha = label_b3lyp(atoms)
            labelled = atoms.copy()
            labelled.calc = SinglePointCalculator(labelled, energy=energy, forces=forces, dipole=dipole)
            labelled.info["polarizability"] = alpha.reshape(9)
            labelled.info["sampling_temperature_K"] = temperature
            ase.io.write(output, labelled, format="extxyz", append=True)
            bar.update(1)
    bar.close()
    print(f"{output}: {total} frames")


if __name__ == "__main__":
    main()
