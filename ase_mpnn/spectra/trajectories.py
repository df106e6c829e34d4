"""Frames of MD runs written by other programs: ASE trajectories, extxyz (any ``ase.io``
format), and i-PI runs; and unwrapping of periodic positions.

Every reader returns a dict of series in the units of :mod:`.sources` (time fs,
positions Å, velocities Å/fs, dipole e·Å, polarizability e²Å²/eV, masses amu):

* ``numbers`` (N,), ``masses`` (N,), ``pbc`` (3,), ``charge`` (total, e);
* ``positions`` (n, N, 3), ``cell`` (n, 3, 3) or None, ``velocities`` (n, N, 3) or None,
  ``temperature`` (kinetic, K, per frame) or None;
* ``dipole`` (n, 3) and ``polarizability`` (n, 3, 3) where every frame has them, else None;
* ``time`` (n,) in fs where the file stores it, else None, and ``dt_fs`` (time between
  frames from the file's metadata) or None;
* ``n_beads``, ``kubo``, ``temperature_K`` (the run's thermostat, None if unknown),
  ``bead_positions`` (n, P, N, 3) for ring-polymer runs where every bead was written,
  ``format`` and ``notes`` (what was left out, and why).

Where each format keeps what:

* ASE ``.traj`` as ASE's dynamics write it (``Langevin(..., trajectory="md.traj",
  loginterval=k)``): the header's description holds the time step and ``interval``, so the
  time between frames is ``timestep × interval``, and the thermostat temperature; dipole
  and polarizability are the saved calculator results (an ``MPNNCalculator`` computes
  them in the force call when ``also_compute=("dipole", "polarizability")``); velocities
  from the momenta.
* other ``ase.io`` formats (extxyz...): dipole and polarizability from the calculator
  results or ``atoms.info`` (names changeable with ``keys``; a polarizability of 9 numbers
  is read as 3×3), velocities from ``momenta``, time from ``info["time_fs"]`` where every
  frame has it. Values are taken in ASE's units (e·Å, e²Å²/eV).
* i-PI: the run's input file (``input.xml``) names every output. Positions come from the
  ``positions`` trajectory of every bead (centroid = bead mean) or from ``x_centroid``;
  dipole and polarizability from ``<trajectory extra_type="dipole"> extras`` (one file per
  bead, averaged over beads: the Kubo-transformed estimator of RPMD), as written by
  :class:`~ase_mpnn.md.ipi_client.IPIClient` in atomic units (e·Bohr, Bohr³) unless the
  client ran with ``--extras-units ase``; the time of a step from the properties file
  (``step`` and ``time`` columns), else the input's ``<timestep>``; frames are the steps
  in the ``Step:`` of each frame. Trajectory formats ``xyz``, ``bin`` and ``ase``; units
  from each frame's title (``positions{atomic_unit}``...). i-PI's ``xyz`` keeps 6
  significant digits of each coordinate; ``bin`` and ``ase`` keep them all.

Periodic positions (:func:`unwrap_positions`). Most codes write positions wrapped into the
cell, and a dipole Σ q_i r_i jumps by q·L whenever an atom crosses a face. Positions are
unwrapped frame to frame by the minimum image: r̃_t = r_t + n_t·h_t, with integer image
counts n_t chosen so that each atom's fractional displacement from the previous frame is
the shortest one (cell vectors h_t of frame t: fixed or changing cells alike). That is only
unambiguous while no atom moves more than half a cell between frames; frames in which an
atom moves more than :data:`MAX_UNWRAP_STEP` (a quarter) of the cell are refused.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.data import atomic_masses, atomic_numbers
from ase.geometry import cellpar_to_cell, complete_cell

from ..model.properties import PROPERTY_TABLE, register_polarizability

register_polarizability()

__all__ = [
    "DEFAULT_KEYS",
    "MAX_UNWRAP_STEP",
    "TrajectoryError",
    "UnwrapError",
    "is_ipi_input",
    "read_ase",
    "read_ipi",
    "unwrap_positions",
]

#: Largest fractional displacement (along any periodic cell vector) allowed between
#: consecutive frames when unwrapping. A true move of x and a wrapped one of x − 1 look
#: alike; beyond ¼ cell per frame a move of more than ½ cell becomes plausible.
MAX_UNWRAP_STEP = 0.25
#: Where the ASE reader looks for each series (calculator results first, then info).
DEFAULT_KEYS = {"dipole": "dipole", "polarizability": "polarizability", "time": "time_fs"}
#: ExtrasUnits of the i-PI client (see ase_mpnn.md.ipi_client.EXTRAS_UNITS): factors back to e·Å, e²Å²/eV.
_EXTRAS_TO_ASE = {
    "atomic": {"dipole": units.Bohr, "polarizability": units.Bohr**2 / units.Hartree},
    "ase": {"dipole": 1.0, "polarizability": 1.0},
}
_EXTRA_SIZES = {"dipole": 3, "polarizability": 9}
_SI_PREFIXES = {"": 1.0, "deca": 1e1, "deci": 1e-1, "centi": 1e-2, "milli": 1e-3, "micro": 1e-6,
                "nano": 1e-9, "pico": 1e-12, "femto": 1e-15, "atto": 1e-18}
_IPI_TRAJECTORY_SUFFIX = {"xyz": ".xyz", "bin": ".bin", "ase": ".extxyz"}
_IPI_CELL = re.compile(r"CELL[\(\[\{](abcABC|H|GENH)[\)\]\}]:\s*([-+0-9.eE\s]*)")
_IPI_STEP = re.compile(r"Step:\s*(-?\d+)")
_IPI_UNITS = re.compile(r"(\w+)\{([^}]*)\}")
_IPI_EXTRAS_HEADER = re.compile(r"#EXTRAS\(([^)]*)\)#\s*Step:\s*(-?\d+)")
_IPI_PROPERTY_HEADER = re.compile(r"#\s*(?:column|cols\.)\s+(\d+)(?:\s*-\s*(\d+))?\s*-->\s*([^\s:]+)")


class TrajectoryError(ValueError):
    """A trajectory file cannot give a time series (unreadable, mixed systems, missing parts)."""


class UnwrapError(TrajectoryError):
    """Periodic frames too far apart to unwrap by the minimum image."""


# --- periodic positions -----------------------------------------------------------------

def unwrap_positions(positions: np.ndarray, cell: np.ndarray, pbc: Iterable[bool],
                     source: str = "trajectory") -> np.ndarray:
    """Positions made continuous across periodic boundaries (see the module docstring).

    Args:
        positions: (n_frames, N, 3) in Å, wrapped or not.
        cell: (n_frames, 3, 3) or (3, 3), cell vectors as rows (Å).
        pbc: periodicity along the three cell vectors.
        source: named in error messages.

    Returns a new array (the input itself when nothing had to change: no atom crossed a
    face, or nothing is periodic). Raises :class:`UnwrapError` when an atom moves more than
    :data:`MAX_UNWRAP_STEP` of the cell between two frames.
    """
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(-1)
    pbc = np.repeat(pbc, 3) if pbc.size == 1 else pbc
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(f"{source}: positions must be (n_frames, N, 3), got {positions.shape}")
    if not pbc.any() or len(positions) < 2:
        return positions
    cells = np.broadcast_to(np.asarray(cell, dtype=np.float64), (len(positions), 3, 3))
    if np.all(cells == cells[0]):
        inverse = np.linalg.inv(_invertible(cells[0], pbc, source))[None]
    else:  # a changing cell (NPT): each frame in its own cell
        inverse = np.stack([np.linalg.inv(_invertible(h, pbc, source)) for h in cells])
    fractional = np.einsum("tni,tij->tnj", positions, np.broadcast_to(inverse, cells.shape))
    step = np.diff(fractional[..., pbc], axis=0)
    crossings = np.round(step)
    moved = np.abs(step - crossings)
    if moved.max() > MAX_UNWRAP_STEP:
        t, atom, axis = np.unravel_index(int(np.argmax(moved)), moved.shape)
        vector = "abc"[int(np.flatnonzero(pbc)[axis])]
        raise UnwrapError(
            f"{source}: atom {atom} moves {moved[t, atom, axis]:.2f} of cell vector {vector} between frames "
            f"{t} and {t + 1}: more than {MAX_UNWRAP_STEP:g} of the cell, so unwrapping the periodic positions "
            "by the minimum image could mistake a move for a wrap. Use frames written more often (spectra "
            "need frames a few fs apart), or positions that the MD code did not wrap."
        )
    if not crossings.any():
        return positions
    images = np.zeros(fractional.shape)
    images[1:, :, pbc] = -np.cumsum(crossings, axis=0)
    return positions + np.einsum("tnj,tji->tni", images, cells)


def _invertible(cell: np.ndarray, pbc: np.ndarray, source: str) -> np.ndarray:
    if np.any(np.linalg.norm(cell[pbc], axis=1) == 0.0):
        raise TrajectoryError(f"{source}: periodic along a zero cell vector (pbc {pbc.tolist()}, cell "
                              f"{cell.tolist()}): give the frames their cell, or pass pbc=False (--no-pbc) for a "
                              "molecule")
    return complete_cell(cell)


# --- ASE files ------------------------------------------------------------------------------

def read_ase(path: str, *, format: str | None = None, keys: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The frames of an ASE trajectory or any multi-frame ``ase.io`` file, as series.

    Args:
        path: an ASE ``.traj`` file, an extxyz file or anything ``ase.io.iread`` reads.
        format: ``ase.io`` format name when the extension does not tell it.
        keys: where the dipole, polarizability and time are kept, if not under
            :data:`DEFAULT_KEYS` (e.g. ``{"dipole": "REF_dipole"}``): calculator results
            first, then ``atoms.info``. The time is in fs.
    """
    names = dict(DEFAULT_KEYS)
    unknown = set(keys or {}) - set(names)
    if unknown:
        raise ValueError(f"keys: unknown series {sorted(unknown)}; give names for {sorted(names)}")
    names.update(keys or {})
    is_traj = format == "traj" or (format is None and path.lower().endswith(".traj"))
    description: dict[str, Any] = {}
    if is_traj:
        from ase.io.trajectory import Trajectory

        try:
            reader = Trajectory(path)
        except Exception as err:  # ulm raises several kinds for a damaged file
            raise TrajectoryError(f"{path}: cannot open it as an ASE trajectory ({type(err).__name__}: {err}); "
                                  "is the file complete? Pass format=... (--format) if it is another format") from err
        description = dict(reader.description or {})
        frames: Iterator[Atoms] = iter(reader)
        what = "ASE trajectory"
    else:
        import ase.io

        _refuse_ipi_text(path)
        frames = ase.io.iread(path, index=":", format=format)
        reader, what = None, f"{format or 'ase.io'} file"
    try:
        out = _collect(frames, path, what, names)
    finally:
        if reader is not None:
            reader.close()
    out["format"] = "ase-traj" if is_traj else (format or "ase.io")
    if description.get("type") == "molecular-dynamics" and "timestep" in description:
        # ASE dynamics store their time step (ASE units) and the trajectory's loginterval.
        step_fs = float(description["timestep"]) / units.fs
        if "interval" in description:
            out["dt_fs"] = step_fs * int(description["interval"])
            out["notes"].append(f"time step from the trajectory's description ({description.get('md-type', 'MD')}, "
                                f"interval {int(description['interval'])})")
        else:  # older ASE wrote no interval: frames may be several time steps apart
            out["time_hint"] = (f"its description gives the MD time step ({step_fs:g} fs) but not the writing "
                                f"interval: pass dt_fs = {step_fs:g} × loginterval")
    if description.get("temperature_K") is not None:
        out["temperature_K"] = float(description["temperature_K"])
    return out


