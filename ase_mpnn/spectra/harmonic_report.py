"""The harmonic report behind ``ase-mpnn harmonic``: analysis of a model file, the relaxed
geometry, and the comparison with a reference method's numbers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from .harmonic import HarmonicResult, harmonic_analysis

__all__ = ["harmonic_report", "load_reference", "reference_table"]


def load_reference(path: str | os.PathLike) -> dict[str, Any]:
    """Per-mode reference numbers from a JSON file, as lists in mode order.

    Accepted: the file written by ``md_examples/water_reference_harmonic.py`` (its
    first ``finite_difference`` entry is used) or a flat JSON object with
    ``frequencies_cm1`` and optionally ``ir_intensities_km_mol``,
    ``raman_activities_A4_per_amu``, ``depolarization_ratios`` and ``level``.
    """
    import json

    data = json.loads(Path(path).read_text())
    level = data.get("level", str(path))
    if "finite_difference" in data:
        data = data["finite_difference"][0]
    if "frequencies_cm1" not in data:
        raise ValueError(f"{path}: no 'frequencies_cm1' in the reference file")
    return {"level": level, **data}


def reference_table(result: HarmonicResult, reference: dict[str, Any]) -> str:
    """Markdown table of the model's harmonic numbers beside a reference, mode by mode.

    Differences: Δν in cm⁻¹, IR and Raman in % of the reference, ρ absolute.
    ``reference`` is a dict as returned by :func:`load_reference`.
    """
    ref_nu = np.asarray(reference["frequencies_cm1"], float)
    if len(ref_nu) != result.n_modes:
        raise ValueError(f"the reference has {len(ref_nu)} modes, the structure {result.n_modes}")
    columns = [
        ("ν (cm⁻¹)", result.frequencies_cm1, ref_nu, "abs", ".1f"),
        ("IR (km/mol)", result.ir_intensities_km_mol, reference.get("ir_intensities_km_mol"), "rel", ".2f"),
        ("Raman (Å⁴/amu)", result.raman_activities, reference.get("raman_activities_A4_per_amu"), "rel", ".2f"),
        ("ρ", result.depolarization_ratios, reference.get("depolarization_ratios"), "abs", ".3f"),
    ]
    columns = [c for c in columns if c[1] is not None and c[2] is not None]
    head = ["mode"] + [f"{name} {who}" for name, *_ in columns for who in ("model", "reference", "Δ")]
    lines = [f"Against {reference.get('level', 'the reference')}:", "",
             "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for k in range(result.n_modes):
        cells = [str(k + 1)]
        for _, model, ref, kind, spec in columns:
            m, r = float(model[k]), float(np.asarray(ref, float)[k])
            diff = f"{m - r:+.1f}" if spec == ".1f" else f"{m - r:+.3f}"
            if kind == "rel":
                diff = f"{100 * (m - r) / r:+.1f} %" if r else "–"
            cells += [format(m, spec), format(r, spec), diff]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def _geometry_summary(atoms: Atoms, max_atoms: int = 50, max_items: int = 30) -> list[str]:
    """Positions, bond lengths and bond angles (covalent radii ×1.2) of a small structure."""
    from ase.data import covalent_radii

    lines: list[str] = []
    if len(atoms) <= max_atoms:
        lines.append("Relaxed geometry (Å):")
        for a in atoms:
            x, y, z = a.position
            lines.append(f"  {a.symbol:<3} {x:12.6f} {y:12.6f} {z:12.6f}")
    else:
        lines.append(f"Relaxed geometry: {len(atoms)} atoms (positions not listed)")
    if atoms.pbc.any():
        return lines
    radii = covalent_radii[atoms.numbers]
    d = atoms.get_all_distances()
    bonded = (d < 1.2 * (radii[:, None] + radii[None, :])) & ~np.eye(len(atoms), dtype=bool)
    bonds = [(i, j) for i in range(len(atoms)) for j in range(i + 1, len(atoms)) if bonded[i, j]]
    sym = atoms.get_chemical_symbols()
    if bonds:
        items = [f"{sym[i]}{i}–{sym[j]}{j} {d[i, j]:.4f}" for i, j in bonds[:max_items]]
        lines.append("Bonds (Å): " + ", ".join(items) + (" …" if len(bonds) > max_items else ""))
    angles = []
    for c in range(len(atoms)):
        nb = np.flatnonzero(bonded[c])
        for x in range(len(nb)):
            for y in range(x + 1, len(nb)):
                angles.append((nb[x], c, nb[y]))
    if angles:
        items = [
            f"{sym[i]}{i}–{sym[c]}{c}–{sym[j]}{j} {atoms.get_angle(i, c, j):.2f}"
            for i, c, j in angles[:max_items]
        ]
        lines.append("Angles (°): " + ", ".join(items) + (" …" if len(angles) > max_items else ""))
    return lines


def harmonic_report(
    structure: str | os.PathLike | Atoms,
    model_path: str | os.PathLike,
    *,
    optimize: bool = True,
    fmax: float = 1e-4,
    delta: float = 1e-3,
    nfree: int = 2,
    raman: bool = True,
    workdir: str | os.PathLike | None = None,
    index: int | str = -1,
    device: str = "cpu",
    dtype: str | None = "float64",
    reference: str | os.PathLike | None = None,
) -> str:
    """Run :func:`harmonic_analysis` with a model file and return a printable report.

    Loads ``ase_mpnn.MPNNCalculator(model_path)``, reads the structure (a file read
    with ``ase.io.read(path, index)``: by default the last frame, or an Atoms object,
    not modified), relaxes it, and returns a summary (energy, final max force,
    dipole, isotropic polarizability, the dropped rigid-body modes, relaxed positions,
    bond lengths and angles) followed by :meth:`HarmonicResult.table`.

    Args:
        structure: structure file or Atoms.
        model_path: ase_mpnn model file.
        optimize, fmax, delta, nfree, raman, workdir: as in :func:`harmonic_analysis`.
        index: frame of a multi-frame file.
        device: torch device for the model.
        dtype: "float64" (default: finite-difference Hessians want double precision),
            "float32", or None for the model file's own dtype.
        reference: a JSON file of reference harmonic numbers (:func:`load_reference`):
            adds a table of the model beside it, mode by mode.

    Returns:
        The report as a string (markdown table included). CLI parsing lives elsewhere.
    """
    import ase.io
    import torch

    from ase_mpnn import MPNNCalculator

    if isinstance(structure, Atoms):
        atoms = structure.copy()
        source = atoms.get_chemical_formula()
    else:
        atoms = ase.io.read(structure, index=index)
        if not isinstance(atoms, Atoms):
            raise TypeError(f"index {index!r} selects several frames of {structure}; give one")
        source = str(structure)
    dtypes = {None: None, "float64": torch.float64, "float32": torch.float32}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be 'float64', 'float32' or None, got {dtype!r}")
    calc = MPNNCalculator(model_path, device=device, dtype=dtypes[dtype])
    result = harmonic_analysis(atoms, calc, optimize=optimize, fmax=fmax, delta=delta,
                               nfree=nfree, raman=raman, workdir=workdir)

    formula = result.atoms.get_chemical_formula()
    precision = dtype or "model dtype"
    lines = [f"Harmonic analysis of {formula} ({source}) with {model_path} ({precision}, {device})"]
    if optimize:
        lines.append(f"BFGS to fmax {fmax:g} eV/Å: {result.optimizer_steps} steps")
    lines.append(f"energy {result.energy:.6f} eV, max force {result.max_force:.2e} eV/Å")
    if result.static_dipole is not None:
        mu = float(np.linalg.norm(result.static_dipole))
        lines.append(f"dipole {mu:.4f} e·Å ({mu / units.Debye:.3f} D)")
    if result.static_polarizability is not None:
        iso = float(np.trace(result.static_polarizability)) / 3
        lines.append(f"isotropic polarizability {iso:.4f} Å³")
    dropped = ", ".join(
        f"{abs(f):.1f}i" if f < 0 else f"{f:.1f}" for f in result.dropped_frequencies_cm1
    )
    lines.append(f"finite differences: delta {delta:g} Å, nfree {nfree}; "
                 f"{len(result.dropped_frequencies_cm1)} rigid-body modes dropped "
                 f"({dropped} cm⁻¹)")
    lines.append("")
    lines.extend(_geometry_summary(result.atoms))
    lines.append("")
    lines.append(result.table())
    if reference is not None:
        lines += ["", reference_table(result, load_reference(reference))]
    return "\n".join(lines)
