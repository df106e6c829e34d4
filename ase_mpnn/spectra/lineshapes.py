"""IR, Raman and power spectra from MD time series, in physical units.

Every spectrum here is built from a one-sided spectral density S_x(ν̃) of the
mean-subtracted series (:func:`~ase_mpnn.spectra.correlation.spectral_density`:
∫_0^∞ S_x dν̃ = C(0) = variance). IR and Raman use the *derivative* line shape
ω² S_x(ν̃), the spectral density of ẋ (ω = 2πcν̃ in rad/fs), which is the classical
line shape that carries the right temperature and frequency factors below.

Several trajectories (a list of arrays, lengths may differ) are treated as independent
samples: each gets its own spectrum (own mean subtracted, same lags and grid, the
longest lag set by the shortest trajectory), and the returned spectrum is their plain
mean, with the standard error of the mean std/√n (ddof = 1) in ``std_error``. Spectra,
not ACFs, are averaged so that the spread between trajectories gives the error bar.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.constants as sc
from ase import units as ase_units
from scipy.integrate import trapezoid

from .correlation import angular_frequency_per_fs, max_lag_frames, spectral_density
from .quantum import absorption_multiplier, reduced_frequency

#: 1/(4πε0) in eV·Å/e²: polarizability e²Å²/eV × this = Å³ (polarizability volume).
POLARIZABILITY_TO_A3 = ase_units.Ha * ase_units.Bohr
UNITS_CM2 = "cm²"
UNITS_EPSILON = "L mol⁻¹ cm⁻¹"
UNITS_IR_LINESHAPE = "(e·Å/fs)² per cm⁻¹"
UNITS_RAMAN = "(Å³/fs)² per cm⁻¹"
_UNIT_ALIASES = {
    "lineshape": UNITS_IR_LINESHAPE, "arb": UNITS_IR_LINESHAPE,
    "cm2": UNITS_CM2, "cm^2": UNITS_CM2, UNITS_CM2: UNITS_CM2,
    "epsilon": UNITS_EPSILON, "l/(mol cm)": UNITS_EPSILON, "l/mol/cm": UNITS_EPSILON,
    "m-1cm-1": UNITS_EPSILON, UNITS_EPSILON.lower(): UNITS_EPSILON,
}
# σ[cm²] = _IR_CM2 · ω²S_μ[(e·Å/fs)² per cm⁻¹] / (k_B T [J]): ω²S in SI per m⁻¹ is
# (e·1e-10/1e-15)² / 100, σ = β ω² S / (12 ε0 c²) in m², × 1e4 for cm².
_IR_CM2 = (sc.e * 1e5) ** 2 / 100.0 / (12.0 * sc.epsilon_0 * sc.c**2) * 1e4
# ε[L mol⁻¹ cm⁻¹] = N_A σ[cm²] / (1000 cm³/L · ln 10).
_EPSILON_PER_CM2 = sc.N_A / (1000.0 * np.log(10.0))


@dataclass
class Spectrum:
    """A spectrum on a wavenumber grid.

    Attributes:
        wavenumber: (n,) cm⁻¹, uniform grid.
        intensity: (n,) in ``units``.
        std_error: (n,) standard error of the mean over trajectories, or None.
        units: unit of ``intensity`` (a density per cm⁻¹ unless said otherwise).
        kind: what it is ("IR", "Raman parallel", "VDOS", ...).
        label: legend text.
        metadata: how it was made (dt, lags, window, temperature, files...).
    """

    wavenumber: np.ndarray
    intensity: np.ndarray
    std_error: np.ndarray | None = None
    units: str = ""
    kind: str = ""
    label: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.wavenumber = np.asarray(self.wavenumber, dtype=np.float64)
        self.intensity = np.asarray(self.intensity, dtype=np.float64)
        if self.wavenumber.ndim != 1 or self.intensity.shape != self.wavenumber.shape:
            raise ValueError(
                f"wavenumber and intensity must be 1-D of one length, got "
                f"{self.wavenumber.shape} and {self.intensity.shape}"
            )
        if self.std_error is not None:
            self.std_error = np.asarray(self.std_error, dtype=np.float64)
            if self.std_error.shape != self.wavenumber.shape:
                raise ValueError(f"std_error shape {self.std_error.shape} != {self.wavenumber.shape}")

    def __iter__(self) -> Iterator[np.ndarray]:
        """``wavenumber, intensity = spectrum``: unpacks like a (ν̃, I) pair."""
        return iter((self.wavenumber, self.intensity))

    def integrate(self, lo: float | None = None, hi: float | None = None) -> float:
        """∫_lo^hi I(ν̃) dν̃ (trapezoid, values at lo and hi interpolated), in units × cm⁻¹.

        Defaults: the whole grid. For a σ spectrum in cm² the result is in cm; see
        :meth:`km_per_mol` for band intensities.
        """
        w, y = self.wavenumber, self.intensity
        lo = w[0] if lo is None else max(float(lo), w[0])
        hi = w[-1] if hi is None else min(float(hi), w[-1])
        if hi <= lo:
            return 0.0
        inside = (w > lo) & (w < hi)
        xs = np.concatenate([[lo], w[inside], [hi]])
        return float(trapezoid(np.interp(xs, w, y), xs))

    def km_per_mol(self, lo: float | None = None, hi: float | None = None) -> float:
        """Integrated band intensity N_A ∫σ dν̃ in km/mol (see :func:`band_intensity_km_per_mol`)."""
        return band_intensity_km_per_mol(self, lo, hi)

    def crop(self, lo: float | None = None, hi: float | None = None) -> Spectrum:
        """The part of the spectrum with lo ≤ ν̃ ≤ hi."""
        keep = np.ones(self.wavenumber.shape, dtype=bool)
        if lo is not None:
            keep &= self.wavenumber >= lo
        if hi is not None:
            keep &= self.wavenumber <= hi
        err = None if self.std_error is None else self.std_error[keep]
        return replace(self, wavenumber=self.wavenumber[keep], intensity=self.intensity[keep],
                       std_error=err, metadata=dict(self.metadata))

    def to_csv(self, path: str | os.PathLike) -> str:
        """Write ``wavenumber_cm-1,intensity[,std_error]`` with ``#`` header lines
        (kind, label, units, metadata as JSON); returns the path."""
        path = os.fspath(path)
        with open(path, "w", newline="", encoding="utf-8") as f:
            f.write(f"# kind: {self.kind}\n# label: {self.label}\n# units: {self.units}\n")
            f.write(f"# metadata: {json.dumps(self.metadata, default=_jsonable)}\n")
            writer = csv.writer(f)
            header = ["wavenumber_cm-1", "intensity"] + ([] if self.std_error is None else ["std_error"])
            writer.writerow(header)
            cols = [self.wavenumber, self.intensity] + ([] if self.std_error is None else [self.std_error])
            writer.writerows(zip(*(map(repr, c.tolist()) for c in cols)))
        return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


@dataclass
class RamanSpectra:
    """Raman spectra of one set of polarizability series (all on one grid).

    ``isotropic`` (from ⟨δᾱ δᾱ⟩), ``anisotropic`` (from ⟨β:β⟩), ``parallel``
    I_∥ = I_iso + (2/15) I_aniso, ``perpendicular`` I_⊥ = (1/10) I_aniso, and
    ``depolarization`` ρ = I_⊥ / I_∥ (dimensionless, nan where I_∥ is negligible).
    """

    isotropic: Spectrum
    anisotropic: Spectrum
    parallel: Spectrum
    perpendicular: Spectrum
    depolarization: Spectrum

    @property
    def wavenumber(self) -> np.ndarray:
        return self.parallel.wavenumber

    def as_list(self) -> list[Spectrum]:
        """The four intensity spectra (parallel, perpendicular, isotropic, anisotropic)."""
        return [self.parallel, self.perpendicular, self.isotropic, self.anisotropic]


def band_intensity_km_per_mol(spectrum: Spectrum, lo: float | None = None, hi: float | None = None) -> float:
    """Integrated IR band intensity A = N_A ∫_lo^hi σ(ν̃) dν̃ in km/mol.

    For σ in cm² (``units="cm2"``): A = N_A ∫σ dν̃ [cm/mol] × 1e-5 km/cm. For the
    molar decadic coefficient ε (``units="epsilon"``): N_A σ = 1000 ln10 · ε, so
    A = 1000 ln10 ∫ε dν̃ × 1e-5. Same convention as ``ase.vibrations.Infrared``
    (1 (D/Å)²/amu = 42.255 km/mol).
    """
    area = spectrum.integrate(lo, hi)
    if spectrum.units == UNITS_CM2:
        return sc.N_A * area * 1e-5
    if spectrum.units == UNITS_EPSILON:
        return 1000.0 * np.log(10.0) * area * 1e-5
    raise ValueError(f"km/mol needs a spectrum in {UNITS_CM2} or {UNITS_EPSILON}, got {spectrum.units!r}")


def average_spectra(spectra: Sequence[Spectrum], label: str | None = None) -> Spectrum:
    """Mean of spectra on one grid, with the standard error of the mean std/√n (ddof=1).

    The spectra must share grid, units and kind (e.g. one per independent trajectory).
    With one spectrum the result has ``std_error=None``.
    """
    spectra = list(spectra)
    if not spectra:
        raise ValueError("average_spectra needs at least one spectrum")
    first = spectra[0]
    for s in spectra[1:]:
        if s.wavenumber.shape != first.wavenumber.shape or not np.allclose(s.wavenumber, first.wavenumber):
            raise ValueError("spectra must share one wavenumber grid (same dt, max_lag_fs and zero_pad)")
        if s.units != first.units or s.kind != first.kind:
            raise ValueError(f"cannot average {s.kind!r} in {s.units!r} with {first.kind!r} in {first.units!r}")
    mean, sem = _mean_sem(np.stack([s.intensity for s in spectra]))
    meta = dict(first.metadata, n_averaged=len(spectra))
    return replace(first, intensity=mean, std_error=sem, label=first.label if label is None else label,
                   metadata=meta)


def _mean_sem(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if stack.shape[0] < 2:
        return stack[0], None
    return stack.mean(axis=0), stack.std(axis=0, ddof=1) / np.sqrt(stack.shape[0])


def _trajectories(data: Any, ndim: int, name: str) -> list[np.ndarray]:
    """One array of ``ndim`` dimensions, or a list/tuple of them (several trajectories)."""
    if isinstance(data, (list, tuple)) and data and all(np.ndim(d) == ndim for d in data):
        trajs = [np.asarray(d) for d in data]
    else:
        trajs = [np.asarray(data)]
    for i, t in enumerate(trajs):
        if t.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions (frames first), got shape {t.shape}"
                             + (f" for trajectory {i}" if len(trajs) > 1 else ""))
    return trajs


def _densities(trajs: Sequence[np.ndarray], dt: float, max_lag_fs: float | None, window: str | None,
               zero_pad: int, derivative: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Per-trajectory S_x (or ω² S_x with ``derivative``) on one grid: (ν̃, (n_traj, n_grid), info)."""
    lag = max_lag_frames(min(len(t) for t in trajs), dt, max_lag_fs)
    rows, wavenumber = [], None
    for t in trajs:
        wavenumber, s = spectral_density(t, dt, lag * dt, window, zero_pad)
        rows.append(s * angular_frequency_per_fs(wavenumber) ** 2 if derivative else s)
    info = {"dt_fs": float(dt), "max_lag_fs": lag * float(dt), "window": window, "zero_pad": int(zero_pad),
            "n_trajectories": len(trajs), "n_frames": [len(t) for t in trajs]}
    return wavenumber, np.stack(rows), info


