"""The properties a model predicts, in one table: shape, unit, per atom or per structure,
whether they need a cell periodic in all three directions, and their ASE names.

Adding a property means a row here and the head that computes it; the potential, the
calculator, training data and evaluation, the recorders and the spectra readers read
their lists, units and the periodicity rule from this table.

Also makes ASE aware of 'polarizability', which ASE (3.29) does not list in
``ase.calculators.calculator.all_properties`` or ``ase.outputs``, so that
``atoms.get_properties(["polarizability"])`` is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "ERROR_UNITS",
    "LABELS",
    "MODEL_PROPERTIES",
    "PROPERTY_TABLE",
    "Property",
    "computable",
    "fully_periodic",
    "register_polarizability",
]


@dataclass(frozen=True)
class Property:
    """One predicted quantity.

    Attributes:
        name: the name in model outputs, ``calc.results`` and ASE (they are the same).
        per_atom: one value per atom (else one per structure).
        shape: the shape of one value (per atom or per structure).
        unit: ASE units.
        needs_periodic: defined only for cells periodic in all three directions.
        label: can be a training label (read from data files, in the loss and metrics).
        error_unit: the unit of its errors in training and evaluation (energy per atom).
    """

    name: str
    per_atom: bool
    shape: tuple[int, ...]
    unit: str
    needs_periodic: bool = False
    label: bool = False
    error_unit: str = ""

    @property
    def errors_in(self) -> str:
        return self.error_unit or self.unit


PROPERTY_TABLE: dict[str, Property] = {p.name: p for p in (
    Property("energy", per_atom=False, shape=(), unit="eV", label=True, error_unit="eV/atom"),
    Property("energies", per_atom=True, shape=(), unit="eV"),
    Property("forces", per_atom=True, shape=(3,), unit="eV/Å", label=True),
    Property("stress", per_atom=False, shape=(3, 3), unit="eV/Å³", needs_periodic=True, label=True),
    Property("charges", per_atom=True, shape=(), unit="e"),
    Property("dipole", per_atom=False, shape=(3,), unit="e·Å", label=True),
    Property("polarizability", per_atom=False, shape=(3, 3), unit="e²Å²/eV", label=True),
)}

#: Everything a model can predict, in output order.
MODEL_PROPERTIES: tuple[str, ...] = tuple(PROPERTY_TABLE)
#: What training data can hold and the loss can fit.
LABELS: tuple[str, ...] = tuple(name for name, p in PROPERTY_TABLE.items() if p.label)
#: Units of the errors of each label (MAE, RMSE, plots, outlier reports).
ERROR_UNITS: dict[str, str] = {name: PROPERTY_TABLE[name].errors_in for name in LABELS}


def fully_periodic(structures: Iterable) -> bool:
    """Whether every structure (ASE ``Atoms``) is periodic in all three directions."""
    return all(bool(a.pbc.all()) for a in structures)


def computable(names: Iterable[str], structures: Sequence) -> set[str]:
    """``names`` less those the structures cannot have (stress without full periodicity)."""
    periodic = fully_periodic(structures)
    return {n for n in names if periodic or not PROPERTY_TABLE[n].needs_periodic}


def register_polarizability() -> None:
    """Register 'polarizability' (3×3, e²Å²/eV) with ASE; safe to call many times."""
    from ase.calculators import calculator
    from ase.outputs import _defineprop, all_outputs

    if "polarizability" not in all_outputs:
        _defineprop("polarizability", float, shape=PROPERTY_TABLE["polarizability"].shape)
    if "polarizability" not in calculator.all_properties:
        calculator.all_properties.append("polarizability")
