"""The one run loop of every MD driver: steps to a total, records, checkpoints, resumes.

:func:`run_with_checkpoints` drives anything that fits :class:`Stepper` (the ASE
dynamics of :mod:`ase_mpnn.md.classical`, :class:`~ase_mpnn.md.rpmd.RingPolymerMD`);
``run_md`` and ``run_rpmd`` are it with their stepper. The rules are the same for all:

* ``steps`` is the total: a resumed run makes the rest.
* A checkpoint file that exists is resumed from, after its stored settings (the
  stepper's, the recorder's and the caller's) are compared with the current ones; a
  difference raises :class:`~ase_mpnn.resume.CheckpointError` listing it.
  ``restart=True`` discards the checkpoint and the recorded frames from the current
  step on, and starts afresh.
* A resumed record drops the frames written after the checkpoint and must reach the
  checkpoint's step (a record replaced or deleted since would leave a gap).
* Checkpoints are written every ``checkpoint_interval`` steps, each after the recorder's
  buffered frames are on disk, and at the end.
* A blow-up (temperature far above its reference, NaN) stops the run with
  :class:`~ase_mpnn.md.guards.MDBlowUpError`; so does a force call that fails after
  successful steps (atoms pushed onto each other).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import numpy as np

from ..model.neighbors import NeighborListError
from ..model.potential import InputError, NonFiniteResultError
from ..output_paths import same_file
from ..resume import CheckpointError, check_settings, plain_settings
from .guards import BlowUpGuard

# Errors of a force call that, after successful steps, mean the dynamics went wrong
# (atoms pushed onto each other, NaN positions or results): reported as a blow-up.
MID_RUN_FAILURES = (InputError, NeighborListError, NonFiniteResultError)


class Stepper(Protocol):
    """What the run loop needs of an MD driver."""

    #: how to start over, for error messages ("pass restart=True to run_md ...")
    how_to_start_over: str

    @property
    def nsteps(self) -> int: ...

    def attach(self, function: Callable[[], None], interval: int) -> None: ...

    def detach(self, functions: tuple[Callable[[], None], ...]) -> None: ...

    def advance(self, steps: int) -> Iterator[None]:
        """Make ``steps`` steps, yielding now and then (for the progress bar)."""

    def settings(self) -> dict[str, Any]:
        """The settings that shape the run's result (stored in checkpoints)."""

    def save(self, path: str | os.PathLike, settings: Mapping[str, Any]) -> None: ...

    def saved_settings(self, path: str | os.PathLike) -> dict[str, Any] | None:
        """The settings stored in a checkpoint (None: written before they were stored)."""

    def restore(self, path: str | os.PathLike) -> None:
        """Continue from the checkpoint: state, step counter, random generator."""

    def guard(self) -> BlowUpGuard | None: ...

    def start(self) -> None:
        """Evaluate the starting structure (its errors are its own, not a blow-up)."""


def check_run_arguments(steps: Any, checkpoint_interval: Any) -> None:
    """ValueError for a step total or checkpoint interval that is not a whole number of steps."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0 (the total, a restart runs the rest), got {steps!r}")
    if isinstance(checkpoint_interval, bool) or not isinstance(checkpoint_interval, (int, np.integer)) \
            or checkpoint_interval < 1:
        raise ValueError(f"checkpoint_interval must be a whole number of steps >= 1, got {checkpoint_interval!r}")


def run_with_checkpoints(
    stepper: Stepper,
    steps: int,
    recorder: Any = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_interval: int = 1000,
    progress: bool = True,
    *,
    settings: Mapping[str, Any] | None = None,
    restart: bool = False,
    restored_settings: Mapping[str, Any] | None = None,
    restored_from: str | None = None,
) -> None:
    """Run ``stepper`` to ``steps`` steps in total under the rules of the module docstring.

    ``recorder``: an MD or RPMD recorder already observing the run, or None.
    ``settings``: what only the caller knows (seed, structure file), stored and compared.
    ``restored_settings`` / ``restored_from``: the stepper was already rebuilt from that
    checkpoint (``RingPolymerMD.from_checkpoint``), so it is checked, not loaded again.
    """
    from tqdm.auto import tqdm

    check_run_arguments(steps, checkpoint_interval)
    if checkpoint_path is not None and recorder is not None and same_file(checkpoint_path, recorder.path):
        raise ValueError(f"the checkpoint and the record are the same file ({os.fspath(checkpoint_path)}): "
                         "give them different paths")
    current = plain_settings({**stepper.settings(), **(settings or {})})
    saved: Mapping[str, Any] | None = None
    resumed_from = restored_from
    if restored_from is not None:
        saved = restored_settings
        check_settings(saved, current, checkpoint=restored_from, how_to_start_over=stepper.how_to_start_over)
    elif checkpoint_path is not None and os.path.exists(checkpoint_path):
        if restart:
            os.remove(checkpoint_path)  # discarded deliberately: the run starts afresh
            if recorder is not None:
                recorder.truncate(after_step=stepper.nsteps - 1)
        else:
            saved = stepper.saved_settings(checkpoint_path)
            check_settings(saved, current, checkpoint=checkpoint_path, how_to_start_over=stepper.how_to_start_over)
            stepper.restore(checkpoint_path)
            resumed_from = os.fspath(checkpoint_path)
    stored = plain_settings({**(saved or {}), **current})
    if recorder is not None and resumed_from is not None:
        recorder.continue_file()  # a recorder opened with mode "w" keeps the record this run continues
        recorder.truncate(after_step=stepper.nsteps)
        check_record_reaches(recorder, stepper.nsteps, resumed_from)

    def checkpoint() -> None:
        if recorder is not None:
            recorder.flush()  # every frame up to the checkpoint is on disk
        stepper.save(checkpoint_path, stored)

    def observer() -> None:
        if stepper.nsteps > 0:  # step 0 needs no checkpoint: a restart from nothing is a fresh run
            checkpoint()

    guard = stepper.guard()
    mine: tuple[Callable[[], None], ...] = ()
    if guard is not None:
        stepper.attach(guard, 1)
        mine += (guard,)
    if checkpoint_path is not None:
        stepper.attach(observer, int(checkpoint_interval))
        mine += (observer,)
    remaining = max(0, int(steps) - stepper.nsteps)
    try:
        if remaining:
            stepper.start()
        with tqdm(total=int(steps), initial=stepper.nsteps, disable=not progress, unit="step") as bar:
            try:
                for _ in stepper.advance(remaining):
                    bar.update(stepper.nsteps - bar.n)
            except MID_RUN_FAILURES as err:
                if guard is None:
                    raise
                raise guard.error(str(err), during_step=True) from err
        if checkpoint_path is not None:
            checkpoint()
        elif recorder is not None:
            recorder.flush()
    finally:
        stepper.detach(mine)


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
