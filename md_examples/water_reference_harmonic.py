"""B3LYP/aug-cc-pVDZ harmonic analysis of water: the reference the shipped models are judged by.

The same level and settings as the training data (PySCF, density fitting, default
grid; see data/README.md), with tighter convergence:

1. relax H2O with BFGS on the PySCF forces to fmax 5e-4 eV/Å (SCF conv_tol 1e-12).
   The integration grid makes the forces noisy at the 1e-4 eV/Å level, so a tighter
   fmax is never reached; the remaining geometry error, ≲ 5e-4 eV/Å over ≈ 8 eV/Å²
   (the softest, bending, direction) ≈ 6e-5 Å, moves the frequencies by < 0.01 cm⁻¹;
2. ``ase_mpnn.spectra.harmonic_analysis`` with the PySCF calculator — the very code
   that analyses a model — at δ = 1e-3 Å (central differences) and δ = 5e-3 Å
   (five-point stencil): frequencies, IR intensities (km/mol), Raman activities
   (Å⁴/amu) and depolarization ratios;
3. the analytic (CPKS) PySCF Hessian at the same geometry, as an independent check of
   the finite-difference frequencies.

The result is written as JSON (default data/water_b3lyp_harmonic.json) and printed as
tables. Takes about 5 minutes on 2 cores.

Install the reference codes first:  python -m pip install -e ".[reference]"
Run:  python md_examples/water_reference_harmonic.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.optimize import BFGS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_water_data import AU_POLARIZABILITY, run_scf, scf_energy_forces_dipole, scf_polarizability  # noqa: E402

from ase_mpnn.spectra import harmonic_analysis  # noqa: E402


class PySCFWater(Calculator):
    """Energy, forces, dipole and polarizability from PySCF at the data's level."""

    implemented_properties = ["energy", "forces", "dipole", "polarizability"]

    def __init__(self, conv_tol: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.conv_tol = conv_tol
        self.mf = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        # The polarizability (a CPKS solve) only where it is asked for: BFGS needs forces.
        if system_changes or self.mf is None:
            super().calculate(atoms, properties, system_changes)
            self.mf = run_scf(self.atoms, conv_tol=self.conv_tol)
            energy, forces, dipole = scf_energy_forces_dipole(self.mf)
            self.results = {"energy": energy, "forces": forces, "dipole": dipole}
        if "polarizability" in properties and "polarizability" not in self.results:
            self.results["polarizability"] = scf_polarizability(self.mf)


def analytic_frequencies(atoms, conv_tol: float = 1e-12) -> np.ndarray:
    """Harmonic wavenumbers (cm⁻¹) from PySCF's analytic DF-B3LYP Hessian."""
    from pyscf import dft, gto
    from pyscf.hessian import thermo

    mol = gto.M(
        atom=[(s, tuple(p)) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
        basis="aug-cc-pvdz", unit="Angstrom", verbose=0,
    )
    mf = dft.RKS(mol).density_fit()
    mf.xc = "b3lyp"
    mf.conv_tol = conv_tol
    mf.kernel()
    hessian = mf.Hessian().kernel()
    freqs = thermo.harmonic_analysis(mol, hessian)["freq_wavenumber"]
    return np.sort(np.real(freqs))[-3:]


def result_dict(result) -> dict:
    return {
        "delta_A": result.delta,
        "nfree": result.nfree,
        "frequencies_cm1": result.frequencies_cm1.tolist(),
        "ir_intensities_km_mol": result.ir_intensities_km_mol.tolist(),
        "raman_activities_A4_per_amu": result.raman_activities.tolist(),
        "depolarization_ratios": result.depolarization_ratios.tolist(),
        "dipole_derivatives_e_per_sqrt_amu": result.dipole_derivatives.tolist(),
        "polarizability_derivatives_A2_per_sqrt_amu": result.polarizability_derivatives.tolist(),
        "mode_vectors": result.mode_vectors.tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="data/water_b3lyp_harmonic.json")
    args = parser.parse_args()

    atoms = molecule("H2O")
    calc = PySCFWater()
    atoms.calc = calc
    BFGS(atoms, logfile="-").run(fmax=5e-4, steps=100)
    fine = harmonic_analysis(atoms, calc, optimize=False, delta=1e-3, nfree=2)
    print(f"max force {fine.max_force:.2e} eV/Å")
    print("δ = 1e-3 Å, central differences\n" + fine.table())
    wide = harmonic_analysis(fine.atoms, calc, optimize=False, delta=5e-3, nfree=4)
    print("δ = 5e-3 Å, five-point stencil\n" + wide.table())
    analytic = analytic_frequencies(fine.atoms)
    print("analytic Hessian (cm⁻¹):", np.round(analytic, 2))

    relaxed = fine.atoms
    d_oh = [relaxed.get_distance(0, 1), relaxed.get_distance(0, 2)]
    reference = {
        "level": "B3LYP/aug-cc-pVDZ, PySCF density fitting, default grid, SCF conv_tol 1e-12",
        "made_by": "md_examples/water_reference_harmonic.py",
        "symbols": relaxed.get_chemical_symbols(),
        "positions_A": relaxed.positions.tolist(),
        "energy_eV": fine.energy,
        "max_force_eV_per_A": fine.max_force,
        "r_OH_A": d_oh,
        "angle_HOH_deg": relaxed.get_angle(1, 0, 2),
        "dipole_eA": fine.static_dipole.tolist(),
        "polarizability_A3": fine.static_polarizability.tolist(),
        "polarizability_unit_check": AU_POLARIZABILITY,
        "mode_names": ["bend", "symmetric stretch", "asymmetric stretch"],
        "finite_difference": [result_dict(fine), result_dict(wide)],
        "analytic_hessian_frequencies_cm1": analytic.tolist(),
    }
    Path(args.output).write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
