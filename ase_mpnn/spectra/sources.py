"""Time series for spectra from MD output files.

Formats (:func:`load_series` tells them apart by content and extension):

* MD recorder HDF5 (:mod:`ase_mpnn.md.recorder`; ``.h5``/``.hdf5`` or any HDF5 file):
  ``time`` (fs), ``positions`` (Å), ``velocities`` (Å/fs), ``dipole`` (e·Å),
  ``polarizability`` (e²Å²/eV), ``masses`` (amu). Its RPMD variant has the same
  datasets (centroid velocities, bead-averaged dipole and polarizability) and root
  attributes ``kind = "rpmd"`` and ``n_beads``.
* ASE ``.traj`` (e.g. ``Langevin(..., trajectory="md.traj")``) and any multi-frame file
  ``ase.io`` reads (extxyz...), and i-PI runs through their input file (``input.xml``):
  see :mod:`.trajectories` for where each keeps what.

``n_beads > 1`` marks Kubo-transformed data (``kubo=True``).

Time. The time between frames comes from the file where it stores it (a ``time``
series, an ASE trajectory's description, i-PI's step numbers and properties file), else
from ``dt_fs``; a file whose time disagrees with ``dt_fs`` is an error, and so is
neither. Frames must be uniformly spaced; repeated frames are refused.

Dipoles and polarizabilities that a file lacks are predicted with ``model`` (any
:func:`~ase_mpnn.spectra.prediction.predict_series` option: batches, float64, cache),
or for every file with ``predict="always"``. Periodic positions of files from other
programs are unwrapped first (:func:`~ase_mpnn.spectra.trajectories.unwrap_positions`);
the recorders write unwrapped positions already.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from ..model.properties import PROPERTY_TABLE
from .lineshapes import RamanSpectra, Spectrum, ir_spectrum, power_spectrum, raman_spectrum
from .prediction import PREDICTABLE, as_calculator, predict_series
from .trajectories import UnwrapError, is_ipi_input, read_ase, read_ipi, unwrap_positions

SERIES = ("time", "positions", "velocities", "dipole", "polarizability")
# Units the readers assume (the recorder writes them as "units" attributes).
_EXPECTED_UNITS = {"time": "fs", "positions": "Å", "velocities": "Å/fs", "masses": "amu",
                   "dipole": PROPERTY_TABLE["dipole"].unit, "polarizability": PROPERTY_TABLE["polarizability"].unit}
PathLike = str | os.PathLike
#: Keyword arguments of :func:`load_series` (the ``*_from_file`` functions pass them on).
LOAD_OPTIONS = ("dt_fs", "model", "predict", "properties", "keys", "format", "pbc", "charge", "extras_units",
                "device", "dtype", "batch_size", "max_edges", "cache_dir", "progress")
# Formats whose positions are continuous by construction (the recorders never wrap).
_UNWRAPPED_FORMATS = ("recorder",)


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
    # Imported here: the MD package pulls in the dynamics drivers, not needed for other files.
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
    if out.get("time") is not None and np.all(np.isnan(out["time"])):
        out["time"] = None  # a recorder without a known time step writes NaN: dt_fs must say it
    return out


def load_series(
    path: PathLike,
    *,
    dt_fs: float | None = None,
    model: Any = None,
    predict: str = "missing",
    properties: Sequence[str] = PREDICTABLE,
    keys: Mapping[str, str] | None = None,
    format: str | None = None,
    pbc: bool | Sequence[bool] | None = None,
    charge: float | None = None,
    extras_units: str = "atomic",
    device: str = "cpu",
    dtype: Any = None,
    batch_size: int | None = None,
    max_edges: int | None = None,
    cache_dir: PathLike | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Time series and metadata of an MD output file (see the module docstring for formats).

    Args:
        path: recorder HDF5 (MD or RPMD), ASE ``.traj``, extxyz or another ``ase.io``
            format, or an i-PI input file (``.xml``) whose outputs lie next to it.
        dt_fs: time between frames (fs) for files that do not store it; a file that
            stores another one is an error.
        model: model file, ``AtomisticModel`` or ``MPNNCalculator`` to predict the
            ``properties`` the file lacks (frames with positions are needed).
        predict: "missing" (default: only what the file lacks) or "always" (replace the
            file's dipoles/polarizabilities by the model's).
        properties: which of "dipole", "polarizability" to predict where needed.
        keys: where an ASE file keeps "dipole", "polarizability", "time" (fs) in the
            calculator results or ``atoms.info``, if not under those names ("time_fs").
        format: ``ase.io`` format name, if the extension does not tell it.
        pbc: periodicity for unwrapping and predictions, instead of the file's (i-PI runs
            always have a box: ``pbc=False`` treats a molecule in it as isolated).
        charge: total charge (e) for predictions, instead of the file's (``info["charge"]``
            of ASE frames, else 0).
        extras_units: units of i-PI dipole/polarizability extras: "atomic" (e·Bohr,
            Bohr³; ``ase-mpnn ipi-client``'s default) or "ase".
        device, dtype, batch_size, max_edges, cache_dir, progress: of the predictions
            (:func:`~ase_mpnn.spectra.prediction.predict_series`).

    Returns a dict with the series present among ``time`` (fs), ``positions`` (Å;
    the centroid for ring-polymer data; unwrapped), ``velocities`` (Å/fs), ``dipole`` (e·Å),
    ``polarizability`` (e²Å²/eV), the file's other arrays under their own names
    (e.g. ``temperature``, ``potential_energy``), and
    ``dt_fs`` (checked uniform), ``masses`` (amu or None), ``n_beads``, ``kubo``
    (n_beads > 1 or an RPMD recorder file), ``temperature_K`` (None when the file does
    not say), ``sources`` (for the dipole and polarizability: "file", "model" or None),
    ``format`` and ``path``.
    """
    options = _check_options(dict(dt_fs=dt_fs, model=model, predict=predict, properties=properties, keys=keys,
                                  format=format, pbc=pbc, charge=charge, extras_units=extras_units, device=device,
                                  dtype=dtype, batch_size=batch_size, max_edges=max_edges, cache_dir=cache_dir,
                                  progress=progress))
    calc, label = _calculator(options)
    return _load_one(os.fspath(path), options, calc, label)


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    if options["predict"] not in ("missing", "always"):
        raise ValueError(f"predict must be 'missing' or 'always', got {options['predict']!r}")
    if options["predict"] == "always" and options["model"] is None:
        raise ValueError("predict='always' needs a model (model=..., --model)")
    dt = options["dt_fs"]
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt_fs must be a positive time between frames in fs, got {dt!r}")
    unknown = set(options["properties"]) - set(PREDICTABLE)
    if unknown:
        raise ValueError(f"properties must be some of {PREDICTABLE}, got {list(options['properties'])}")
    return options


