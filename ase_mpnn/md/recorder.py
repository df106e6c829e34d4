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
it holds a request made with the calculator's ``computing`` (MPNNCalculator), active
for the force calls that precede a recorded frame and withdrawn on :meth:`close` (see
``prefetch``). When a frame finds a
property missing from the cache (first frame of a calculator that already holds
results, or ``prefetch=False``) it computes energy, forces and the properties in one
call; ``extra_evaluations`` counts those.

File. HDF5 (see :mod:`ase_mpnn.md.record_file`: SWMR, readable during the run and after
a kill, one writer per file, frames written in blocks at most ``flush_interval_s`` apart).
Layout:

* per frame (first axis = frame): ``step`` (int64), ``time`` (fs), ``positions`` (Å,
  as ``atoms.positions``: ASE dynamics do not wrap them), ``velocities`` (Å/fs),
  ``cell`` (Å), ``potential_energy``, ``kinetic_energy`` (eV), ``temperature`` (K,
  ``atoms.get_temperature()``), and e.g. ``dipole`` (e·Å), ``polarizability``
  (e²Å²/eV, ASE's convention: × 14.3996 for Å³), ``charges`` (e), ``forces`` (eV/Å);
* static: ``numbers``, ``masses`` (amu), ``pbc``;
* each dataset has a ``units`` attribute; the root has ``format``, ``version``,
  ``kind`` ("md"), ``interval`` and ``properties``.

Restart. ``mode="a"`` continues an existing file (one left by a killed writer
included). New frames must have larger step numbers than the file's last
frame: to continue a run, restore the dynamics' ``nsteps`` (``recorder.last_step``)
or let :func:`ase_mpnn.md.classical.run_md` do it from a checkpoint; frames written
after that checkpoint by the killed run are dropped with :meth:`MDRecorder.truncate`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.outputs import all_outputs

from ..model.properties import register_polarizability
from .record_file import (
    UNITS,
    FrameFile,
    FrameRecorder,
    RecorderError,
    read_attributes,
    read_record,
    read_units,
)

register_polarizability()

__all__ = ["UNITS", "MDRecorder", "RecorderError", "read_attributes", "read_record", "read_units"]


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


class MDRecorder(FrameRecorder):
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
        mode: "w" creates the file; an existing file is replaced when the first frame is
            written (closed without frames, the recorder leaves it as it was, and
            :func:`~ase_mpnn.md.classical.run_md` resuming from a checkpoint continues it
            instead); "a" appends to an existing file (created if missing); the atoms
            must match the file's (numbers) and ``properties`` must select the file's
            property datasets.
        timestep_fs: time step for the time column when no dynamics is known.
        prefetch: make the dynamics' own force call compute ``properties`` too, so a
            recorded step costs no extra model evaluation, through a request made with
            the calculator's ``computing`` (MPNNCalculator; other calculators are left
            alone). With a known dynamics only the force calls that precede a recorded
            frame ask for more; :meth:`close` withdraws the request.
        flush_interval_s: frames are written to the file in blocks, at most this many
            seconds of wall time apart, and on :meth:`flush` and :meth:`close`
            (0: every frame is written and flushed at once). A kill loses at most the
            frames of this interval.
        metadata: extra root attributes of a new file (numbers, strings), e.g.
            ``{"temperature_K": 300.0, "ensemble": "NVT Langevin"}``: spectra read the
            thermostat temperature from ``temperature_K``.

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
        flush_interval_s: float = 1.0,
        metadata: dict[str, Any] | None = None,
    ):
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
        self._prefetch: Any = None  # the calculator's ExtraProperties request, if any
        static = {
            "numbers": atoms.numbers.astype(np.int64),
            "masses": atoms.get_masses().astype(np.float64),
            "pbc": np.asarray(atoms.pbc, dtype=bool),
        }
        attrs = {**(metadata or {}), "kind": "md", "interval": self.interval,
                 "properties": list(self.properties) or [""]}
        self._frames = FrameFile(self.path, _frame_shapes(atoms, self.properties), static, attrs, mode,
                                 check=self._check_properties, flush_interval_s=flush_interval_s)
        self._next_step = self.last_step + self.interval if self.n_frames else 0
        if prefetch and self.properties:
            self._install_prefetch(atoms.calc)
        if dynamics is not None:
            self.attach(dynamics)

    # File ---------------------------------------------------------------------------
    def _check_properties(self, f: Any) -> None:
        stored = tuple(p for p in f.attrs["properties"] if p)
        if set(stored) != set(self.properties):
            raise RecorderError(
                f"{self.path} records properties {list(stored)}, asked for {list(self.properties)} "
                "(restricted to what the calculator implements)"
            )

    def truncate(self, after_step: int) -> int:
        """Drop the frames with step > ``after_step`` (e.g. written after a checkpoint); returns how many."""
        dropped = super().truncate(after_step)
        self._next_step = self.last_step + self.interval if self.n_frames else 0
        return dropped

    def continue_file(self) -> None:
        """Continue the existing file instead of replacing it (mode "w" before the first frame)."""
        super().continue_file()
        self._next_step = self.last_step + self.interval if self.n_frames else 0

    def close(self) -> None:
        """Write buffered frames, close the file, withdraw the calculator request, leave the dynamics' observers."""
        if self._prefetch is not None:
            self._prefetch.close()
            self._prefetch = None
        if self.dynamics is not None:
            mine = (self, self._schedule_prefetch)
            self.dynamics.observers[:] = [o for o in self.dynamics.observers if o[0] not in mine]
        self._frames.close()

    # Dynamics ------------------------------------------------------------------------
    def attach(self, dynamics: Any) -> MDRecorder:
        """Observe ``dynamics`` every ``interval`` steps; step and time come from it."""
        self.dynamics = dynamics
        dynamics.attach(self, interval=self.interval)
        if self._prefetch is not None:
            dynamics.attach(self._schedule_prefetch, interval=1)
        return self

    def _install_prefetch(self, calc: Any) -> None:
        if not callable(getattr(calc, "computing", None)):
            return  # not an MPNNCalculator: frames ask for the properties themselves
        # Active from the start: the first force call (frame 0) computes them too.
        self._prefetch = calc.computing(*self.properties)

    def _schedule_prefetch(self) -> None:
        """After step n: ask for the properties in the next force call if it precedes a frame.

        The force call of step n -> n+1 happens while nsteps == n (ASE increments it
        after step()).
        """
        n = self.dynamics.nsteps
        self._prefetch.active = n % self.interval == 0 or (n + 1) % self.interval == 0

    # Writing -------------------------------------------------------------------------
    def __call__(self) -> None:
        """Append the current state as one frame (the observer entry point)."""
        self._require_open()
        if len(self.atoms) != self._frames.shapes["positions"][0]:
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
        self._frames.append(self._observables(step, time))
        self._next_step = step + self.interval

    def _require_open(self) -> None:
        if not self._frames.is_open:
            raise RecorderError(f"recorder for {self.path} is closed")

    def _cache_is_fresh(self) -> bool:
        """Whether the calculator's results belong to the atoms as they are now.

        Dynamics only move atoms (positions, and the cell in NPT), so an exact comparison
        of those suffices; ASE's full ``check_state`` compares every per-atom array with
        ``isclose`` and costs ~0.1 ms, 5-10 % of a small molecule's MD step.
        """
        calc, atoms = self.atoms.calc, self.atoms
        seen = getattr(calc, "atoms", None)
        if seen is None or len(seen) != len(atoms):
            return False
        return (np.array_equal(seen.positions, atoms.positions) and np.array_equal(seen.cell.array, atoms.cell.array)
                and np.array_equal(seen.pbc, atoms.pbc) and np.array_equal(seen.numbers, atoms.numbers))

    def _observables(self, step: int, time: float) -> dict[str, Any]:
        atoms, calc = self.atoms, self.atoms.calc
        # One state check for all cached values: each ASE getter would repeat it
        # (~50 µs apiece for MPNNCalculator, a visible share of a 2 ms step).
        results = calc.results if self._cache_is_fresh() else {}
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