def _refuse_ipi_text(path: str) -> None:
    """i-PI's xyz looks like xyz to ase.io, which would read Bohr as Å and drop the steps."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = [f.readline() for _ in range(2)]
    except OSError:
        return
    if _IPI_CELL.search(head[-1]) and _IPI_STEP.search(head[-1]):
        raise TrajectoryError(
            f"{path} is an i-PI trajectory (comment line '{head[-1].strip()[:60]}...'): its units, time step, beads "
            "and dipole extras are known from the run's i-PI input file: pass that (e.g. input.xml) instead"
        )


def _collect(frames: Iterator[Atoms], path: str, what: str, names: Mapping[str, str]) -> dict[str, Any]:
    """Arrays of every series from ASE frames; a property counts only if all frames have it."""
    positions, cells, momenta, found = [], [], [], {"dipole": [], "polarizability": [], "time": []}
    first: Atoms | None = None
    k = 0
    while True:
        try:
            atoms = next(frames)
        except StopIteration:
            break
        except Exception as err:  # ase.io raises many kinds for a damaged file
            raise TrajectoryError(f"{path}: cannot read frame {k} of this {what} ({type(err).__name__}: {err}). "
                                  "Is the file complete, and in the format its name says? "
                                  "Pass format=... (--format) otherwise") from err
        if first is None:
            first = atoms
        elif len(atoms) != len(first):
            raise TrajectoryError(f"{path}: frame {k} has {len(atoms)} atoms, frame 0 has {len(first)}: a spectrum "
                                  "needs one system throughout; select the frames of one system")
        elif not np.array_equal(atoms.numbers, first.numbers):
            raise TrajectoryError(f"{path}: frame {k} has other elements (or another atom order) than frame 0: a "
                                  "spectrum needs one system throughout; select the frames of one system")
        elif not np.array_equal(atoms.pbc, first.pbc):
            raise TrajectoryError(f"{path}: frame {k} has pbc {atoms.pbc.tolist()}, frame 0 {first.pbc.tolist()}")
        positions.append(atoms.positions.copy())
        cells.append(atoms.cell.array.copy())
        momenta.append(atoms.arrays.get("momenta"))
        results = atoms.calc.results if atoms.calc is not None else {}
        for series, key in names.items():
            value = results.get(key, atoms.info.get(key))
            found[series].append(None if value is None else np.asarray(value, dtype=np.float64))
        k += 1
    if first is None or k < 2:
        raise TrajectoryError(f"{path}: {k} frame(s) in this {what}; a time series needs at least 2")
    masses = first.get_masses()
    out: dict[str, Any] = {
        "numbers": first.numbers.copy(), "masses": masses, "pbc": first.pbc.copy(),
        "positions": np.stack(positions), "cell": np.stack(cells),
        "charge": float(first.info.get("charge", 0.0)), "n_beads": 1, "kubo": False,
        "temperature_K": None, "time": None, "dt_fs": None, "notes": [],
        "velocities": None, "temperature": None,
    }
    if all(p is not None for p in momenta):
        p = np.stack(momenta)
        out["velocities"] = p / masses[None, :, None] * units.fs
        dof = first.get_number_of_degrees_of_freedom()
        out["temperature"] = np.einsum("tni,tni->t", p, p / masses[None, :, None]) / (dof * units.kB)
    shapes = {"dipole": PROPERTY_TABLE["dipole"].shape, "polarizability": PROPERTY_TABLE["polarizability"].shape,
              "time": ()}
    for series, values in found.items():
        have = sum(v is not None for v in values)
        if have == k:
            try:
                out[series] = np.stack([v.reshape(shapes[series]) for v in values])
            except ValueError:
                raise TrajectoryError(f"{path}: {names[series]!r} of frame 0 has shape {values[0].shape}, "
                                      f"expected {shapes[series]} for the {series}") from None
        else:
            out[series] = None
            if have:
                out["notes"].append(f"{series} ({names[series]!r}) in {have} of {k} frames only: not used")
    return out


# --- i-PI runs ------------------------------------------------------------------------------

def is_ipi_input(path: str) -> bool:
    """Whether ``path`` is an i-PI input file (XML with a ``<simulation>`` root)."""
    if not path.lower().endswith(".xml"):
        return False
    try:
        with open(path, "rb") as f:
            for _, element in ET.iterparse(f, events=("start",)):
                return element.tag == "simulation"  # the root: nothing more needs parsing
    except (ET.ParseError, OSError):
        return False
    return False


def read_ipi(path: str, *, extras_units: str = "atomic") -> dict[str, Any]:
    """The series of an i-PI run, found through its input file (see the module docstring).

    Args:
        path: the i-PI input file of the run (its outputs lie next to it, as i-PI wrote them).
        extras_units: units of the dipole/polarizability extras: "atomic" (e·Bohr, Bohr³:
            ``ase-mpnn ipi-client``'s default) or "ase" (e·Å, e²Å²/eV).
    """
    if extras_units not in _EXTRAS_TO_ASE:
        raise ValueError(f"extras_units must be one of {sorted(_EXTRAS_TO_ASE)}, got {extras_units!r}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise TrajectoryError(f"{path}: not a readable XML file ({err})") from err
    if root.tag != "simulation":
        raise TrajectoryError(f"{path}: not an i-PI input file (root <{root.tag}>, expected <simulation>)")
    systems = root.findall("system")
    if len(systems) != 1:
        raise TrajectoryError(f"{path}: {len(systems)} <system> elements; spectra are read from runs of one system")
    system = systems[0]
    initialize = system.find("initialize")
    n_beads = int(initialize.get("nbeads", 1)) if initialize is not None else 1
    output = root.find("output")
    if output is None:
        raise TrajectoryError(f"{path}: no <output> section, so the run wrote no trajectory to read")
    directory = os.path.dirname(os.path.abspath(path))
    prefix = os.path.join(directory, output.get("prefix", "i-pi"))
    notes: list[str] = []

    step_fs, step_source = _ipi_step_fs(path, system, output, prefix, notes)
    temperature = system.find("ensemble/temperature")
    temperature_K = None if temperature is None else _ipi_temperature_K(temperature, path)

    bead_frames, centroid_frames, extras = None, None, {}
    for trajectory in sorted(output.findall("trajectory"), key=lambda t: int(t.get("stride", 1))):
        text = (trajectory.text or "").strip()
        key = re.match(r"\w*", text).group(0)
        name = f"{prefix}.{trajectory.get('filename', 'traj')}"
        fmt, bead = trajectory.get("format", "xyz"), int(trajectory.get("bead", -1))
        if key == "positions" and bead < 0 and bead_frames is None:
            bead_frames = [_read_ipi_trajectory(f"{name}_{b:0{_bead_digits(n_beads)}d}", fmt, path)
                           for b in range(n_beads)]
        elif key == "x_centroid" and centroid_frames is None:
            centroid_frames = _read_ipi_trajectory(name, fmt, path)
        elif key == "extras":
            kind = trajectory.get("extra_type", "raw").strip()
            if kind not in _EXTRA_SIZES:
                notes.append(f"extras {name}_* (extra_type={kind!r}) not read: write them with "
                             "extra_type=\"dipole\" and extra_type=\"polarizability\"")
            elif kind not in extras:
                extras[kind] = [_read_ipi_extras(f"{name}_{b:0{_bead_digits(n_beads)}d}", kind, path)
                                for b in range(n_beads)]

    series = _align_ipi(path, n_beads, bead_frames, centroid_frames, extras, extras_units, notes)
    numbers = series.pop("numbers")
    out: dict[str, Any] = {
        "numbers": numbers, "masses": atomic_masses[numbers], "pbc": np.ones(3, dtype=bool), "charge": 0.0,
        "n_beads": n_beads, "kubo": n_beads > 1, "temperature_K": temperature_K,
        "time": series.pop("steps") * step_fs, "dt_fs": None, "velocities": None, "temperature": None,
        "format": "i-pi", "notes": notes + [f"time of a step: {step_fs:g} fs ({step_source})"],
    }
    out.update(series)
    return out


def _bead_digits(n_beads: int) -> int:
    # The same expression as i-PI's file names (its float log, e.g. 1000 beads: 3 digits).
    return int(1 + np.floor(np.log(n_beads) / np.log(10)))


def _si_unit(unit: str, base: str, atomic: float, path: str, named: Mapping[str, float] | None = None) -> float:
    """Factor of an i-PI unit name: 'atomic_unit', a prefixed SI base ('femtosecond'), or a named one."""
    unit = unit.strip().lower()
    if unit in ("", "atomic_unit", "automatic"):
        return atomic
    if named and unit in named:
        return named[unit]
    if unit.endswith(base) and unit[: -len(base)] in _SI_PREFIXES:
        return _SI_PREFIXES[unit[: -len(base)]]
    raise TrajectoryError(f"{path}: unit {unit!r} is not one this reader knows (atomic_unit, angstrom, "
                          f"[femto|pico|nano...]{base}): write the i-PI output in atomic_unit or angstrom")


def _length_to_angstrom(unit: str, path: str) -> float:
    bohr_m = units.Bohr * 1e-10
    return 1e10 * _si_unit(unit, "meter", bohr_m, path, {"angstrom": 1e-10, "ase": 1e-10, "bohr": bohr_m})


def _time_to_fs(unit: str, path: str) -> float:
    return 1e15 * _si_unit(unit, "second", units._aut, path)


def _ipi_temperature_K(element: ET.Element, path: str) -> float:
    unit = element.get("units", "atomic_unit").strip().lower()
    value = float(element.text)
    if unit == "kelvin":
        return value
    if unit in ("atomic_unit", ""):
        return value * units.Hartree / units.kB
    raise TrajectoryError(f"{path}: temperature units {unit!r} unknown (kelvin or atomic_unit)")


def _ipi_step_fs(path: str, system: ET.Element, output: ET.Element, prefix: str,
                 notes: list[str]) -> tuple[float, str]:
    """fs per MD step: from the properties file (time / step) where it has both, else the input."""
    element = system.find(".//dynamics/timestep")
    # i-PI's default time step is 1 atomic unit of time.
    from_input = (_time_to_fs(element.get("units", "atomic_unit"), path) * float(element.text)
                  if element is not None else _time_to_fs("atomic_unit", path))
    for properties in output.findall("properties"):
        file = f"{prefix}.{properties.get('filename', 'out')}"
        columns = _read_ipi_properties(file, path) if os.path.exists(file) else {}
        if "step" not in columns or "time" not in columns:
            continue
        steps, (time, unit) = columns["step"][0], columns["time"]
        if len(steps) < 2 or steps[-1] == steps[0]:
            continue
        time = time * _time_to_fs(unit, path)
        step_fs = (time[-1] - time[0]) / (steps[-1] - steps[0])
        expected = time[0] + (steps - steps[0]) * step_fs
        if np.max(np.abs(time - expected)) > 1e-6 * max(abs(time[-1]), abs(step_fs)):
            raise TrajectoryError(f"{file}: time is not step × a constant time step (a restart with another "
                                  "<timestep>?): select frames of one time step")
        if not math.isclose(step_fs, from_input, rel_tol=1e-5):
            raise TrajectoryError(f"{file}: {step_fs:g} fs per step, but {path} says <timestep> {from_input:g} fs: "
                                  "is this input file the one of the run?")
        return step_fs, f"from {os.path.basename(file)}"
    notes.append("no properties file with step and time columns: the time step of the input file is used")
    return from_input, f"<timestep> of {os.path.basename(path)}"


def _read_ipi_properties(file: str, path: str) -> dict[str, tuple[np.ndarray, str]]:
    """Columns of an i-PI properties file: name → (values, unit)."""
    names: dict[int, tuple[str, str]] = {}
    with open(file, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            match = _IPI_PROPERTY_HEADER.match(line.strip())
            if match:
                name = match.group(3)
                unit_match = re.match(r"(\w+)\{([^}]*)\}", name)
                key, unit = (unit_match.group(1), unit_match.group(2)) if unit_match else (name.split("(")[0], "")
                names[int(match.group(1)) - 1] = (key, unit)
    try:
        data = np.loadtxt(file, ndmin=2, comments="#")
    except ValueError as err:
        raise TrajectoryError(f"{file}: damaged i-PI properties file ({err})") from err
    return {key: (data[:, column], unit) for column, (key, unit) in names.items() if column < data.shape[1]}


def _read_ipi_trajectory(stem: str, fmt: str, path: str) -> dict[str, Any]:
    """One i-PI trajectory file: steps, element names, positions (Å), cells (Å)."""
    if fmt not in _IPI_TRAJECTORY_SUFFIX:
        raise TrajectoryError(f"{path}: trajectory format {fmt!r} is not read here: write positions with "
                              "format=\"xyz\", \"bin\" or \"ase\"")
    file = stem + _IPI_TRAJECTORY_SUFFIX[fmt]
    if not os.path.exists(file):
        raise TrajectoryError(f"{file} (named by {path}) does not exist: is the input file next to the run's output?")
    try:
        reader = {"xyz": _ipi_xyz_frames, "bin": read_ipi_bin, "ase": _ipi_ase_frames}[fmt]
        steps, names, positions, cells = reader(file)
    except TrajectoryError:
        raise
    except Exception as err:
        raise TrajectoryError(f"{file}: damaged i-PI {fmt} trajectory ({type(err).__name__}: {err})") from err
    if not steps:
        raise TrajectoryError(f"{file}: no frames")
    back = np.flatnonzero(np.diff(steps) <= 0)
    if back.size:
        raise TrajectoryError(f"{file}: step {steps[back[0] + 1]} follows step {steps[back[0]]}: repeated or "
                              "reordered frames (a restarted run appending to its output?); remove the repeats")
    return {"file": file, "steps": np.asarray(steps, dtype=np.int64), "names": names,
            "positions": np.stack(positions), "cell": np.stack(cells)}


def _title_units(title: str, file: str) -> tuple[int, float, float]:
    """Step, position and cell unit factors (to Å) from an i-PI frame title."""
    step = _IPI_STEP.search(title)
    found = dict(_IPI_UNITS.findall(title))
    quantity = [k for k in found if k != "cell"]
    if step is None or not quantity:
        raise TrajectoryError(f"{file}: frame title without 'Step:' and 'quantity{{unit}}': {title.strip()[:80]!r}")
    return (int(step.group(1)), _length_to_angstrom(found[quantity[0]], file),
            _length_to_angstrom(found.get("cell", "atomic_unit"), file))


def _ipi_xyz_frames(file: str) -> tuple[list, list, list, list]:
    steps, positions, cells, names = [], [], [], None
    with open(file, encoding="utf-8") as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        natoms = int(lines[i])
        title, block = lines[i + 1], lines[i + 2: i + 2 + natoms]
        if len(block) < natoms:
            raise TrajectoryError(f"{file}: the last frame has {len(block)} of {natoms} atoms (a run still writing, "
                                  "or a truncated file): remove the partial frame")
        step, length, cell_length = _title_units(title, file)
        cell = _IPI_CELL.search(title)
        numbers = np.array(cell.group(2).split()[:9], dtype=np.float64) if cell else None
        if cell is None or cell.group(1) == "GENH":
            raise TrajectoryError(f"{file}: frame title without CELL(abcABC) or CELL(H): {title.strip()[:80]!r}")
        if cell.group(1) == "abcABC":
            h = cellpar_to_cell(numbers[:6])
        else:  # i-PI's h has the cell vectors as columns
            h = numbers.reshape(3, 3).T
        rows = [line.split() for line in block]
        if names is None:
            names = [row[0] for row in rows]
        steps.append(step)
        positions.append(np.array([row[1:4] for row in rows], dtype=np.float64) * length)
        cells.append(h * cell_length)
        i += 2 + natoms
    return steps, names or [], positions, cells


def read_ipi_bin(file: str) -> tuple[list, list, list, list]:
    """Frames of an i-PI ``format="bin"`` trajectory: (steps, names, positions Å, cells Å).

    Each frame: h (9 f8, vectors as columns), N (i8), 3N f8, len(names) (i8), names
    joined by '|' and the title (4-byte unicode each; the title ends with 'cell{unit}').
    """
    raw = open(file, "rb").read()
    steps, positions, cells, names, offset = [], [], [], None, 0
    while offset < len(raw):
        h = np.frombuffer(raw, np.float64, 9, offset).reshape(3, 3)
        natoms = int(np.frombuffer(raw, np.int64, 1, offset + 72)[0])
        offset += 80
        q = np.frombuffer(raw, np.float64, 3 * natoms, offset).reshape(natoms, 3)
        offset += 24 * natoms
        nchar = int(np.frombuffer(raw, np.int64, 1, offset)[0])
        frame_names = raw[offset + 8: offset + 8 + 4 * nchar].decode("utf-32-le").split("|")
        offset += 8 + 4 * nchar
        text = raw[offset: offset + 4 * 1000].decode("utf-32-le", errors="replace")
        end = text.find("}", text.find("cell{"))
        if end < 0:
            raise TrajectoryError(f"{file}: frame {len(steps)} has no title ending in cell{{unit}} (truncated?)")
        title = text[: end + 1]
        offset += 4 * len(title)
        step, length, cell_length = _title_units(title, file)
        names = names or frame_names
        steps.append(step)
        positions.append(q * length)
        cells.append(h.T * cell_length)
    return steps, names or [], positions, cells


def _ipi_ase_frames(file: str) -> tuple[list, list, list, list]:
    import ase.io

    steps, positions, cells, names = [], [], [], None
    for atoms in ase.io.iread(file, index=":", format="extxyz"):
        title = str(atoms.info.get("ipi_comment", ""))
        step = _IPI_STEP.search(title)
        if step is None:
            raise TrajectoryError(f"{file}: frame without i-PI's 'Step:' in ipi_comment")
        quantity = [k for k, unit in _IPI_UNITS.findall(title) if k != "cell"]
        if not quantity or quantity[0] not in atoms.arrays:
            raise TrajectoryError(f"{file}: no per-atom array named as in ipi_comment {title.strip()[:80]!r}")
        steps.append(int(step.group(1)))
        names = names or atoms.get_chemical_symbols()
        # i-PI puts the quantity in an array of its own name, in Å ("ase" units); "pos" stays zero.
        positions.append(np.array(atoms.arrays[quantity[0]], dtype=np.float64))
        cells.append(atoms.cell.array.copy())
    return steps, names or [], positions, cells


def _read_ipi_extras(stem: str, kind: str, path: str) -> dict[int, np.ndarray]:
    """One bead's extras file: step → the values (3 numbers for a dipole, 9 for a polarizability)."""
    if not os.path.exists(stem):
        raise TrajectoryError(f"{stem} (named by {path}) does not exist: is the input file next to the run's output?")
    frames: dict[int, list[float]] = {}
    step = None
    with open(stem, encoding="utf-8") as f:
        for line in f:
            header = _IPI_EXTRAS_HEADER.search(line)
            if header:
                if header.group(1).strip() != kind:
                    raise TrajectoryError(f"{stem}: holds {header.group(1)!r} extras, the input says {kind!r}")
                step = int(header.group(2))
                if step in frames:
                    raise TrajectoryError(f"{stem}: step {step} appears twice (a restarted run appending to its "
                                          "output?): remove the repeats")
                frames[step] = []
            elif line.strip():
                try:
                    frames[step].extend(float(x) for x in line.split())
                except (KeyError, ValueError):
                    raise TrajectoryError(f"{stem}: not i-PI's {kind} extras ({line.strip()[:60]!r})") from None
    out = {}
    for s, values in frames.items():
        if len(values) != _EXTRA_SIZES[kind]:
            raise TrajectoryError(f"{stem}: step {s} has {len(values)} numbers, a {kind} has {_EXTRA_SIZES[kind]} "
                                  "(a run still writing, or a truncated file?)")
        out[s] = np.array(values)
    return out


def _align_ipi(path: str, n_beads: int, bead_frames: list | None, centroid_frames: dict | None,
               extras: dict[str, list[dict[int, np.ndarray]]], extras_units: str, notes: list[str]) -> dict[str, Any]:
    """One frame per step that the extras (else the positions) have; positions where they cover them."""
    if not (bead_frames or centroid_frames or extras):
        raise TrajectoryError(f"{path}: the run writes neither positions nor dipole/polarizability extras: add "
                              "<trajectory filename=\"pos\"> positions </trajectory> and/or <trajectory "
                              "filename=\"dipole\" extra_type=\"dipole\"> extras </trajectory> to <output>")
    grid = None
    for kind, beads in extras.items():
        common = sorted(set.intersection(*(set(b) for b in beads)))
        grid = common if grid is None else sorted(set(grid) & set(common))
    if grid is None:
        grid = list((bead_frames[0] if bead_frames else centroid_frames)["steps"])
    if len(set(grid)) < 2:
        raise TrajectoryError(f"{path}: fewer than 2 steps in the run's output")
    steps = np.asarray(grid, dtype=np.int64)
    out: dict[str, Any] = {"steps": steps, "positions": None, "cell": None, "bead_positions": None}
    for kind, beads in extras.items():
        factor = _EXTRAS_TO_ASE[extras_units][kind]
        mean = np.mean([[bead[s] for s in grid] for bead in beads], axis=0) * factor
        out[kind] = mean.reshape(len(grid), *((3,) if kind == "dipole" else (3, 3)))
    names = None
    if bead_frames:
        picked = [_select_steps(frames, steps) for frames in bead_frames]
        if all(p is not None for p in picked):
            out["bead_positions"] = np.stack([p[0] for p in picked], axis=1)  # (n, P, N, 3)
            out["positions"] = out["bead_positions"].mean(axis=1)
            out["cell"] = picked[0][1]
            names = bead_frames[0]["names"]
        else:
            notes.append("bead positions do not cover every step of the extras: not used")
    if out["positions"] is None and centroid_frames:
        picked = _select_steps(centroid_frames, steps)
        if picked is not None:
            out["positions"], out["cell"] = picked
            names = centroid_frames["names"]
        else:
            notes.append("centroid positions do not cover every step of the extras: not used")
    if names is None:
        # Extras only: the element names must still come from some trajectory of the run.
        source = (bead_frames or [centroid_frames])[0] if (bead_frames or centroid_frames) else None
        if source is None:
            raise TrajectoryError(f"{path}: no positions trajectory, so the elements are unknown: add <trajectory "
                                  "filename=\"pos\"> positions </trajectory> (any stride) to <output>")
        names = source["names"]
    try:
        out["numbers"] = np.array([atomic_numbers[n] for n in names], dtype=np.int64)
    except KeyError as err:
        raise TrajectoryError(f"{path}: atom name {err.args[0]!r} is not an element symbol") from None
    return out


def _select_steps(frames: dict[str, Any], steps: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions and cells of ``frames`` at ``steps`` (the first frame of a repeated step), or None."""
    order = {}
    for k, s in enumerate(frames["steps"].tolist()):
        order.setdefault(s, k)
    if not all(s in order for s in steps.tolist()):
        return None
    index = np.array([order[s] for s in steps.tolist()])
    return frames["positions"][index], frames["cell"][index]
