"""What every anchor worker shares: the JSON-lines loop, structures, MD-like steps, timing.

A worker is started by ``bench_anchors.py`` as ``PYTHON worker_X.py`` (PYTHON: the
interpreter of the environment that has code X). It reads one JSON object per line on
stdin and answers with one JSON object per line on stdout:

* ``{"cmd": "hello", "threads": N, "device": "cpu" | "cuda"}`` sets torch's threads and
  the device every later work is built on (``device`` defaults to "cpu"); answers the
  versions and the device. A worker whose torch cannot use CUDA refuses "cuda" (answer
  ``{"error": ..., "refused": true}``) instead of falling back to the CPU.
* ``{"cmd": "load", "key": K, "arch": "painn" | "mace", "mode": "calc" | "bare" |
  "langevin" | "rpmd", "structure": {"numbers", "positions", "cell", "pbc"},
  "options": {...}}`` builds the work ``K``; answers the number of directed pairs
  (edges), the energy and max |force| once. ``options`` (MD works only): ``steps`` per
  timed call, and for "rpmd" ``n_beads``.
* ``{"cmd": "time", "key": K, "calls": n}`` runs ``n`` timed calls of ``K`` and answers
  their wall times in seconds (``time.perf_counter`` around the call only); for MD works
  each answer is seconds per MD step (the call's time over its ``steps``). On "cuda"
  every timed region starts and ends with ``torch.cuda.synchronize()`` (``sync()``), so
  it holds the GPU work it queued and nothing queued before it.
* ``{"cmd": "drop", "key": K}`` frees ``K``; ``{"cmd": "quit"}`` ends the worker.

"calc" works are ASE calls ``atoms.get_potential_energy(); atoms.get_forces()`` through
the code's own ASE calculator along an MD-like sequence: before every call (outside the
timed region) each atom moves 0.005 Å in a random direction, from a fixed seed, so the
calculator has to compute anew each call. "bare" works call the model on inputs built
once (graph / batch / input dict), energy and forces by autograd.

MD works ("langevin", "rpmd") run MD steps with the code's own integrator, from one
start (positions and thermalized momenta from fixed seeds), each timed call continuing
the same trajectory; the settings are the constants below (LANGEVIN_*, RPMD_*), the
same in every worker.

Errors are answered as ``{"error": "..."}``. Anything the libraries print goes to
stderr: stdout carries the protocol only.
"""

from __future__ import annotations

import os

# Before torch is imported. bench_anchors.py --omp-wait-policy default: OpenMP's own
# default (threads spin a while before sleeping), what a user who sets nothing gets.
if os.environ.get("OMP_WAIT_POLICY") == "default":
    del os.environ["OMP_WAIT_POLICY"]
else:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import platform
import sys
import time
import traceback
from collections.abc import Callable

import numpy as np

# The protocol's own copy of stdout; everything else written to fd 1 (Python or C level,
# e.g. notes printed by a library at import) goes to stderr. Workers import this module
# before anything else.
PROTO = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

STEP = 0.005  # Å per atom per call in "calc" works
SEED = 1

# MD works: the same settings in every worker.
TEMPERATURE_K = 300.0
LANGEVIN_DT_FS = 0.5
LANGEVIN_FRICTION_PER_FS = 0.01  # γ = 0.01 / fs
RPMD_DT_FS = 0.25
RPMD_CENTROID_TAU_FS = 100.0  # PILE-L: centroid friction 1/τ; internal modes γ_k = 2 ω_k

# The device of this worker's works, set by the "hello" command (set_device); the
# workers' build functions read it.
DEVICE = "cpu"
_synchronize: Callable[[], object] | None = None  # torch.cuda.synchronize on "cuda"


class Refused(RuntimeError):
    """The worker cannot do what "hello" asks (a device its torch cannot use)."""


def set_device(device: str) -> str:
    """Set DEVICE ("cpu" or "cuda"); refuse "cuda" when this torch cannot use it. Returns
    a description of the device for the "hello" answer."""
    import torch

    global DEVICE, _synchronize
    if device == "cpu":
        DEVICE, _synchronize = "cpu", None
        return "cpu"
    if device != "cuda":
        raise Refused(f"unknown device {device!r} (cpu or cuda)")
    if not torch.cuda.is_available():
        why = ("a CPU-only build: torch.version.cuda is None" if torch.version.cuda is None
               else f"built for CUDA {torch.version.cuda}, but it sees no GPU (driver, CUDA_VISIBLE_DEVICES?)")
        raise Refused(f"--device cuda, but torch {torch.__version__} in {sys.executable} cannot use CUDA "
                      f"(torch.cuda.is_available() is False; {why}); run with --device cpu, or with a "
                      f"Python whose torch has CUDA on a machine with a GPU")
    DEVICE, _synchronize = "cuda", torch.cuda.synchronize
    index = torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)} (CUDA {torch.version.cuda})"


def sync() -> None:
    """Wait for the GPU's queued work (``torch.cuda.synchronize()``) on "cuda"; nothing on
    "cpu". Called at both ends of every timed region."""
    if _synchronize is not None:
        _synchronize()


def atoms_from_json(d: dict):
    from ase import Atoms

    return Atoms(
        numbers=d["numbers"], positions=np.array(d["positions"], dtype=float),
        cell=np.array(d["cell"], dtype=float), pbc=d["pbc"],
    )