def _kT_joule(temperature_K: float) -> float:
    if not np.isfinite(temperature_K) or temperature_K <= 0:
        raise ValueError(f"temperature_K must be positive, got {temperature_K!r}")
    return sc.k * float(temperature_K)


def ir_spectrum(
    dipole: np.ndarray | Sequence[np.ndarray],
    dt: float,
    *,
    temperature_K: float | None = None,
    units: str | None = None,
    quantum_correction: str | None = None,
    window: str | None = "hann",
    max_lag_fs: float | None = None,
    zero_pad: int = 4,
    kubo: bool = False,
    label: str = "IR",
) -> Spectrum:
    """IR absorption spectrum from a dipole time series.

    Args:
        dipole: (n_frames, 3) total dipole in e·Å, or a list of such arrays
            (independent trajectories, averaged with a standard error).
        dt: time between frames, fs.
        temperature_K: needed for absolute units and quantum corrections.
        units: ``"lineshape"`` (default without temperature): ω² S_μ(ν̃), the spectral
            density of the dipole derivative μ̇, in (e·Å/fs)² per cm⁻¹.
            ``"cm2"`` (default with temperature): absorption cross-section σ(ν̃) in cm²
            per system. ``"epsilon"``: molar decadic absorption coefficient
            ε(ν̃) = N_A σ[cm²] / (1000 ln 10) in L mol⁻¹ cm⁻¹.
        quantum_correction: None (classical), "harmonic", "standard" or "schofield"
            (:mod:`ase_mpnn.spectra.quantum`); needs ``temperature_K``.
        window, max_lag_fs, zero_pad: see :func:`~ase_mpnn.spectra.correlation.spectral_density`.
        kubo: the series are Kubo-transformed (RPMD/TRPMD centroid or bead-averaged):
            the β ω² formula is then exact and no correction may be asked for.

    Absolute units (SI). With I(ω) = (1/2π) ∫ ⟨δμ(0)·δμ(t)⟩ e^{−iωt} dt the classical
    absorption cross-section per system is

        σ(ω) = π β ω² I(ω) / (3 ε0 c),   β = 1/(k_B T).

    Since the one-sided density is S_μ(ν̃) = 4πc I(ω), σ(ν̃) = β ω² S_μ(ν̃) / (12 ε0 c²).
    For a harmonic mode μ = μ' Q (μ' = ∂μ/∂Q, Q mass-weighted), ⟨Q²⟩ = k_BT/ω0², the
    band integrates to ∫σ dν̃ = μ'² / (12 ε0 c²) per molecule, N_A μ'²/(12 ε0 c²) per
    mole (``Spectrum.km_per_mol``): ASE's ``Infrared`` convention, 1 (D/Å)²/amu =
    42.255 km/mol, and independent of T. A quantum correction multiplies σ by
    Q(x)(1 − e^{−x})/x, x = h c ν̃ / (k_B T) (1 for "harmonic").
    """
    if kubo and quantum_correction is not None:
        raise ValueError(
            "kubo=True: Kubo-transformed (RPMD) correlation functions need no quantum correction; "
            f"the classical β ω² formula is already exact for them (got quantum_correction={quantum_correction!r})"
        )
    if quantum_correction is not None and temperature_K is None:
        raise ValueError("a quantum correction needs temperature_K")
    key = ("cm2" if temperature_K is not None else "lineshape") if units is None else str(units).lower()
    if key not in _UNIT_ALIASES:
        raise ValueError(f"unknown IR units {units!r}; use 'lineshape', 'cm2' or 'epsilon'")
    out_units = _UNIT_ALIASES[key]
    if out_units != UNITS_IR_LINESHAPE and temperature_K is None:
        raise ValueError(f"IR spectrum in {out_units} needs temperature_K")
    trajs = _trajectories(dipole, 2, "dipole")
    if trajs[0].shape[1] != 3:
        raise ValueError(f"dipole must be (n_frames, 3), got {trajs[0].shape}")
    wavenumber, rows, info = _densities(trajs, dt, max_lag_fs, window, zero_pad, derivative=True)
    if temperature_K is not None:
        factor = np.ones_like(wavenumber)
        if quantum_correction is not None:
            factor = absorption_multiplier(wavenumber, temperature_K, quantum_correction)
        if out_units != UNITS_IR_LINESHAPE:
            factor = factor * _IR_CM2 / _kT_joule(temperature_K)
            if out_units == UNITS_EPSILON:
                factor = factor * _EPSILON_PER_CM2
        rows = rows * factor
    mean, sem = _mean_sem(rows)
    info.update(temperature_K=temperature_K, quantum_correction=quantum_correction, kubo=bool(kubo))
    return Spectrum(wavenumber, mean, sem, out_units, "IR", label, info)


