"""Double-harmonic IR intensities and Raman invariants along normal modes.

* Dipole derivative μ'_k = ∂μ/∂Q_k in e·Å per (Å·√amu), i.e. e/√amu. IR intensity
  (integrated molar absorption coefficient) A_k = N_A |μ'_k|² / (12 ε₀ c²), in km/mol;
  1 (D/Å)²/amu = 42.255 km/mol.
* Polarizability derivative α'_k = ∂α/∂Q_k in Å²/√amu; its square has the units Å⁴/amu
  of the standard (Gaussian-style) Raman activity.
"""

from __future__ import annotations

import numpy as np
from ase import units

__all__ = ["ir_intensity_km_mol", "raman_invariants"]


def ir_intensity_km_mol(dipole_derivatives: np.ndarray) -> np.ndarray:
    """Double-harmonic IR intensities from dipole derivatives along normal modes.

    A_k = N_A |∂μ/∂Q_k|² / (12 ε₀ c²)   (SI, m/mol), returned in km/mol.

    Args:
        dipole_derivatives: μ'_k, shape (..., 3), in e/√amu (e·Å per Å·√amu).

    Returns:
        Intensities, shape (...), in km/mol. 1 (D/Å)²/amu gives 42.255 km/mol.
    """
    mu = np.asarray(dipole_derivatives, dtype=float)
    mu_si = mu * units._e / np.sqrt(units._amu)  # C/√kg
    a_si = units._Nav * np.sum(mu_si**2, axis=-1) / (12.0 * units._eps0 * units._c**2)
    return a_si / 1000.0  # m/mol → km/mol


def raman_invariants(
    polarizability_derivatives: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raman invariants, activities and depolarization ratios from α'_k.

    With α'_k = ∂α/∂Q_k (symmetric 3×3, Å²/√amu):

    * isotropic part      a_k  = tr(α'_k) / 3
    * anisotropy          γ_k² = (3/2) β_k:β_k,  β_k = α'_k − a_k I
      (equivalently ½[(xx−yy)² + (yy−zz)² + (zz−xx)² + 6(xy² + yz² + zx²)])
    * Raman activity      S_k  = 45 a_k² + 7 γ_k²                 (Å⁴/amu)
    * depolarization      ρ_k  = 3 γ_k² / (45 a_k² + 4 γ_k²)      (0 … 3/4)

    A rod-like α' = diag(1, 0, 0) gives γ² = 1, ρ = 1/3; an isotropic α' gives ρ = 0.
    (Writing β:β for γ² in the orientational averages is off by the factor 3/2.)

    Args:
        polarizability_derivatives: shape (..., 3, 3), Å²/√amu.

    Returns:
        (a, gamma2, activity, rho), each of shape (...). ρ is NaN for a mode with
        a = γ = 0 (Raman inactive: the ratio is undefined).
    """
    alpha = np.asarray(polarizability_derivatives, dtype=float)
    a = np.trace(alpha, axis1=-2, axis2=-1) / 3.0
    beta = alpha - a[..., None, None] * np.eye(3)
    gamma2 = 1.5 * np.sum(beta * beta, axis=(-2, -1))
    activity = 45.0 * a**2 + 7.0 * gamma2
    denom = 45.0 * a**2 + 4.0 * gamma2
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, 3.0 * gamma2 / np.where(denom > 0, denom, 1.0), np.nan)
    return a, gamma2, activity, rho
