"""Classical MD helpers: ASE's Langevin and velocity Verlet in fs units, and a restartable run loop.

Contract
--------
* :func:`langevin` returns ``ase.md.langevin.Langevin`` with ``fixcm=False`` and a seeded
  ``numpy.random.Generator``; :func:`nve` returns ``ase.md.verlet.VelocityVerlet``.
  Arguments are in K, fs and 1/fs; nothing else is changed.
* :func:`run_md` runs a dynamics to a total number of steps with an optional
  :class:`~ase_mpnn.md.recorder.MDRecorder`, a progress bar, and checkpoints
  (positions, momenta, cell, step, the Langevin RNG state), through the run loop that
  ring-polymer MD shares (:mod:`ase_mpnn.md.run_loop`). Calling it again with the
  same arguments after a crash resumes from the last checkpoint, and the continued run
  is the trajectory the uninterrupted run would have given (for dynamics whose only
  state besides the atoms is ``rng``: Langevin, velocity Verlet). It is bit for bit
  with ``MPNNCalculator`` on water (tested); a calculator whose first call after a
  restart sums in another order (fresh neighbor list) may differ in the last bits.

Why ASE's Langevin. ``Langevin`` integrates the Langevin equation with the
quasi-symplectic second-order scheme of Vanden-Eijnden and Ciccotti (Chem. Phys.
Lett. 429, 310 (2006), Eq. 23) — it is not BAOAB — with one force call per step, and
samples the canonical distribution up to O(dt²). Measured on harmonic oscillators
(ASE 3.29, friction 0.05/fs, errors of the mean kinetic / configurational temperature):
ωdt = 0.1: −0.4 % / −0.2 %; 0.3: −1.3 % / +0.9 %; 0.5: −4.2 % / +2.3 %. For water
(O–H stretch ω ≈ 0.72/fs) that is ≈ 0.5 % at 0.25 fs and ≈ 1–2 % at 0.5 fs on the stretch
mode, well inside what MD for spectra needs. ASE's ``LangevinBAOAB`` samples harmonic
configurations exactly (kinetic temperature −(ωdt)²/4 instead) and is the better choice
for configurational averages at large time steps; it keeps cached forces between steps,
so :func:`run_md` checkpoints do not cover it. ``fixcm=False`` because ``fixcm=True``
is deprecated since ASE 3.28: it does not sample the NVT distribution exactly (use
``ase.constraints.FixCom`` to hold the centre of mass).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from ..atomic_file import atomic_write
from ..resume import CheckpointError, calculator_fingerprint, plain_settings
from ..rng_state import restore_rng, rng_state_json
from .guards import BlowUpGuard, check_md_settings, warn_large_timestep
from .recorder import MDRecorder
from .run_loop import check_run_arguments, run_with_checkpoints

CHECKPOINT_VERSION = 1


def langevin(
    atoms: Atoms,
    temperature_K: float,
    timestep_fs: float,
    friction_per_fs: float,
    seed: int | np.random.Generator | None = None,
    **kwargs: Any,
) -> Langevin:
    """ASE Langevin dynamics (NVT) in K, fs and 1/fs, ``fixcm=False``.

    Args:
        atoms: the system (with calculator; momenta are used as they are).
        temperature_K: bath temperature.
        timestep_fs: time step.
        friction_per_fs: friction γ in 1/fs (0.01/fs: velocity memory of ~100 fs).
        seed: seed of the ``numpy.random.Generator`` (or a Generator); None draws
            fresh entropy. The Generator is ``dyn.rng``; :func:`run_md` checkpoints it.
        **kwargs: passed to ``Langevin`` (``logfile``, ``trajectory``, ...).

    Raises ``ValueError`` for a time step ≤ 0 or a negative temperature or friction, and
    warns if the time step is large for the lightest atom (see :mod:`ase_mpnn.md.guards`).
    """
    check_md_settings(timestep_fs, temperature_K, friction_per_fs)
    warn_large_timestep(atoms, timestep_fs)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
        **kwargs,
    )


def nve(atoms: Atoms, timestep_fs: float, **kwargs: Any) -> VelocityVerlet:
    """ASE velocity Verlet (NVE) with the time step in fs; ``kwargs`` go to ``VelocityVerlet``.

    Checks and warns about the time step as :func:`langevin` does.
    """
    check_md_settings(timestep_fs)
    warn_large_timestep(atoms, timestep_fs)
    return VelocityVerlet(atoms, timestep=timestep_fs * units.fs, **kwargs)


# Checkpoints ---------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, dynamics: Any, settings: Mapping[str, Any] | None = None) -> None:
    """Write positions, momenta, cell, step and RNG state of ``dynamics`` atomically (.npz).

    ``settings`` (JSON-serialisable; :func:`run_settings` and the caller's own, such as
    the seed) are stored too, so that a resumed run can be checked against them.
    """
    atoms = dynamics.atoms
    rng = getattr(dynamics, "rng", None)
    rng_state = "" if rng is None else rng_state_json(rng)
    extra = {} if settings is None else {"settings": np.array(json.dumps(plain_settings(settings)))}
    # Replaced in one step: a kill while writing leaves the previous checkpoint intact.
    with atomic_write(path) as f:
        np.savez(
            f,
            version=CHECKPOINT_VERSION,
            step=int(dynamics.nsteps),
            numbers=atoms.numbers,
            positions=atoms.positions,
            momenta=atoms.get_momenta(),
            cell=atoms.cell.array,
            rng_state=np.array(rng_state),
            **extra,
        )


def _read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an MD checkpoint, or a :class:`CheckpointError` that says what to do."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as ck:
            arrays = {key: ck[key] for key in ck.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{os.fspath(path)} is not a readable MD checkpoint (truncated or corrupt: {err}). Restore it from a "
            "copy, or start a new run with restart=True (ase-mpnn md: --restart), which discards it"
        ) from None
    missing = sorted({"step", "numbers", "positions", "momenta", "cell", "rng_state"} - set(arrays))
    if missing:
        raise CheckpointError(f"{os.fspath(path)} is not an MD checkpoint (no {', '.join(missing)}): start a new "
                              "run with restart=True (ase-mpnn md: --restart), or give the right checkpoint path")
    return arrays


def read_checkpoint_settings(path: str | os.PathLike) -> dict[str, Any] | None:
    """The run settings stored in an MD checkpoint (None: written before they were stored)."""
    arrays = _read_checkpoint(path)
    return json.loads(str(arrays["settings"])) if "settings" in arrays else None


def run_settings(dynamics: Any, recorder: MDRecorder | None = None) -> dict[str, Any]:
    """The settings of ``dynamics`` (and ``recorder``) that shape an MD run's result.

    The dynamics' class and time step; temperature, friction and ``fixcm`` when it has
    them (Langevin); the calculator's identity (model weights); the recorder's interval
    and properties. The seed cannot be read back from a random generator: callers that
    know it (the CLI) add it to ``run_md``'s ``settings``.
    """
    settings: dict[str, Any] = {"dynamics": type(dynamics).__name__}
    dt = getattr(dynamics, "dt", None)
    if dt is not None:
        settings["timestep_fs"] = float(dt / units.fs)
    for attribute, name, scale in (("temp", "temperature_K", 1 / units.kB), ("fr", "friction_per_fs", units.fs)):
        value = getattr(dynamics, attribute, None)
        if value is not None:
            value = np.asarray(value, dtype=float) * scale
            settings[name] = float(value) if value.ndim == 0 else value.tolist()
    if getattr(dynamics, "fix_com", None) is not None:
        settings["fixcm"] = bool(dynamics.fix_com)
    settings["calculator"] = calculator_fingerprint(dynamics.atoms.calc)
    if recorder is not None:
        settings["record interval"] = int(recorder.interval)
        settings["record properties"] = sorted(recorder.properties)
    return settings


def load_checkpoint(path: str | os.PathLike, dynamics: Any) -> int:
    """Restore atoms, step and RNG state of ``dynamics`` from ``path``; returns the step.

    Raises :class:`~ase_mpnn.resume.CheckpointError` for an unreadable file or another system.
    """
    ck = _read_checkpoint(path)
    atoms = dynamics.atoms
    if not np.array_equal(ck["numbers"], atoms.numbers):
        raise CheckpointError(f"checkpoint {path} holds a different system (other atoms): give the structure that "
                              "run started from, or start a new run with restart=True (ase-mpnn md: --restart)")
    atoms.set_cell(ck["cell"])
    atoms.positions = ck["positions"]
    atoms.set_momenta(ck["momenta"], apply_constraint=False)
    rng_state = str(ck["rng_state"])
    if rng_state:
        restore_rng(getattr(dynamics, "rng", None), rng_state, os.fspath(path))
    dynamics.nsteps = int(ck["step"])
    return dynamics.nsteps


class _AseStepper:
    """An ASE dynamics (Langevin, velocity Verlet) as a :class:`~ase_mpnn.md.run_loop.Stepper`."""

    how_to_start_over = ("pass restart=True to run_md (ase-mpnn md: --restart), which discards the checkpoint "
                         "and the recorded frames")

    def __init__(self, dynamics: Any, recorder: MDRecorder | None):
        self.dynamics, self.recorder = dynamics, recorder

    @property
    def nsteps(self) -> int:
        return self.dynamics.nsteps

    def attach(self, function, interval: int) -> None:
        self.dynamics.attach(function, interval=interval)

    def detach(self, functions) -> None:
        self.dynamics.observers[:] = [o for o in self.dynamics.observers if o[0] not in functions]

    def advance(self, steps: int):
        return self.dynamics.irun(steps)

    def settings(self) -> dict[str, Any]:
        return run_settings(self.dynamics, self.recorder)

    def save(self, path, settings) -> None:
        save_checkpoint(path, self.dynamics, settings)

    def saved_settings(self, path):
        return read_checkpoint_settings(path)

    def restore(self, path) -> None:
        load_checkpoint(path, self.dynamics)

    def guard(self) -> BlowUpGuard:
        return BlowUpGuard(self.dynamics)

    def start(self) -> None:
        # Calculators cache the starting structure for the first step.
        self.dynamics.atoms.get_forces()


def run_md(
    dynamics: Any,
    steps: int,
    recorder: MDRecorder | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_interval: int = 1000,
    progress: bool = True,
    *,
    settings: Mapping[str, Any] | None = None,
    restart: bool = False,
) -> Any:
    """Run ``dynamics`` until it has made ``steps`` steps in total, resuming from a checkpoint.

    The rules of :mod:`ase_mpnn.md.run_loop`, shared with ``run_rpmd``: if
    ``checkpoint_path`` exists, the atoms, step counter and RNG are restored from it
    first and only the remaining steps run; the recorder continues its file (also one
    opened with ``mode="w"``: it replaces a file only when it writes the first frame) and
    drops the frames the interrupted run wrote after that checkpoint. A checkpoint is
    written every ``checkpoint_interval`` steps and at the end. The recorder is attached
    if it is not yet. A run that blows up (temperature above 10 × its reference, or NaN)
    stops with :class:`~ase_mpnn.md.guards.MDBlowUpError`. Returns the dynamics.

    Resuming never changes the run silently: the checkpoint stores :func:`run_settings`
    (dynamics, time step, temperature, friction, calculator weights, record interval) and
    ``settings`` (what only the caller knows, e.g. ``{"seed": 0}``); a difference raises
    :class:`~ase_mpnn.resume.CheckpointError` listing it. So does a record that ends
    before the checkpoint's step (replaced or deleted: continuing would leave a gap).
    ``restart=True`` discards an existing checkpoint (and the recorder's frames from the
    dynamics' step on) and starts the run afresh.
    """
    check_run_arguments(steps, checkpoint_interval)
    if recorder is not None and recorder.dynamics is not dynamics:
        recorder.attach(dynamics)
    run_with_checkpoints(_AseStepper(dynamics, recorder), steps, recorder, checkpoint_path, checkpoint_interval,
                         progress, settings=settings, restart=restart)
    return dynamics
