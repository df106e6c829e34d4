"""Time-correlation functions and their one-sided spectral densities.

Conventions used by every function of :mod:`ase_mpnn.spectra`:

* a time series ``x`` has the frame as first axis, shape ``(n_frames, ...)``; the
  trailing axes are components (e.g. 3 for a dipole, 3×3 for a polarizability) whose
  products are summed: C(τ) = ⟨x(0)·x(τ)⟩ = Σ_a ⟨x_a(0) x_a(τ)⟩;
* frames are ``dt_fs`` femtoseconds apart; wavenumbers are ν̃ = ω / (2πc) in cm⁻¹,
  with c = 2.99792458e10 cm/s (``scipy.constants.c``);
* a spectral density is one-sided and normalised so that ∫_0^∞ S(ν̃) dν̃ = C(0): S is
  in (units of x)² per cm⁻¹. The correlation function is never normalised to
  C(0) = 1, since that loses absolute and relative intensities.
"""

from __future__ import annotations

import numpy as np
import scipy.constants as sc
import scipy.fft

#: Speed of light in cm/fs (ν̃[cm⁻¹] = f[1/fs] / C_CM_PER_FS).
C_CM_PER_FS = sc.c * 100.0 * 1e-15
#: Default longest lag when none is given: half the series, at most this many fs.
DEFAULT_MAX_LAG_FS = 10_000.0
WINDOWS = ("hann", "gaussian", "cos2", "none")
#: Fraction of the lags that the "cos2" window tapers (the rest is left at 1).
COS2_TAPER_FRACTION = 0.25
#: Width of the "gaussian" window: σ = T / GAUSSIAN_LAGS_PER_SIGMA, so w(T) = e^{-4.5} ≈ 0.011.
GAUSSIAN_LAGS_PER_SIGMA = 3.0


