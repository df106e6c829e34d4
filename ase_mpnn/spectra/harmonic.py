"""Harmonic (normal-mode) IR and Raman reference for the MD spectra.

:func:`harmonic_analysis` relaxes a structure, builds the finite-difference Hessian
with :class:`ase.vibrations.Infrared` and, from the same displaced structures, the
derivatives of the dipole and of the polarizability along every mass-weighted normal
mode. It returns a :class:`HarmonicResult` with frequencies (cm⁻¹), IR intensities
(km/mol), Raman activities (Å⁴/amu) and depolarization ratios.
Related modules: the intensity formulas are in :mod:`.intensities`, the report
behind ``ase-mpnn harmonic STRUCTURE --model M`` in :mod:`.harmonic_report`, and the
classical initial conditions with exactly k_BT in every mode (for NVE runs whose dipole
spectra are compared with the harmonic intensities) in :mod:`ase_mpnn.md.normal_modes`.

Units and conventions
---------------------
* Normal mode k: unit-norm eigenvector e_k of the mass-weighted Hessian
  M^-1/2 H M^-1/2 (``HarmonicResult.mode_vectors``, shape (n_modes, N, 3)); normal
  coordinate Q_k = Σ_i √m_i e_k,i·(x_i − x_i⁰) in Å·√amu.
* Dipole derivative μ'_k = ∂μ/∂Q_k in e·Å per (Å·√amu), i.e. e/√amu.
  IR intensity (double-harmonic, integrated molar absorption coefficient)
  A_k = N_A |μ'_k|² / (12 ε₀ c²), in km/mol; 1 (D/Å)²/amu = 42.255 km/mol.
* Polarizability derivative α'_k = ∂α/∂Q_k in Å³ per (Å·√amu), i.e. Å²/√amu
  (the calculator's α in e²Å²/eV is multiplied by e²/(4πε₀) = 14.399645 eV·Å first).
  Its square has the units Å⁴/amu of the standard (Gaussian-style) Raman activity.
* Frequencies in cm⁻¹; imaginary frequencies are stored as negative numbers and
  flagged in ``HarmonicResult.imaginary``.

Finite-difference step: ``delta`` = 1e-3 Å by default, the physical limit δ → 0 to
well under 0.1 cm⁻¹ (central differences err by O(δ²), and float64 round-off at
1e-3 Å is ~1e-10 of a force constant). On a smooth surface the step hardly matters:
1e-2 Å changes the frequencies of the shipped water models by < 1 cm⁻¹, and the
B3LYP reference by < 0.01 cm⁻¹. A model whose frequencies move with the step has a
corner in its surface (see :mod:`ase_mpnn.testing`). Larger steps give the dropped
rigid-rotation modes of a molecule frequencies of a few tens of cm⁻¹ (the O(δ²)
error on anharmonic bonds), not a sign of a bad minimum. A float32 model has force
round-off ~1e-7 eV/Å, i.e. ~1e-4 eV/Å² at 1e-3 Å: harmless, but float64 (the default
of ``harmonic_report``) is cleaner.
"""

from __future__ import annotations

import csv
import os
import tempfile
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.optimize import BFGS
from ase.vibrations import Infrared

from ase_mpnn.model.properties import register_polarizability

from .intensities import ir_intensity_km_mol, raman_invariants
from .lineshapes import POLARIZABILITY_TO_A3

register_polarizability()

__all__ = [
    "HarmonicResult",
    "harmonic_analysis",
    # kept here for the old import paths; their homes are given in the module doc
    "harmonic_report",
    "ir_intensity_km_mol",
    "load_reference",
    "normal_mode_sampling",
    "raman_invariants",
    "reference_table",
]

# ω in 1/(ASE time unit) per cm⁻¹: ω = 2π c ν̃ with c in cm/s, then s → ASE time.
_OMEGA_PER_CM1: float = 2.0 * np.pi * units._c * 100.0 / units.second

# Perpendicular distance (Å) below which every atom is taken to lie on one line.
_LINEAR_TOLERANCE = 1e-3

# Above this |ν| a dropped "rigid-body" mode is suspicious (cm⁻¹).
_RIGID_WARN_CM1 = 100.0


