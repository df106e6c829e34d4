"""Peak positions, heights, band areas and widths of a spectrum; a markdown table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.signal
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
    fall to half height before a neighbouring minimum); prominence: as scipy.signal.
    """

    position: float
    height: float
    area: float
    fwhm: float
    left: float
    right: float
    prominence: float


def _half_crossing(w: np.ndarray, y: np.ndarray, top: int, stop: int, half: float) -> float:
    """Wavenumber where y falls below ``half`` going from ``top`` towards ``stop``."""
    step = -1 if stop < top else 1
    idx = np.arange(top, stop + step, step)
    below = np.flatnonzero(y[idx] < half)
    if below.size == 0:
        return np.nan
    j, k = idx[below[0] - 1], idx[below[0]]  # y[j] >= half > y[k]
    return float(w[j] + (half - y[j]) * (w[k] - w[j]) / (y[k] - y[j]))


def find_peaks(
    spectrum: Spectrum,
    min_prominence: float = 0.05,
    *,
    lo: float | None = None,
    hi: float | None = None,
    min_distance_cm1: float | None = None,
    max_peaks: int | None = None,
) -> list[Peak]:
    """Bands of ``spectrum`` between ``lo`` and ``hi`` cm⁻¹, sorted by position.

    Args:
        min_prominence: least prominence, as a fraction of the largest intensity in
            the range (``scipy.signal.find_peaks``); filters noise wiggles. The default
            0.05 stays above the side lobes of a sharp line under the Hann window (~3 %).
        min_distance_cm1: least distance between two peaks.
        max_peaks: keep only the most prominent ones.

    Areas are integrated (trapezoid) between the minima of the spectrum that separate
    a peak from its neighbouring peaks (or the ends of the range), so overlapping
    bands share their tails at the minimum between them.
    """
    part = spectrum.crop(lo, hi)
    w, y = part.wavenumber, part.intensity
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
        peaks.append(Peak(
            position=float(w[i] + delta * spacing), height=float(height),
            area=float(trapezoid(y[left : right + 1], w[left : right + 1])), fwhm=float(fwhm),
            left=float(w[left]), right=float(w[right]), prominence=float(props["prominences"][n]),
        ))
    return peaks


def peak_table(peaks: Sequence[Peak], reference: Mapping[str, float] | Sequence[float] | None = None,
               digits: int = 1, max_shift_cm1: float = 250.0) -> str:
    """Markdown table of ``peaks`` (position, height, area, FWHM).

    With ``reference`` band positions (cm⁻¹; a dict name → position, e.g.
    :data:`WATER_GAS_FUNDAMENTALS`, or a list) each reference band is matched to the
    nearest peak within ``max_shift_cm1`` and the difference peak − reference is shown;
    reference bands without a peak that close get a row of their own.
    """
    matches: dict[int, list[tuple[str, float]]] = {}
    if reference is not None and peaks:
        items = reference.items() if isinstance(reference, Mapping) else [(f"{r:g}", r) for r in reference]
        positions = np.array([p.position for p in peaks])
        unmatched = []
        for name, value in items:
            nearest = int(np.argmin(np.abs(positions - value)))
            if abs(positions[nearest] - value) <= max_shift_cm1:
                matches.setdefault(nearest, []).append((str(name), float(value)))
            else:
                unmatched.append((str(name), float(value)))
    head = "| # | position (cm⁻¹) | height | area | FWHM (cm⁻¹) |"
    rule = "|---:|---:|---:|---:|---:|"
    if reference is not None:
        head += " reference | ref. (cm⁻¹) | Δ (cm⁻¹) |"
        rule += "---|---:|---:|"
    lines = [head, rule]
    for n, p in enumerate(peaks):
        row = f"| {n + 1} | {p.position:.{digits}f} | {p.height:.4g} | {p.area:.4g} | {p.fwhm:.{digits}f} |"
        if reference is None:
            lines.append(row)
            continue
        # A peak nearest to two reference bands gets one row per band.
        for name, value in matches.get(n, [("", np.nan)]):
            extra = f" {name} | {value:.{digits}f} | {p.position - value:+.{digits}f} |" if name else " | | |"
            lines.append(row + extra)
    if reference is not None and peaks:
        lines += [f"| – | – | | | | {name} | {value:.{digits}f} | |" for name, value in unmatched]
    return "\n".join(lines)
