"""Isolated H and O atoms at the water data's level: B3LYP/aug-cc-pVDZ with PySCF.

The water models fit their per-element reference energies to water-only data, where
only 2·E0[H] + E0[O] is determined (minimum-norm solution: H −832 eV, O −416 eV), so an
isolated atom gets a number that is not an atomic energy. This script computes the real
ones with the settings of ``make_water_data.py`` (density fitting, SCF convergence
1e-10), spin-unrestricted for the open shells (H doublet, O triplet), and the B3LYP
atomization energy of water at the reference minimum (``water_b3lyp_harmonic.json``),
and writes them to ``data/water_b3lyp_atom_energies.json``. A few seconds on one core:

    python md_examples/water_atom_energies.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ase import units

# 2S: unpaired electrons of the atomic ground states (H ²S, O ³P).
SPINS = {"H": 1, "O": 2}


def atom_energy(symbol: str, basis: str = "aug-cc-pvdz", xc: str = "b3lyp", conv_tol: float = 1e-10) -> float:
    """Total energy (eV) of one isolated atom, UKS with density fitting, as the data's level."""
    from pyscf import dft, gto

    mol = gto.M(atom=[(symbol, (0.0, 0.0, 0.0))], basis=basis, spin=SPINS[symbol], verbose=0)
    mf = dft.UKS(mol).density_fit()
    mf.xc = xc
    mf.conv_tol = conv_tol
    mf.kernel()
    if not mf.converged:
        raise RuntimeError(f"PySCF SCF of the {symbol} atom did not converge")
    return float(mf.e_tot * units.Hartree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="data/water_b3lyp_atom_energies.json")
    parser.add_argument("--reference", default="data/water_b3lyp_harmonic.json",
                        help="the B3LYP minimum of water (for the atomization energy)")
    args = parser.parse_args()

    import pyscf

    start = time.perf_counter()
    energies = {symbol: atom_energy(symbol) for symbol in SPINS}
    water = json.loads(Path(args.reference).read_text())["energy_eV"]
    result = {
        "level": "B3LYP/aug-cc-pVDZ, PySCF density fitting, spin-unrestricted (UKS), SCF conv_tol 1e-10",
        "made_by": "python md_examples/water_atom_energies.py",
        "pyscf_version": pyscf.__version__,
        "spin_2S": SPINS,
        "energy_eV": energies,
        "water_minimum_energy_eV": water,
        "atomization_energy_eV": 2 * energies["H"] + energies["O"] - water,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"{args.output} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
