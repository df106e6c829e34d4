"""Record ring-polymer MD to HDF5, and run RPMD restartably from checkpoints.

:class:`RingPolymerRecorder` writes the same kind of file as
:class:`~ase_mpnn.md.recorder.MDRecorder` (:mod:`ase_mpnn.md.record_file`: SWMR,
readable during the run and after a kill, one writer, appendable), with the dataset names
of a classical record wherever the quantity has a classical counterpart, so that
spectra code reads both alike:

* per frame: ``step``, ``time`` (fs), ``positions`` (centroid, Å, unwrapped),
  ``velocities`` (centroid, Å/fs: mean bead momentum / mass), ``cell`` (Å),
  ``potential_energy`` (bead-averaged V, eV), ``kinetic_energy`` (centroid-virial
  quantum kinetic energy, eV), ``primitive_kinetic_energy`` (eV), ``conserved_energy``
  ((H_P − thermostat heat)/P, eV), ``temperature`` (bead kinetic temperature / P, K),
  ``dipole`` (e·Å) and ``polarizability`` (e²Å²/eV) averaged over beads when the run
  evaluates them, and with ``beads=True`` ``bead_positions`` (P, N, 3) in Å;
* static: ``numbers``, ``masses`` (amu), ``pbc``;
* root attributes: ``kind`` = "rpmd", ``n_beads``, ``temperature_K``, ``timestep_fs``,
  ``thermostat``, ``interval``, ``properties``.

Centroid time series of an RPMD run (no thermostat on the centroid: ``thermostat=
"trpmd"`` or None) approximate Kubo-transformed correlation functions: spectra from them
take no further quantum correction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import units

from .guards import BlowUpGuard
from .record_file import FrameFile, FrameRecorder, RecorderError
from .rpmd import RingPolymerMD
from .run_loop import run_with_checkpoints

__all__ = ["RingPolymerRecorder", "run_rpmd"]


class RingPolymerRecorder(FrameRecorder):
    """Append frames of a :class:`RingPolymerMD` run to an HDF5 file (layout: module docstring).

    Args:
        md: the ring-polymer run; the recorder attaches itself (``md.attach(self, interval)``).
        path: the HDF5 file.
        interval: record every ``interval`` steps (steps where ``nsteps % interval == 0``).
        mode: "w" creates (overwrites); "a" continues an existing RPMD record of the same
            system, bead number and observables.
        beads: also record every bead's positions (P·N·3 numbers per frame).
        flush_interval_s: frames are written in blocks at most this many seconds of wall
            time apart, and on :meth:`flush` and :meth:`close` (0: every frame at once).

    Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        md: RingPolymerMD,
        path: str | os.PathLike,
        interval: int = 1,
        mode: str = "w",
        *,
        beads: bool = False,
        flush_interval_s: float = 1.0,
    ):
        if int(interval) != interval or interval < 1:
            raise ValueError(f"interval must be a positive integer, got {interval!r}")
        self.md = md
        self.path = os.fspath(path)
        self.interval = int(interval)
        self.beads = bool(beads)
        self.properties: tuple[str, ...] = tuple(md.observables)
        n, P = len(md.atoms), md.n_beads
        shapes: dict[str, tuple[int, ...]] = {
            "step": (), "time": (), "positions": (n, 3), "velocities": (n, 3), "cell": (3, 3),
            "potential_energy": (), "kinetic_energy": (), "primitive_kinetic_energy": (),
            "conserved_energy": (), "temperature": (),
        }
        for name in self.properties:
            shapes[name] = _observable_shape(name, n)
        if self.beads:
            shapes["bead_positions"] = (P, n, 3)
        static = {
            "numbers": md.atoms.numbers.astype(np.int64),
            "masses": md.masses.astype(np.float64),
            "pbc": np.asarray(md.atoms.pbc, dtype=bool),
        }
        attrs = {
            "kind": "rpmd", "n_beads": P, "temperature_K": md.temperature_K, "timestep_fs": md.dt / units.fs,
            "thermostat": md.thermostat or "none", "interval": self.interval,
            "properties": list(self.properties) or [""], "beads": self.beads,
        }
        self._frames = FrameFile(self.path, shapes, static, attrs, mode, check=self._check_run,
                                 flush_interval_s=flush_interval_s)
        md.attach(self, interval=self.interval)

    def _check_run(self, f: Any) -> None:
        if f.attrs.get("kind") != "rpmd":
            raise RecorderError(f"{self.path} is not an RPMD record (kind {f.attrs.get('kind', 'md')!r})")
        if int(f.attrs["n_beads"]) != self.md.n_beads:
            raise RecorderError(f"{self.path} was written with {int(f.attrs['n_beads'])} beads, this run has "
                                f"{self.md.n_beads}")
        stored = tuple(p for p in f.attrs["properties"] if p)
        if set(stored) != set(self.properties) or bool(f.attrs["beads"]) != self.beads:
            raise RecorderError(f"{self.path} records {list(stored)} (beads={bool(f.attrs['beads'])}), this run "
                                f"{list(self.properties)} (beads={self.beads})")

    def __call__(self) -> None:
        """Append the current state of the run as one frame (the observer entry point)."""
        md = self.md
        step = md.nsteps
        frame: dict[str, Any] = {
            "step": step,
            "time": step * md.dt / units.fs,
            "positions": md.centroid_positions,
            "velocities": md.state.momenta.mean(axis=0) / md.masses[:, None] * units.fs,
            "cell": md.atoms.cell.array,
            "potential_energy": md.potential_energy,
            "kinetic_energy": md.centroid_virial_kinetic_energy,
            "primitive_kinetic_energy": md.primitive_kinetic_energy,
            "conserved_energy": md.conserved_energy,
            "temperature": md.temperature,
        }
        for name in self.properties:
            frame[name] = md.state.observables[name].mean(axis=0)
        if self.beads:
            frame["bead_positions"] = md.state.positions
        self._frames.append(frame)

    def close(self) -> None:
        """Write buffered frames, close the file and stop observing the run."""
        self.md._observers[:] = [o for o in self.md._observers if o[0] is not self]
        self._frames.close()


