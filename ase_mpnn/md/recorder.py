"""MDRecorder: write an MD trajectory and its observables to HDF5 while the run goes on.

Contract
--------
``MDRecorder`` is an observer for any ASE dynamics (``Langevin``, ``VelocityVerlet``,
``Bussi``, optimizers...). Every ``interval`` steps it appends one frame: step, time,
unwrapped positions, velocities, cell, potential and kinetic energy, temperature, and
the calculator properties named in ``properties`` (default dipole and
polarizability) that the calculator implements; the others are left out silently, so
the defaults work with calculators that know nothing of dipoles.

Cost. Observables come from the calculator's cache, never from a new model call: the
recorder asks the calculator to compute ``properties`` in the same call that gives the
dynamics its forces (for ``MPNNCalculator`` that is the same forward pass, +0.3 ms on
one water molecule instead of a second 1.1 ms pass plus a lost force cache). To do so
it sets the calculator's ``also_compute`` (MPNNCalculator) before the force calls that
precede a recorded frame, and restores it on :meth:`close` (see ``prefetch``). When a frame finds a
property missing from the cache (first frame of a calculator that already holds
results, or ``prefetch=False``) it computes energy, forces and the properties in one
call; ``extra_evaluations`` counts those.

File. HDF5 through h5py, ``libver="latest"``, in SWMR mode (single writer, multiple
readers): every frame is appended to chunked, resizable datasets and flushed, so the
file can be read while the run goes on and after the writer was killed, with every
flushed frame. Readers must open it with ``swmr=True`` (:func:`read_record` does): a
plain ``h5py.File(path, "r")`` is refused by HDF5 while a writer has the file open or
after a writer died without closing it (the file is marked "open for write"). Layout:

* per frame (first axis = frame): ``step`` (int64), ``time`` (fs), ``positions`` (Å,
  as ``atoms.positions``: ASE dynamics do not wrap them), ``velocities`` (Å/fs),
  ``cell`` (Å), ``potential_energy``, ``kinetic_energy`` (eV), ``temperature`` (K,
  ``atoms.get_temperature()``), and e.g. ``dipole`` (e·Å), ``polarizability``
  (e²Å²/eV, ASE's convention: × 14.3996 for Å³), ``charges`` (e), ``forces`` (eV/Å);
* static: ``numbers``, ``masses`` (amu), ``pbc``;
* each dataset has a ``units`` attribute; the root has ``format``, ``version``,
  ``interval`` and ``properties``.

A writer killed between two datasets of one frame leaves datasets one frame apart;
readers use the common length (complete frames only).

One writer per file. HDF5 drops its own file lock in SWMR mode (so that readers can
open the file), which would let a second writer truncate a file under a running one;
the recorder therefore holds an advisory lock on ``<path>.lock`` (``fcntl.flock``,
released by the OS when the process dies; the empty lock file stays; POSIX only) and a
second recorder on the same file fails with :class:`RecorderError`.

Restart. ``mode="a"`` continues an existing file (one left by a killed writer
included: it is first rewritten with its complete frames, since HDF5 refuses to reopen
it for writing). New frames must have larger step numbers than the file's last
frame: to continue a run, restore the dynamics' ``nsteps`` (``recorder.last_step``)
or let :func:`ase_mpnn.md.classical.run_md` do it from a checkpoint; frames written
after that checkpoint by the killed run are dropped with :meth:`MDRecorder.truncate`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
from ase import Atoms, units
from ase.outputs import all_outputs

from ..properties import register_polarizability

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no writer lock
    fcntl = None

register_polarizability()

FORMAT = "ase_mpnn.md.recorder"
VERSION = 1

#: Units of every dataset the recorder may write (also stored as ``units`` attributes).
UNITS: dict[str, str] = {
    "step": "1",
    "time": "fs",
    "positions": "Å",
    "velocities": "Å/fs",
    "cell": "Å",
    "potential_energy": "eV",
    "kinetic_energy": "eV",
    "temperature": "K",
    "dipole": "e·Å",
    "polarizability": "e²Å²/eV",
    "charges": "e",
    "forces": "eV/Å",
    "energies": "eV",
    "stress": "eV/Å³",
    "numbers": "1",
    "masses": "amu",
    "pbc": "1",
}
_STATIC = ("numbers", "masses", "pbc")
_ALWAYS = ("step", "time", "positions", "velocities", "cell", "potential_energy", "kinetic_energy", "temperature")
# Chunks of at most ~1 MiB: large enough for few HDF5 index entries, small enough for big cells.
_CHUNK_BYTES = 1 << 20


class RecorderError(RuntimeError):
    """The file cannot be written as asked (wrong system, step order, closed recorder)."""


def _frame_shapes(atoms: Atoms, properties: Sequence[str]) -> dict[str, tuple[int, ...]]:
    n = len(atoms)
    shapes: dict[str, tuple[int, ...]] = {
        "step": (), "time": (), "positions": (n, 3), "velocities": (n, 3), "cell": (3, 3),
        "potential_energy": (), "kinetic_energy": (), "temperature": (),
    }
    for name in properties:
        if name not in all_outputs:
            raise ValueError(f"unknown property {name!r}: not an ASE calculator output")
        shapes[name] = tuple(n if s == "natoms" else int(s) for s in all_outputs[name].shapespec)
    return shapes


def _complete_frames(f: h5py.File) -> int:
    """Frames present in every per-frame dataset (a kill can leave the last one partial)."""
    names = [k for k in f if k not in _STATIC]
    return min((f[k].shape[0] for k in names), default=0)


def read_record(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All datasets of a recorder file as arrays, complete frames only.

    Works while a writer is running (SWMR read) and on files whose writer was killed.
    Per-frame arrays have the frame as first axis; ``numbers``, ``masses`` and ``pbc``
    are static. Units: :func:`read_units` (or :data:`UNITS`).
    """
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        n = _complete_frames(f)
        return {k: (f[k][()] if k in _STATIC else f[k][:n]) for k in f}