@dataclass
class HarmonicResult:
    """Harmonic vibrational analysis of one relaxed structure.

    Per-mode arrays share the mode order: ascending signed frequency (imaginary modes,
    stored as negative numbers, first). Rigid-body modes are not included.

    Attributes:
        atoms: the (relaxed) structure, a copy without calculator or constraints.
        frequencies_cm1: (n_modes,) vibrational wavenumbers in cm⁻¹; an imaginary
            frequency ν i is stored as −ν and flagged in ``imaginary``.
        ir_intensities_km_mol: (n_modes,) IR intensities in km/mol, as computed by
            ``ase.vibrations.Infrared``; None when the calculator has no dipole.
        mode_vectors: (n_modes, N, 3) unit-norm mass-weighted eigenvectors e_k
            (Infrared's eigenvectors; Q_k = Σ_i √m_i e_k,i·Δx_i).
        dipole_derivatives: (n_modes, 3) μ'_k = ∂μ/∂Q_k in e/√amu; None without dipole.
        polarizability_derivatives: (n_modes, 3, 3) α'_k = ∂α/∂Q_k in Å²/√amu
            (symmetrized); None without polarizability or with ``raman=False``.
        raman_activities: (n_modes,) S_k = 45a² + 7γ² in Å⁴/amu, or None.
        depolarization_ratios: (n_modes,) ρ_k = 3γ²/(45a² + 4γ²), or None.
        imaginary: (n_modes,) True where the frequency is imaginary.
        dropped_frequencies_cm1: the rigid-body modes that were dropped (signed as
            above), for inspection.
        energy: potential energy at ``atoms`` (eV).
        max_force: largest atomic force at ``atoms`` (eV/Å).
        static_dipole: dipole at ``atoms`` (e·Å), or None.
        static_polarizability: polarizability at ``atoms`` (Å³), or None.
        optimizer_steps: BFGS steps taken (0 without optimization).
        delta, nfree: the finite-difference step (Å) and scheme.
        notes: human-readable warnings (imaginary modes, missing properties, …).
    """

    atoms: Atoms
    frequencies_cm1: np.ndarray
    ir_intensities_km_mol: np.ndarray | None
    mode_vectors: np.ndarray
    dipole_derivatives: np.ndarray | None
    polarizability_derivatives: np.ndarray | None
    raman_activities: np.ndarray | None
    depolarization_ratios: np.ndarray | None
    imaginary: np.ndarray
    dropped_frequencies_cm1: np.ndarray
    energy: float
    max_force: float
    static_dipole: np.ndarray | None = None
    static_polarizability: np.ndarray | None = None
    optimizer_steps: int = 0
    delta: float = 1e-3
    nfree: int = 2
    notes: list[str] = field(default_factory=list)

    @property
    def n_modes(self) -> int:
        """Number of vibrational modes (3N minus the rigid-body modes)."""
        return len(self.frequencies_cm1)

    @property
    def imaginary_frequencies_cm1(self) -> np.ndarray:
        """|ν| (cm⁻¹) of the imaginary vibrational modes (empty at a true minimum)."""
        return np.abs(self.frequencies_cm1[self.imaginary])

    @property
    def angular_frequencies(self) -> np.ndarray:
        """ω_k = 2πcν̃_k in 1/(ASE time unit) (multiply by ``units.fs`` for rad/fs).

        Imaginary modes give negative values: use them only after checking
        ``imaginary``.
        """
        return self.frequencies_cm1 * _OMEGA_PER_CM1

    def table(self) -> str:
        """Markdown table: mode, cm⁻¹, km/mol, Raman activity (Å⁴/amu), ρ.

        Imaginary frequencies are written as ``123.4i``; a missing quantity as ``–``.
        Notes (imaginary modes, missing dipole/polarizability) follow the table.
        """
        lines = [
            "| mode | ν (cm⁻¹) | IR (km/mol) | Raman activity (Å⁴/amu) | ρ |",
            "|---:|---:|---:|---:|---:|",
        ]
        for k in range(self.n_modes):
            nu = abs(self.frequencies_cm1[k])
            freq = f"{nu:.1f}i" if self.imaginary[k] else f"{nu:.1f}"
            lines.append(
                f"| {k + 1} | {freq} | {_fmt(self.ir_intensities_km_mol, k, '.2f')} | "
                f"{_fmt(self.raman_activities, k, '.3f')} | "
                f"{_fmt(self.depolarization_ratios, k, '.3f')} |"
            )
        if self.notes:
            lines.append("")
            lines.extend(f"Note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write one row per mode: frequency (cm⁻¹), imaginary flag, IR (km/mol),
        Raman activity (Å⁴/amu), ρ, and μ'_x,y,z (e/√amu). Missing values are empty."""
        header = [
            "mode",
            "frequency_cm1",
            "imaginary",
            "ir_intensity_km_mol",
            "raman_activity_A4_per_amu",
            "depolarization_ratio",
            "dmu_dQ_x_e_per_sqrt_amu",
            "dmu_dQ_y_e_per_sqrt_amu",
            "dmu_dQ_z_e_per_sqrt_amu",
        ]
        with open(path, "w", newline="") as fd:
            writer = csv.writer(fd)
            writer.writerow(header)
            for k in range(self.n_modes):
                mu = (
                    [repr(float(x)) for x in self.dipole_derivatives[k]]
                    if self.dipole_derivatives is not None
                    else ["", "", ""]
                )
                writer.writerow(
                    [
                        k + 1,
                        repr(float(self.frequencies_cm1[k])),
                        int(self.imaginary[k]),
                        _csv(self.ir_intensities_km_mol, k),
                        _csv(self.raman_activities, k),
                        _csv(self.depolarization_ratios, k),
                        *mu,
                    ]
                )


def _fmt(values: np.ndarray | None, k: int, spec: str) -> str:
    if values is None or not np.isfinite(values[k]):
        return "–"
    return format(float(values[k]), spec)


def _csv(values: np.ndarray | None, k: int) -> str:
    if values is None or not np.isfinite(values[k]):
        return ""
    return repr(float(values[k]))


# --------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------
class _Displacements(Infrared):
    """ASE's Infrared that also caches the polarizability and the positions.

    Reusing Infrared keeps the Hessian, eigenvectors and km/mol intensities exactly
    ASE's; the extra cache entries give the Raman tensors from the same displaced
    structures, and the stored positions let a kept ``workdir`` be checked against
    the current geometry instead of silently reusing stale results.
    """

    def __init__(self, atoms: Atoms, name: str, delta: float, nfree: int,
                 dipole: bool, polarizability: bool):
        super().__init__(atoms, name=name, delta=delta, nfree=nfree)
        self.ir = dipole
        self.want_polarizability = polarizability

    def calculate(self, atoms: Atoms, disp: Any) -> dict[str, np.ndarray]:
        results: dict[str, np.ndarray] = {
            "forces": np.asarray(self.calc.get_forces(atoms), dtype=float),
            "positions": atoms.positions.copy(),
        }
        if self.ir:
            results["dipole"] = np.asarray(self.calc.get_dipole_moment(atoms), dtype=float)
        if self.want_polarizability:
            results["polarizability"] = np.asarray(
                self.calc.get_property("polarizability", atoms), dtype=float
            ).reshape(3, 3)
        for key, value in results.items():
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"calculator returned non-finite {key} for displacement {disp.name}"
                )
        return results


