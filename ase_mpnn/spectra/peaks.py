"""Peak positions, heights, band areas and widths of a spectrum; a markdown table.

Only peaks that stand above the noise count: for a spectrum averaged over independent
trajectories, a peak's prominence (top − the higher of its two bases) must be at least
the one-sided critical value of Student's t for n − 1 degrees of freedom (n trajectories)
at the tail probability of ``min_significance`` Gaussian standard deviations (default 2:
p = 0.023), in standard errors of that difference: 2.0 with 100 trajectories, 3.3 with
4, 2.4 with 8, 14 with 2, because a standard error from few trajectories is itself
uncertain. Measured on white noise (20 spectra, each the mean of 4 series, peaks of at
least 2 % of the top): 2 noise peaks pass at the default level, none at 3σ (the
stricter ``min_significance=3``: 9.2 standard errors with 4 trajectories).
One trajectory gives no measured noise, so its peaks are listed untested (and the
table says so): the textbook Blackman–Tukey variance assumes a random
process and would reject the sharp lines of a nearly harmonic molecule outright.
A reference band (e.g. experiment) is matched only to a listed peak; without one the
table says "no band found", so a noise wiggle cannot pose as agreement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.signal
import scipy.stats
from scipy.integrate import trapezoid

from .lineshapes import Spectrum

#: Gas-phase fundamentals of H2O in cm⁻¹ (experimental band centres).
WATER_GAS_FUNDAMENTALS: dict[str, float] = {
    "bend ν2": 1595.0,
    "sym. stretch ν1": 3657.0,
    "asym. stretch ν3": 3756.0,
}


@dataclass(frozen=True)
class Peak:
    """One band of a spectrum.

    position: cm⁻¹, vertex of the parabola through the top three grid points;
    height: the parabola's maximum (spectrum units); area: ∫ I dν̃ between the
    neighbouring minima ``left`` and ``right`` (cm⁻¹), in units × cm⁻¹; fwhm: full
    width at half ``height`` in cm⁻¹ (linear interpolation; nan if the band does not
    fall to half height before a neighbouring minimum, i.e. it overlaps its neighbour);
    prominence: as scipy.signal; significance: prominence over its standard error
    (nan when the spectrum carries no noise estimate); threshold: the least
    significance that counts (see :func:`critical_significance`; nan: not tested);
    above_noise: significance ≥ threshold (None: not tested).
    """

    position: float
    height: float
    area: float
    fwhm: float
    left: float
    right: float
    prominence: float
    significance: float = float("nan")
    threshold: float = float("nan")
    above_noise: bool | None = None


def _half_crossing(w: np.ndarray, y: np.ndarray, top: int, stop: int, half: float) -> float:
    """Wavenumber where y falls below ``half`` going from ``top`` towards ``stop``."""
    step = -1 if stop < top else 1
    idx = np.arange(top, stop + step, step)
    below = np.flatnonzero(y[idx] < half)
    if below.size == 0:
        return np.nan
    j, k = idx[below[0] - 1], idx[below[0]]  # y[j] >= half > y[k]
    return float(w[j] + (half - y[j]) * (w[k] - w[j]) / (y[k] - y[j]))


def critical_significance(sigmas: float, n_trajectories: int) -> float:
    """Least prominence, in standard errors, for a peak at the level of ``sigmas``
    Gaussian standard deviations when the error comes from ``n_trajectories``."""
    tail = scipy.stats.norm.sf(sigmas)
    if n_trajectories < 2:
        return np.inf
    return float(scipy.stats.t.isf(tail, n_trajectories - 1))


def _trajectory_count(spectrum: Spectrum) -> int:
    meta = spectrum.metadata
    return int(meta.get("n_averaged") or meta.get("n_trajectories") or 1)


def find_peaks(
    spectrum: Spectrum,
    min_prominence: float = 0.05,
    *,
    lo: float | None = None,
    hi: float | None = None,
    min_distance_cm1: float | None = None,
    max_peaks: int | None = None,
    min_significance: float | None = 2.0,
    drop_below_noise: bool = True,
) -> list[Peak]:
    """Bands of ``spectrum`` between ``lo`` and ``hi`` cm⁻¹, sorted by position.

    Args:
        min_prominence: least prominence, as a fraction of the largest intensity in
            the range (``scipy.signal.find_peaks``); filters noise wiggles. The default
            0.05 stays above the side lobes of a sharp line under the Hann window (~3 %).
        min_distance_cm1: least distance between two peaks.
        max_peaks: keep only the most prominent ones.
        min_significance: the noise test's level in Gaussian standard deviations
            (see the module doc; :func:`critical_significance` gives the threshold in
            standard errors); None, or a spectrum without a standard error, skips it.
        drop_below_noise: leave out peaks that fail the noise test (default); False
            keeps them, marked ``above_noise=False``, for a table that shows them.

    Areas are integrated (trapezoid) between the minima of the spectrum that separate
    a peak from its neighbouring peaks (or the ends of the range), so overlapping
    bands share their tails at the minimum between them.
    """
    part = spectrum.crop(lo, hi)
    w, y = part.wavenumber, part.intensity
    noise = part.std_error
    threshold = None
    if noise is not None and min_significance is not None:
        threshold = critical_significance(min_significance, _trajectory_count(part))
    if w.size < 3:
        raise ValueError("fewer than 3 points in the range: no peaks to find")
    finite = np.isfinite(y)
    if not finite.all():
        raise ValueError("spectrum holds NaN or inf in the range")
    spacing = float(w[1] - w[0])
    distance = None if min_distance_cm1 is None else max(1, round(min_distance_cm1 / spacing))
    top = float(np.max(y))
    if top <= 0:
        return []
    idx, props = scipy.signal.find_peaks(y, prominence=min_prominence * top, distance=distance)
    if max_peaks is not None and idx.size > max_peaks:
        keep = np.sort(np.argsort(props["prominences"])[::-1][:max_peaks])
        idx, props = idx[keep], {k: v[keep] for k, v in props.items()}
    peaks = []
    for n, i in enumerate(idx):
        start = idx[n - 1] if n > 0 else 0
        stop = idx[n + 1] if n + 1 < idx.size else w.size - 1
        left = start + int(np.argmin(y[start : i + 1]))
        right = i + int(np.argmin(y[i : stop + 1]))
        # Parabola through (i−1, i, i+1): vertex offset in grid steps and its height.
        curvature = y[i - 1] - 2 * y[i] + y[i + 1]
        delta = 0.5 * (y[i - 1] - y[i + 1]) / curvature if curvature < 0 else 0.0
        height = y[i] - 0.25 * (y[i - 1] - y[i + 1]) * delta
        fwhm = _half_crossing(w, y, i, right, height / 2) - _half_crossing(w, y, i, left, height / 2)
        significance = np.nan
        if noise is not None:
            # Standard error of the difference top − base (the higher base, from which
            # the prominence is measured), the two estimates taken as independent.
            base = props["left_bases"][n] if y[props["left_bases"][n]] >= y[props["right_bases"][n]] \
                else props["right_bases"][n]
            error = float(np.hypot(noise[i], noise[base]))
            significance = props["prominences"][n] / error if error > 0 else np.inf
            if threshold is not None and significance < threshold and drop_below_noise:
                continue
        peaks.append(Peak(
            position=float(w[i] + delta * spacing), height=float(height),
            area=float(trapezoid(y[left : right + 1], w[left : right + 1])), fwhm=float(fwhm),
            left=float(w[left]), right=float(w[right]), prominence=float(props["prominences"][n]),
            significance=float(significance),
            threshold=float("nan") if threshold is None else threshold,
            above_noise=None if threshold is None else bool(significance >= threshold),
        ))
    return peaks


def peak_table(peaks: Sequence[Peak], reference: Mapping[str, float] | Sequence[float] | None = None,
               digits: int = 1, max_shift_cm1: float = 250.0, units: str = "") -> str:
    """Markdown table of ``peaks`` (position, height, area, FWHM, significance).

    Args:
        reference: band positions in cm⁻¹ (a dict name → position, e.g.
            :data:`WATER_GAS_FUNDAMENTALS`, or a list). Each is matched to the nearest
            peak within ``max_shift_cm1`` and the difference peak − reference shown;
            a reference band with no peak that close gets a row "no band found".
            Give the peaks of :func:`find_peaks` with its noise test on, so only
            bands above the noise can match.
        units: the spectrum's intensity unit, for the height and area columns.
    """
    matches: dict[int, list[tuple[str, float]]] = {}
    unmatched = []
    if reference is not None:
        items = reference.items() if isinstance(reference, Mapping) else [(f"{r:g}", r) for r in reference]
        positions = np.array([p.position for p in peaks])
        countable = np.array([p.above_noise is not False for p in peaks], dtype=bool)
        for name, value in items:
            distance = np.where(countable, np.abs(positions - value), np.inf) if peaks else np.array([np.inf])
            nearest = int(np.argmin(distance))
            if distance[nearest] <= max_shift_cm1:
                matches.setdefault(nearest, []).append((str(name), float(value)))
            else:
                unmatched.append((str(name), float(value)))
    unit = f" ({units})" if units else ""
    area_unit = f" ({units} × cm⁻¹)" if units else ""
    head = f"| # | position (cm⁻¹) | height{unit} | area{area_unit} | FWHM (cm⁻¹) | S/N |"
    rule = "|---:|---:|---:|---:|---:|---:|"
    if reference is not None:
        head += " reference | ref. (cm⁻¹) | Δ (cm⁻¹) |"
        rule += "---|---:|---:|"
    lines = [head, rule]
    overlapping = False
    for n, p in enumerate(peaks):
        if np.isfinite(p.fwhm):
            width = f"{p.fwhm:.{digits}f}"
        else:
            width, overlapping = "overlaps¹", True
        signal = f"{p.significance:.1f}" if np.isfinite(p.significance) else "–²"
        if p.above_noise is False:
            signal += f" (< {p.threshold:.1f}: noise?)"
        row = f"| {n + 1} | {p.position:.{digits}f} | {p.height:.4g} | {p.area:.4g} | {width} | {signal} |"
        if reference is None:
            lines.append(row)
            continue
        # A peak nearest to two reference bands gets one row per band.
        for name, value in matches.get(n, [("", np.nan)]):
            extra = f" {name} | {value:.{digits}f} | {p.position - value:+.{digits}f} |" if name else " | | |"
            lines.append(row + extra)
    tested = any(p.above_noise is not None for p in peaks)
    found = "no band above the noise" if tested else "no band found"
    lines += [f"| – | {found} within ±{max_shift_cm1:g} cm⁻¹ | | | | | {name} | {value:.{digits}f} | |"
              for name, value in unmatched]
    notes = []
    if not peaks:
        notes.append("No peak in this range stands out (of the noise, or at all).")
    if overlapping:
        notes.append("¹ the band does not fall to half its height before the neighbouring band's minimum, "
                     "so it has no FWHM of its own.")
    if any(not np.isfinite(p.significance) for p in peaks):
        notes.append("² one trajectory, no measured noise: peaks were not tested against it (average "
                     "independent trajectories for a standard error).")
    elif peaks:
        threshold = max(p.threshold for p in peaks)
        notes.append(f"S/N: prominence (top − higher base) over its standard error, from the spread of the "
                     f"trajectories. A band counts from {threshold:.1f} (the 2-sigma level of Student's t for the number of "
                     "trajectories); peaks marked 'noise?' are not matched to reference bands. More or longer "
                     "trajectories lower the noise.")
    return "\n".join(lines + ([""] + notes if notes else []))
