"""Guards for classical MD: settings in range, a time step the lightest atom can follow,
and a run that blows up stops with an error instead of running on to 6e5 K.

Rule of thumb for the time step. The step must resolve the fastest vibration: about a
tenth of its period or less. An X–H stretch has a period of ≈ 9 fs, so ≈ 1 fs is the most
that MD with hydrogen tolerates (0.25–0.5 fs for spectra), and the fastest frequency
scales like 1/√m of the lightest atom: :func:`recommended_max_timestep_fs` gives
1 fs × √(m / m_H) (D 1.4 fs, C 3.4 fs, O 4 fs, Cu 7.9 fs). ASE checks nothing; here a
larger step is allowed but warned about, and :class:`BlowUpGuard` stops the run if it
goes wrong.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.data import atomic_masses, chemical_symbols

__all__ = [
    "BLOW_UP_FACTOR",
    "BlowUpGuard",
    "MDBlowUpError",
    "check_md_settings",
    "recommended_max_timestep_fs",
    "warn_large_timestep",
]

#: A run whose kinetic temperature exceeds this many times its reference temperature
#: (the thermostat's, or the starting one, at least 100 K) has blown up.
BLOW_UP_FACTOR = 10.0
_FLOOR_K = 100.0
_HYDROGEN_MASS = float(atomic_masses[1])


class MDBlowUpError(ValueError):
    """The dynamics ran away (temperature far above its reference, or NaN): the time step is too large."""


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_md_settings(
    timestep_fs: float, temperature_K: float | None = None, friction_per_fs: float | None = None
) -> None:
    """Refuse settings no dynamics can use: a time step ≤ 0, a negative temperature or friction.

    Raises ``ValueError`` naming the setting, the value and the range.
    """
    if not (_finite_number(timestep_fs) and timestep_fs > 0):
        raise ValueError(f"timestep must be a number of fs > 0 (typically 0.25-1 with H), got {timestep_fs!r}")
    if temperature_K is not None and not (_finite_number(temperature_K) and temperature_K >= 0):
        raise ValueError(f"temperature must be a number of K >= 0, got {temperature_K!r}")
    if friction_per_fs is not None and not (_finite_number(friction_per_fs) and friction_per_fs >= 0):
        raise ValueError(f"friction must be a number of 1/fs >= 0 (e.g. 0.01), got {friction_per_fs!r}")


def recommended_max_timestep_fs(atoms: Atoms) -> float:
    """1 fs × √(m_lightest / m_H): the rule of thumb of this module's docstring."""
    masses = atoms.get_masses()
    lightest = float(masses.min()) if len(masses) else _HYDROGEN_MASS
    return float(f"{math.sqrt(lightest / _HYDROGEN_MASS):.2g}")  # a rule of thumb: two digits


def warn_large_timestep(atoms: Atoms, timestep_fs: float) -> bool:
    """Warn (``UserWarning``) if the time step exceeds :func:`recommended_max_timestep_fs`; True if it did."""
    limit = recommended_max_timestep_fs(atoms)
    if timestep_fs <= limit:
        return False
    lightest = chemical_symbols[int(atoms.numbers[np.argmin(atoms.get_masses())])]
    warnings.warn(
        f"time step {timestep_fs:g} fs is larger than {limit:.2g} fs, the rule of thumb for a system whose lightest "
        f"atom is {lightest} (about a tenth of the fastest vibration's period: 1 fs with H, scaling with √mass). "
        "The run may heat up and blow up; reduce the time step unless you know it is stable",
        UserWarning,
        stacklevel=3,
    )
    return True


class BlowUpGuard:
    """An observer that raises :class:`MDBlowUpError` when the dynamics run away.

    Attach with ``dynamics.attach(BlowUpGuard(dynamics), interval=1)`` (``run_md`` and
    ``run_rpmd`` do). A blow-up is a non-finite position, momentum or energy, or a kinetic
    temperature above :data:`BLOW_UP_FACTOR` × the reference: the thermostat's
    temperature (``target_K``, or an ASE Langevin's own), else the temperature at the
    first check, at least 100 K. ``state`` returns (finite, temperature in K) for drivers
    whose atoms are not ``dynamics.atoms`` (ring polymers: all beads, bead temperature).
    """

    def __init__(self, dynamics: Any, state: Callable[[], tuple[bool, float]] | None = None,
                 target_K: float | None = None):
        self.dynamics = dynamics
        self.reference_K: float | None = None
        self._state = state or self._atoms_state
        target = getattr(dynamics, "temp", None)  # ASE Langevin: k_B T of the bath
        self._target_K = target_K if target_K is not None else (target / units.kB if target is not None else 0.0)

    def _atoms_state(self) -> tuple[bool, float]:
        """(positions and momenta finite, kinetic temperature in K) of the dynamics' atoms."""
        atoms = self.dynamics.atoms
        finite = bool(np.isfinite(atoms.positions).all() and np.isfinite(atoms.get_momenta()).all())
        return finite, atoms.get_temperature() if finite and len(atoms) else 0.0

    def __call__(self) -> None:
        finite, temperature = self._state()
        if self.reference_K is None:
            start = temperature if finite and math.isfinite(temperature) else 0.0
            self.reference_K = max(_FLOOR_K, start, self._target_K)
        if finite and math.isfinite(temperature) and temperature <= BLOW_UP_FACTOR * self.reference_K:
            return
        raise self.error(f"the kinetic temperature is {temperature:.3g} K, more than {BLOW_UP_FACTOR:g} × the "
                         f"reference {self.reference_K:.4g} K" if finite and math.isfinite(temperature)
                         else "positions or momenta became NaN or infinite")

    def error(self, what: str, during_step: bool = False) -> MDBlowUpError:
        """The error for a run that went wrong with ``what``; ``during_step``: a force call of
        the next step failed (atoms pushed onto each other, NaN positions)."""
        timestep_fs = getattr(self.dynamics, "dt", float("nan")) / units.fs
        limit = recommended_max_timestep_fs(self.dynamics.atoms)
        step = getattr(self.dynamics, "nsteps", None)
        when = f"in step {step + 1}" if during_step and step is not None else f"at step {step}"
        return MDBlowUpError(
            f"MD blew up {when}: {what.rstrip('.')}. The time step {timestep_fs:g} fs "
            f"is probably too large for this system (rule of thumb: ≤ {limit:.2g} fs here, 1 fs with H): reduce "
            "the time step (ase-mpnn md --timestep), or check the starting structure and temperature"
        )