class MDLikeCalls:
    """Times ``atoms.get_potential_energy(); atoms.get_forces()`` with ``calc``, moving
    every atom ``STEP`` Å in a random direction before each call (not timed)."""

    def __init__(self, atoms, calc):
        self.atoms = atoms.copy()
        self.atoms.calc = calc
        self.rng = np.random.default_rng(SEED)

    def first(self) -> tuple[float, float]:
        energy = float(self.atoms.get_potential_energy())
        forces = np.asarray(self.atoms.get_forces())
        return energy, float(np.abs(forces).max())

    def timed(self) -> float:
        step = self.rng.normal(size=(len(self.atoms), 3))
        self.atoms.positions += STEP * step / np.linalg.norm(step, axis=1, keepdims=True)
        sync()
        start = time.perf_counter()
        self.atoms.get_potential_energy()
        self.atoms.get_forces()
        sync()
        return time.perf_counter() - start


class BareCalls:
    """Times ``run()``, a model call on prebuilt inputs; ``run`` returns (energy, forces)."""

    def __init__(self, run: Callable[[], tuple]):
        self.run = run

    def first(self) -> tuple[float, float]:
        energy, forces = self.run()
        return float(np.asarray(energy.detach().cpu()).sum()), float(forces.detach().abs().max())

    def timed(self) -> float:
        sync()
        start = time.perf_counter()
        self.run()
        sync()
        return time.perf_counter() - start


class MDSteps:
    """Times ``advance(steps)`` (``steps`` MD steps of one continuing trajectory) and
    answers seconds per step. ``state()`` returns (energy, max |force|) at the current
    step. ``fixed_cost``, when given, is a call that ``advance`` makes once on top of its
    steps (schnetpack's ``Simulator.simulate`` computes the forces anew at its start):
    it is timed on its own just before each timed run and subtracted."""

    def __init__(self, advance: Callable[[int], object], steps: int,
                 state: Callable[[], tuple[float, float]], fixed_cost: Callable[[], object] | None = None):
        if steps < 1:
            raise ValueError(f"steps per timed call must be >= 1, got {steps}")
        self.advance, self.steps, self.state, self.fixed_cost = advance, int(steps), state, fixed_cost

    def first(self) -> tuple[float, float]:
        return self.state()

    def timed(self) -> float:
        extra = 0.0
        sync()
        if self.fixed_cost is not None:
            start = time.perf_counter()
            self.fixed_cost()
            sync()
            extra = time.perf_counter() - start
        start = time.perf_counter()
        self.advance(self.steps)
        sync()
        return (time.perf_counter() - start - extra) / self.steps


def thermalized(atoms, seed: int = SEED):
    """A copy of ``atoms`` with Maxwell-Boltzmann momenta at TEMPERATURE_K (fixed seed)."""
    try:  # ASE >= 3.27
        from ase.md.velocitydistribution import thermalize_momenta as thermalize
    except ImportError:  # older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize
    atoms = atoms.copy()
    thermalize(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(seed))
    return atoms


def ase_md_state(atoms) -> Callable[[], tuple[float, float]]:
    def state() -> tuple[float, float]:
        return float(atoms.get_potential_energy()), float(np.abs(atoms.get_forces()).max())

    return state


def serve(name: str, build: Callable[[str, str, object, dict], tuple[object, int]],
          versions: Callable[[], dict]) -> None:
    """Answer the protocol above. ``build(arch, mode, atoms, options)`` returns (work, n_edges)
    where work has ``first()`` and ``timed()``."""
    import torch

    works: dict[str, object] = {}

    def answer(obj: dict) -> None:
        PROTO.write(json.dumps(obj) + "\n")
        PROTO.flush()

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            cmd = msg["cmd"]
            if cmd == "hello":
                torch.set_num_threads(int(msg["threads"]))
                device = set_device(msg.get("device", "cpu"))
                answer({
                    "name": name, "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "interop_threads": torch.get_num_interop_threads(),
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "device": device,
                    **versions(),
                })
            elif cmd == "load":
                atoms = atoms_from_json(msg["structure"])
                work, n_edges = build(msg["arch"], msg["mode"], atoms, msg.get("options") or {})
                energy, fmax = work.first()
                if not (np.isfinite(energy) and np.isfinite(fmax)):
                    raise RuntimeError(f"non-finite result: energy {energy}, max |F| {fmax}")
                works[msg["key"]] = work
                answer({"key": msg["key"], "edges": int(n_edges), "energy": energy, "fmax": fmax})
            elif cmd == "time":
                work = works[msg["key"]]
                answer({"key": msg["key"], "times": [work.timed() for _ in range(int(msg["calls"]))]})
            elif cmd == "drop":
                works.pop(msg["key"], None)
                answer({"key": msg["key"], "dropped": True})
            elif cmd == "quit":
                answer({"bye": True})
                break
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except Refused as exc:  # answered as such: the driver stops with this message alone
            answer({"error": str(exc), "refused": True})
        except Exception as exc:  # noqa: BLE001 (answered: the driver says which work failed)
            traceback.print_exc()
            answer({"error": f"{type(exc).__name__}: {exc}"})