def _as_series(x: np.ndarray, min_frames: int = 4) -> np.ndarray:
    """``x`` as a float64 array of shape (n_frames, n_components), validated."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("time series must have a frame axis: got a scalar")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"time series must be real numbers, got dtype {x.dtype}")
    if x.shape[0] < min_frames:
        raise ValueError(f"time series needs at least {min_frames} frames, got {x.shape[0]}")
    x = x.reshape(x.shape[0], -1).astype(np.float64, copy=False)
    if x.shape[1] == 0:
        raise ValueError("time series has no components (a trailing axis of length 0)")
    if not np.all(np.isfinite(x)):
        bad = int(np.argmax(~np.all(np.isfinite(x), axis=1)))
        raise ValueError(f"time series holds NaN or inf (first at frame {bad})")
    return x


def _check_dt(dt_fs: float) -> float:
    dt = float(dt_fs)
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive time in fs, got {dt_fs!r}")
    return dt


def autocorrelation(x: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Autocorrelation C(k) = ⟨x(0)·x(k)⟩ averaged over time origins, for lags 0..max_lag.

    C(k) = 1/(n−k) Σ_{t=0}^{n−1−k} Σ_a x_a(t) x_a(t+k)   (unbiased estimator)

    Computed with FFTs of the series zero-padded to at least 2n points, so no product
    wraps around the end of the series (Wiener–Khinchin on the padded series gives the
    plain lag sums); cost O(n log n) per component.

    Args:
        x: (n_frames, ...) series; trailing axes are summed over (dot product).
        max_lag: largest lag in frames (default n_frames − 1).

    Returns:
        (max_lag + 1,) array in units of x². Not normalised: C(0) is the mean square
        (the variance when the caller subtracted the mean, as the spectra functions do).
    """
    x = _as_series(x, min_frames=2)
    n = x.shape[0]
    max_lag = n - 1 if max_lag is None else int(max_lag)
    if not 0 <= max_lag < n:
        raise ValueError(f"max_lag must be in [0, {n - 1}] for {n} frames, got {max_lag}")
    nfft = scipy.fft.next_fast_len(2 * n, real=True)
    power = np.zeros(nfft // 2 + 1)
    # One component at a time keeps memory at a few times n (1e6 frames of 3×3 would
    # otherwise hold 9 complex spectra of 2e6 points).
    for a in range(x.shape[1]):
        spectrum = scipy.fft.rfft(x[:, a], nfft)
        power += spectrum.real**2 + spectrum.imag**2
    lag_sums = scipy.fft.irfft(power, nfft)[: max_lag + 1]
    return lag_sums / (n - np.arange(max_lag + 1))


def lag_window(window: str | None, n_lags: int) -> np.ndarray:
    """Lag window w(k), k = 0..n_lags−1, with w(0) = 1 and T = n_lags − 1 the last lag.

    * ``"hann"``: w = cos²(πk / 2T) = ½(1 + cos(πk/T)), the right half of a Hann
      window: falls smoothly from 1 to 0 over all lags. A sharp line becomes a band of
      FWHM ≈ 0.72 / (c T dt) cm⁻¹ (c in cm/fs, T dt in fs), side lobes < 3 %.
    * ``"gaussian"``: w = exp(−k² / 2σ²) with σ = T/3 (w(T) ≈ 0.011): Gaussian band
      of FWHM = 2.355 / (2π c σ dt) ≈ 1.12 / (c T dt) cm⁻¹, no side lobes; the
      broadest of the four, for noisy data.
    * ``"cos2"``: a Tukey-like taper: w = 1 for k ≤ (1 − f)T, then
      cos²(π (k − (1−f)T) / (2 f T)) down to 0 at T, with f = 0.25. Only the last
      quarter of the lags is tapered, so the lines stay narrower than with "hann"
      (which is the f = 1 case of the same family: kept distinct on purpose) while the
      truncation ringing of no window is removed.
    * ``None`` / ``"none"``: w = 1 (rectangular truncation at T: narrowest lines,
      FWHM ≈ 0.44 / (c T dt), sinc ringing; the spectrum may go negative).

    Since w(0) = 1, the area under the spectral density is C(0) for every window.
    """
    if n_lags < 1:
        raise ValueError(f"n_lags must be positive, got {n_lags}")
    name = "none" if window is None else str(window).lower()
    if name not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; choose one of {WINDOWS} or None")
    k = np.arange(n_lags, dtype=np.float64)
    last = max(n_lags - 1, 1)
    if name == "hann":
        return np.cos(0.5 * np.pi * k / last) ** 2
    if name == "gaussian":
        sigma = last / GAUSSIAN_LAGS_PER_SIGMA
        return np.exp(-0.5 * (k / sigma) ** 2)
    if name == "cos2":
        start = (1.0 - COS2_TAPER_FRACTION) * last
        phase = np.clip((k - start) / (COS2_TAPER_FRACTION * last), 0.0, 1.0)
        return np.cos(0.5 * np.pi * phase) ** 2
    return np.ones(n_lags)


def max_lag_frames(n_frames: int, dt_fs: float, max_lag_fs: float | None) -> int:
    """Longest lag in frames: ``max_lag_fs / dt`` rounded, or the default rule.

    Default (``max_lag_fs=None``): half the series, at most 10 ps. Lags beyond half
    the series average fewer than n/2 origins (noise grows as 1/(n−k)), and lags
    longer than ~10 ps add noise, not resolution (~3 cm⁻¹ with a Hann window).
    """
    dt = _check_dt(dt_fs)
    if max_lag_fs is None:
        lag = min(n_frames // 2, int(DEFAULT_MAX_LAG_FS / dt))
    else:
        if not np.isfinite(max_lag_fs) or max_lag_fs <= 0:
            raise ValueError(f"max_lag_fs must be a positive time in fs, got {max_lag_fs!r}")
        lag = round(max_lag_fs / dt)
        if lag >= n_frames:
            raise ValueError(
                f"max_lag_fs={max_lag_fs:g} fs is {lag} frames, but the series has only "
                f"{n_frames} frames ({(n_frames - 1) * dt:g} fs)"
            )
    if lag < 2:
        raise ValueError(f"longest lag is {lag} frames: too short for a spectrum (need ≥ 2)")
    return lag


def _even_fast_len(n: int) -> int:
    m = scipy.fft.next_fast_len(n, real=True)
    while m % 2:
        m = scipy.fft.next_fast_len(m + 1, real=True)
    return m


def cosine_transform(acf: np.ndarray, dt_fs: float, window: str | None = "hann",
                     zero_pad: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """One-sided spectral density of a correlation function C(k dt), k = 0..L.

    S(ν̃) = 2c ∫_{−∞}^{∞} w(t) C(t) cos(2π c ν̃ t) dt
         = 2c·dt [C(0) + 2 Σ_{k=1}^{L} w_k C_k cos(2π c ν̃ k dt)]     (c in cm/fs)

    evaluated on ν̃_j = j / (2 N c dt), j = 0..N, up to the Nyquist wavenumber
    1/(2 c dt), by a type-I DCT of the windowed ACF zero-padded to N + 1 ≥
    ``zero_pad``·(L + 1) points (padding only interpolates: it adds no resolution).

    Normalisation: ∫_0^{ν̃_N} S dν̃ = w(0) C(0) = C(0) exactly, also for the trapezoid
    rule on this grid. Units: (units of C) per cm⁻¹.
    """
    dt = _check_dt(dt_fs)
    acf = np.asarray(acf, dtype=np.float64)
    if acf.ndim != 1 or acf.size < 3:
        raise ValueError(f"acf must be 1-D with at least 3 lags, got shape {acf.shape}")
    if int(zero_pad) != zero_pad or zero_pad < 1:
        raise ValueError(f"zero_pad must be a positive integer, got {zero_pad!r}")
    lags = acf.size
    n_half = _even_fast_len(2 * int(zero_pad) * lags) // 2
    padded = np.zeros(n_half + 1)
    padded[:lags] = acf * lag_window(window, lags)
    # DCT-I: y_j = x_0 + (−1)^j x_N + 2 Σ_{k=1}^{N−1} x_k cos(π j k / N); x_N = 0 here.
    spectrum = scipy.fft.dct(padded, type=1)
    wavenumber = np.arange(n_half + 1) / (2 * n_half * C_CM_PER_FS * dt)
    return wavenumber, 2.0 * C_CM_PER_FS * dt * spectrum


def spectral_density(
    x: np.ndarray,
    dt_fs: float,
    max_lag_fs: float | None = None,
    window: str | None = "hann",
    zero_pad: int = 4,
    subtract_mean: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided spectral density of a time series, in x-units² per cm⁻¹.

    S(ν̃) = 2c ∫ w(t) C(t) cos(2π c ν̃ t) dt with C(t) = ⟨δx(0)·δx(t)⟩ (see
    :func:`autocorrelation`, :func:`lag_window`, :func:`cosine_transform`), δx = x − x̄
    when ``subtract_mean``. ∫_0^∞ S(ν̃) dν̃ = C(0) = Σ_a var(x_a) for every window.

    Args:
        x: (n_frames, ...) series; trailing axes are components (summed).
        dt_fs: time between frames, fs.
        max_lag_fs: longest lag of the ACF (sets the resolution, ≈ 1/(c·max_lag));
            default half the series, at most 10 ps (:func:`max_lag_frames`).
        window: lag window, see :func:`lag_window`.
        zero_pad: the windowed ACF is padded to ≥ zero_pad × its length (finer grid).
        subtract_mean: remove the time average of each component first.

    Returns:
        (wavenumber in cm⁻¹, S in x-units² per cm⁻¹), both of length N + 1.
    """
    x = _as_series(x)
    dt = _check_dt(dt_fs)
    lag = max_lag_frames(x.shape[0], dt, max_lag_fs)
    if subtract_mean:
        x = x - x.mean(axis=0)
    return cosine_transform(autocorrelation(x, lag), dt, window, zero_pad)


def angular_frequency_per_fs(wavenumber_cm1: np.ndarray) -> np.ndarray:
    """ω = 2π c ν̃ in rad/fs for ν̃ in cm⁻¹."""
    return 2.0 * np.pi * C_CM_PER_FS * np.asarray(wavenumber_cm1, dtype=np.float64)
