"""Spectra of MD records to files: CSV tables, PNG plots and peak tables (``ase-mpnn spectrum``).

One call reads one or several records (independent trajectories: averaged, with a
standard-error band), computes the IR, Raman and power spectra asked for, and writes
``PREFIX_ir.csv``, ``PREFIX_raman.csv``, ``PREFIX_power.csv``, a PNG plot per spectrum
and ``PREFIX_peaks.md``. RPMD records (``n_beads > 1``) are Kubo-transformed: they get no
quantum correction.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .lineshapes import RamanSpectra, Spectrum
from .peaks import find_peaks, peak_table
from .plot import plot_spectra
from .sources import (
    ir_spectrum_from_file,
    load_all,
    power_spectrum_from_file,
    raman_spectrum_from_file,
)

PathLike = str | os.PathLike


@dataclass
class SpectraReport:
    """What :func:`write_spectra` computed and wrote."""

    spectra: dict[str, Spectrum | RamanSpectra] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    temperature_K: float | None = None
    temperature_source: str = ""
    kubo: bool = False
    text: str = ""


def record_temperature(paths: Sequence[PathLike | dict[str, Any]], **options: Any) -> tuple[float | None, str]:
    """Temperature of MD records: the run's thermostat temperature (RPMD attribute, ASE
    trajectory description, i-PI ensemble), else the mean kinetic temperature over all
    frames (a thermostatted or thermalised NVE run). ``options``: as :func:`load_all`."""
    loaded = load_all(paths, **options)
    stated = {s["temperature_K"] for s in loaded}
    if None not in stated:
        if len(stated) > 1:
            raise ValueError(f"the records were run at different temperatures {sorted(stated)} K: "
                             "average only runs of one temperature, or pass the temperature explicitly")
        return stated.pop(), "the records' run temperature"
    kinetic = [s["temperature"] for s in loaded if s.get("temperature") is not None]
    if len(kinetic) == len(loaded):
        return float(np.mean(np.concatenate(kinetic))), "mean kinetic temperature of the records"
    return None, ""


def _write_table(path: str, columns: Mapping[str, np.ndarray], header: Sequence[str]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        for line in header:
            f.write(f"# {line}\n")
        writer = csv.writer(f)
        writer.writerow(list(columns))
        writer.writerows(zip(*(np.asarray(c).tolist() for c in columns.values())))
    return path


def _raman_table(raman: RamanSpectra, path: str) -> str:
    columns: dict[str, np.ndarray] = {"wavenumber_cm-1": raman.wavenumber}
    for name in ("parallel", "perpendicular", "isotropic", "anisotropic"):
        spectrum = getattr(raman, name)
        columns[name] = spectrum.intensity
        if spectrum.std_error is not None:
            columns[f"{name}_std_error"] = spectrum.std_error
    columns["depolarization_ratio"] = raman.depolarization.intensity
    header = [f"Raman spectra, intensities in {raman.parallel.units}", f"metadata: {raman.parallel.metadata}"]
    return _write_table(path, columns, header)


def write_spectra(
    paths: PathLike | Sequence[PathLike],
    prefix: PathLike,
    *,
    ir: bool = True,
    raman: bool = True,
    power: bool = True,
    temperature_K: float | None = None,
    max_lag_fs: float | None = 2000.0,
    window: str | None = "hann",
    quantum_correction: str | None = None,
    laser_wavenumber_cm1: float | None = None,
    xlim: tuple[float, float] = (0.0, 4500.0),
    reference: Mapping[str, float] | Sequence[float] | None = None,
    min_prominence: float = 0.02,
    **load_options: Any,
) -> SpectraReport:
    """Compute the spectra of MD records and write CSV, PNG and a peak table next to ``prefix``.

    Args:
        paths: recorder HDF5 files (MD and RPMD), ASE trajectories, extxyz files or i-PI
            input files (see :func:`~ase_mpnn.spectra.sources.load_series`); several are
            independent trajectories, averaged with a standard error.
        prefix: output path prefix, e.g. ``out/water`` → ``out/water_ir.csv``...
        ir, raman, power: which spectra (each needs dipole, polarizability, velocities
            or positions in the records; a missing series is an error).
        temperature_K: for IR in absolute units (cm² per molecule, band areas in km/mol)
            and the VDOS normalisation; None: the records' own (RPMD run temperature,
            else the mean kinetic temperature), printed in the report.
        max_lag_fs, window: correlation length and lag window (Hann line width ≈ 24 cm⁻¹ ×
            1000 fs / max_lag_fs).
        quantum_correction: "harmonic", "standard" or "schofield" for classical records.
        laser_wavenumber_cm1: weight Raman with the Stokes scattering factor.
        reference: band positions for the peak tables and plots (e.g. experiment).
        load_options: how to read the files (``dt_fs``, ``model``, ``predict``, ``dtype``,
            ``cache_dir``...: :data:`~ase_mpnn.spectra.sources.LOAD_OPTIONS`). A model
            predicts only what the spectra asked for need (dipoles for IR,
            polarizabilities for Raman) and the files lack.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not (ir or raman or power):
        raise ValueError("nothing to compute: ask for ir, raman and/or power")
    prefix = os.fspath(prefix)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    report = SpectraReport()
    load_options.setdefault("properties", tuple(p for p, on in (("dipole", ir), ("polarizability", raman)) if on))
    loaded = load_all(paths, **load_options)  # read once; every spectrum below uses these series
    report.kubo = any(s["kubo"] for s in loaded)
    if temperature_K is None:
        temperature_K, source = record_temperature(loaded)
        report.temperature_source = source
    else:
        report.temperature_source = "given"
    report.temperature_K = temperature_K
    if report.kubo and quantum_correction is not None:
        raise ValueError("the records are RPMD (Kubo-transformed) runs: they take no quantum correction")
    if quantum_correction is not None and temperature_K is None:
        raise ValueError("a quantum correction needs a temperature")
    lines = [f"records: {', '.join(s['path'] for s in loaded)}"
             + (" (RPMD: Kubo-transformed, no quantum correction)" if report.kubo else ""),
             f"temperature: {temperature_K:.1f} K ({report.temperature_source})" if temperature_K is not None
             else "temperature: unknown (IR as a line shape in arbitrary units)"]
    for series in loaded:
        predicted = [name for name, origin in series.get("sources", {}).items() if origin == "model"]
        if predicted:
            lines.append(f"{' and '.join(predicted)} of {series['path']} predicted by {series['model']}")
    tables: list[str] = []
    common = {"max_lag_fs": max_lag_fs, "window": window}

    if ir:
        spectrum = ir_spectrum_from_file(loaded, temperature_K=temperature_K, quantum_correction=quantum_correction,
                                         **common)
        report.spectra["ir"] = spectrum
        report.files.append(spectrum.to_csv(f"{prefix}_ir.csv"))
        report.files.append(plot_spectra(spectrum, f"{prefix}_ir.png", xlim=xlim, reference=reference,
                                         title="IR absorption"))
        peaks = find_peaks(spectrum, min_prominence, lo=xlim[0], hi=xlim[1], drop_below_noise=False)
        title = f"IR peaks ({spectrum.units})"
        if temperature_K is not None:
            km = [spectrum.km_per_mol(p.left, p.right) for p in peaks]
            title += "; band intensities (between the neighbouring minima): " + ", ".join(
                f"{p.position:.0f} cm⁻¹ {k:.3g} km/mol" for p, k in zip(peaks, km))
        tables.append(f"## {title}\n\n{peak_table(peaks, reference, units=spectrum.units)}")
    if raman:
        spectra = raman_spectrum_from_file(loaded, laser_wavenumber_cm1=laser_wavenumber_cm1,
                                           temperature_K=temperature_K if laser_wavenumber_cm1 else None, **common)
        report.spectra["raman"] = spectra
        report.files.append(_raman_table(spectra, f"{prefix}_raman.csv"))
        report.files.append(plot_spectra(spectra, f"{prefix}_raman.png", xlim=xlim, reference=reference,
                                         title="Raman (parallel and perpendicular)"))
        peaks = find_peaks(spectra.parallel, min_prominence, lo=max(xlim[0], 200.0), hi=xlim[1],
                           drop_below_noise=False)
        rho = [float(np.interp(p.position, spectra.wavenumber, spectra.depolarization.intensity)) for p in peaks]
        title = "Raman peaks (parallel polarisation); depolarization ratios: " + ", ".join(
            f"{p.position:.0f} cm⁻¹ ρ = {r:.2f}" for p, r in zip(peaks, rho))
        tables.append(f"## {title}\n\n{peak_table(peaks, reference, units=spectra.parallel.units)}")
    if power:
        spectrum = power_spectrum_from_file(loaded, temperature_K=temperature_K, **common)
        report.spectra["power"] = spectrum
        report.files.append(spectrum.to_csv(f"{prefix}_power.csv"))
        report.files.append(plot_spectra(spectrum, f"{prefix}_power.png", xlim=xlim, reference=reference,
                                         title="Vibrational density of states"))
        peaks = find_peaks(spectrum, min_prominence, lo=max(xlim[0], 200.0), hi=xlim[1], drop_below_noise=False)
        tables.append(f"## Power spectrum peaks ({spectrum.units})\n\n"
                      f"{peak_table(peaks, reference, units=spectrum.units)}")
    peaks_path = f"{prefix}_peaks.md"
    with open(peaks_path, "w", encoding="utf-8") as f:
        f.write("\n".join(f"{line}  " for line in lines) + "\n\n" + "\n\n".join(tables) + "\n")
    report.files.append(peaks_path)
    report.text = "\n".join(lines) + "\n\n" + "\n\n".join(tables) + "\n\nwrote " + ", ".join(report.files)
    return report


def parse_reference(values: Sequence[str] | None) -> dict[str, float] | list[float] | None:
    """``["water"]`` → the experimental gas-phase water fundamentals; numbers → positions."""
    from .peaks import WATER_GAS_FUNDAMENTALS

    if not values:
        return None
    if len(values) == 1 and values[0].lower() == "water":
        return dict(WATER_GAS_FUNDAMENTALS)
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ValueError(f"--reference takes 'water' or band positions in cm⁻¹, got {list(values)}") from None
