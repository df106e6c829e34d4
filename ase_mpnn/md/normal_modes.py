"""Classical initial conditions from a harmonic analysis: exactly k_BT in every mode.

A classical NVE run started with :func:`normal_mode_sampling` has, mode by mode, the
canonical ⟨Q_k²⟩ = k_BT/ω_k², so the band areas of its dipole spectrum equal the
double-harmonic intensities of :func:`ase_mpnn.spectra.harmonic.harmonic_analysis`
(the low-temperature check of the MD spectra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms, units

if TYPE_CHECKING:
    from ..spectra.harmonic import HarmonicResult

__all__ = ["normal_mode_sampling"]


def _rigid_body_basis(atoms: Atoms) -> np.ndarray:
    """Orthonormal mass-weighted translation (+ rotation for molecules) vectors, (r, 3N)."""
    m = atoms.get_masses()
    sqm = np.sqrt(m)[:, None]
    vectors = [np.zeros((len(atoms), 3)) for _ in range(3)]
    for c in range(3):
        vectors[c][:, c] = 1.0
    vectors = [v * sqm for v in vectors]
    if not atoms.pbc.any():
        r = atoms.positions - atoms.get_center_of_mass()
        for c in range(3):
            axis = np.zeros(3)
            axis[c] = 1.0
            vectors.append(np.cross(axis, r) * sqm)
    mat = np.array([v.ravel() for v in vectors])
    _, s, vt = np.linalg.svd(mat, full_matrices=False)
    # a linear molecule has a zero rotation about its axis: drop null directions
    return vt[s > 1e-8 * s.max()]


def normal_mode_sampling(
    result: HarmonicResult,
    temperature_K: float,
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Classical initial conditions with exactly k_BT in every vibrational mode.

    For each mode k (angular frequency ω_k, random phase φ_k uniform in [0, 2π)):

        Q_k = √(2 k_B T) / ω_k · cos φ_k,    Q̇_k = −√(2 k_B T) · sin φ_k,

    so ½Q̇_k² + ½ω_k²Q_k² = k_BT for every k, and x = x⁰ + M^-1/2 Σ_k e_k Q_k,
    v = M^-1/2 Σ_k e_k Q̇_k (+ a small rigid rotation, below) around the relaxed
    geometry. Q_k and Q̇_k are the projections e_k·√m Δx and e_k·√m v.

    Purpose: a classical NVE run started here is a deterministic (up to the phases)
    low-temperature trajectory whose time-averaged ⟨Q_k²⟩ = k_BT/ω_k² equals the
    canonical average of each mode, so the band areas of its dipole spectrum equal
    the thermal (double-harmonic) ones without the exponential scatter of the mode
    energies a Maxwell–Boltzmann draw gives. It is used to check MD IR intensities
    against the harmonic km/mol within 10 %.

    Limits: it is a microcanonical trajectory at E = E⁰ + n_modes·k_BT (n_modes =
    3N − 6 for a nonlinear molecule), not a canonical ensemble; anharmonic coupling
    exchanges energy between modes during the run (keep T low, tens to a few hundred
    K, for the 10 % comparison); Fermi resonances and large-amplitude motions are
    not represented. The mode vectors are first made exactly orthogonal to the
    rigid-body motions (finite-difference Hessians mix them slightly; the energies
    are exact for these cleaned vectors, and for ``result.mode_vectors`` within that
    mixing, ≲ 1e-4 for water). The angular momentum is zero about the centre of
    mass of the displaced geometry: the vibration–rotation coupling that this
    removes (second order in the amplitudes) goes into a small rigid-rotation
    velocity (for water at 300 K its kinetic energy is ≈ 0.2 % of k_BT), not into
    the modes. For a periodic cell only the linear momentum is zero; for a linear
    molecule the angular momentum about its axis (degenerate bends) is left as is.

    Args:
        result: a :class:`HarmonicResult` without imaginary modes.
        temperature_K: temperature in K (≥ 0).
        seed: seed or ``numpy.random.Generator`` for the phases (same seed, same
            output).

    Returns:
        (positions, velocities): (N, 3) in Å and in ASE velocity units
        (Å per ASE time unit), ready for ``atoms.set_positions`` and
        ``atoms.set_velocities``. Multiply the velocities by ``ase.units.fs`` for Å/fs.

    Example:
        >>> pos, vel = normal_mode_sampling(result, 100.0, seed=1)
        >>> atoms = result.atoms.copy(); atoms.calc = calc
        >>> atoms.positions = pos; atoms.set_velocities(vel)
    """
    if not (np.isfinite(temperature_K) and temperature_K >= 0):
        raise ValueError(f"temperature_K must be ≥ 0, got {temperature_K}")
    if np.any(result.imaginary):
        raise ValueError(
            "the structure has imaginary modes "
            f"({result.imaginary_frequencies_cm1} cm⁻¹): no harmonic energy can be assigned"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    atoms = result.atoms
    n_atoms = len(atoms)
    m = atoms.get_masses()
    inv_sqrt_m = np.repeat(m**-0.5, 3)

    # Exact orthogonality to rigid-body motion keeps the centre of mass and the
    # (linearized) angular momentum zero; Löwdin orthonormalization keeps each vector
    # as close as possible to the original mode.
    modes = result.mode_vectors.reshape(result.n_modes, 3 * n_atoms)
    rigid = _rigid_body_basis(atoms)
    modes = modes - (modes @ rigid.T) @ rigid
    overlap = modes @ modes.T
    w, v = np.linalg.eigh(overlap)
    modes = (v @ np.diag(w**-0.5) @ v.T) @ modes

    kT = units.kB * temperature_K
    omega = result.angular_frequencies
    phase = rng.uniform(0.0, 2.0 * np.pi, size=result.n_modes)
    q = np.sqrt(2.0 * kT) / omega * np.cos(phase)
    qdot = -np.sqrt(2.0 * kT) * np.sin(phase)

    positions = atoms.positions + (inv_sqrt_m * (q @ modes)).reshape(n_atoms, 3)
    # Velocities: Q̇_k = e_k·(√m v) exactly for every mode, zero linear momentum, and
    # zero angular momentum about the centre of mass of the *displaced* geometry. At
    # finite amplitude the last condition is not implied by orthogonality to the
    # equilibrium rotations (vibration–rotation coupling, second order in the
    # amplitudes); the 3N linear conditions fix v uniquely, the small remainder going
    # into rigid-rotation components rather than changing any mode's energy.
    sqrt_m = np.repeat(np.sqrt(m), 3)
    rows = [modes * sqrt_m[None, :]]
    trans = np.zeros((3, 3 * n_atoms))
    for c in range(3):
        trans[c, c::3] = m
    rows.append(trans)
    n_rot = 3 * n_atoms - result.n_modes - 3
    if n_rot > 0:
        r = positions - (m @ positions) / m.sum()
        # L = Σ_i m_i r_i × v_i = Σ_i m_i [r_i]ₓ v_i, with [r]ₓ the cross-product matrix
        lrows = np.zeros((3, 3 * n_atoms))
        for i in range(n_atoms):
            x, y, z = r[i]
            lrows[:, 3 * i:3 * i + 3] = m[i] * np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
        if n_rot == 2:
            # linear molecule: constrain the two components perpendicular to the axis;
            # the axial one is the vibrational angular momentum of the degenerate bends
            x0 = atoms.positions - atoms.get_center_of_mass()
            axis = np.linalg.svd(x0, full_matrices=False)[2][0]
            perp = np.linalg.svd(np.eye(3) - np.outer(axis, axis))[0][:, :2].T
            lrows = perp @ lrows
        rows.append(lrows)
    matrix = np.vstack(rows)
    rhs = np.concatenate([qdot, np.zeros(matrix.shape[0] - result.n_modes)])
    if matrix.shape[0] != 3 * n_atoms:
        raise ValueError(
            f"{result.n_modes} modes do not match {n_atoms} atoms and {n_rot + 3} rigid-body modes"
        )
    try:
        v_flat = np.linalg.solve(matrix, rhs)
    except np.linalg.LinAlgError as err:
        msg = f"temperature {temperature_K} K: displacements too large ({err})"
        raise ValueError(msg) from None
    velocities = v_flat.reshape(n_atoms, 3)
    return positions, velocities