def _calculator(options: Mapping[str, Any]) -> tuple[Any, str]:
    """The calculator for predictions (built once for all files) and how to name it."""
    model = options["model"]
    if model is None:
        return None, ""
    label = os.fspath(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
    return as_calculator(model, options["device"], options["dtype"]), label


def _read(path: str, options: Mapping[str, Any]) -> dict[str, Any]:
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory: give the trajectory file (for an i-PI run: its input .xml)")
    if options["format"] is None and path.endswith(".npz"):
        raise ValueError(
            f"{path}: an .npz file is not a trajectory ase_mpnn reads (MD and RPMD checkpoints are .npz; records are "
            "HDF5). md_examples/water_rpmd.py used to write its frames as .npz: run it again, it writes an HDF5 "
            "record now (water_rpmd.h5)"
        )
    if options["format"] is None and h5py.is_hdf5(path):
        return _load_recorder(path)
    if options["format"] is None and is_ipi_input(path):
        return read_ipi(path, extras_units=options["extras_units"])
    if options["format"] is None and path.lower().endswith(".xml"):
        raise ValueError(f"{path}: an XML file but not an i-PI input (no <simulation> root)")
    return read_ase(path, format=options["format"], keys=options["keys"])


def _load_one(path: str, options: Mapping[str, Any], calc: Any, label: str) -> dict[str, Any]:
    out = _read(path, options)
    out.setdefault("notes", [])
    _resolve_time(out, options["dt_fs"], path)
    out["dt_fs"] = uniform_dt(out["time"], path)
    if options["pbc"] is not None:
        out["pbc"] = np.broadcast_to(np.asarray(options["pbc"], dtype=bool), (3,)).copy()
    if options["charge"] is not None:
        out["charge"] = float(options["charge"])
    if out["format"] not in _UNWRAPPED_FORMATS:
        _unwrap(out, path)
    out["sources"] = {p: ("file" if out.get(p) is not None else None) for p in PREDICTABLE}
    if calc is not None:
        wanted = [p for p in options["properties"] if options["predict"] == "always" or out.get(p) is None]
        if wanted:
            values = predict_series(
                _prediction_positions(out, path), _numbers(out, path), calc, wanted, cell=out.get("cell"),
                pbc=out.get("pbc", False), charge=out.get("charge", 0.0), batch_size=options["batch_size"],
                max_edges=options["max_edges"], progress=options["progress"], cache_dir=options["cache_dir"],
                cache_name=os.path.basename(path), source=path, model_name=label)
            out.update(values)
            out["sources"].update(dict.fromkeys(values, "model"))
            out["model"] = label
    out["path"] = path
    return out


def _resolve_time(out: dict[str, Any], dt_fs: float | None, path: str) -> None:
    """``out["time"]`` from the file's own time, its stored time step, or ``dt_fs``."""
    n = _n_frames(out, path)
    if out.get("time") is not None:
        if dt_fs is not None:
            stored = uniform_dt(out["time"], path)
            if not np.isclose(stored, dt_fs, rtol=1e-6):
                raise ValueError(f"{path} stores its time: {stored:g} fs between frames, but dt_fs = {dt_fs:g} fs was "
                                 "given; leave dt_fs (--dt) out to use the file's")
        return
    stored = out.get("dt_fs")
    if stored is not None:
        if dt_fs is not None and not np.isclose(stored, dt_fs, rtol=1e-6):
            raise ValueError(f"{path} stores its time step: {stored:g} fs between frames, but dt_fs = {dt_fs:g} fs "
                             "was given; leave dt_fs (--dt) out to use the file's")
        dt = stored
    elif dt_fs is not None:
        dt = dt_fs
    else:
        raise ValueError(f"{path}: the file does not say how much time passes between its frames"
                         + (f" ({out['time_hint']})" if out.get("time_hint") else "")
                         + "; pass the time between frames in fs as dt_fs=... (ase-mpnn spectrum --dt FS): the MD "
                         "time step times the writing interval")
    # Without stored times, a frame written twice (e.g. by a restarted run) is only seen in the positions.
    positions = out.get("positions")
    if positions is not None and len(positions) > 1:
        same = np.flatnonzero(np.all(positions[1:] == positions[:-1], axis=(1, 2)))
        if same.size:
            raise ValueError(f"{path}: frame {same[0] + 1} repeats frame {same[0]} ({same.size} repeated frames, e.g. "
                             "from a restarted run that wrote a frame again): remove the repeats")
    out["time"] = np.arange(n) * float(dt)


def _n_frames(out: Mapping[str, Any], path: str) -> int:
    for name in ("time", "positions", "dipole", "polarizability", "velocities"):
        if out.get(name) is not None:
            return len(out[name])
    raise MissingSeriesError(f"{path}: no time series in this file")


def _unwrap(out: dict[str, Any], path: str) -> None:
    """Unwrap periodic positions (beads first, then their centroid); on failure keep the reason."""
    pbc = np.asarray(out.get("pbc", False), dtype=bool)
    if not pbc.any() or out.get("positions") is None:
        return
    try:
        beads = out.get("bead_positions")
        if beads is not None:
            n, p, natoms = beads.shape[:3]
            flat = unwrap_positions(beads.reshape(n, p * natoms, 3), out["cell"], pbc, path)
            out["bead_positions"] = flat.reshape(beads.shape)
            out["positions"] = out["bead_positions"].mean(axis=1)
        else:
            out["positions"] = unwrap_positions(out["positions"], out["cell"], pbc, path)
    except UnwrapError as err:
        # Only what needs positions fails (VDOS, predictions); stored dipoles still serve.
        out["positions"] = out["bead_positions"] = None
        out["positions_error"] = str(err)


def _numbers(out: Mapping[str, Any], path: str) -> np.ndarray:
    if out.get("numbers") is None:
        raise MissingSeriesError(f"{path}: no atomic numbers in this file, so nothing can be predicted for it")
    return np.asarray(out["numbers"])


def _prediction_positions(out: Mapping[str, Any], path: str) -> np.ndarray:
    """Positions the model needs: every bead's for ring-polymer data, else the frames'."""
    if out.get("positions_error"):
        raise ValueError(out["positions_error"])
    if out.get("n_beads", 1) > 1:
        if out.get("bead_positions") is None:
            raise MissingSeriesError(
                f"{path}: a ring-polymer run ({out['n_beads']} beads) without every bead's positions, and the "
                "bead-averaged dipole/polarizability cannot be predicted from the centroid: record the beads "
                "(RingPolymerRecorder(beads=True), ase-mpnn rpmd --record-beads; i-PI: <trajectory> positions "
                "</trajectory>) or the dipole/polarizability themselves (i-PI: extras)")
        return out["bead_positions"]
    if out.get("positions") is None:
        raise MissingSeriesError(f"{path}: no positions, so nothing can be predicted for it")
    return out["positions"]


_HINTS = {
    "dipole": ("pass a model to predict it (model=..., ase-mpnn spectrum --model M), or record it: "
               "MDRecorder, or MPNNCalculator(also_compute=('dipole', 'polarizability')) for ASE trajectories"),
    "polarizability": ("pass a model to predict it (model=..., ase-mpnn spectrum --model M), or record it: "
                       "MDRecorder, or MPNNCalculator(also_compute=('dipole', 'polarizability')) for ASE trajectories"),
    "masses": "masses come with recorder, ASE and i-PI files",
}


def require(series: dict[str, Any], name: str) -> np.ndarray:
    """``series[name]``, or a :class:`MissingSeriesError` that names the file, what it has
    and what to pass instead."""
    value = series.get(name)
    if value is None:
        if name == "positions" and series.get("positions_error"):
            raise MissingSeriesError(series["positions_error"])
        have = sorted(k for k in SERIES if series.get(k) is not None)
        hint = _HINTS.get(name, "")
        raise MissingSeriesError(f"{series.get('path', 'input')}: no {name!r} series (has: {', '.join(have)})"
                                 + (f"; {hint}" if hint else ""))
    return value


def load_all(paths: PathLike | Sequence[PathLike | dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    """:func:`load_series` of each file (``options`` as there), checked to share one time
    step. Items that are already loaded series (dicts) are kept, so files read once can
    serve several spectra. A model is loaded once for all files."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("no file given")
    unknown = set(options) - set(LOAD_OPTIONS)
    if unknown:
        raise TypeError(f"unknown loading options {sorted(unknown)}; choose from {LOAD_OPTIONS}")
    defaults = {k: v.default for k, v in inspect.signature(load_series).parameters.items() if k in LOAD_OPTIONS}
    merged = _check_options({**defaults, **options})
    calc, label = _calculator(merged) if any(not isinstance(p, dict) for p in paths) else (None, "")
    loaded = [p if isinstance(p, dict) else _load_one(os.fspath(p), merged, calc, label) for p in paths]
    dts = [s["dt_fs"] for s in loaded]
    if not np.allclose(dts, dts[0], rtol=1e-6):
        raise ValueError(f"files have different time steps {dts} fs: spectra would not share a grid")
    return loaded


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Loading options and spectrum arguments of a ``*_from_file`` call."""
    load = {k: kwargs.pop(k) for k in list(kwargs) if k in LOAD_OPTIONS}
    return load, kwargs


def _file_meta(loaded: list[dict[str, Any]]) -> dict[str, Any]:
    meta = {"files": [s["path"] for s in loaded], "n_beads": [s["n_beads"] for s in loaded],
            "file_temperature_K": [s["temperature_K"] for s in loaded]}
    if any(s.get("model") for s in loaded):
        meta["sources"] = [s.get("sources", {}) for s in loaded]
        meta["model"] = sorted({s["model"] for s in loaded if s.get("model")})
    return meta


def ir_spectrum_from_file(paths: PathLike | Sequence[PathLike | dict[str, Any]], **kwargs: Any) -> Spectrum:
    """:func:`~ase_mpnn.spectra.ir_spectrum` of the ``dipole`` of one or several files
    (several: averaged with a standard error). ``kubo`` defaults to the files' flag.

    Loading options (:data:`LOAD_OPTIONS`: ``dt_fs``, ``model``, ``predict``...) go to
    :func:`load_series`; a ``model`` predicts only dipoles here. The rest goes to
    :func:`~ase_mpnn.spectra.ir_spectrum`.
    """
    load, kwargs = _split(kwargs)
    load.setdefault("properties", ("dipole",))
    loaded = load_all(paths, **load)
    kwargs.setdefault("kubo", any(s["kubo"] for s in loaded))
    spectrum = ir_spectrum([require(s, "dipole") for s in loaded], loaded[0]["dt_fs"], **kwargs)
    spectrum.metadata.update(_file_meta(loaded))
    return spectrum


def raman_spectrum_from_file(paths: PathLike | Sequence[PathLike | dict[str, Any]], **kwargs: Any) -> RamanSpectra:
    """:func:`~ase_mpnn.spectra.raman_spectrum` of the ``polarizability`` (e²Å²/eV) of files
    (loading options as :func:`ir_spectrum_from_file`; a ``model`` predicts polarizabilities)."""
    load, kwargs = _split(kwargs)
    load.setdefault("properties", ("polarizability",))
    loaded = load_all(paths, **load)
    spectra = raman_spectrum([require(s, "polarizability") for s in loaded], loaded[0]["dt_fs"], **kwargs)
    for s in spectra.as_list() + [spectra.depolarization]:
        s.metadata.update(_file_meta(loaded))
    return spectra


def power_spectrum_from_file(paths: PathLike | Sequence[PathLike | dict[str, Any]], **kwargs: Any) -> Spectrum:
    """:func:`~ase_mpnn.spectra.power_spectrum` of files: from ``velocities`` when stored,
    else from ``positions`` (e.g. RPMD centroids, ``input_kind="positions"``). Loading
    options as :func:`ir_spectrum_from_file` (nothing is predicted)."""
    load, kwargs = _split(kwargs)
    load.setdefault("properties", ())
    load["model"] = None  # the VDOS needs no model: do not load one
    load.pop("predict", None)
    loaded = load_all(paths, **load)
    use_velocities = all(s.get("velocities") is not None for s in loaded)
    name = kwargs.setdefault("input_kind", "velocities" if use_velocities else "positions")
    masses = require(loaded[0], "masses")
    spectrum = power_spectrum([require(s, name) for s in loaded], masses, loaded[0]["dt_fs"], **kwargs)
    spectrum.metadata.update(_file_meta(loaded))
    return spectrum
