"""Quantum correction factors for classical (or Kubo-transformed) line shapes.

Let x = βħω = h c ν̃ / (k_B T) with ν̃ in cm⁻¹: h c / k_B = 1.438777 cm·K (the second
radiation constant), so x ≈ 14.39 at 3000 cm⁻¹ and 300 K.

The quantum absorption cross-section is

    σ(ω) = π ω (1 − e^{−x}) / (3 ε0 c ħ) · I_qm(ω),   I_qm(ω) = (1/2π) ∫ ⟨μ(0)·μ(t)⟩ e^{−iωt} dt,

and the classical ACF only gives I_cl, an even function of ω. The usual
approximations I_qm ≈ Q(x) I_cl with Q(x)/Q(−x) = e^{x} (detailed balance):

* ``"harmonic"``: Q = x / (1 − e^{−x}); exact for a harmonic system with a linear
  dipole. Inserted above it gives σ = π β ω² I_cl / (3 ε0 c): the classical formula
  itself, i.e. a multiplier of 1 on the classical spectrum.
* ``"standard"``: Q = 2 / (1 + e^{−x}); multiplier (2/x) tanh(x/2) ≤ 1.
* ``"schofield"``: Q = e^{x/2} (Schofield; see Ramírez, López-Ciudad, Kumar and Marx,
  J. Chem. Phys. 121, 3973 (2004)); multiplier (2/x) sinh(x/2) ≥ 1.

All Q → 1 as x → 0 (classical limit). A Kubo-transformed correlation function (RPMD,
TRPMD) already has the quantum relation I_qm = Q_harmonic · I_Kubo exactly, so no
factor may be applied to it: the β ω² formula is then exact.
"""

from __future__ import annotations

import numpy as np
import scipy.constants as sc

#: h c / k_B in cm·K (second radiation constant c2 = 1.438777 cm K).
HC_OVER_KB_CM_K = sc.h * sc.c * 100.0 / sc.k
CORRECTIONS = ("harmonic", "standard", "schofield")
# Above x ≈ 700 e^{x/2} overflows float64; a band there carries no population at T
# (e^{−700}), so the factor is frozen at x = 700 instead of producing inf·0 = nan.
_X_MAX = 700.0


def reduced_frequency(wavenumber_cm1: np.ndarray | float, temperature_K: float) -> np.ndarray:
    """x = βħω = h c ν̃ / (k_B T), dimensionless; ν̃ in cm⁻¹, T in K."""
    if not np.isfinite(temperature_K) or temperature_K <= 0:
        raise ValueError(f"temperature_K must be positive, got {temperature_K!r}")
    return HC_OVER_KB_CM_K * np.asarray(wavenumber_cm1, dtype=np.float64) / float(temperature_K)


def _check(name: str) -> str:
    key = str(name).lower()
    if key not in CORRECTIONS:
        raise ValueError(f"unknown quantum correction {name!r}; choose one of {CORRECTIONS} or None")
    return key


def correction_factor(x: np.ndarray | float, kind: str) -> np.ndarray:
    """Q(x) with I_qm(ω) ≈ Q(x) I_cl(ω), x = βħω (any sign; Q(0) = 1).

    harmonic x/(1 − e^{−x}); standard 2/(1 + e^{−x}); schofield e^{x/2}.
    """
    kind = _check(kind)
    x = np.clip(np.asarray(x, dtype=np.float64), -_X_MAX, _X_MAX)
    if kind == "harmonic":
        with np.errstate(invalid="ignore", divide="ignore"):
            q = x / -np.expm1(-x)
        return np.where(x == 0.0, 1.0, q)
    if kind == "standard":
        return 2.0 / (1.0 + np.exp(-x))
    return np.exp(0.5 * x)


def absorption_multiplier(wavenumber_cm1: np.ndarray, temperature_K: float, kind: str) -> np.ndarray:
    """Factor that turns the classical σ = πβω² I_cl / (3 ε0 c) into the corrected one.

    F = Q(x) (1 − e^{−x}) / x: harmonic 1, standard (2/x) tanh(x/2),
    schofield (2/x) sinh(x/2); F(0) = 1.
    """
    x = np.clip(reduced_frequency(wavenumber_cm1, temperature_K), 0.0, _X_MAX)
    q = correction_factor(x, kind)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = q * -np.expm1(-x) / x
    return np.where(x == 0.0, 1.0, f)
