"""Smoothness checks: force constants independent of the step, no spikes in the curvature.

Spectroscopy needs smooth second derivatives of the potential surface: harmonic
frequencies, phonons and vibrational spectra are statements about the curvature.
A model with a corner (a norm of a vector that can vanish, ``abs``, ``max``, a clamp
on a learned feature) gives force constants that depend on the finite-difference
step, and spikes in d²E/ds² along a scan. The functions here measure both:

* :func:`force_constants_by_step`: the force constant along a direction from central
  differences of the forces at steps 1e-5 … 1e-2 Å. For a smooth (C⁴) surface
  k(δ) = k(0) + O(δ²); a corner at the reference geometry makes k(δ) grow like 1/δ.
* :func:`curvature_scan`: d²E/ds² along a coordinate on a fine grid, from central
  differences of the forces, and its deviation from a smooth polynomial fit.
* :func:`assert_smooth`: both, with tolerances (see its docstring for why).
* :func:`symmetric_scans`: the geometries where equivariant features vanish by
  symmetry, which is where corners hide: water (C2v) stretch and bend, CO2 bend,
  CH4 breathing, and one atom displaced in ideal fcc copper.

Everything runs in float64 and evaluates many displaced structures in one batched
call. Example, for a new architecture::

    from ase_mpnn.testing import assert_smooth, symmetric_scans
    model = build_model("myarch", ["H", "C", "O", "Cu"]).double()
    for name, (atoms, direction) in symmetric_scans().items():
        assert_smooth(model, atoms, direction, name=name)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, molecule

from ..model.graph import build_graph

__all__ = [
    "CurvatureScan",
    "assert_smooth",
    "curvature_scan",
    "force_constants_by_step",
    "model_forces",
    "symmetric_scans",
]

# Finite-difference steps (Å) over which a smooth force constant must not change.
STEPS = (1e-5, 1e-4, 1e-3, 1e-2)


def model_forces(model: torch.nn.Module, frames: list[Atoms], batch_size: int = 256) -> np.ndarray:
    """Forces (n_frames, n_atoms, 3) in eV/Å from a model evaluated in float64 batches."""
    dtype = next(model.parameters()).dtype
    out = []
    for start in range(0, len(frames), batch_size):
        chunk = frames[start:start + batch_size]
        graph = build_graph(chunk, model.cutoff, dtype=dtype)
        forces = model(graph, ("energy", "forces"))["forces"].detach().cpu().double().numpy()
        out.append(forces.reshape(len(chunk), -1, 3))
    return np.concatenate(out)


def _displaced(atoms: Atoms, direction: np.ndarray, amounts: np.ndarray) -> list[Atoms]:
    frames = []
    for s in amounts:
        frame = atoms.copy()
        frame.positions = atoms.positions + s * direction
        frames.append(frame)
    return frames


def _unit(direction: np.ndarray, atoms: Atoms) -> np.ndarray:
    direction = np.asarray(direction, dtype=float).reshape(len(atoms), 3)
    norm = np.linalg.norm(direction)
    if norm == 0:
        raise ValueError("direction is zero")
    return direction / norm


def force_constants_by_step(
    model: torch.nn.Module, atoms: Atoms, direction: np.ndarray, steps=STEPS
) -> np.ndarray:
    """k(δ) = −[F(x + δd) − F(x − δd)]·d / 2δ (eV/Å²) for each step δ (Å).

    ``direction`` d is any (N, 3) array (normalised here). At a geometry where the
    surface is smooth, k(δ) tends to the second derivative d²E/ds² as δ → 0 with an
    error that shrinks like δ².
    """
    d = _unit(direction, atoms)
    steps = np.asarray(steps, dtype=float)
    frames = _displaced(atoms, d, np.concatenate([steps, -steps]))
    f = np.einsum("kia,ia->k", model_forces(model, frames), d)
    n = len(steps)
    return -(f[:n] - f[n:]) / (2 * steps)


@dataclass
class CurvatureScan:
    """d²E/ds² along a scan s ∈ [−amplitude, amplitude] and its smooth fit.

    Attributes:
        s: scan coordinates (Å).
        curvature: d²E/ds² (eV/Å²) from central differences of the forces.
        fit: a degree-``degree`` polynomial fit of ``curvature``.
        rms_residual: RMS of curvature − fit (eV/Å²).
        max_residual: largest |curvature − fit| (eV/Å²).
    """

    s: np.ndarray
    curvature: np.ndarray
    fit: np.ndarray
    rms_residual: float
    max_residual: float


def curvature_scan(
    model: torch.nn.Module,
    atoms: Atoms,
    direction: np.ndarray,
    amplitude: float = 0.05,
    spacing: float = 5e-4,
    degree: int = 8,
) -> CurvatureScan:
    """d²E/ds² along ``direction`` on a grid of ``spacing`` Å, and a smooth fit to it.

    The curvature at s is −[F(s + h) − F(s − h)]·d / 2h with h = ``spacing``. A
    smooth surface gives a curve that a low-degree polynomial follows to round-off
    (plus h² truncation terms, smooth themselves); a corner anywhere on the scan
    shows up as a spike of height ~ (jump in the slope)/h in the residual.
    """
    d = _unit(direction, atoms)
    n = int(round(amplitude / spacing))
    grid = np.arange(-n - 1, n + 2) * spacing
    f = np.einsum("kia,ia->k", model_forces(model, _displaced(atoms, d, grid)), d)
    s = grid[1:-1]
    curvature = -(f[2:] - f[:-2]) / (2 * spacing)
    x = s / amplitude  # well conditioned on [−1, 1]
    fit = np.polynomial.chebyshev.chebval(x, np.polynomial.chebyshev.chebfit(x, curvature, degree))
    residual = curvature - fit
    return CurvatureScan(s, curvature, fit, float(np.sqrt(np.mean(residual**2))),
                         float(np.max(np.abs(residual))))


def assert_smooth(
    model: torch.nn.Module,
    atoms: Atoms,
    direction: np.ndarray,
    name: str = "",
    step_rtol: float = 1e-4,
    wide_step_rtol: float = 1e-2,
    scan_rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Raise AssertionError if the surface has a corner near ``atoms`` along ``direction``.

    Both criteria are relative to the curvature scale c = max|d²E/ds²| on the scan:

    1. Step independence. For a smooth surface k(δ) − k(0) ≈ k⁽⁴⁾δ²/6, below
       (δ/L)² k for features that vary on a length L. With L ≥ 0.2 Å that is
       ≤ 2.5e-5 at δ = 1e-3 Å and ≤ 2.5e-3 at δ = 1e-2 Å, so k at 1e-4 and 1e-3 Å must
       agree with k at 1e-5 Å within ``step_rtol``·c and k at 1e-2 Å within
       ``wide_step_rtol``·c. Round-off at δ = 1e-5 Å in float64 is ~1e-10 c. A corner
       at the geometry makes k grow like 1/δ (a factor 1000 over these steps).
    2. No spikes: along ±0.05 Å on a 0.0005 Å grid the curvature deviates from a
       smooth degree-8 polynomial fit by at most ``scan_rtol``·c (max, not RMS). A
       smooth curve on this scale is followed to ~1e-8 c; a corner where a feature
       passes through zero anywhere on the scan adds a spike of (slope jump)/h.

    ``atol`` (eV/Å²) keeps directions with vanishing curvature from demanding
    relative agreement of round-off.
    """
    label = f"{name}: " if name else ""
    scan = curvature_scan(model, atoms, direction)
    scale = float(np.max(np.abs(scan.curvature)))
    k = force_constants_by_step(model, atoms, direction)
    steps_text = ", ".join(f"{k_:.6g} (δ={d:g} Å)" for k_, d in zip(k, STEPS))
    for k_step, step in zip(k[1:], STEPS[1:]):
        limit = (wide_step_rtol if step > 1e-3 else step_rtol) * scale + atol
        assert abs(k_step - k[0]) <= limit, (
            f"{label}force constant depends on the finite-difference step: {steps_text}; "
            f"at δ={step:g} Å it is off by {abs(k_step - k[0]):.3g} eV/Å² > {limit:.3g} "
            "(a corner in the potential surface)"
        )
    limit = scan_rtol * scale + atol
    worst = float(scan.s[np.argmax(np.abs(scan.curvature - scan.fit))])
    assert scan.max_residual <= limit, (
        f"{label}d²E/ds² has spikes: deviation from a smooth fit up to {scan.max_residual:.3g} "
        f"eV/Å² at s = {worst:+.4f} Å (curvature scale {scale:.3g} eV/Å², limit {limit:.3g})"
    )


