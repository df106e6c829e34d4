"""Quick start: an ase_mpnn model as an ASE calculator on a molecule and a periodic cell.

Run:  python md_examples/quickstart.py

The models here are untrained (the trained water model arrives with the training
pipeline), so the numbers are not physical; the calls are exactly the ones you use
with a trained file: ``MPNNCalculator("models/painn_water.pt")``.
"""

from pathlib import Path
import tempfile

import numpy as np
from ase import units
from ase.build import bulk, molecule
from ase.md.langevin import Langevin

import ase_mpnn

workdir = Path(tempfile.mkdtemp())

# A model file: build, save, load through the calculator.
model = ase_mpnn.build_model("painn", species=["H", "O", "Cu"], cutoff=5.0, n_features=64, n_interactions=3)
path = ase_mpnn.save_model(model, workdir / "painn_demo.pt", metadata={"note": "untrained demo"})

# A molecule: energy, forces, dipole, polarizability in one call.
water = molecule("H2O")
water.calc = ase_mpnn.MPNNCalculator(path)
props = water.get_properties(["energy", "forces", "dipole", "polarizability", "charges"])
print("water energy (eV):", props["energy"])
print("water dipole (e·Å):", props["dipole"])
print("water polarizability (Å³):\n", props["polarizability"] * units.Bohr * units.Hartree)

# Langevin MD with the same calculator.
dyn = Langevin(water, 0.5 * units.fs, temperature_K=300, friction=0.01, fixcm=False)
dyn.run(100)
print("after 100 MD steps, T =", water.get_temperature(), "K")

# A periodic cell: energy, forces and stress.
copper = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
copper.calc = ase_mpnn.MPNNCalculator(path)
print("Cu energy (eV):", copper.get_potential_energy(), " stress (eV/Å³):", np.round(copper.get_stress(), 5))

# Many structures in one batched forward pass.
results = water.calc.predict([molecule("H2O"), molecule("H2O2"), copper])
print("batched energies (eV):", [round(r["energy"], 4) for r in results])
