"""Classical MD helpers: ASE's Langevin and velocity Verlet in fs units, and a restartable run loop.

Contract
--------
* :func:`langevin` returns ``ase.md.langevin.Langevin`` with ``fixcm=False`` and a seeded
  ``numpy.random.Generator``; :func:`nve` returns ``ase.md.verlet.VelocityVerlet``.
  Arguments are in K, fs and 1/fs; nothing else is changed.
* :func:`run_md` runs a dynamics to a total number of steps with an optional
  :class:`~ase_mpnn.md.recorder.MDRecorder`, a progress bar, and checkpoints
  (positions, momenta, cell, step, the Langevin RNG state). Calling it again with the
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
from ..neighbors import NeighborListError
from ..potential import InputError, NonFiniteResultError
from ..output_paths import same_file
from ..resume import CheckpointError, calculator_fingerprint, check_settings, plain_settings
from .guards import BlowUpGuard, check_md_settings, warn_large_timestep
from .recorder import MDRecorder

CHECKPOINT_VERSION = 1
# Errors of a force call that, after successful steps, mean the dynamics went wrong
# (atoms pushed onto each other, NaN positions or results): reported as a blow-up.
_MID_RUN_FAILURES = (InputError, NeighborListError, NonFiniteResultError)


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
    if rng is None:
        rng_state = ""
    elif isinstance(rng, np.random.Generator):
        rng_state = json.dumps(rng.bit_generator.state)
    else:
        raise TypeError(
            f"cannot checkpoint a {type(rng).__name__} random state: give the dynamics a "
            "numpy.random.Generator (langevin(seed=...) does)"
        )
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
        if not isinstance(getattr(dynamics, "rng", None), np.random.Generator):
            raise TypeError("checkpoint has a Generator state but the dynamics has no numpy Generator rng")
        dynamics.rng.bit_generator.state = json.loads(rng_state)
    dynamics.nsteps = int(ck["step"])
    return dynamics.nsteps


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

    If ``checkpoint_path`` exists, the atoms, step counter and RNG are restored from it
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
    from tqdm.auto import tqdm

    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0 (the total, a restart runs the rest), got {steps!r}")
    if isinstance(checkpoint_interval, bool) or not isinstance(checkpoint_interval, (int, np.integer)) \
            or checkpoint_interval < 1:
        raise ValueError(f"checkpoint_interval must be a whole number of steps >= 1, got {checkpoint_interval!r}")
    if checkpoint_path is not None and recorder is not None and same_file(checkpoint_path, recorder.path):
        raise ValueError(f"the checkpoint and the record are the same file ({os.fspath(checkpoint_path)}): "
                         "give them different paths")
    current = plain_settings({**run_settings(dynamics, recorder), **(settings or {})})
    resumed = checkpoint_path is not None and os.path.exists(checkpoint_path)
    if resumed and restart:
        os.remove(checkpoint_path)  # discarded deliberately: the run starts afresh
        resumed = False
        if recorder is not None:
            recorder.truncate(after_step=dynamics.nsteps - 1)
    saved = None
    if resumed:
        saved = read_checkpoint_settings(checkpoint_path)
        check_settings(saved, current, checkpoint=checkpoint_path,
                       how_to_start_over="pass restart=True to run_md (ase-mpnn md: --restart), which discards the "
                                         "checkpoint and the recorded frames")
        load_checkpoint(checkpoint_path, dynamics)
    stored = {**(saved or {}), **current}
    if recorder is not None:
        if resumed:
            recorder.continue_file()  # a recorder opened with mode "w" keeps the record this run continues
            recorder.truncate(after_step=dynamics.nsteps)
            check_record_reaches(recorder, dynamics.nsteps, checkpoint_path)
        if recorder.dynamics is not dynamics:
            recorder.attach(dynamics)
    guard = BlowUpGuard(dynamics)
    dynamics.attach(guard, interval=1)
    observer = None
    if checkpoint_path is not None:
        def observer() -> None:
            # Step 0 needs no checkpoint: a restart from nothing is a fresh run.
            if dynamics.nsteps > 0:
                if recorder is not None:
                    recorder.flush()  # every frame up to the checkpoint is on disk
                save_checkpoint(checkpoint_path, dynamics, stored)

        dynamics.attach(observer, interval=checkpoint_interval)
    remaining = max(0, steps - dynamics.nsteps)
    try:
        if remaining:
            # The starting structure first (calculators cache it for the first step): its
            # errors are its own; the same errors later mean the dynamics went wrong.
            dynamics.atoms.get_forces()
        with tqdm(total=steps, initial=dynamics.nsteps, disable=not progress, unit="step") as bar:
            try:
                for _ in dynamics.irun(remaining):
                    bar.update(dynamics.nsteps - bar.n)
            except _MID_RUN_FAILURES as err:
                raise guard.error(str(err), during_step=True) from err
        if recorder is not None:
            recorder.flush()
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, dynamics, stored)
    finally:
        dynamics.observers[:] = [o for o in dynamics.observers if o[0] is not observer and o[0] is not guard]
    return dynamics


def check_record_reaches(recorder: Any, step: int, checkpoint: str | os.PathLike) -> None:
    """Refuse to continue a record (MD or RPMD recorder) that lacks frames before the checkpoint's step."""
    expected = step - step % recorder.interval  # the last frame the checkpointed run recorded
    if recorder.last_step < expected:
        have = f"ends at step {recorder.last_step}" if recorder.n_frames else "holds no frames"
        raise CheckpointError(
            f"{os.fspath(checkpoint)} continues the run at step {step}, but the record {recorder.path} {have}: "
            f"its frames up to step {expected} are gone (the record was replaced or deleted after the checkpoint "
            "was written) and continuing would leave a gap. Restore that record, or start a new run with "
            "restart=True (CLI: --restart), which discards the checkpoint"
        )
