"""Speed of the spectra from long MD time series (``ase_mpnn.spectra``).

Synthetic series at 0.5 fs per frame (three damped, noise-driven modes near 1600, 3650
and 3750 cm⁻¹ plus white noise; the cost does not depend on the values):

* ``ir_spectrum`` of a 1,000,000-frame dipole (3 components), with the default longest
  lag (half the series, at most 10 ps = 20,000 frames) and with 2 ps; also with the
  longest lag at half the series (250 ps: a 2,000,000-point spectrum);
* ``raman_spectrum`` of 1,000,000 frames of 3×3 polarizability (isotropic and
  anisotropic ACFs, four spectra and the depolarization ratio);
* the FFT autocorrelation against a naive direct sum Σ_t x(t)·x(t+k) (one vectorised
  ``np.einsum`` sum of products per lag: O(n·max_lag)) for 20,000 frames (2,000
  lags) and 100,000 frames (10,000 lags), and their largest difference.

Times are medians of repeats (``time.perf_counter``) after one warm-up call; peak
memory is the largest numpy allocation seen by ``tracemalloc`` during one call.
scipy.fft runs on one thread (its default ``workers=1``).

Run: ``python benchmarks/bench_spectra.py [--quick]`` (``--quick``: 100,000 frames).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from scipy.signal import lfilter

from ase_mpnn.spectra import autocorrelation, ir_spectrum, raman_spectrum
from ase_mpnn.spectra.correlation import C_CM_PER_FS

DT_FS = 0.5


def synthetic(n: int, components: int, seed: int = 0) -> np.ndarray:
    """(n, components): three noise-driven resonators mixed into every component + noise."""
    rng = np.random.default_rng(seed)
    out = 0.05 * rng.normal(size=(n, components))
    for nu in (1600.0, 3650.0, 3750.0):
        r, theta = np.exp(-DT_FS / 300.0), 2 * np.pi * C_CM_PER_FS * nu * DT_FS
        mode = lfilter([1.0], [1.0, -2 * r * np.cos(theta), r * r], rng.normal(size=n))
        out += np.outer(mode / mode.std(), rng.normal(size=components))
    return out


def naive_acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """C(k) = Σ_t x(t)·x(t+k) / (n − k) by direct sums: O(n·max_lag)."""
    n = len(x)
    flat = x.reshape(n, -1)
    # einsum's own single-threaded loop, not BLAS: a multithreaded BLAS dot per lag can
    # be 1000x slower when another process shares the cores (spin-waiting threads).
    return np.array([np.einsum("ij,ij->", flat[: n - k], flat[k:]) / (n - k) for k in range(max_lag + 1)])


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median seconds over ``repeats`` after one warm-up, peak MiB of one traced call)."""
    fn()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 frames, fewer repeats")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    repeats = 2 if args.quick else 3
    dipole = synthetic(n, 3)
    alpha = synthetic(n, 9, seed=1).reshape(n, 3, 3) + 10.0 * np.eye(3)

    rows = []
    spectrum = ir_spectrum(dipole, DT_FS)
    seconds, peak = timed(lambda: ir_spectrum(dipole, DT_FS), repeats)
    rows.append((f"ir_spectrum, {n:,} × 3, default lag ({spectrum.metadata['max_lag_fs']:g} fs)",
                 seconds, peak, spectrum.wavenumber.size))
    spectrum = ir_spectrum(dipole, DT_FS, max_lag_fs=2000.0)
    seconds, peak = timed(lambda: ir_spectrum(dipole, DT_FS, max_lag_fs=2000.0), repeats)
    rows.append((f"ir_spectrum, {n:,} × 3, lag 2000 fs", seconds, peak, spectrum.wavenumber.size))
    half = (n // 2) * DT_FS
    spectrum = ir_spectrum(dipole, DT_FS, max_lag_fs=half)
    seconds, peak = timed(lambda: ir_spectrum(dipole, DT_FS, max_lag_fs=half), repeats)
    rows.append((f"ir_spectrum, {n:,} × 3, lag n/2 ({half:g} fs)", seconds, peak, spectrum.wavenumber.size))
    raman = raman_spectrum(alpha, DT_FS)
    seconds, peak = timed(lambda: raman_spectrum(alpha, DT_FS), repeats)
    rows.append((f"raman_spectrum, {n:,} × 3×3, default lag ({raman.parallel.metadata['max_lag_fs']:g} fs)",
                 seconds, peak, raman.wavenumber.size))

    sizes = [(5_000, 500)] if args.quick else [(20_000, 2_000), (100_000, 10_000)]
    acf_rows = []
    for small, lag in sizes:
        x = dipole[:small]
        fft_s, fft_mem = timed(lambda x=x, lag=lag: autocorrelation(x, lag), 5)
        naive_s, naive_mem = timed(lambda x=x, lag=lag: naive_acf(x, lag), 3)
        diff = np.max(np.abs(autocorrelation(x, lag) - naive_acf(x, lag))) / abs(naive_acf(x, 0)[0])
        acf_rows.append((small, lag, naive_s, naive_mem, fft_s, fft_mem, diff))

    print(f"Spectra benchmark: dt = {DT_FS} fs, Hann window, zero_pad = 4; median of {repeats} runs")
    print()
    print("| task | time (s) | peak numpy memory (MiB) | spectrum points |")
    print("|---|---:|---:|---:|")
    for name, seconds, peak, points in rows:
        print(f"| {name} | {seconds:.3f} | {peak:.0f} | {points:,} |")
    print()
    print("Autocorrelation of a 3-component series: naive direct sum against FFT (the ACF alone):")
    print()
    print("| frames | lags | naive O(n·max_lag) (ms) | FFT, padded to ≥ 2n (ms) | speed-up "
          "| peak MiB naive / FFT | max abs(FFT − direct) / C(0) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for small, lag, naive_s, naive_mem, fft_s, fft_mem, diff in acf_rows:
        print(f"| {small:,} | 0..{lag:,} | {naive_s * 1e3:.1f} | {fft_s * 1e3:.1f} | {naive_s / fft_s:.0f}x "
              f"| {naive_mem:.1f} / {fft_mem:.1f} | {diff:.1e} |")

if __name__ == "__main__":
    main()
