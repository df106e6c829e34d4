"""The figures of the model cards that tests check but do not print.

    python md_examples/check_shipped_models.py          # about 1 minute on 2 cores

1. Water: how far painn_water and nequip_water disagree (energy per atom, largest force
   component) on the near-minimum data, on 300 K and 1000 K MD data, and on geometries
   outside the data — the README's "Is my structure inside the training data?" table.
2. Copper: the force constant of one displaced atom of the ideal fcc lattice (a = 3.61 Å,
   108 atoms) at steps 1e-5 … 1e-2 Å, the elastic constants, phonons along Γ–X–W–K–Γ–L
   and at X, L, W, K (``ase.phonons``, 9×9×9 primitive supercell) and the equation of
   state, each beside EMT.

Why 9×9×9: ``ase.phonons`` gets force constants from one displaced atom in a supercell
and interpolates between the supercell's q-points, which is exact only if the force
constants vanish within half the supercell. The model's reach is two messages × 4.5 Å =
9 Å; 5×5×5 (12.8 Å across) folds that tail back and makes the model's long-wavelength
acoustic branches up to 9 % too stiff, while EMT's shorter tail is converged there
already. At 9×9×9 (23 Å) both are converged (7×7×7 moves the model by up to 3 %).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.eos import EquationOfState
from ase.phonons import Phonons
from ase.units import GPa

from ase_mpnn import MPNNCalculator

ROOT = Path(__file__).resolve().parents[1]


def water_disagreement() -> None:
    painn = MPNNCalculator(ROOT / "models" / "painn_water.pt", dtype=torch.float64)
    nequip = MPNNCalculator(ROOT / "models" / "nequip_water.pt", dtype=torch.float64)
    near = ase.io.read(ROOT / "data" / "water_b3lyp_near_minimum.extxyz", ":")
    md = ase.io.read(ROOT / "data" / "water_b3lyp_augccpvdz.extxyz", ":")
    outside = []
    for r in (1.4, 1.6, 1.8):
        a = molecule("H2O")
        a.set_distance(0, 1, r, fix=0)
        outside.append(a)
    for angle in (40, 60, 170):
        a = molecule("H2O")
        a.set_angle(1, 0, 2, angle)
        outside.append(a)
    sets = {"near-minimum data": near, "300 K MD data": md[:300], "1000 K MD data": md[600:],
            "outside the data": outside}
    print("| structures | |ΔE| meV/atom, median / max | |ΔF| eV/Å, median / max |")
    print("|---|---|---|")
    for name, frames in sets.items():
        a = painn.predict(frames, ["energy", "forces"])
        b = nequip.predict(frames, ["energy", "forces"])
        de = np.array([abs(x["energy"] - y["energy"]) / len(f) for x, y, f in zip(a, b, frames)]) * 1000
        df = np.array([np.abs(x["forces"] - y["forces"]).max() for x, y in zip(a, b)])
        print(f"| {name} ({len(frames)}) | {np.median(de):.3g} / {de.max():.3g} | "
              f"{np.median(df):.2g} / {df.max():.2g} |")


def self_force_constant(calc, step: float) -> float:
    """Force constant (eV/Å²) of one atom of a 108-atom ideal fcc Cu cell displaced along x by ±step."""
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
    forces = []
    for sign in (1, -1):
        atoms = crystal.copy()
        atoms.positions[0, 0] += sign * step
        atoms.calc = calc
        forces.append(atoms.get_forces()[0, 0])
    return -(forces[0] - forces[1]) / (2 * step)


def elastic_constants(calc, a: float = 3.61, h: float = 1e-3) -> dict[str, float]:
    """C11, C12 and C44 in GPa from central differences of the stress of a strained 108-atom cell."""
    result = {}
    for strain in ("normal", "shear"):
        stresses = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            if strain == "normal":
                eps[0, 0] = sign * h
            else:
                eps[1, 2] = eps[2, 1] = 0.5 * sign * h
            atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(3)
            atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            atoms.calc = calc
            stresses.append(atoms.get_stress(voigt=True))
        slope = (stresses[0] - stresses[1]) / (2 * h) / GPa
        if strain == "normal":
            result["C11"], result["C12"] = slope[0], slope[1]
        else:
            result["C44"] = slope[3]
    return result


def copper_phonons_meV(calc, kpts: np.ndarray, supercell: int = 9) -> np.ndarray:
    """Phonon energies (meV) of fcc Cu (a = 3.61 Å) at ``kpts`` from ``ase.phonons``
    (``supercell``³ primitive cells, δ = 0.01 Å, acoustic sum rule): (n_kpts, 3)."""
    with tempfile.TemporaryDirectory() as tmp:
        ph = Phonons(bulk("Cu", "fcc", a=3.61), calc, supercell=(supercell,) * 3, delta=0.01,
                     name=str(Path(tmp) / "ph"))
        ph.run()
        ph.read(acoustic=True)
        return ph.band_structure(kpts) * 1000


def copper() -> None:
    model = MPNNCalculator(ROOT / "models" / "painn_copper.pt", dtype=torch.float64)
    for step in (1e-5, 1e-4, 1e-3, 1e-2):
        e, m = self_force_constant(EMT(), step), self_force_constant(model, step)
        print(f"force constant, step {step:g} Å: EMT {e:.4f}, model {m:.4f} eV/Å² ({100 * (m - e) / e:+.2f} %)")
    for name, calc in (("EMT", EMT()), ("model", model)):
        c = elastic_constants(calc)
        print(f"{name}: C11 {c['C11']:.1f}, C12 {c['C12']:.1f}, C44 {c['C44']:.1f} GPa")
    path = bulk("Cu", "fcc", a=3.61).cell.bandpath("GXWKGL", npoints=120)
    special = [path.special_points[k] for k in "XLWK"]
    phonons, bands = {}, {}
    for name, calc in (("EMT", EMT()), ("model", model)):
        bands[name], at_points = np.split(copper_phonons_meV(calc, np.concatenate([path.kpts, special])), [-4])
        phonons[name] = {k: np.sort(row) for k, row in zip("XLWK", at_points)}
    for k in "XLWK":
        e, m = phonons["EMT"][k], phonons["model"][k]
        print(f"phonons at {k} (meV): EMT {np.round(e, 2)}, model {np.round(m, 2)} "
              f"({np.round(100 * (m - e) / e, 2)} %)")
    e, m = bands["EMT"], bands["model"]
    significant = e > 0.2 * e.max()
    print(f"whole path Γ-X-W-K-Γ-L ({significant.sum()} branch points above 20 % of the top): largest "
          f"deviation {100 * np.abs((m - e) / e)[significant].max():.2f} %; near Γ (below that) largest "
          f"{np.abs(m - e)[~significant].max():.2f} meV")
    for name, calc in (("EMT", EMT()), ("model", model)):
        volumes, energies = [], []
        for a in np.linspace(3.50, 3.72, 12):
            cell = bulk("Cu", "fcc", a=a, cubic=True).repeat(2)
            cell.calc = calc
            volumes.append(cell.get_volume())
            energies.append(cell.get_potential_energy())
        v0, _, b = EquationOfState(volumes, energies).fit()
        print(f"{name}: lattice constant {(v0 / 8) ** (1 / 3):.4f} Å, bulk modulus {b / GPa:.1f} GPa")


if __name__ == "__main__":
    water_disagreement()
    copper()
