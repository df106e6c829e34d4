"""ase_mpnn against schnetpack (PaiNN) and mace-torch (MACE), timed side by side.

Every code runs as a worker subprocess (worker_ours.py with this interpreter,
worker_schnetpack.py and worker_mace.py in the environments that setup_anchors.sh
makes; a fresh pair of processes, ours and theirs, for each anchor), all with
``OMP_WAIT_POLICY=PASSIVE``, ``OMP_NUM_THREADS`` and ``torch.set_num_threads`` equal to
``--threads``, the same torch build and the same
structures (sent as JSON). The driver sends JSON lines over stdin/stdout and times
nothing itself: each worker times its own calls with ``time.perf_counter``.

Interleaved: after warm-up calls on both sides, each round runs ``k`` calls of ours and
``k`` of theirs, in the order ours-theirs on even rounds and theirs-ours on odd ones; a
round's value is its mean time per call, and the table gives the median of the rounds.
So both codes see the same machine load, and neither always runs first.

Works (random weights, fixed seeds; the cost does not depend on the weights), float32:

* PaiNN, 128 features x 3 interactions, 20 radial functions, 5 Å cutoff, on one H2O,
  the 192-atom water box and the 1,536-atom box (not with ``--quick``); the
  12,288-atom box (16³ molecules, ``water_box(4).repeat(4)``) only with ``--only`` on
  the CPU, by default on the GPU;
* MACE, hidden 64x0e + 64x1o, spherical harmonics to l = 3, correlation 3, 2 layers,
  8 Bessel functions, 5 Å cutoff, on one H2O and the 192-atom box;

each two ways:

* "ASE call": ``atoms.get_potential_energy(); atoms.get_forces()`` through the code's own
  ASE calculator, every atom moved 0.005 Å (random direction, fixed seed, not timed)
  before each call. For the periodic boxes all three calculators compute the stress in
  the same pass (ase_mpnn's and mace-torch's default; schnetpack's with
  ``stress_key="stress"``); mace-torch's calculator computes it for the molecule too.
  Neighbor lists: ase_mpnn reuses its Verlet list (skin 0.5 Å, its default);
  schnetpack (VesinNeighborList) and mace-torch (matscipy) rebuild theirs every call.
* "model": the model alone on inputs built once, energy and forces (no stress).

and PaiNN (against schnetpack) in MD, steps per second, each code with its own MD driver
(settings in worker_common.py; a timed call is k steps of one continuing trajectory, the
table gives steps/s = 1 / median time per step):

* "Langevin": one gas-phase H2O in ASE's own Langevin (0.5 fs, 300 K, friction 0.01/fs,
  fixcm=False) with each code's ASE calculator: ours through ``ase_mpnn.md.langevin``
  (which returns that ASE Langevin), schnetpack's ``SpkCalculator`` in
  ``ase.md.langevin.Langevin`` with the same arguments;
* "RPMD": one H2O with 32 beads and one aspirin (21 atoms, built here from a Z-matrix)
  with 64 beads, PILE-L (centroid τ = 100 fs), 300 K, 0.25 fs, forces only: ours is
  ``ase_mpnn.md.RingPolymerMD`` (all beads in one batched call per step); schnetpack's is
  ``schnetpack.md``'s ``Simulator`` with a ``RingPolymer`` integrator, a
  ``PILELocalThermostat`` and its ``SchNetPackCalculator`` (all beads in one batch too).

Row names (``--list``): ``painn-calc-w1``, ``painn-rpmd32-w1``, ``painn-rpmd64-aspirin``,
...; ``--only`` runs a subset (comma-separated names or shell patterns).

Run ``bash benchmarks/anchors/setup_anchors.sh`` once, then
``python benchmarks/anchors/bench_anchors.py [--threads 2] [--quick] [--only ROWS]`` from
the repository root (with the interpreter that has ase_mpnn). ``--quick`` (fewer rounds
and steps, no 1,536-atom box) is for checking that it works, in about a minute.
Rows left out of a default run (``--list`` marks them) run when ``--only`` names them.

``--device cuda`` builds every model, calculator and input on the GPU in every worker
(each worker refuses if its torch cannot use CUDA) and synchronizes the GPU at both ends
of every timed region; neighbor lists stay where each code computes them (the CPU for
all three). Its default rows: PaiNN calls and model on the 192-, 1,536- and 12,288-atom
boxes, PaiNN RPMD of one H2O with 32 beads, and the MACE rows; rounds and calls are
sized for GPU call times. ``--ours-only`` runs ase_mpnn's side alone (no anchor
environments needed) and prints its times without ratios. ``benchmarks/gpu.sh`` runs
the GPU rows on a lent GPU machine.
"""

