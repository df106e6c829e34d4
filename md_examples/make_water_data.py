"""Make reference data for water the way data/water_b3lyp_augccpvdz.extxyz was made.

1. Sampling, one of
   * ``--sampling xtb-md`` (default): Langevin MD of one H2O with GFN2-xTB (tblite
     through ASE) at each temperature; after equilibration, a frame every
     ``--stride`` steps;
   * ``--sampling normal-modes``: canonical classical displacements around the
     B3LYP minimum, Q_k ~ N(0, k_BT/ω_k²) in every normal mode of the reference
     harmonic analysis (``--reference``, made by water_reference_harmonic.py). These
     frames pin down the curvature near the minimum that harmonic spectra and
     low-temperature MD depend on.
2. Labels: B3LYP/aug-cc-pVDZ with PySCF (density fitting): energy, forces, dipole and
   the analytic (CPHF) static polarizability (pyscf-properties).

Each labelled frame is appended to the output file at once, so a killed run keeps
what it finished and ``--resume`` carries on from there.

Install the reference codes first:  python -m pip install -e ".[reference]"
Run (≈ 2.5 s per frame on 2 cores, ~40 min for the full 900 frames):

    python md_examples/make_water_data.py -o water.extxyz
    python md_examples/make_water_data.py -o test.extxyz --frames 2 --temperatures 300   # a quick check
    python md_examples/make_water_data.py -o data/water_b3lyp_near_minimum.extxyz \
        --sampling normal-modes --temperatures 50 100 200 300 --frames 120   # ≈ 20 min
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


def sample_normal_modes(reference: Path, temperature: float, n_frames: int, seed: int):
    """Yield ``n_frames`` canonical harmonic displacements of the reference minimum.

    x = x⁰ + M^-½ Σ_k e_k Q_k with independent Q_k ~ N(0, k_BT/ω_k²): the classical
    Boltzmann distribution of the harmonic potential of the reference Hessian.
    """
    import json

    data = json.loads(Path(reference).read_text())
    atoms = molecule("H2O")
    atoms.set_chemical_symbols(data["symbols"])
    atoms.positions = np.array(data["positions_A"])
    fd = data["finite_difference"][0]
    modes = np.array(fd["mode_vectors"])  # (n_modes, N, 3), mass-weighted, unit norm
    omega = np.array(fd["frequencies_cm1"]) * 2 * np.pi * units._c * 100 / units.second
    inv_sqrt_m = atoms.get_masses() ** -0.5
    rng = np.random.default_rng(seed)
    for _ in range(n_frames):
        q = rng.normal(size=len(omega)) * np.sqrt(units.kB * temperature) / omega
        frame = atoms.copy()
        frame.positions += np.einsum("k,kia->ia", q, modes) * inv_sqrt_m[:, None]
        yield frame


def run_scf(atoms, basis: str = "aug-cc-pvdz", xc: str = "b3lyp", conv_tol: float = 1e-10):
    """A converged PySCF density-fitted RKS calculation of ``atoms`` (the data's level)."""
    from pyscf import dft, gto

    mol = gto.M(
        atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
        basis=basis, unit="Angstrom", verbose=0,
    )
    mf = dft.RKS(mol).density_fit()
    mf.xc = xc
    mf.conv_tol = conv_tol
    mf.kernel()
    if not mf.converged:
        raise RuntimeError("PySCF SCF did not converge")
    return mf


def scf_energy_forces_dipole(mf):
    """Energy (eV), forces (eV/Å) and dipole (e·Å) of a converged calculation."""
    energy = mf.e_tot * units.Hartree
    forces = -mf.nuc_grad_method().kernel() * units.Hartree / units.Bohr
    dipole = mf.dip_moment(unit="AU", verbose=0) * units.Bohr
    return energy, forces, dipole


def scf_polarizability(mf):
    """Analytic (CPKS) static polarizability (e²Å²/eV), symmetrized."""
    from pyscf.prop.polarizability.rks import Polarizability

    alpha = Polarizability(mf).polarizability() * AU_POLARIZABILITY
    return 0.5 * (alpha + alpha.T)


def label_b3lyp(atoms, basis: str = "aug-cc-pvdz", xc: str = "b3lyp", conv_tol: float = 1e-10):
    """Energy (eV), forces (eV/Å), dipole (e·Å) and polarizability (e²Å²/eV) from PySCF."""
    mf = run_scf(atoms, basis, xc, conv_tol)
    return (*scf_energy_forces_dipole(mf), scf_polarizability(mf))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0, 1000.0])
    parser.add_argument("--frames", type=int, default=300, help="frames per temperature")
    parser.add_argument("--stride", type=int, default=17, help="MD steps between frames")
    parser.add_argument("--equilibration", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampling", choices=["xtb-md", "normal-modes"], default="xtb-md")
    parser.add_argument("--reference", default="data/water_b3lyp_harmonic.json",
                        help="harmonic reference for --sampling normal-modes")
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
        if args.sampling == "xtb-md":
            frames = sample_xtb(temperature, args.frames, args.stride, args.equilibration, args.seed + k)
        else:
            frames = sample_normal_modes(args.reference, temperature, args.frames, args.seed + k)
        for atoms in frames:
            index += 1
            if index <= done:
                continue
            energy, forces, dipole, alpha = label_b3lyp(atoms)
            labelled = atoms.copy()
            labelled.calc = SinglePointCalculator(labelled, energy=energy, forces=forces, dipole=dipole)
            labelled.info["polarizability"] = alpha.reshape(9)
            labelled.info["sampling_temperature_K"] = temperature
            labelled.info["sampling"] = args.sampling
            ase.io.write(output, labelled, format="extxyz", append=True)
            bar.update(1)
    bar.close()
    print(f"{output}: {total} frames")


if __name__ == "__main__":
    main()