def _one_pass(calc: Any, extra: Sequence[str]) -> Any:
    """Let an MPNNCalculator compute dipole/polarizability in the forces pass.

    Without this every displacement costs three forward passes (forces, dipole,
    polarizability); the calculator's ``computing`` request does it for the block.
    Other calculators are left alone.
    """
    if not extra or not callable(getattr(calc, "computing", None)):
        return nullcontext()
    return calc.computing(*extra)


def _supports(calc: Any, atoms: Atoms, name: str) -> bool:
    """True if ``calc`` returns property ``name`` for ``atoms`` (probed once)."""
    implemented = getattr(calc, "implemented_properties", None)
    if implemented is not None and name not in implemented:
        return False
    try:
        if name == "dipole":
            value = calc.get_dipole_moment(atoms)
        else:
            value = calc.get_property(name, atoms)
    except (PropertyNotImplementedError, NotImplementedError, AttributeError):
        return False
    return value is not None


def _n_rigid_modes(atoms: Atoms) -> int:
    """Rigid-body modes: 3 (periodic), 5 (linear molecule), 6 (other molecules).

    A molecule is linear when every atom lies within 1e-3 Å of one straight line.
    """
    n = len(atoms)
    if atoms.pbc.any():
        return 3
    if n <= 2:
        return 3 * n - 1 if n == 2 else 3
    x = atoms.positions - atoms.positions.mean(axis=0)
    axis = np.linalg.svd(x, full_matrices=False)[2][0]
    perpendicular = x - np.outer(x @ axis, axis)
    return 5 if np.max(np.linalg.norm(perpendicular, axis=1)) < _LINEAR_TOLERANCE else 6


