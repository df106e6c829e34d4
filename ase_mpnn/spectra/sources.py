"""Time series for spectra from MD output files.

Formats:

* MD recorder HDF5 (:mod:`ase_mpnn.md.recorder`; ``.h5``/``.hdf5`` or any HDF5 file):
  ``time`` (fs), ``positions`` (Å), ``velocities`` (Å/fs), ``dipole`` (e·Å),
  ``polarizability`` (e²Å²/eV), ``masses`` (amu). Its RPMD variant has the same
  datasets (centroid velocities, bead-averaged dipole and polarizability) and root
  attributes ``kind = "rpmd"`` and ``n_beads``.
* ``.npz`` from ``md_examples/water_rpmd.py``: ``time``, ``centroid_positions``,
  ``dipole``, ``polarizability`` (same units), ``masses``, ``n_beads``,
  ``temperature_K``, ``timestep_fs``; no velocities.

``n_beads > 1`` marks Kubo-transformed data (``kubo=True``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np

from .lineshapes import RamanSpectra, Spectrum, ir_spectrum, power_spectrum, raman_spectrum

SERIES = ("time", "positions", "velocities", "dipole", "polarizability")
# Units the readers assume (the recorder writes them as "units" attributes).
_EXPECTED_UNITS = {"time": "fs", "positions": "Å", "velocities": "Å/fs", "dipole": "e·Å",
                   "polarizability": "e²Å²/eV", "masses": "amu"}
PathLike = str | os.PathLike


class MissingSeriesError(ValueError):
    """A file lacks the time series a spectrum needs."""


def uniform_dt(time_fs: np.ndarray, source: str = "series", rtol: float = 1e-6) -> float:
    """The constant spacing of ``time_fs`` in fs; ValueError if it is not uniform.

    Frames that are not equally spaced (a restart that repeated or skipped frames, a
    changed recording interval) would silently distort every correlation function.
    """
    t = np.asarray(time_fs, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"{source}: need at least 2 frames with a time, got shape {t.shape}")
    steps = np.diff(t)
    dt = float(np.median(steps))
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"{source}: time must increase, median step {dt}")
    bad = np.flatnonzero(np.abs(steps - dt) > rtol * dt + 1e-9)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{source}: frames are not uniformly spaced in time (dt = {dt:g} fs, but frame {i} -> {i + 1} "
            f"is {steps[i]:g} fs; {bad.size} irregular steps). Select a uniform stretch first."
        )
    return dt


def _load_recorder(path: str) -> dict[str, Any]:
    # Imported here: the MD package pulls in the dynamics drivers, not needed for npz files.
    from ase_mpnn.md.recorder import read_record, read_units

    data = read_record(path)
    file_units = read_units(path)
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        attrs = dict(f.attrs)
    for name, unit in _EXPECTED_UNITS.items():
        if name in file_units and file_units[name] != unit:
            raise ValueError(f"{path}: dataset {name!r} is in {file_units[name]!r}, expected {unit!r}")
    n_beads = int(attrs.get("n_beads", 1))
    out: dict[str, Any] = dict(data)  # every dataset: also temperature, energies, cell...
    out.update(masses=data.get("masses"), n_beads=n_beads,
               kubo=n_beads > 1 or str(attrs.get("kind", "")).lower() == "rpmd",
               temperature_K=float(attrs["temperature_K"]) if "temperature_K" in attrs else None,
               format="recorder")
    return out


def _load_npz(path: str) -> dict[str, Any]:
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    out: dict[str, Any] = dict(data)
    if "centroid_positions" in data:
        out["positions"] = data["centroid_positions"]
    elif "positions" in data:
        out["positions"] = data["positions"]
    if "time" not in out and "step" in data and "timestep_fs" in data:
        out["time"] = data["step"] * float(data["timestep_fs"])
    n_beads = int(data["n_beads"]) if "n_beads" in data else 1
    out.update(masses=data.get("masses"), n_beads=n_beads, kubo=n_beads > 1,
               temperature_K=float(data["temperature_K"]) if "temperature_K" in data else None,
               format="npz")
    return out


def load_series(path: PathLike) -> dict[str, Any]:
    """Time series and metadata of an MD output file (recorder HDF5 or RPMD ``.npz``).

    Returns a dict with the series present among ``time`` (fs), ``positions`` (Å;
    the centroid for RPMD ``.npz``), ``velocities`` (Å/fs), ``dipole`` (e·Å),
    ``polarizability`` (e²Å²/eV), the file's other arrays under their own names
    (e.g. ``temperature``, ``potential_energy``), and
    ``dt_fs`` (checked uniform), ``masses`` (amu or None), ``n_beads``, ``kubo``
    (n_beads > 1 or an RPMD recorder file), ``temperature_K`` (None when the file does
    not say), ``format`` and ``path``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if path.endswith(".npz"):
        out = _load_npz(path)
    elif h5py.is_hdf5(path):
        out = _load_recorder(path)
    else:
        raise ValueError(f"{path}: not a recorder HDF5 file nor an .npz file")
    if "time" not in out:
        raise MissingSeriesError(f"{path}: no 'time' series, cannot find the time step")
    out["dt_fs"] = uniform_dt(out["time"], path)
    out["path"] = path
    return out