def raman_scattering_factor(wavenumber_cm1: np.ndarray, laser_wavenumber_cm1: float,
                            temperature_K: float) -> np.ndarray:
    """Dimensionless Stokes factor f(ν̃) = ((ν̃0 − ν̃)/ν̃0)⁴ / (x (1 − e^{−x})), x = hcν̃/(k_BT).

    f = (ν̃0 − ν̃)⁴ / [ν̃ (1 − e^{−x})] × k_BT / (h c ν̃0⁴): the usual factor
    (ν̃0 − ν̃)⁴ / ν̃ / (1 − e^{−x}) made dimensionless by the constant k_BT/(hcν̃0⁴).
    It multiplies the classical ω² line shape (area α'² k_BT for a harmonic mode
    α = α' Q), giving α'² (ν̃0 − ν̃)⁴ / (ν̃0⁴ x_0 (1 − e^{−x_0})) ∝ the harmonic Stokes
    intensity (ν̃0 − ν̃)⁴ α'² / [ν̃ (1 − e^{−x})] (n + 1 population, ħ/2ω amplitude),
    up to one constant. f is 0 for ν̃ ≥ ν̃0; at ν̃ = 0 it diverges like 1/x² while ω²
    vanishes like x², so the product is evaluated as (2πk_BT/h)² x/(1−e^{−x}) · S
    (see :func:`raman_spectrum`).
    """
    if not np.isfinite(laser_wavenumber_cm1) or laser_wavenumber_cm1 <= 0:
        raise ValueError(f"laser_wavenumber_cm1 must be positive, got {laser_wavenumber_cm1!r}")
    x = reduced_frequency(wavenumber_cm1, temperature_K)
    shift = np.clip(1.0 - np.asarray(wavenumber_cm1) / laser_wavenumber_cm1, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        return shift**4 / (x * -np.expm1(-x))


def _scattered(density: np.ndarray, wavenumber: np.ndarray, laser: float, temperature_K: float) -> np.ndarray:
    """ω² S · f without the 0·∞ at ν̃ = 0: (2π k_BT/h)² ((ν̃0−ν̃)/ν̃0)⁴ x/(1−e^{−x}) · S."""
    x = reduced_frequency(wavenumber, temperature_K)
    with np.errstate(divide="ignore", invalid="ignore"):
        bose = np.where(x == 0.0, 1.0, x / -np.expm1(-x))
    shift = np.clip(1.0 - wavenumber / laser, 0.0, None)
    omega_T = 2.0 * np.pi * sc.k * temperature_K / sc.h * 1e-15  # rad/fs
    return density * omega_T**2 * shift**4 * bose


def raman_spectrum(
    polarizability: np.ndarray | Sequence[np.ndarray],
    dt: float,
    *,
    input_units: str = "e2A2/eV",
    laser_wavenumber_cm1: float | None = None,
    temperature_K: float | None = None,
    window: str | None = "hann",
    max_lag_fs: float | None = None,
    zero_pad: int = 4,
    depolarization_threshold: float = 1e-3,
    label: str = "Raman",
) -> RamanSpectra:
    """Raman spectra (isotropic, anisotropic, parallel, perpendicular) and depolarization ratio.

    Args:
        polarizability: (n_frames, 3, 3), or a list of such arrays (trajectories).
        dt: time between frames, fs.
        input_units: ``"e2A2/eV"`` (the package's and ASE's unit; × 1/(4πε0) =
            14.399645 eV·Å/e² gives Å³) or ``"A3"``.
        laser_wavenumber_cm1, temperature_K: give both to weight the spectra with
            :func:`raman_scattering_factor` (Stokes side); neither for line shapes.
        window, max_lag_fs, zero_pad: see :func:`~ase_mpnn.spectra.correlation.spectral_density`.
        depolarization_threshold: ρ is nan where I_∥ < this × max I_∥.

    α is symmetrised ((α + αᵀ)/2: non-resonant Raman has no antisymmetric part) and
    split into ᾱ = tr(α)/3 and β = α − ᾱ I. With the derivative line shapes
    I_iso = ω² S[ᾱ] (from ⟨δᾱ(0) δᾱ(t)⟩) and I_aniso = ω² S[β] (from ⟨β(0):β(t)⟩,
    all 9 components), the orientational averages (Long, *The Raman Effect*) with the
    anisotropy γ² = (3/2) β:β give

        I_∥ = I_iso + (4/45) γ² = I_iso + (2/15) I_aniso,   I_⊥ = (1/15) γ² = (1/10) I_aniso,

    so ρ = I_⊥/I_∥ is 0 for an isotropic modulation, 1/3 for a rod-like one
    (diag(1,0,0)) and 3/4 for a traceless one. Units: (Å³/fs)² per cm⁻¹ (× the
    dimensionless scattering factor when asked).
    """
    if (laser_wavenumber_cm1 is None) != (temperature_K is None):
        raise ValueError("give both laser_wavenumber_cm1 and temperature_K (scattering factor) or neither")
    key = str(input_units).lower().replace("^", "").replace("²", "2").replace("³", "3").replace("å", "a")
    if key not in ("e2a2/ev", "a3"):
        raise ValueError(f"input_units must be 'e2A2/eV' or 'A3', got {input_units!r}")
    scale = POLARIZABILITY_TO_A3 if key == "e2a2/ev" else 1.0
    trajs = _trajectories(polarizability, 3, "polarizability")
    if trajs[0].shape[1:] != (3, 3):
        raise ValueError(f"polarizability must be (n_frames, 3, 3), got {trajs[0].shape}")
    iso_series, aniso_series = [], []
    for a in trajs:
        # In place after the first copy: 1e6 frames of 3×3 are 72 MB per array.
        sym = np.asarray(a, dtype=np.float64) + np.swapaxes(a, 1, 2)
        sym *= 0.5 * scale
        mean_iso = np.trace(sym, axis1=1, axis2=2) / 3.0
        sym[:, [0, 1, 2], [0, 1, 2]] -= mean_iso[:, None]
        iso_series.append(mean_iso)
        aniso_series.append(sym)
    # With the scattering factor the plain density S is needed: ω²S·f is 0·∞ at ν̃ = 0.
    weigh = laser_wavenumber_cm1 is not None
    wavenumber, iso, info = _densities(iso_series, dt, max_lag_fs, window, zero_pad, derivative=not weigh)
    _, aniso, _ = _densities(aniso_series, dt, max_lag_fs, window, zero_pad, derivative=not weigh)
    if weigh:
        raman_scattering_factor(wavenumber[:1], laser_wavenumber_cm1, temperature_K)  # validates inputs
        iso = _scattered(iso, wavenumber, laser_wavenumber_cm1, temperature_K)
        aniso = _scattered(aniso, wavenumber, laser_wavenumber_cm1, temperature_K)
    info.update(input_units=input_units, laser_wavenumber_cm1=laser_wavenumber_cm1, temperature_K=temperature_K)
    rows = {"isotropic": iso, "anisotropic": aniso,
            "parallel": iso + (2.0 / 15.0) * aniso, "perpendicular": 0.1 * aniso}
    out = {}
    for name, stack in rows.items():
        mean, sem = _mean_sem(stack)
        out[name] = Spectrum(wavenumber, mean, sem, UNITS_RAMAN, f"Raman {name}", f"{label} {name}", dict(info))
    par, perp = out["parallel"].intensity, out["perpendicular"].intensity
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(par > depolarization_threshold * np.max(par), perp / par, np.nan)
    out["depolarization"] = Spectrum(wavenumber, rho, None, "1", "Raman depolarization ratio",
                                     f"{label} ρ", dict(info))
    return RamanSpectra(**out)


def power_spectrum(
    velocities: np.ndarray | Sequence[np.ndarray],
    masses: np.ndarray,
    dt: float,
    *,
    temperature_K: float | None = None,
    window: str | None = "hann",
    max_lag_fs: float | None = None,
    zero_pad: int = 4,
    input_kind: str = "velocities",
    label: str = "VDOS",
) -> Spectrum:
    """Vibrational density of states from the mass-weighted velocity ACF.

    C(t) = Σ_i m_i ⟨δv_i(0)·δv_i(t)⟩ (velocities minus their time average, which
    removes a drifting centre of mass), S(ν̃) its one-sided spectral density:
    ∫_0^∞ S dν̃ = Σ_i m_i ⟨δv_i²⟩ = 2⟨K⟩ in amu Å² fs⁻² per cm⁻¹.

    With ``temperature_K`` S is divided by k_BT (in amu Å²/fs²: k_BT[eV] × fs²
    in ASE units), so the VDOS is in degrees of freedom per cm⁻¹ and integrates to
    Σ m⟨v²⟩/k_BT ≈ 3N by equipartition (fewer where constraints or a fixed centre of
    mass remove degrees of freedom).

    Args:
        velocities: (n_frames, N, 3) in Å/fs (as the MD recorder stores them), or a
            list of such arrays (trajectories; averaged with a standard error).
        masses: (N,) in amu.
        dt: time between frames, fs.
        input_kind: ``"velocities"``, or ``"positions"`` (Å) when only positions were
            stored (e.g. RPMD centroids): the VDOS is then ω² S[√m r], the same
            quantity in the continuous-time limit, without a finite-difference error.
            Only for bound systems (a diffusing position has no stationary ACF).
        window, max_lag_fs, zero_pad: see :func:`~ase_mpnn.spectra.correlation.spectral_density`.
    """
    if input_kind not in ("velocities", "positions"):
        raise ValueError(f"input_kind must be 'velocities' or 'positions', got {input_kind!r}")
    trajs = _trajectories(velocities, 3, input_kind)
    masses = np.asarray(masses, dtype=np.float64)
    if masses.shape != (trajs[0].shape[1],) or trajs[0].shape[2] != 3:
        raise ValueError(f"{input_kind} (n_frames, N, 3) and masses (N,) do not match: "
                         f"{trajs[0].shape} and {masses.shape}")
    if np.any(~np.isfinite(masses)) or np.any(masses <= 0):
        raise ValueError("masses must be positive (amu)")
    weighted = [np.asarray(t, dtype=np.float64) * np.sqrt(masses)[None, :, None] for t in trajs]
    wavenumber, rows, info = _densities(weighted, dt, max_lag_fs, window, zero_pad,
                                        derivative=input_kind == "positions")
    out_units = "amu Å² fs⁻² per cm⁻¹"
    if temperature_K is not None:
        _kT_joule(temperature_K)  # validates
        rows = rows / (ase_units.kB * temperature_K * ase_units.fs**2)
        out_units = "degrees of freedom per cm⁻¹"
    mean, sem = _mean_sem(rows)
    info.update(temperature_K=temperature_K, input_kind=input_kind, n_atoms=int(masses.size))
    return Spectrum(wavenumber, mean, sem, out_units, "VDOS", label, info)