from __future__ import annotations

import os

os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # this process; the workers get --omp-wait-policy

import argparse
import datetime
import fnmatch
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # benchmarks/, for systems.py
import systems

VENVS = os.path.join(HERE, ".venvs")


class WorkerError(RuntimeError):
    pass


class WorkerRefused(WorkerError):
    """The worker refused its "hello" (e.g. --device cuda where its torch has no CUDA)."""


class Worker:
    """One worker subprocess; ``ask`` sends a JSON line and returns the JSON answer."""

    def __init__(self, name: str, python: str, script: str, threads: int, logdir: str,
                 device: str = "cpu", keep_pythonpath: bool = False, wait_policy: str = "PASSIVE"):
        if not os.path.exists(python):
            raise SystemExit(f"{python} is missing: run `bash benchmarks/anchors/setup_anchors.sh` first")
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.stderr")
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in close())
        env = dict(os.environ, OMP_WAIT_POLICY=wait_policy, OMP_NUM_THREADS=str(threads),
                   PYTHONUNBUFFERED="1")
        if not keep_pythonpath:  # the anchor environments: nothing of this interpreter's path
            env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [python, os.path.join(HERE, script)], cwd=HERE, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )
        try:
            self.info = self.ask({"cmd": "hello", "threads": threads, "device": device})
        except WorkerRefused as exc:
            self.close()
            raise SystemExit(str(exc)) from None
        except BaseException:
            self.close()
            raise

    def ask(self, msg: dict) -> dict:
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise WorkerError(f"worker {self.name} ended ({self.proc.poll()}); its stderr:\n{self.tail()}")
        answer = json.loads(line)
        if answer.get("refused"):
            raise WorkerRefused(f"worker {self.name} refused: {answer['error']}")
        if "error" in answer:
            raise WorkerError(f"worker {self.name}: {answer['error']}; its stderr:\n{self.tail()}")
        return answer

    def tail(self, n: int = 30) -> str:
        self._log.flush()
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask({"cmd": "quit"})
            except WorkerError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@dataclass
class Work:
    arch: str  # "painn" | "mace"
    mode: str  # "calc" | "bare" | "langevin" | "rpmd"
    system: str  # key of SYSTEM_NAMES
    calls: int  # calls per round and side
    rounds: int
    warmup: int  # calls per side before the rounds
    steps: int = 0  # MD works: MD steps per call
    n_beads: int = 0  # "rpmd" works
    default: bool = True  # in a run without --only (others: only when --only names them)

    @property
    def md(self) -> bool:
        return self.mode in MD_MODES

    @property
    def key(self) -> str:
        """Row name for ``--only``, e.g. painn-calc-box, painn-rpmd32-w1."""
        beads = str(self.n_beads) if self.mode == "rpmd" else ""
        return f"{self.arch}-{self.mode}{beads}-{self.system}"

    @property
    def options(self) -> dict:
        if not self.md:
            return {}
        return {"steps": self.steps, **({"n_beads": self.n_beads} if self.mode == "rpmd" else {})}


MD_MODES = ("langevin", "rpmd")
SYSTEM_NAMES = {"w1": "1 H2O", "box": "192-atom box", "big": "1,536-atom box", "huge": "12,288-atom box",
                "aspirin": "1 aspirin (21 atoms)"}
PERIODIC = ("box", "big", "huge")
ARCH_NAMES = {"painn": "PaiNN 128x3", "mace": "MACE 64x0e+64x1o L=3 ν=3 2 layers"}


def work_label(w: Work, periodic: bool) -> str:
    if w.mode == "calc":
        what = "ASE call E+F+stress" if periodic else "ASE call E+F"
    elif w.mode == "langevin":
        what = "ASE Langevin 0.5 fs"
    elif w.mode == "rpmd":
        what = f"RPMD {w.n_beads} beads, PILE-L, 0.25 fs"
    else:
        what = "model E+F"
    return f"{ARCH_NAMES[w.arch]}, {SYSTEM_NAMES[w.system]}: {what}"