def _water() -> tuple[Atoms, np.ndarray, np.ndarray]:
    atoms = molecule("H2O")  # C2v, O on the axis
    o, h1, h2 = atoms.positions
    u1, u2 = (h1 - o) / np.linalg.norm(h1 - o), (h2 - o) / np.linalg.norm(h2 - o)
    stretch = np.array([np.zeros(3), u1, u2])
    normal = np.cross(u1, u2)
    bend = np.array([np.zeros(3), np.cross(normal, u1), -np.cross(normal, u2)])
    return atoms, stretch, bend


def symmetric_scans() -> dict[str, tuple[Atoms, np.ndarray]]:
    """Symmetric geometries and symmetric coordinates where features vanish.

    Returns {name: (atoms, direction)}: water symmetric stretch and bend (C2v), the
    CO2 bend (the carbon moves off the axis of D∞h), CH4 breathing (Td), and one atom
    of ideal fcc copper displaced along x (every atom's vectors vanish in the ideal
    crystal). Species used: H, C, O, Cu.
    """
    water, stretch, bend = _water()
    co2 = molecule("CO2")
    co2_bend = np.zeros((3, 3))
    co2_bend[0] = [0.0, 1.0, 0.0]  # the carbon (index 0) moves perpendicular to the axis
    methane = molecule("CH4")
    breathing = methane.positions - methane.positions[0]
    copper = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    displaced = np.zeros((len(copper), 3))
    displaced[0, 0] = 1.0
    return {
        "water stretch": (water, stretch),
        "water bend": (water, bend),
        "CO2 bend": (co2, co2_bend),
        "CH4 breathing": (methane, breathing),
        "fcc Cu, one atom along x": (copper, displaced),
    }