def require(series: dict[str, Any], name: str) -> np.ndarray:
    """``series[name]``, or a :class:`MissingSeriesError` that names the file and what it has."""
    value = series.get(name)
    if value is None:
        have = sorted(k for k in SERIES if series.get(k) is not None)
        raise MissingSeriesError(f"{series.get('path', 'input')}: no {name!r} series (has: {', '.join(have)})")
    return value


def load_all(paths: PathLike | Sequence[PathLike | dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`load_series` of each file, checked to share one time step. Items that are
    already loaded series (dicts) are kept, so files read once can serve several spectra."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("no file given")
    loaded = [p if isinstance(p, dict) else load_series(p) for p in paths]
    dts = [s["dt_fs"] for s in loaded]
    if not np.allclose(dts, dts[0], rtol=1e-6):
        raise ValueError(f"files have different time steps {dts} fs: spectra would not share a grid")
    return loaded


def _file_meta(loaded: list[dict[str, Any]]) -> dict[str, Any]:
    return {"files": [s["path"] for s in loaded], "n_beads": [s["n_beads"] for s in loaded],
            "file_temperature_K": [s["temperature_K"] for s in loaded]}


def ir_spectrum_from_file(paths: PathLike | Sequence[PathLike | dict[str, Any]], **kwargs: Any) -> Spectrum:
    """:func:`~ase_mpnn.spectra.ir_spectrum` of the ``dipole`` of one or several files
    (several: averaged with a standard error). ``kubo`` defaults to the files' flag."""
    loaded = load_all(paths)
    kwargs.setdefault("kubo", any(s["kubo"] for s in loaded))
    spectrum = ir_spectrum([require(s, "dipole") for s in loaded], loaded[0]["dt_fs"], **kwargs)
    spectrum.metadata.update(_file_meta(loaded))
    return spectrum


def raman_spectrum_from_file(paths: PathLike | Sequence[PathLike | dict[str, Any]], **kwargs: Any) -> RamanSpectra:
    """:func:`~ase_mpnn.spectra.raman_spectrum` of the ``polarizability`` (e²Å²/eV) of files."""
    loaded = load_all(paths)
    spectra = raman_spectrum([require(s, "polarizability") for s in loaded], loaded[0]["dt_fs"], **kwargs)
    for s in spectra.as_list() + [spectra.depolarization]:
        s.metadata.update(_file_meta(loaded))
    return spectra


def power_spectrum_from_file(paths: PathLike | Sequence[PathLike | dict[str, Any]], **kwargs: Any) -> Spectrum:
    """:func:`~ase_mpnn.spectra.power_spectrum` of files: from ``velocities`` when stored,
    else from ``positions`` (e.g. RPMD centroids, ``input_kind="positions"``)."""
    loaded = load_all(paths)
    use_velocities = all(s.get("velocities") is not None for s in loaded)
    name = kwargs.setdefault("input_kind", "velocities" if use_velocities else "positions")
    masses = require(loaded[0], "masses")
    spectrum = power_spectrum([require(s, name) for s in loaded], masses, loaded[0]["dt_fs"], **kwargs)
    spectrum.metadata.update(_file_meta(loaded))
    return spectrum