# Aspirin (acetylsalicylic acid, C9H8O4) from an idealized Z-matrix written for this
# benchmark: a planar benzene ring (C-C 1.39 Å, C-H 1.08 Å), the carboxylic acid in the ring
# plane (C-C 1.49, C=O 1.21, C-O 1.34, O-H 0.97 Å; syn O=C-O-H), the acetoxy group on the
# next ring carbon (C-O 1.36 Å) turned out of the ring plane (C-O-C-C dihedral 90°; C=O
# 1.20, C-C 1.50, C-H 1.09 Å). Rows: (element, None) for the first atom, (element,
# (i, r)) along x, (element, (i, r, j, angle)) in the xy plane, (element, (i, r, j,
# angle, k, dihedral)): bond to atom i, angle i-j, dihedral k-j-i-new (Å, degrees).
# Not an optimized structure; the timing needs only a molecule of the right size and
# shape (atoms neither bonded nor sharing a bonded neighbour are ≥ 2.28 Å apart; 306
# ordered pairs within 5 Å).
ASPIRIN_ZMATRIX = [
    ("C", None), ("C", (0, 1.39)), ("C", (1, 1.39, 0, 120.0)),
    ("C", (2, 1.39, 1, 120.0, 0, 0.0)), ("C", (3, 1.39, 2, 120.0, 1, 0.0)),
    ("C", (4, 1.39, 3, 120.0, 2, 0.0)),
    ("C", (0, 1.49, 1, 120.0, 2, 180.0)),  # 6: carboxyl C on ring atom 0
    ("O", (6, 1.21, 0, 123.0, 1, 0.0)),  # 7: its C=O
    ("O", (6, 1.34, 0, 113.0, 1, 180.0)),  # 8: its O-H oxygen
    ("H", (8, 0.97, 6, 106.0, 0, 180.0)),  # 9
    ("O", (1, 1.36, 2, 120.0, 3, 180.0)),  # 10: ester O on ring atom 1
    ("C", (10, 1.36, 1, 118.0, 2, 90.0)),  # 11: acetyl C, out of the ring plane
    ("O", (11, 1.20, 10, 123.0, 1, 0.0)),  # 12: its C=O
    ("C", (11, 1.50, 10, 111.0, 1, 180.0)),  # 13: methyl C
    ("H", (13, 1.09, 11, 109.5, 10, 60.0)), ("H", (13, 1.09, 11, 109.5, 10, 180.0)),
    ("H", (13, 1.09, 11, 109.5, 10, 300.0)),
    ("H", (2, 1.08, 1, 120.0, 0, 180.0)), ("H", (3, 1.08, 2, 120.0, 1, 180.0)),
    ("H", (4, 1.08, 3, 120.0, 2, 180.0)), ("H", (5, 1.08, 4, 120.0, 3, 180.0)),
]


def _zmatrix_atom(positions: list, i: int, r: float, j: int, angle: float, k: int, dihedral: float):
    """Position at distance r from atom i, angle (new, i, j), dihedral (new, i, j, k)."""
    import numpy as np

    a, b, c = positions[k], positions[j], positions[i]
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    theta, phi = np.radians(angle), np.radians(dihedral)
    return c + r * (-np.cos(theta) * bc + np.sin(theta) * np.cos(phi) * m + np.sin(theta) * np.sin(phi) * n)


def aspirin():
    """One gas-phase aspirin (21 atoms, no cell), centre of mass at the origin."""
    import numpy as np
    from ase import Atoms

    positions: list = []
    for _, z in ASPIRIN_ZMATRIX:
        if z is None:
            positions.append(np.zeros(3))
        elif len(z) == 2:
            positions.append(np.array([z[1], 0.0, 0.0]))
        elif len(z) == 4:
            i, r, j, angle = z
            u = (positions[j] - positions[i]) / np.linalg.norm(positions[j] - positions[i])
            t = np.radians(angle)
            rotation = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
            positions.append(positions[i] + r * rotation @ u)
        else:
            positions.append(_zmatrix_atom(positions, *z))
    atoms = Atoms([symbol for symbol, _ in ASPIRIN_ZMATRIX], positions=np.array(positions))
    atoms.positions -= atoms.get_center_of_mass()
    return atoms