def _signed_cm1(hnu: np.ndarray) -> np.ndarray:
    """Complex ħω (eV) from ASE → real cm⁻¹ with imaginary ones negative."""
    hnu = np.asarray(hnu, dtype=complex)
    imag = np.abs(hnu.imag) > np.abs(hnu.real)
    return np.where(imag, -np.abs(hnu.imag), hnu.real) / units.invcm


def _check_cache(ir: _Displacements, reference: Atoms, keys: Sequence[str]) -> None:
    """Every cached displacement must hold ``keys`` and this geometry's positions.

    A kept ``workdir`` is reused by ASE without any check; a cache from another
    structure, step or property set would silently give wrong spectra.
    """
    for disp in ir.displacements():
        entry = ir.cache[disp.name]
        missing = [k for k in ("positions", *keys) if k not in entry]
        if missing:
            raise RuntimeError(
                f"the displacement cache in {ir.name} lacks {missing} for {disp.name}: "
                "it was written by another run; use an empty workdir"
            )
        expected = reference.positions.copy()
        if disp.sign != 0:
            expected[disp.a, disp.i] += disp.step
        if not np.allclose(np.asarray(entry["positions"]), expected, rtol=0, atol=1e-9):
            raise RuntimeError(
                f"the displacement cache in {ir.name} belongs to another geometry or "
                f"delta ({disp.name}); use an empty workdir"
            )


def _cartesian_derivatives(ir: _Displacements, key: str) -> np.ndarray:
    """Central-difference ∂X/∂x_j, shape (3N, *X.shape), with ASE's stencils.

    nfree=2: (X₊ − X₋)/(2δ); nfree=4: (8(X₊ − X₋) − (X₊₊ − X₋₋))/(12δ) — the same
    stencils Infrared uses for the Hessian and dipole.
    """
    steps = [-1, 1] if ir.nfree == 2 else [-2, -1, 1, 2]
    rows = []
    for a, i in ir._iter_ai():
        x = {s: np.asarray(ir.cache[ir._disp(a, i, s).name][key], dtype=float) for s in steps}
        if ir.nfree == 2:
            rows.append((x[1] - x[-1]) / (2 * ir.delta))
        else:
            rows.append((8 * (x[1] - x[-1]) - (x[2] - x[-2])) / (12 * ir.delta))
    return np.array(rows)