def read_units(path: str | os.PathLike) -> dict[str, str]:
    """The ``units`` attribute of every dataset of a recorder file."""
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        return {k: str(f[k].attrs["units"]) for k in f}


def _lock_writer(path: str) -> int | None:
    """Take the advisory writer lock of ``path``; returns its file descriptor."""
    if fcntl is None:
        return None
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RecorderError(f"{path} is being written by another recorder (lock {path}.lock held)") from None
    return fd


def _unlock_writer(fd: int | None) -> None:
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _open_swmr_writer(path: str) -> h5py.File:
    """Open an existing file for SWMR writing (append)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE, fapl=fapl)
    return h5py.File(fid)


def _rewrite_complete(path: str) -> None:
    """Rewrite a file left open by a killed writer, keeping its complete frames.

    HDF5 refuses to reopen such a file for writing until its "open for write" flags are
    cleared (the ``h5clear`` tool); a copy through an SWMR reader needs no extra tool.
    """
    with h5py.File(path, "r", libver="latest", swmr=True) as src:
        n = _complete_frames(src)
        fd, tmp = tempfile.mkstemp(suffix=".h5", dir=os.path.dirname(os.path.abspath(path)))
        os.close(fd)
        try:
            with h5py.File(tmp, "w", libver="latest") as dst:
                dst.attrs.update(dict(src.attrs))
                for name, ds in src.items():
                    data = ds[()] if name in _STATIC else ds[:n]
                    if name in _STATIC:
                        out = dst.create_dataset(name, data=data)
                    else:
                        out = dst.create_dataset(
                            name, data=data, maxshape=(None,) + ds.shape[1:], chunks=ds.chunks
                        )
                    out.attrs.update(dict(ds.attrs))
        except BaseException:
            os.unlink(tmp)
            raise
    os.replace(tmp, path)


class MDRecorder:
    """Append MD frames to an HDF5 file (see the module docstring for the layout).

    Args:
        atoms: the atoms the dynamics moves, with its calculator attached.
        path: the HDF5 file.
        interval: record every ``interval`` steps (steps where ``nsteps % interval == 0``,
            ASE's observer rule).
        properties: calculator properties to record when the calculator implements them
            (e.g. "dipole", "polarizability", "charges", "forces").
        dynamics: the dynamics; when given the recorder attaches itself
            (``dynamics.attach(self, interval)``) and takes step and time from it. The
            same as calling :meth:`attach` later. With ``dyn.attach(recorder, interval=n)``
            instead, the recorder counts its calls (step = calls × ``interval``) and time
            is ``step × timestep_fs`` (NaN if not given).
        mode: "w" creates (overwrites) the file; "a" appends to an existing file (created
            if missing); the atoms must match the file's (numbers) and ``properties``
            must select the file's property datasets.
        timestep_fs: time step for the time column when no dynamics is known.
        prefetch: make the dynamics' own force call compute ``properties`` too, so a
            recorded step costs no extra model evaluation, through the calculator's
            ``also_compute`` attribute (MPNNCalculator; other calculators are left
            alone). With a known dynamics only the force calls that precede a recorded
            frame ask for more; :meth:`close` restores the setting.

    Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        atoms: Atoms,
        path: str | os.PathLike,
        interval: int = 1,
        properties: Sequence[str] = ("dipole", "polarizability"),
        dynamics: Any = None,
        mode: str = "w",
        *,
        timestep_fs: float | None = None,
        prefetch: bool = True,
    ):
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        if int(interval) != interval or interval < 1:
            raise ValueError(f"interval must be a positive integer, got {interval!r}")
        if atoms.calc is None:
            raise ValueError("atoms has no calculator: attach one before creating the recorder")
        self.atoms = atoms
        self.path = os.fspath(path)
        self.interval = int(interval)
        self.timestep_fs = timestep_fs
        self.dynamics: Any = None
        self.extra_evaluations = 0
        implemented = set(getattr(atoms.calc, "implemented_properties", ()))
        self.properties = tuple(p for p in dict.fromkeys(properties) if p in implemented)
        self._shapes = _frame_shapes(atoms, self.properties)
        self._calc: Any = None
        self._plain_also_compute: tuple[str, ...] = ()
        self._file: h5py.File | None = None
        self._lock = _lock_writer(self.path)
        try:
            self._file = self._open(mode)
        except BaseException:
            _unlock_writer(self._lock)
            raise
        self._datasets = {name: self._file[name] for name in self._shapes}
        self.n_frames = _complete_frames(self._file)
        #: Step of the last frame in the file (-1 when empty).
        self.last_step = self._read_last_step()
        # Low-level writes: h5py's ``ds[i] = x`` costs ~60 µs per dataset, a visible
        # share of a 2 ms step; the hyperslab path below is ~4× cheaper.
        self._mspaces = {k: h5py.h5s.create_simple((1,) + s) for k, s in self._shapes.items()}
        self._next_step = self.last_step + self.interval if self.n_frames else 0
        if prefetch and self.properties:
            self._install_prefetch(atoms.calc)
        if dynamics is not None:
            self.attach(dynamics)

    # File ---------------------------------------------------------------------------
    def _open(self, mode: str) -> h5py.File:
        if mode == "a" and os.path.exists(self.path):
            try:
                f = _open_swmr_writer(self.path)
            except OSError:
                # Left open by a killed writer (or not an HDF5 file: then this fails too).
                _rewrite_complete(self.path)
                f = _open_swmr_writer(self.path)
            try:
                self._check_compatible(f)
                n = _complete_frames(f)
                for name in self._shapes:
                    if f[name].shape[0] > n:
                        f[name].resize(n, axis=0)
                f.flush()
            except BaseException:
                f.close()
                raise
            return f
        f = h5py.File(self.path, "w", libver="latest")
        try:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["interval"] = self.interval
            f.attrs["properties"] = list(self.properties) or [""]
            static = {
                "numbers": self.atoms.numbers.astype(np.int64),
                "masses": self.atoms.get_masses().astype(np.float64),
                "pbc": np.asarray(self.atoms.pbc, dtype=bool),
            }
            for name, data in static.items():
                f.create_dataset(name, data=data).attrs["units"] = UNITS[name]
            for name, shape in self._shapes.items():
                frame_bytes = 8 * int(np.prod(shape, dtype=np.int64))
                chunk = max(1, min(1024, _CHUNK_BYTES // max(frame_bytes, 1)))
                ds = f.create_dataset(
                    name, shape=(0,) + shape, maxshape=(None,) + shape, chunks=(chunk,) + shape,
                    dtype=np.int64 if name == "step" else np.float64,
                )
                ds.attrs["units"] = UNITS.get(name, "")
            # From here on no dataset or attribute may be created (SWMR rule); readers may open.
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        return f

    def _check_compatible(self, f: h5py.File) -> None:
        if f.attrs.get("format") != FORMAT:
            raise RecorderError(f"{self.path} is not a recorder file (format {f.attrs.get('format')!r})")
        if not np.array_equal(f["numbers"][()], self.atoms.numbers):
            raise RecorderError(f"{self.path} holds a different system (atomic numbers differ)")
        stored = tuple(p for p in f.attrs["properties"] if p)
        if set(stored) != set(self.properties):
            raise RecorderError(
                f"{self.path} records properties {list(stored)}, asked for {list(self.properties)} "
                "(restricted to what the calculator implements)"
            )

    def _read_last_step(self) -> int:
        return int(self._datasets["step"][self.n_frames - 1]) if self.n_frames else -1

    def truncate(self, after_step: int) -> int:
        """Drop the frames with step > ``after_step`` (e.g. written after a checkpoint); returns how many."""
        self._require_open()
        steps = self._datasets["step"][: self.n_frames]
        keep = int(np.searchsorted(steps, after_step, side="right"))
        dropped = self.n_frames - keep
        if dropped:
            for ds in self._datasets.values():
                ds.resize(keep, axis=0)
            self._file.flush()
            self.n_frames = keep
            self.last_step = self._read_last_step()
            self._next_step = self.last_step + self.interval if keep else 0
        return dropped

    def close(self) -> None:
        """Flush and close the file, restore the calculator, leave the dynamics' observers."""
        if self._calc is not None:
            self._calc.also_compute = self._plain_also_compute
            self._calc = None
        if self.dynamics is not None:
            mine = (self, self._schedule_prefetch)
            self.dynamics.observers[:] = [o for o in self.dynamics.observers if o[0] not in mine]
        if self._file is not None:
            self._file.close()
            self._file = None
            _unlock_writer(self._lock)
            self._lock = None

    def __enter__(self) -> MDRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _require_open(self) -> None:
        if self._file is None:
            raise RecorderError(f"recorder for {self.path} is closed")

    # Dynamics ------------------------------------------------------------------------
    def attach(self, dynamics: Any) -> MDRecorder:
        """Observe ``dynamics`` every ``interval`` steps; step and time come from it."""
        self.dynamics = dynamics
        dynamics.attach(self, interval=self.interval)
        if self._calc is not None:
            dynamics.attach(self._schedule_prefetch, interval=1)
        return self

    def _install_prefetch(self, calc: Any) -> None:
        if not hasattr(calc, "also_compute"):
            return  # not an MPNNCalculator: frames ask for the properties themselves
        self._calc, self._plain_also_compute = calc, tuple(calc.also_compute)
        self._set_prefetch(True)  # the first force call (frame 0) computes them too

    def _set_prefetch(self, on: bool) -> None:
        extra = tuple(p for p in self.properties if p not in self._plain_also_compute)
        self._calc.also_compute = self._plain_also_compute + (extra if on else ())

    def _schedule_prefetch(self) -> None:
        """After step n: ask for the properties in the next force call if it precedes a frame.

        The force call of step n -> n+1 happens while nsteps == n (ASE increments it
        after step()).
        """
        n = self.dynamics.nsteps
        self._set_prefetch(n % self.interval == 0 or (n + 1) % self.interval == 0)

    # Writing -------------------------------------------------------------------------
    def __call__(self) -> None:
        """Append the current state as one frame (the observer entry point)."""
        self._require_open()
        atoms = self.atoms
        if len(atoms) != self._shapes["positions"][0]:
            raise RecorderError("the number of atoms changed; a recorder file holds one system")
        dyn = self.dynamics
        if dyn is not None and hasattr(dyn, "nsteps"):
            step = int(dyn.nsteps)
            dt = getattr(dyn, "dt", None)
            time = step * dt / units.fs if dt is not None else np.nan
        else:
            step = self._next_step
            time = step * self.timestep_fs if self.timestep_fs is not None else np.nan
        if step <= self.last_step:
            raise RecorderError(
                f"step {step} is not after the file's last step {self.last_step}: to continue a run set "
                "dynamics.nsteps = recorder.last_step, or drop later frames with recorder.truncate(step)"
            )
        values = self._observables(step, time)
        n = self.n_frames
        # "step" goes last: a frame cut by a kill then always lacks it, and readers use
        # the common length of all datasets.
        for name in sorted(self._shapes, key=lambda k: k == "step"):
            shape = self._shapes[name]
            dsid = self._datasets[name].id
            dsid.set_extent((n + 1,) + shape)
            fspace = dsid.get_space()
            fspace.select_hyperslab((n,) + (0,) * len(shape), (1,) + shape)
            dtype = np.int64 if name == "step" else np.float64
            frame = np.ascontiguousarray(values[name], dtype=dtype).reshape((1,) + shape)
            dsid.write(self._mspaces[name], fspace, frame)
        self._file.flush()
        self.n_frames = n + 1
        self.last_step = step
        self._next_step = step + self.interval

    def _observables(self, step: int, time: float) -> dict[str, Any]:
        atoms, calc = self.atoms, self.atoms.calc
        # One state check for all cached values: each ASE getter would repeat it
        # (~50 µs apiece for MPNNCalculator, a visible share of a 2 ms step).
        fresh = getattr(calc, "atoms", None) is not None and not calc.check_state(atoms)
        results = calc.results if fresh else {}
        if any(p not in results for p in ("energy", *self.properties)):
            # One call for everything keeps the cache complete for the dynamics' next
            # get_forces (asking for one property alone would replace the cached forces).
            asked = [p for p in ("energy", "forces") if p in calc.implemented_properties]
            asked += self.properties
            atoms.get_properties(asked)
            self.extra_evaluations += 1
            results = calc.results
        energy = float(results["energy"])
        for constraint in atoms.constraints:
            # As atoms.get_potential_energy(): restraint-like constraints add energy.
            if hasattr(constraint, "adjust_potential_energy"):
                energy += constraint.adjust_potential_energy(atoms)
        kinetic = atoms.get_kinetic_energy()
        values: dict[str, Any] = {
            "step": step,
            "time": time,
            "positions": atoms.positions,
            "velocities": atoms.get_velocities() * units.fs,
            "cell": atoms.cell.array,
            "potential_energy": energy,
            "kinetic_energy": kinetic,
            "temperature": 2 * kinetic / (atoms.get_number_of_degrees_of_freedom() * units.kB),
        }
        values.update({p: results[p] for p in self.properties})
        return values
