"""Make ASE aware of the 'polarizability' property.

ASE (3.29) lists energy, forces, stress, dipole, charges, ... in
``ase.calculators.calculator.all_properties`` and ``ase.outputs``, but not the
polarizability, so ``atoms.get_properties(["polarizability"])`` would be rejected.
Registering it once, idempotently, makes every ASE path accept it.
"""

from __future__ import annotations


def register_polarizability() -> None:
    """Register 'polarizability' (3×3, e²Å²/eV) with ASE; safe to call many times."""
    from ase.calculators import calculator
    from ase.outputs import _defineprop, all_outputs

    if "polarizability" not in all_outputs:
        _defineprop("polarizability", float, shape=(3, 3))
    if "polarizability" not in calculator.all_properties:
        calculator.all_properties.append("polarizability")