def harmonic_analysis(
    atoms: Atoms,
    calculator: Any = None,
    *,
    optimize: bool = True,
    fmax: float = 1e-4,
    delta: float = 1e-3,
    nfree: int = 2,
    raman: bool = True,
    workdir: str | os.PathLike | None = None,
    max_steps: int = 1000,
) -> HarmonicResult:
    """Harmonic frequencies, IR intensities and Raman activities of a structure.

    Steps: (1) copy ``atoms`` (constraints removed: the full Hessian of all atoms is
    built) and, with ``optimize``, relax the positions with BFGS to ``fmax`` (fixed
    cell); (2) run :class:`ase.vibrations.Infrared` (±``delta`` Å per Cartesian
    coordinate, ``nfree`` = 2 or 4) in a temporary cache directory, or in ``workdir``,
    which is kept; (3) drop the rigid-body modes — the 6 (5 for a linear molecule,
    3 for a periodic cell) with the smallest |ν| — and flag imaginary ones;
    (4) project the dipole and polarizability derivatives on the mass-weighted modes.

    Formulas (mode k, unit-norm mass-weighted eigenvector e_k, x_j the Cartesian
    coordinates, m_j the mass of atom of coordinate j, Q_k = Σ_j √m_j e_kj Δx_j):

    * μ'_k = ∂μ/∂Q_k = Σ_j (∂μ/∂x_j) e_kj / √m_j                  (e/√amu)
    * IR:  A_k = N_A |μ'_k|² / (12 ε₀ c²)                           (km/mol)
      (the stored ``ir_intensities_km_mol`` are Infrared's own numbers; they agree
      with this formula to the 5 digits of ASE's 42.255 factor)
    * α'_k = 14.399645 · Σ_j (∂α/∂x_j) e_kj / √m_j, symmetrized    (Å²/√amu)
    * a_k = tr α'_k / 3,  γ_k² = (3/2) β_k:β_k  with  β_k = α'_k − a_k I
    * Raman activity S_k = 45 a_k² + 7 γ_k²                         (Å⁴/amu)
    * depolarization ratio ρ_k = 3 γ_k² / (45 a_k² + 4 γ_k²)        (linear polarization)

    Args:
        atoms: the structure (not modified).
        calculator: ASE calculator; default ``atoms.calc``.
        optimize: relax first (on the copy).
        fmax: BFGS convergence on the largest atomic force (eV/Å).
        delta: finite-difference step (Å).
        nfree: 2 (central differences) or 4 (five-point stencil).
        raman: compute Raman tensors when the calculator implements "polarizability"
            (silently frequencies + IR only, with a note, when it does not).
        workdir: keep ASE's displacement cache there (reused by a later call with the
            same geometry; a cache from another geometry raises RuntimeError).
        max_steps: BFGS step limit; not converging gives a warning and a note.

    Returns:
        :class:`HarmonicResult`.

    Raises:
        ValueError: no calculator, no atoms, non-finite positions or calculator
            results, zero masses, invalid ``nfree``/``delta``/``fmax``, or a
            structure without vibrational modes (one atom).

    A calculator without dipole gives frequencies only: ``ir_intensities_km_mol`` and
    ``dipole_derivatives`` are None and ``notes`` says why (energy-only models can
    still be checked against reference frequencies).
    """
    if not isinstance(atoms, Atoms):
        raise TypeError(f"atoms must be an ase.Atoms, got {type(atoms).__name__}")
    calc = calculator if calculator is not None else atoms.calc
    if calc is None:
        raise ValueError("no calculator: pass calculator=... or attach one to atoms.calc")
    if len(atoms) == 0:
        raise ValueError("atoms is empty: nothing to analyse")
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError("atoms.positions contain NaN or inf")
    if nfree not in (2, 4):
        raise ValueError(f"nfree must be 2 or 4, got {nfree}")
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive step in Å, got {delta}")
    if optimize and not (np.isfinite(fmax) and fmax > 0):
        raise ValueError(f"fmax must be positive (eV/Å), got {fmax}")
    masses = atoms.get_masses()
    if np.any(~np.isfinite(masses)) or np.any(masses <= 0):
        raise ValueError("every atom needs a positive mass (atoms.set_masses)")

    work = atoms.copy()
    work.constraints = []
    work.calc = calc
    n_rigid = _n_rigid_modes(work)
    if 3 * len(work) - n_rigid <= 0:
        raise ValueError(f"{work.get_chemical_formula()} has no vibrational modes")

    notes: list[str] = []
    steps = 0
    if optimize:
        opt = BFGS(work, logfile=None)
        converged = opt.run(fmax=fmax, steps=max_steps)
        steps = int(opt.nsteps)
        if not converged:
            msg = f"BFGS did not reach fmax {fmax:g} eV/Å in {max_steps} steps"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            notes.append(msg)
        # the optimized geometry may have become (non-)linear
        n_rigid = _n_rigid_modes(work)

    forces = np.asarray(work.get_forces(), dtype=float)
    if not np.all(np.isfinite(forces)):
        raise ValueError("calculator returned non-finite forces")
    energy = float(work.get_potential_energy())
    max_force = float(np.max(np.linalg.norm(forces, axis=1)))

    has_dipole = _supports(calc, work, "dipole")
    has_pol = raman and _supports(calc, work, "polarizability")
    if not has_dipole:
        notes.append("calculator has no dipole: IR intensities not computed")
    if raman and not has_pol:
        notes.append("calculator has no polarizability: Raman activities not computed")
    static_dipole = np.asarray(calc.get_dipole_moment(work), float) if has_dipole else None
    static_pol = (
        np.asarray(calc.get_property("polarizability", work), float).reshape(3, 3)
        * POLARIZABILITY_TO_A3
        if has_pol
        else None
    )

    extra = (["dipole"] if has_dipole else []) + (["polarizability"] if has_pol else [])
    reference = work.copy()
    with tempfile.TemporaryDirectory(prefix="ase_mpnn_harmonic_") as tmp, _one_pass(calc, extra):
        base = Path(workdir) if workdir is not None else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        ir = _Displacements(work, name=str(base / "vib"), delta=delta, nfree=nfree,
                            dipole=has_dipole, polarizability=has_pol)
        ir.run()
        _check_cache(ir, reference, ["forces", *extra])
        if has_dipole:
            ir.read()  # Infrared.read: Hessian, modes, ħω and (D/Å)²/amu intensities
        else:
            super(Infrared, ir).read()  # plain Vibrations.read: no dipoles needed
        if not np.all(np.isfinite(ir.H)):
            raise ValueError("non-finite Hessian (calculator forces)")
        dmu_dx = _cartesian_derivatives(ir, "dipole") if has_dipole else None
        dalpha_dx = _cartesian_derivatives(ir, "polarizability") if has_pol else None

    freq_all = _signed_cm1(ir.hnu)
    dropped = np.sort(np.argsort(np.abs(freq_all), kind="stable")[:n_rigid])
    keep = np.setdiff1d(np.arange(len(freq_all)), dropped)
    freqs = freq_all[keep]
    imaginary = freqs < 0
    modes = ir.modes[keep]  # (n_modes, 3N), unit norm, mass-weighted
    n_atoms = len(work)
    # ∂x_j/∂Q_k = e_kj / √m_j
    dx_dq = modes * np.repeat(work.get_masses() ** -0.5, 3)[None, :]

    ir_km_mol = dipole_d = pol_d = activities = rho = None
    if has_dipole:
        prefactor = ir.intensity_prefactor("km/mol")[0]
        ir_km_mol = np.asarray(ir.intensities, float)[keep] * prefactor
        dipole_d = dx_dq @ dmu_dx  # (n_modes, 3), e/√amu
    if has_pol:
        pol_d = np.einsum("kj,jab->kab", dx_dq, dalpha_dx) * POLARIZABILITY_TO_A3
        # the static polarizability is symmetric; averaging removes finite-difference
        # and float noise in the off-diagonal pairs
        pol_d = 0.5 * (pol_d + np.swapaxes(pol_d, 1, 2))
        _, _, activities, rho = raman_invariants(pol_d)

    dropped_freqs = freq_all[dropped]
    if np.any(imaginary):
        listed = ", ".join(f"{abs(f):.1f}i" for f in freqs[imaginary])
        msg = (f"{int(imaginary.sum())} imaginary vibrational frequencies ({listed} cm⁻¹): "
               "not a minimum (relax further or check the structure)")
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        notes.append(msg)
    biggest_dropped = float(np.max(np.abs(dropped_freqs))) if len(dropped_freqs) else 0.0
    smallest_kept = float(np.min(np.abs(freqs)))
    if biggest_dropped > 0.5 * smallest_kept:
        msg = (f"dropped rigid-body modes (up to {biggest_dropped:.1f} cm⁻¹) are not well "
               f"separated from the lowest vibration ({smallest_kept:.1f} cm⁻¹): the mode "
               "assignment may be wrong; check the relaxation and delta")
    elif biggest_dropped > _RIGID_WARN_CM1:
        msg = (f"dropped rigid-body modes reach {biggest_dropped:.1f} cm⁻¹: large "
               "finite-difference or relaxation error; check fmax and delta")
    else:
        msg = ""
    if msg:
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        notes.append(msg)

    result_atoms = work.copy()  # copy() drops the calculator
    return HarmonicResult(
        atoms=result_atoms,
        frequencies_cm1=freqs,
        ir_intensities_km_mol=ir_km_mol,
        mode_vectors=modes.reshape(len(keep), n_atoms, 3),
        dipole_derivatives=dipole_d,
        polarizability_derivatives=pol_d,
        raman_activities=activities,
        depolarization_ratios=rho,
        imaginary=imaginary,
        dropped_frequencies_cm1=dropped_freqs,
        energy=energy,
        max_force=max_force,
        static_dipole=static_dipole,
        static_polarizability=static_pol,
        optimizer_steps=steps,
        delta=float(delta),
        nfree=int(nfree),
        notes=notes,
    )


# The report and the initial conditions moved to their own modules; these names keep
# the old import paths (``from ase_mpnn.spectra.harmonic import harmonic_report``) working.
from ..md.normal_modes import normal_mode_sampling  # noqa: E402
from .harmonic_report import harmonic_report, load_reference, reference_table  # noqa: E402