def _observable_shape(name: str, n_atoms: int) -> tuple[int, ...]:
    from ase.outputs import all_outputs

    return tuple(n_atoms if s == "natoms" else int(s) for s in all_outputs[name].shapespec)


class _RingPolymerStepper:
    """A :class:`RingPolymerMD` as a :class:`~ase_mpnn.md.run_loop.Stepper`."""

    how_to_start_over = "pass restart=True to run_rpmd (ase-mpnn rpmd: --restart), which discards the checkpoint"

    def __init__(self, md: RingPolymerMD, recorder: RingPolymerRecorder | None, chunk: int):
        self.md, self.recorder, self.chunk = md, recorder, max(1, int(chunk))

    @property
    def nsteps(self) -> int:
        return self.md.nsteps

    def attach(self, function, interval: int) -> None:
        self.md.attach(function, interval=interval)

    def detach(self, functions) -> None:
        self.md._observers[:] = [o for o in self.md._observers if o[0] not in functions]

    def advance(self, steps: int):
        # run() in chunks for the progress bar; observers see one continuous run
        done = 0
        while done < steps:
            n = min(self.chunk, steps - done)
            self.md.run(n)
            done += n
            yield

    def settings(self) -> dict[str, Any]:
        settings = self.md.run_settings()
        if self.recorder is not None:
            settings.update({"record interval": self.recorder.interval, "record beads": self.recorder.beads})
        return settings

    def save(self, path, settings) -> None:
        self.md.save_checkpoint(path, settings)

    def saved_settings(self, path):
        return self.md.saved_settings(path)

    def restore(self, path) -> None:
        self.md.load_checkpoint(path)

    def guard(self) -> BlowUpGuard:
        md = self.md

        def state() -> tuple[bool, float]:
            finite = bool(np.isfinite(md.state.positions).all() and np.isfinite(md.state.momenta).all())
            return finite, md.temperature if finite else float("nan")

        return BlowUpGuard(md, state=state, target_K=md.temperature_K)

    def start(self) -> None:
        self.md._ensure_forces()


def run_rpmd(
    md: RingPolymerMD,
    steps: int,
    recorder: RingPolymerRecorder | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_interval: int = 1000,
    progress: bool = True,
    progress_chunk: int = 10,
    *,
    settings: Mapping[str, Any] | None = None,
    restart: bool = False,
) -> RingPolymerMD:
    """Run ``md`` until it has made ``steps`` steps in total, checkpointing as it goes.

    The rules of :mod:`ase_mpnn.md.run_loop`, shared with ``run_md``: calling it again
    with the same arguments after a crash (a fresh ``md`` built as before, or one rebuilt
    with :meth:`RingPolymerMD.from_checkpoint`) continues from the last checkpoint; the
    recorder continues its file (also one opened with ``mode="w"``, which replaces a file
    only when it writes the first frame), the frames the killed run recorded after its
    last checkpoint are dropped, and the continued trajectory is the one the
    uninterrupted run would have made. A checkpoint is written every
    ``checkpoint_interval`` steps and at the end, each after the recorder's buffered
    frames are on disk. Returns ``md``.

    The checkpoint stores the run's settings (:meth:`RingPolymerMD.run_settings`, the
    record interval, and ``settings``: what only the caller knows, such as the structure
    file); a run whose settings differ is refused with
    :class:`~ase_mpnn.resume.CheckpointError`, as is a record that ends before the
    checkpoint's step. ``restart=True`` discards an existing checkpoint and starts afresh.
    A run that blows up (bead temperature above 10 × the set temperature, NaN) stops with
    :class:`~ase_mpnn.md.guards.MDBlowUpError`.
    """
    if recorder is not None and recorder.md is not md:
        raise ValueError("the recorder observes another RingPolymerMD")
    restored = md.restored_from is not None
    run_with_checkpoints(_RingPolymerStepper(md, recorder, progress_chunk), steps, recorder, checkpoint_path,
                         checkpoint_interval, progress, settings=settings, restart=restart,
                         restored_settings=md.checkpoint_settings if restored else None,
                         restored_from=md.restored_from if restored else None)
    return md
