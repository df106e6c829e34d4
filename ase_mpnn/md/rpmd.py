"""Ring-polymer molecular dynamics (RPMD / thermostatted path-integral MD) for ASE calculators.

Physics (Craig & Manolopoulos 2004; Ceriotti, Parrinello, Markland & Manolopoulos 2010).
Each atom becomes a ring of P beads held at temperature P·T. The ring-polymer Hamiltonian

    H_P = Σ_j [ Σ_i p_ij²/2m_i + Σ_i ½ m_i ω_P² |q_i,j+1 − q_ij|² + V(q_j) ],
    ω_P = P k_B T / ħ,   bead j+1 of bead P−1 is bead 0,

samples the quantum Boltzmann distribution exactly as P → ∞; its classical dynamics gives
Kubo-transformed correlation functions. The springs are diagonal in the normal modes of
the ring, q̃_k = Σ_j C[j, k] q_j with the orthonormal real DFT matrix C (column 0 is
1/√P, so q̃_0 = √P × centroid; then cosine and sine columns √(2/P) cos/sin(2πjk/P); for
even P the alternating column (−1)^j/√P), with frequencies ω_k = 2 ω_P sin(kπ/P).

One step is the symmetric splitting O-B-A-B-O:
    O  thermostat, half a step (in normal modes);
    B  half kick with the physical forces of each bead, p_j += ½ dt F(q_j);
    A  free ring polymer over dt in normal modes: an exact rotation per mode (centroid
       drifts freely) or the Cayley propagator (Korol, Bou-Rabee & Miller 2019), which
       rotates each mode by 2 atan(ω_k dt/2) < π and so stays stable for any P.
Both A propagators conserve the spring + kinetic energy exactly; with ``thermostat=None``
the whole step is symplectic and time-reversible (velocity Verlet for P = 1).

Thermostats (friction γ per normal mode, c1 = exp(−γ dt/2), c2 = √(1 − c1²), bead momentum
noise √(m P k_B T)):
    "pile_l"  Langevin on every mode; γ_k = 2λω_k (λ = ``pile_lambda``, 1: critical
              damping), centroid γ_0 = 1/τ.
    "pile_g"  Langevin on the internal modes; stochastic velocity rescaling (Bussi,
              Donadio & Parrinello 2007) of the centroid kinetic energy, time constant τ.
    "trpmd"   Langevin on the internal modes only (thermostatted RPMD, Rossi et al.
              2014); the centroid moves without a thermostat.
    None      NVE ring polymer.

Contract. Units are ASE's: eV, Å, amu, ASE time (``timestep=0.5 * ase.units.fs``). Beads
start at the positions of ``atoms`` (or ``bead_positions``) with momenta drawn at P·T
from the seeded generator (or ``bead_momenta``). Coordinates are never wrapped. A
calculator with a ``predict(list_of_atoms, properties)`` method (``MPNNCalculator``)
evaluates all beads in ONE batched call per step, on one persistent Atoms per bead, so it
keeps one Verlet neighbor list per bead; any other ASE calculator is called bead by bead.
Reported energies are per physical system (see the estimator properties); the state can
be saved and restored exactly (:meth:`save_checkpoint`, :meth:`from_checkpoint`).
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms, units

from ..atomic_file import atomic_write
from ..resume import CheckpointError, calculator_fingerprint, check_settings, plain_settings
from ..rng_state import generator_from_state, rng_state_json

__all__ = ["HBAR", "RingPolymerMD", "RingPolymerState", "normal_mode_frequencies", "normal_mode_matrix"]

#: ħ in ASE units (eV × ASE time).
HBAR = units._hbar * units.J * units.s
THERMOSTATS = ("pile_l", "pile_g", "trpmd", None)
PROPAGATORS = ("exact", "cayley")
_OBSERVABLES = ("dipole", "polarizability")
_CHECKPOINT_FORMAT = "ase_mpnn.rpmd/1"


def normal_mode_matrix(n_beads: int) -> np.ndarray:
    """Orthonormal real ring-DFT matrix C (P×P): normal mode k is q̃_k = Σ_j C[j, k] q_j."""
    P = int(n_beads)
    j = np.arange(P)
    C = np.empty((P, P))
    C[:, 0] = 1.0 / np.sqrt(P)
    for k in range(1, P):
        if 2 * k < P:
            C[:, k] = np.sqrt(2.0 / P) * np.cos(2 * np.pi * j * k / P)
        elif 2 * k == P:
            C[:, k] = (-1.0) ** j / np.sqrt(P)
        else:  # the sine partner of mode P − k, same frequency
            C[:, k] = np.sqrt(2.0 / P) * np.sin(2 * np.pi * j * k / P)
    return C


def normal_mode_frequencies(n_beads: int, omega_p: float) -> np.ndarray:
    """ω_k = 2 ω_P sin(kπ/P) for the columns of :func:`normal_mode_matrix`."""
    return 2.0 * omega_p * np.sin(np.arange(n_beads) * np.pi / n_beads)


@dataclass
class RingPolymerState:
    """Everything that changes during a run (arrays are bead-major: (P, N, 3))."""

    positions: np.ndarray
    momenta: np.ndarray
    nsteps: int = 0
    #: energy the thermostat has put into the ring polymer (eV, H_P scale: not divided by P)
    thermostat_heat: float = 0.0
    #: physical forces and energies of each bead at ``positions`` (None: not yet computed)
    forces: np.ndarray | None = None
    energies: np.ndarray | None = None
    #: per-bead observables, e.g. {"dipole": (P, 3), "polarizability": (P, 3, 3)}
    observables: dict[str, np.ndarray] = field(default_factory=dict)


class RingPolymerMD:
    """Ring-polymer MD with an O-B-A-B-O splitting; see the module docstring for the physics.

    Args:
        atoms: the physical system (positions, masses, numbers, cell, pbc, info); not changed.
        calculator: an ASE calculator; one with ``predict`` gets all beads in one call.
        n_beads: P ≥ 1 (P = 1 is classical MD).
        temperature_K: T in kelvin (> 0); beads run at P·T.
        timestep: dt in ASE time units.
        thermostat: "pile_l", "pile_g", "trpmd" or None.
        tau: centroid thermostat time constant (ASE time) for "pile_l" and "pile_g".
        seed: int, None or a numpy Generator (thermostat noise and initial momenta).
        propagator: "exact" or "cayley" free ring-polymer propagation.
        observables: extra per-bead properties to bead-average each step; None takes
            "dipole" and "polarizability" where the calculator implements them.
        pile_lambda: internal-mode friction γ_k = 2 λ ω_k.
        bead_positions, bead_momenta: optional (P, N, 3) start (Å, amu·Å/ASE time).
    """

    def __init__(
        self,
        atoms: Atoms,
        calculator: Any,
        n_beads: int,
        temperature_K: float,
        timestep: float,
        thermostat: str | None = "pile_l",
        tau: float | None = 100.0 * units.fs,
        seed: int | np.random.Generator | None = None,
        propagator: str = "exact",
        observables: Sequence[str] | None = None,
        pile_lambda: float = 1.0,
        bead_positions: np.ndarray | None = None,
        bead_momenta: np.ndarray | None = None,
    ):
        if isinstance(n_beads, bool) or not isinstance(n_beads, (int, np.integer)) or n_beads < 1:
            raise ValueError(f"n_beads must be an integer >= 1, got {n_beads!r}")
        if not np.isfinite(temperature_K) or temperature_K <= 0:
            raise ValueError(f"temperature_K must be > 0, got {temperature_K!r}")
        if not np.isfinite(timestep) or timestep <= 0:
            raise ValueError(f"timestep must be > 0 (ASE time units), got {timestep!r}")
        if thermostat not in THERMOSTATS:
            raise ValueError(f"unknown thermostat {thermostat!r}; choose one of {THERMOSTATS}")
        if propagator not in PROPAGATORS:
            raise ValueError(f"unknown propagator {propagator!r}; choose one of {PROPAGATORS}")
        if thermostat in ("pile_l", "pile_g") and not (tau is not None and np.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be > 0 for thermostat {thermostat!r}, got {tau!r}")
        if not pile_lambda > 0:
            raise ValueError(f"pile_lambda must be > 0, got {pile_lambda!r}")
        if len(atoms) == 0:
            raise ValueError("atoms is empty: nothing to simulate")
        if atoms.constraints:
            raise ValueError("constraints are not supported by RingPolymerMD")

        self.atoms = atoms
        self.calculator = calculator
        self.n_beads = P = int(n_beads)
        self.temperature_K = float(temperature_K)
        self.dt = float(timestep)
        self.thermostat = thermostat
        self.tau = None if tau is None else float(tau)
        self.propagator = propagator
        self.pile_lambda = float(pile_lambda)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        #: the integer seed, when one was given (stored in checkpoints, compared on resume)
        self.seed = int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None
        #: settings saved in the checkpoint this run was restored from (see :meth:`from_checkpoint`)
        self.checkpoint_settings: dict[str, Any] | None = None
        #: the checkpoint this run was restored from (None: a fresh run)
        self.restored_from: str | None = None

        implemented = set(getattr(calculator, "implemented_properties", ()))
        if observables is None:
            observables = [name for name in _OBSERVABLES if name in implemented]
        elif isinstance(observables, str):
            observables = [observables]
        missing = [name for name in observables if name not in implemented]
        if missing:
            raise ValueError(f"calculator {type(calculator).__name__} does not implement {missing}")
        self.observables = tuple(observables)
        self.batched = callable(getattr(calculator, "predict", None))

        n = len(atoms)
        self.masses = atoms.get_masses().astype(float)
        self._m = self.masses[None, :, None]  # broadcasts over (P, N, 3)
        self.kT = units.kB * self.temperature_K
        self.omega_p = P * self.kT / HBAR
        self._C = normal_mode_matrix(P)
        self.omega_k = normal_mode_frequencies(P, self.omega_p)
        self._setup_propagator()
        self._setup_thermostat()
        # One persistent Atoms per bead, moved in place: the calculator can key its cached
        # neighbor lists on the list position.
        self._beads = [atoms.copy() for _ in range(P)]
        for bead in self._beads:
            bead.calc = None

        q = np.repeat(atoms.get_positions()[None], P, axis=0) if bead_positions is None else bead_positions
        q = np.array(q, dtype=float)
        if bead_momenta is None:
            p = np.sqrt(self._m * P * self.kT) * self.rng.standard_normal((P, n, 3))
        else:
            p = np.array(bead_momenta, dtype=float)
        for name, x in (("bead_positions", q), ("bead_momenta", p)):
            if x.shape != (P, n, 3):
                raise ValueError(f"{name} must have shape {(P, n, 3)}, got {x.shape}")
        self.state = RingPolymerState(positions=q, momenta=p)
        self._observers: list[tuple[Callable, int, tuple, dict]] = []

    # Setup ---------------------------------------------------------------------------------
    def _setup_propagator(self) -> None:
        """Per-mode 2×2 maps of (q̃, p̃) over dt: q̃' = a q̃ + b p̃/m, p̃' = c m q̃ + d p̃."""
        w, dt = self.omega_k, self.dt
        if self.propagator == "exact":
            wt = w * dt
            self._a = self._d = np.cos(wt)
            # sin(ωdt)/ω → dt for the centroid (ω = 0)
            self._b = np.where(w > 0, np.sin(wt) / np.where(w > 0, w, 1.0), dt)
            self._c = -w * np.sin(wt)
        else:  # Cayley: (1 − dt A/2)⁻¹ (1 + dt A/2) of the mode's linear equations
            h2 = (0.5 * w * dt) ** 2
            self._a = self._d = (1.0 - h2) / (1.0 + h2)
            self._b = dt / (1.0 + h2)
            self._c = -(w**2) * dt / (1.0 + h2)

    def _setup_thermostat(self) -> None:
        """Langevin coefficients c1, c2 per normal mode for a half step."""
        gamma = 2.0 * self.pile_lambda * self.omega_k
        gamma[0] = 1.0 / self.tau if self.thermostat == "pile_l" else 0.0
        if self.thermostat is None:
            gamma[:] = 0.0
        self._c1 = np.exp(-0.5 * gamma * self.dt)
        self._c2 = np.sqrt(1.0 - self._c1**2)
        # standard deviation of a bead (or normal-mode) momentum at P·T
        self._sigma = np.sqrt(self._m * self.n_beads * self.kT)

    # Normal modes --------------------------------------------------------------------------
    def to_normal_modes(self, x: np.ndarray) -> np.ndarray:
        """Bead array (P, ...) → normal-mode array (P, ...)."""
        return np.tensordot(self._C.T, x, axes=1)

    def from_normal_modes(self, x: np.ndarray) -> np.ndarray:
        """Normal-mode array (P, ...) → bead array (P, ...)."""
        return np.tensordot(self._C, x, axes=1)

    # Dynamics ------------------------------------------------------------------------------
    def attach(self, function: Callable, interval: int = 1, *args: Any, **kwargs: Any) -> None:
        """Call ``function(*args, **kwargs)`` every ``interval`` steps (and at step 0), like ASE."""
        if not callable(function):
            raise TypeError("function must be callable")
        if int(interval) < 1:
            raise ValueError(f"interval must be >= 1, got {interval!r}")
        self._observers.append((function, int(interval), args, kwargs))

    def _call_observers(self) -> None:
        for function, interval, args, kwargs in self._observers:
            if self.nsteps % interval == 0:
                function(*args, **kwargs)

    def run(self, steps: int) -> None:
        """Advance ``steps`` steps; observers run at step 0 of a fresh run and on their interval."""
        if int(steps) < 0:
            raise ValueError(f"steps must be >= 0, got {steps!r}")
        self._ensure_forces()
        if self.nsteps == 0:
            self._call_observers()
        for _ in range(int(steps)):
            self.step()
            self._call_observers()

    def step(self) -> None:
        """One O-B-A-B-O step."""
        s, half_dt = self.state, 0.5 * self.dt
        self._ensure_forces()
        self._thermostat_half_step()  # O
        s.momenta += half_dt * s.forces  # B
        self._free_ring_polymer()  # A
        self._evaluate()
        s.momenta += half_dt * s.forces  # B
        self._thermostat_half_step()  # O
        s.nsteps += 1

    def _free_ring_polymer(self) -> None:
        """Springs + kinetic energy over dt, mode by mode (exact rotation or Cayley)."""
        s = self.state
        q, p = self.to_normal_modes(s.positions), self.to_normal_modes(s.momenta)
        a, b, c, d = (x[:, None, None] for x in (self._a, self._b, self._c, self._d))
        q, p = a * q + b * p / self._m, c * self._m * q + d * p
        s.positions, s.momenta = self.from_normal_modes(q), self.from_normal_modes(p)

    def _thermostat_half_step(self) -> None:
        if self.thermostat is None:
            return
        s = self.state
        p = self.to_normal_modes(s.momenta)
        k_before = self._kinetic(p)
        noise = self.rng.standard_normal(p.shape)
        p = self._c1[:, None, None] * p + self._c2[:, None, None] * self._sigma * noise
        if self.thermostat == "pile_g":
            p[0] = self._rescale_centroid(p[0])
        # The thermostat's work, so that H_P − heat stays constant up to integration error.
        s.thermostat_heat += self._kinetic(p) - k_before
        s.momenta = self.from_normal_modes(p)

    def _rescale_centroid(self, p0: np.ndarray) -> np.ndarray:
        """Bussi stochastic velocity rescaling of the centroid mode over half a step.

        The kinetic energy K of the n_dof = 3N centroid degrees of freedom follows the exact
        solution of its Langevin-like equation towards K̄ = n_dof P k_B T / 2; momenta are
        scaled by α = ±√(K'/K). All 3N centroid components (centre of mass included) take part.
        """
        kinetic = float(np.sum(p0**2 / (2.0 * self.masses[:, None])))
        if kinetic == 0.0:  # no direction to rescale along
            return p0
        n_dof = p0.size
        target = 0.5 * n_dof * self.n_beads * self.kT
        c = np.exp(-0.5 * self.dt / self.tau)
        r1 = self.rng.standard_normal()
        rest = self.rng.chisquare(n_dof - 1) if n_dof > 1 else 0.0
        new = (
            c * kinetic
            + (1.0 - c) * target / n_dof * (r1**2 + rest)
            + 2.0 * r1 * np.sqrt(c * (1.0 - c) * kinetic * target / n_dof)
        )
        alpha = np.sqrt(new / kinetic)
        # the component along p is √c p + noise: its sign decides the sign of α
        if r1 + np.sqrt(c * n_dof * kinetic / ((1.0 - c) * target)) < 0:
            alpha = -alpha
        return alpha * p0

    def _kinetic(self, p: np.ndarray) -> float:
        """Σ p²/2m over beads (or modes: the transform is orthonormal), atoms and axes."""
        return float(np.sum(p**2 / (2.0 * self._m)))

    # Forces --------------------------------------------------------------------------------
    def _ensure_forces(self) -> None:
        if self.state.forces is None:
            self._evaluate()

    def _evaluate(self) -> None:
        """Physical energy, forces and observables of every bead at the current positions."""
        s = self.state
        for bead, q in zip(self._beads, s.positions):
            bead.positions[:] = q  # in place: same Atoms object per bead every step
        properties = ("energy", "forces", *self.observables)
        if self.batched:
            results = self.calculator.predict(self._beads, properties)
        else:
            results = [self._evaluate_one(bead) for bead in self._beads]
        s.energies = np.array([float(r["energy"]) for r in results])
        s.forces = np.array([np.asarray(r["forces"], dtype=float) for r in results])
        s.observables = {name: np.array([np.asarray(r[name], dtype=float) for r in results])
                         for name in self.observables}

    def _evaluate_one(self, bead: Atoms) -> dict[str, Any]:
        calc = self.calculator
        result = {"energy": calc.get_potential_energy(bead), "forces": calc.get_forces(bead)}
        for name in self.observables:
            result[name] = calc.get_property(name, bead)
        return result

    # Observables ---------------------------------------------------------------------------
    @property
    def nsteps(self) -> int:
        return self.state.nsteps

    @property
    def bead_positions(self) -> np.ndarray:
        """(P, N, 3) bead positions in Å (unwrapped; a copy)."""
        return self.state.positions.copy()

    @property
    def bead_momenta(self) -> np.ndarray:
        """(P, N, 3) bead momenta in amu·Å/ASE time (distributed at P·T; a copy)."""
        return self.state.momenta.copy()

    @property
    def centroid_positions(self) -> np.ndarray:
        """(N, 3) centroid (bead average) positions in Å."""
        return self.state.positions.mean(axis=0)

    @property
    def bead_forces(self) -> np.ndarray:
        """(P, N, 3) physical forces on each bead in eV/Å."""
        self._ensure_forces()
        return self.state.forces.copy()

    @property
    def potential_energy(self) -> float:
        """Bead-averaged potential energy (eV): the quantum ⟨V⟩ estimator."""
        self._ensure_forces()
        return float(self.state.energies.mean())

    @property
    def spring_energy(self) -> float:
        """Σ_j Σ_i ½ m_i ω_P² |q_i,j+1 − q_ij|² (eV; the whole ring polymer, not divided by P)."""
        q = self.state.positions
        stretch = np.roll(q, -1, axis=0) - q
        return float(0.5 * self.omega_p**2 * np.sum(self._m * stretch**2))

    @property
    def bead_kinetic_energy(self) -> float:
        """Σ_j Σ_i p_ij²/2m_i (eV; the whole ring polymer; fictitious, distributed at P·T)."""
        return self._kinetic(self.state.momenta)

    @property
    def temperature(self) -> float:
        """Kinetic temperature of the bead momenta divided by P, in K (→ T at equilibrium)."""
        n_dof = self.state.momenta.size
        return 2.0 * self.bead_kinetic_energy / (n_dof * units.kB) / self.n_beads

    @property
    def primitive_kinetic_energy(self) -> float:
        """Primitive estimator 3NP k_BT/2 − spring_energy/P (eV, whole system)."""
        n_dof = self.state.positions[0].size
        return 0.5 * n_dof * self.n_beads * self.kT - self.spring_energy / self.n_beads

    @property
    def centroid_virial_kinetic_energy(self) -> float:
        """Centroid-virial estimator 3N k_BT/2 + (1/2P) Σ_j (q_j − q_c)·∇V(q_j) (eV, whole system).

        With forces F = −∇V the sum is −(1/2P) Σ_j (q_j − q_c)·F_j: a bead pulled back towards
        the centroid adds kinetic energy (zero-point motion).
        """
        self._ensure_forces()
        q = self.state.positions
        n_dof = q[0].size
        virial = np.sum((q - q.mean(axis=0)) * self.state.forces)
        return 0.5 * n_dof * self.kT - virial / (2.0 * self.n_beads)

    @property
    def thermostat_heat(self) -> float:
        """Energy the thermostat has added to the ring polymer, divided by P (eV)."""
        return self.state.thermostat_heat / self.n_beads

    @property
    def ring_polymer_hamiltonian(self) -> float:
        """H_P = bead kinetic + spring + Σ_j V(q_j) (eV, whole ring polymer, not divided by P)."""
        self._ensure_forces()
        return self.bead_kinetic_energy + self.spring_energy + float(self.state.energies.sum())

    @property
    def conserved_energy(self) -> float:
        """(H_P − thermostat heat) / P in eV: constant up to integration error for every thermostat.

        Divided by P so that a P = 1 run reports the ordinary total energy of the system.
        """
        return (self.ring_polymer_hamiltonian - self.state.thermostat_heat) / self.n_beads

    @property
    def dipole(self) -> np.ndarray | None:
        """Bead-averaged dipole (3,) in e·Å, or None when not recorded."""
        return self._bead_average("dipole")

    @property
    def polarizability(self) -> np.ndarray | None:
        """Bead-averaged polarizability (3, 3) in the calculator's units, or None."""
        return self._bead_average("polarizability")

    def _bead_average(self, name: str) -> np.ndarray | None:
        if name not in self.observables:
            return None
        self._ensure_forces()
        return self.state.observables[name].mean(axis=0)

    def centroid_atoms(self) -> Atoms:
        """A copy of the system at the centroid positions (no calculator), for trajectories."""
        atoms = self.atoms.copy()
        atoms.calc = None
        atoms.positions[:] = self.centroid_positions
        atoms.set_momenta(self.state.momenta.mean(axis=0), apply_constraint=False)
        return atoms

    # Checkpoints ---------------------------------------------------------------------------
    def run_settings(self) -> dict[str, Any]:
        """The settings that shape this run's result, in fs and K: stored in checkpoints and
        compared when a run is resumed (see :mod:`ase_mpnn.resume`)."""
        return {
            "n_beads": self.n_beads, "temperature_K": self.temperature_K, "timestep_fs": self.dt / units.fs,
            "thermostat": self.thermostat, "tau_fs": None if self.tau is None else self.tau / units.fs,
            "propagator": self.propagator, "pile_lambda": self.pile_lambda, "observables": list(self.observables),
            "seed": self.seed, "calculator": calculator_fingerprint(self.calculator),
        }

    def save_checkpoint(self, path: str | os.PathLike, settings: Mapping[str, Any] | None = None) -> None:
        """Write the full state (npz, no pickled objects) atomically (:func:`~ase_mpnn.atomic_file.atomic_write`).

        The run's :meth:`run_settings` and ``settings`` (the caller's: record interval,
        structure file...) are stored with it, added to those of the checkpoint this run
        was restored from.
        """
        self._ensure_forces()
        s = self.state
        meta = {
            "format": _CHECKPOINT_FORMAT,
            "parameters": {
                "n_beads": self.n_beads,
                "temperature_K": self.temperature_K,
                "timestep": self.dt,
                "thermostat": self.thermostat,
                "tau": self.tau,
                "propagator": self.propagator,
                "observables": list(self.observables),
                "pile_lambda": self.pile_lambda,
            },
            "nsteps": s.nsteps,
            "thermostat_heat": s.thermostat_heat,
            "info": _jsonable_info(self.atoms.info),
            "settings": plain_settings({**(self.checkpoint_settings or {}), **self.run_settings(), **(settings or {})}),
        }
        arrays = {
            "meta": np.array(json.dumps(meta)),
            "rng_state": np.array(rng_state_json(self.rng)),
            "numbers": self.atoms.numbers,
            "masses": self.masses,
            "cell": self.atoms.cell.array,
            "pbc": self.atoms.pbc,
            "positions": s.positions,
            "momenta": s.momenta,
            "forces": s.forces,
            "energies": s.energies,
        }
        arrays.update({f"observable_{name}": value for name, value in s.observables.items()})
        with atomic_write(path) as f:
            np.savez(f, **arrays)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, calculator: Any, expected: Mapping[str, Any] | None = None
    ) -> RingPolymerMD:
        """Rebuild a run saved by :meth:`save_checkpoint`; continuing it repeats the original exactly.

        ``calculator`` must be the run's potential (its model weights are compared with
        the checkpoint's), and ``expected`` settings (keys of :meth:`run_settings` or
        the ``settings`` saved with the checkpoint, e.g. ``{"temperature_K": 300,
        "seed": 0}``) must match the saved ones: a difference raises
        :class:`~ase_mpnn.resume.CheckpointError` listing it, as does an unreadable file.
        """
        meta, arrays = _read_checkpoint(path)
        saved = _saved_settings(meta, path)
        check_settings(saved, {"calculator": calculator_fingerprint(calculator), **(expected or {})},
                       checkpoint=os.fspath(path), how_to_start_over=_HOW_TO_START_OVER)
        atoms = Atoms(numbers=arrays["numbers"], positions=arrays["positions"].mean(axis=0),
                      cell=arrays["cell"], pbc=arrays["pbc"], masses=arrays["masses"])
        atoms.info.update(meta["info"])
        md = cls(atoms, calculator, seed=0, bead_positions=arrays["positions"],
                 bead_momenta=arrays["momenta"], **meta["parameters"])
        md._restore_state(meta, arrays, saved, path)
        return md

    def saved_settings(self, path: str | os.PathLike) -> dict[str, Any]:
        """The settings stored in the checkpoint ``path`` (those of an older file: from its parameters)."""
        return _saved_settings(_read_checkpoint(path)[0], path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Continue this run from the checkpoint ``path`` (same system and bead number): state, step, RNG.

        The settings are not compared here; :func:`~ase_mpnn.md.rpmd_recorder.run_rpmd`
        does that before it loads a checkpoint.
        """
        meta, arrays = _read_checkpoint(path)
        where = os.fspath(path)
        if not np.array_equal(arrays["numbers"], self.atoms.numbers) or arrays["positions"].shape[0] != self.n_beads:
            raise CheckpointError(f"{where} holds another system or bead number: give the structure and --beads of "
                                  f"that run, or start afresh ({_HOW_TO_START_OVER})")
        self.state.positions, self.state.momenta = np.array(arrays["positions"]), np.array(arrays["momenta"])
        self._restore_state(meta, arrays, _saved_settings(meta, path), path)

    def _restore_state(self, meta: dict, arrays: dict, saved: dict, path: str | os.PathLike) -> None:
        where = os.fspath(path)
        state = arrays["rng_state"].item() if "rng_state" in arrays else meta["rng_state"]  # older files: in meta
        self.rng = generator_from_state(state, where)
        s = self.state
        s.nsteps, s.thermostat_heat = int(meta["nsteps"]), float(meta["thermostat_heat"])
        # Saved forces, not recomputed ones: a restart continues bit for bit.
        s.forces, s.energies = arrays["forces"], arrays["energies"]
        s.observables = {name: arrays[f"observable_{name}"] for name in self.observables}
        self.seed = saved.get("seed")
        self.checkpoint_settings = saved
        self.restored_from = where


_HOW_TO_START_OVER = "ase-mpnn rpmd: --restart; run_rpmd: restart=True"


def _read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of an RPMD checkpoint, or a :class:`CheckpointError` that says what to do."""
    where = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {key: data[key] for key in data.files if key != "meta"}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{where} is not a readable RPMD checkpoint (truncated or corrupt: {err}). Restore it from a copy, "
            "or start a new run (ase-mpnn rpmd: --restart, which discards it)"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != _CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise CheckpointError(f"{where} is not an RPMD checkpoint ({found!r})")
    return meta, arrays


def _saved_settings(meta: dict, path: str | os.PathLike) -> dict[str, Any]:
    saved = meta.get("settings")
    if saved is None:  # written before settings were stored: the physics is in "parameters"
        warnings.warn(f"{os.fspath(path)} was written before checkpoints stored the model and the seed: resuming "
                      "without checking that they are those of that run", UserWarning, stacklevel=3)
        saved = _settings_from_parameters(meta["parameters"])
    return saved


def _settings_from_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """:meth:`RingPolymerMD.run_settings` keys from the "parameters" of an older checkpoint."""
    tau = parameters.get("tau")
    return {"n_beads": parameters["n_beads"], "temperature_K": parameters["temperature_K"],
            "timestep_fs": parameters["timestep"] / units.fs, "thermostat": parameters["thermostat"],
            "tau_fs": None if tau is None else tau / units.fs, "propagator": parameters["propagator"],
            "pile_lambda": parameters["pile_lambda"], "observables": list(parameters["observables"])}


def _jsonable_info(info: dict) -> dict:
    """The entries of ``atoms.info`` that survive JSON (e.g. "charge"); others are dropped."""
    kept = {}
    for key, value in info.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[str(key)] = value
    return kept