def plan(quick: bool, device: str = "cpu") -> list[Work]:
    """Every row, in run order; those with ``default=False`` run only when ``--only`` names
    them. CPU: each side's round takes ≳ 0.1 s on this 2-core machine (MD rows: ≳ 0.3 s,
    several steps per call)."""
    if device == "cuda":
        return plan_cuda(quick)
    if quick:
        return [
            Work("painn", "calc", "w1", 10, 5, 10),
            Work("painn", "bare", "w1", 10, 5, 10),
            Work("painn", "calc", "box", 1, 3, 1),
            Work("painn", "bare", "box", 1, 3, 1),
            Work("painn", "calc", "big", 1, 3, 1, default=False),
            Work("painn", "bare", "big", 1, 3, 1, default=False),
            Work("painn", "calc", "huge", 1, 3, 1, default=False),
            Work("painn", "bare", "huge", 1, 3, 1, default=False),
            Work("painn", "langevin", "w1", 1, 5, 1, steps=20),
            Work("painn", "rpmd", "w1", 1, 3, 1, steps=10, n_beads=32),
            Work("painn", "rpmd", "aspirin", 1, 3, 1, steps=1, n_beads=64),
            Work("mace", "calc", "w1", 3, 5, 3),
            Work("mace", "bare", "w1", 3, 5, 3),
            Work("mace", "calc", "box", 1, 3, 1),
            Work("mace", "bare", "box", 1, 3, 1),
        ]
    return [
        Work("painn", "calc", "w1", 30, 15, 30),
        Work("painn", "bare", "w1", 30, 15, 30),
        Work("painn", "calc", "box", 1, 15, 2),
        Work("painn", "bare", "box", 1, 15, 2),
        Work("painn", "calc", "big", 1, 7, 1),
        Work("painn", "bare", "big", 1, 7, 1),
        # 12,288 atoms: seconds per call on the CPU (schnetpack's several times ours)
        Work("painn", "calc", "huge", 1, 5, 1, default=False),
        Work("painn", "bare", "huge", 1, 5, 1, default=False),
        Work("painn", "langevin", "w1", 1, 15, 1, steps=100),
        Work("painn", "rpmd", "w1", 1, 15, 1, steps=30, n_beads=32),
        Work("painn", "rpmd", "aspirin", 1, 9, 1, steps=4, n_beads=64),
        Work("mace", "calc", "w1", 5, 15, 5),
        Work("mace", "bare", "w1", 5, 15, 5),
        Work("mace", "calc", "box", 1, 11, 2),
        Work("mace", "bare", "box", 1, 11, 2),
    ]


def plan_cuda(quick: bool) -> list[Work]:
    """The rows on the GPU: calls of a few to some tens of ms, so more calls per round and
    more warm-up calls (the first calls on a GPU also fill the caching allocator). By
    default the boxes (PaiNN up to 12,288 atoms), one RPMD row and the MACE rows; the
    one-molecule PaiNN calls, Langevin and aspirin RPMD only with --only."""
    q = quick
    return [
        Work("painn", "calc", "w1", 10 if q else 20, 3 if q else 11, 10 if q else 20, default=False),
        Work("painn", "bare", "w1", 10 if q else 20, 3 if q else 11, 10 if q else 20, default=False),
        Work("painn", "calc", "box", 5 if q else 10, 3 if q else 15, 5 if q else 10),
        Work("painn", "bare", "box", 5 if q else 10, 3 if q else 15, 5 if q else 10),
        Work("painn", "calc", "big", 2 if q else 3, 3 if q else 11, 2 if q else 3),
        Work("painn", "bare", "big", 2 if q else 3, 3 if q else 11, 2 if q else 3),
        Work("painn", "calc", "huge", 1, 3 if q else 7, 1 if q else 2),
        Work("painn", "bare", "huge", 1, 3 if q else 7, 1 if q else 2),
        Work("painn", "langevin", "w1", 1, 3 if q else 11, 1, steps=20 if q else 100, default=False),
        Work("painn", "rpmd", "w1", 1, 3 if q else 15, 1, steps=10 if q else 30, n_beads=32),
        Work("painn", "rpmd", "aspirin", 1, 3 if q else 9, 1, steps=2 if q else 10, n_beads=64, default=False),
        Work("mace", "calc", "w1", 3 if q else 5, 3 if q else 15, 3 if q else 5),
        Work("mace", "bare", "w1", 3 if q else 5, 3 if q else 15, 3 if q else 5),
        Work("mace", "calc", "box", 2 if q else 5, 3 if q else 11, 2 if q else 5),
        Work("mace", "bare", "box", 2 if q else 5, 3 if q else 11, 2 if q else 5),
    ]


def select(works: list[Work], only: str | None) -> list[Work]:
    """The default works, or with ``only`` every work whose key matches one of its
    comma-separated shell patterns."""
    if not only:
        return [w for w in works if w.default]
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [w for w in works if any(fnmatch.fnmatchcase(w.key, p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"--only {only!r} matches no row; the rows are: {', '.join(w.key for w in works)}")
    return chosen


def structure_json(atoms) -> dict:
    return {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(), "pbc": atoms.pbc.tolist()}


def run_work(w: Work, ours: Worker, theirs: Worker | None, structure: dict) -> dict:
    """Interleaved rounds; returns the per-call medians (s) and the details. ``theirs``
    None (--ours-only): ours alone, the same rounds ("theirs" is then None)."""
    key = w.key
    sides = (ours,) if theirs is None else (ours, theirs)
    loaded = {}
    for side in sides:
        loaded[side.name] = side.ask({"cmd": "load", "key": key, "arch": w.arch, "mode": w.mode,
                                      "structure": structure, "options": w.options})
    for side in sides:
        if w.warmup:
            side.ask({"cmd": "time", "key": key, "calls": w.warmup})
    per_round = {side.name: [] for side in sides}
    for r in range(w.rounds):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            times = side.ask({"cmd": "time", "key": key, "calls": w.calls})["times"]
            per_round[side.name].append(sum(times) / len(times))
    for side in sides:
        side.ask({"cmd": "drop", "key": key})
    return {
        "ours": statistics.median(per_round[ours.name]),
        "theirs": None if theirs is None else statistics.median(per_round[theirs.name]),
        "rounds": per_round,
        "edges": {name: a["edges"] for name, a in loaded.items()},
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def fmt_rate(steps_per_s: float) -> str:
    return f"{steps_per_s:.3g}" if steps_per_s < 100 else f"{steps_per_s:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every process (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and steps, no 1,536-atom box unless --only names it (< 2 min)")
    parser.add_argument("--only", metavar="ROWS",
                        help="run only these rows: comma-separated row names or shell patterns, "
                             "e.g. 'painn-langevin-*,painn-rpmd*' (see --list); rows outside the default "
                             "run (the 12,288-atom box on the CPU, ...) run when named here")
    parser.add_argument("--list", action="store_true",
                        help="print the row names (of --device's table) and exit")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where every worker builds its models, calculators and inputs (default cpu); "
                             "cuda: each worker refuses if its torch cannot use CUDA, and the timed regions "
                             "end with torch.cuda.synchronize()")
    parser.add_argument("--ours-only", action="store_true",
                        help="run ase_mpnn's side only (no anchor environments needed): our times, no ratios")
    parser.add_argument("--omp-wait-policy", choices=("PASSIVE", "default"), default="PASSIVE",
                        help="OMP_WAIT_POLICY of every worker (default PASSIVE: idle threads sleep at once; "
                             "'default': OpenMP's own default, threads spin a while first, what a user who "
                             "sets nothing gets)")
    parser.add_argument("--compile", action="store_true",
                        help="ours with MPNNCalculator(compile=True) (torch.compile of the representation; "
                             "compiled during the warm-up calls, which are not timed)")
    parser.add_argument("--ours-threads", choices=("same", "auto"), default="same",
                        help="ours with MPNNCalculator(num_threads=None) (default 'same': torch's thread count, "
                             "like the anchors) or with its own default num_threads='auto' (one thread for graphs "
                             "under 500 edges, never more than --threads): what a user who sets nothing gets")
    args = parser.parse_args()
    if args.compile:
        os.environ["ASE_MPNN_BENCH_COMPILE"] = "1"  # read by worker_ours.py
    os.environ["ASE_MPNN_BENCH_THREADS"] = args.ours_threads  # read by worker_ours.py

    if args.list:
        for w in plan(args.quick, args.device):
            extra = "" if w.default else "  (only with --only)"
            print(f"{w.key:24s} {work_label(w, w.system in PERIODIC)}{extra}")
        return
    work_list = select(plan(args.quick, args.device), args.only)

    start_time = time.time()
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    print(f"load average before (1/5/15 min): {fmt_load(load_before)}", file=sys.stderr, flush=True)

    needed = {w.system for w in work_list}
    box = systems.water_box(4)
    atoms = {"w1": systems.water_molecule(), "box": box, "big": box.repeat(2), "aspirin": aspirin()}
    if "huge" in needed:
        atoms["huge"] = box.repeat(4)  # 16³ molecules, 12,288 atoms, 49.68 Å
    structures = {k: structure_json(a) for k, a in atoms.items() if k in needed}

    logdir = tempfile.mkdtemp(prefix="bench_anchors_")
    infos: dict[str, dict] = {}
    rows, details = [], []
    # One pair of fresh processes per anchor: ours and theirs run the same sequence of
    # works, so neither carries another code's allocations or caches into its timings.
    for arch, anchor, venv_name, script in (("painn", "schnetpack", "schnetpack", "worker_schnetpack.py"),
                                            ("mace", "mace", "mace", "worker_mace.py")):
        works = [w for w in work_list if w.arch == arch]
        if not works:
            continue
        pair: list[Worker] = []
        try:
            # ours: this interpreter, with its PYTHONPATH (ase_mpnn may come from the source tree)
            pair.append(Worker(f"ours ({ARCH_NAMES[arch].split()[0]})", sys.executable, "worker_ours.py",
                               args.threads, logdir, args.device, keep_pythonpath=True,
                               wait_policy=args.omp_wait_policy))
            if not args.ours_only:
                pair.append(Worker(anchor, os.path.join(VENVS, venv_name, "bin", "python"), script,
                                   args.threads, logdir, args.device, wait_policy=args.omp_wait_policy))
            ours = pair[0]
            theirs = None if args.ours_only else pair[1]
            infos.setdefault("ours", ours.info)
            if theirs is not None:
                infos[anchor] = theirs.info
            for w in works:
                periodic = bool(atoms[w.system].pbc.all())
                label = work_label(w, periodic)
                t0 = time.time()
                r = run_work(w, ours, theirs, structures[w.system])
                if theirs is None:
                    progress = (f"ours {fmt_rate(1 / r['ours'])} steps/s" if w.md
                                else f"ours {r['ours'] * 1e3:.2f} ms")
                elif w.md:
                    progress = (f"ours {fmt_rate(1 / r['ours'])} steps/s, {theirs.name} "
                                f"{fmt_rate(1 / r['theirs'])} steps/s")
                else:
                    progress = f"ours {r['ours'] * 1e3:.2f} ms, {theirs.name} {r['theirs'] * 1e3:.2f} ms"
                print(f"{label}: {progress} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
                rows.append((w, label, r))
                if w.md:
                    spread = "; ".join(f"{name} {fmt_rate(1 / max(v))}–{fmt_rate(1 / min(v))} steps/s"
                                       for name, v in r["rounds"].items())
                    per = f"{w.calls} call(s) of {w.steps} step(s)"
                else:
                    spread = "; ".join(
                        f"{name} {min(v) * 1e3:.3g}–{max(v) * 1e3:.3g} ms" for name, v in r["rounds"].items())
                    per = f"{w.calls} call(s)"
                edges = ", ".join(f"{name} {n}" for name, n in r["edges"].items())
                what = "pairs per step, all beads" if w.mode == "rpmd" else "pairs"
                per += "" if theirs is None else " per side"
                details.append(f"* {label} [{w.key}]: {w.rounds} rounds x {per} after "
                               f"{w.warmup} warm-up call(s); round means {spread}; {what}: {edges}")
                if len(set(r["edges"].values())) != 1:
                    details.append("  (pair counts differ: the codes do not see the same graph)")
        finally:
            for worker in pair:
                worker.close()
    load_after = os.getloadavg()
    elapsed = time.time() - start_time

    cmd = "python benchmarks/anchors/bench_anchors.py" + (f" --threads {args.threads}" if args.threads != 2 else "")
    cmd += " --device cuda" if args.device == "cuda" else ""
    cmd += " --quick" if args.quick else ""
    cmd += " --ours-only" if args.ours_only else ""
    cmd += f" --only '{args.only}'" if args.only else ""
    cmd += " --compile" if args.compile else ""
    cmd += " --ours-threads auto" if args.ours_threads == "auto" else ""
    cmd += " --omp-wait-policy default" if args.omp_wait_policy == "default" else ""
    print(f"Command: `{cmd}`{' (--quick: not numbers to quote)' if args.quick else ''}")
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC; run took {elapsed:.0f} s")
    print(f"Machine: {cpu_model()}, os.cpu_count() = {os.cpu_count()}, {platform.system()} {platform.release()}")
    if args.device == "cuda" and "ours" in infos:
        print(f"Device: {infos['ours'].get('device', 'cuda')}; models, calculators and inputs on the GPU in "
              "every process, torch.cuda.synchronize() at both ends of every timed region")
    print(f"Load average (1/5/15 min): before {fmt_load(load_before)}, after {fmt_load(load_after)}")
    print(f"Threads: torch.set_num_threads({args.threads}), OMP_NUM_THREADS={args.threads}, "
          f"OMP_WAIT_POLICY={args.omp_wait_policy if args.omp_wait_policy == 'PASSIVE' else '(unset)'} "
          "in every process")
    for name, info in infos.items():
        extra = f", e3nn {info['e3nn']}" if "e3nn" in info else ""
        extra += f", device {info['device']}" if args.device == "cuda" else ""
        print(f"* {name}: {info['package']}, Python {info['python']}, torch {info['torch']} "
              f"(threads {info['threads']}, interop {info['interop_threads']}){extra}, ase {info['ase']}, "
              f"vesin {info['vesin']}; neighbor list: {info['neighbors']}")
    if args.ours_only:
        print("Float32, random weights (fixed seeds). Medians of rounds. --ours-only: ase_mpnn alone, the "
              "anchors (schnetpack, mace-torch) were not run, so there are no ratios.")
    else:
        print("Float32, random weights (fixed seeds). Medians of interleaved rounds (order flipped each round). "
              "PaiNN is against schnetpack, MACE against mace-torch.")
    calc_threads = "None" if args.ours_threads == "same" else "'auto'"
    if args.ours_threads == "auto":
        print("Ours with MPNNCalculator(num_threads='auto'), its default: one torch thread for graphs under 500 "
              f"edges, {args.threads} above; the anchors on {args.threads}.")
    calls = [(w, label, r) for w, label, r in rows if not w.md]
    md_rows = [(w, label, r) for w, label, r in rows if w.md]
    if calls:
        print()
        if args.ours_only:
            print("| work | ours (ms) |")
            print("|---|---:|")
            for _, label, r in calls:
                print(f"| {label} | {systems.fmt_ms(r['ours'])} |")
        else:
            print("| work | ours (ms) | theirs (ms) | ratio theirs/ours (>1: we are faster) |")
            print("|---|---:|---:|---:|")
            for _, label, r in calls:
                print(f"| {label} | {systems.fmt_ms(r['ours'])} | {systems.fmt_ms(r['theirs'])} "
                      f"| {r['theirs'] / r['ours']:.2f} |")
    if md_rows:
        print()
        if args.ours_only:
            print("| MD work | ours steps/s | ours ms/step |")
            print("|---|---:|---:|")
            for _, label, r in md_rows:
                print(f"| {label} | {fmt_rate(1 / r['ours'])} | {systems.fmt_ms(r['ours'])} |")
        else:
            print("| MD work | ours steps/s | theirs steps/s | ours ms/step | theirs ms/step "
                  "| ratio ours/theirs steps/s (>1: we are faster) |")
            print("|---|---:|---:|---:|---:|---:|")
            for _, label, r in md_rows:
                print(f"| {label} | {fmt_rate(1 / r['ours'])} | {fmt_rate(1 / r['theirs'])} "
                      f"| {systems.fmt_ms(r['ours'])} | {systems.fmt_ms(r['theirs'])} "
                      f"| {r['theirs'] / r['ours']:.2f} |")
        print()
        print("MD rows: 300 K, one gas-phase molecule, steps timed in runs that continue one trajectory.")
        print("* Langevin: ours ase_mpnn.md.langevin (returns ASE's ase.md.langevin.Langevin, fixcm=False, "
              f"friction 0.01/fs) with MPNNCalculator(num_threads={calc_threads})"
              + ("." if args.ours_only else "; schnetpack ASE's Langevin with the same arguments and SpkCalculator."))
        print("* RPMD: ours ase_mpnn.md.RingPolymerMD (pile_l, tau 100 fs, observables=(), all beads in one "
              "predict call)"
              + ("." if args.ours_only else
                 "; schnetpack schnetpack.md Simulator (RingPolymer integrator, PILELocalThermostat "
                 "100 fs, SchNetPackCalculator, NeighborListMD with VesinNeighborList and a 0.5 Å shell), "
                 "simulate(k) minus one separately timed calculator.calculate() per call."))
    print()
    print("\n".join(details))


if __name__ == "__main__":
    main()
