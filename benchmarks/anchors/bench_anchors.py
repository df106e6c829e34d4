"""ase_mpnn against schnetpack (PaiNN) and mace-torch (MACE), timed side by side.

Every code runs as a worker subprocess (worker_ours.py with this interpreter,
worker_schnetpack.py and worker_mace.py in the environments that setup_anchors.sh
makes; a fresh pair of processes, ours and theirs, for each anchor), all with ``OMP_WAIT_POLICY=PASSIVE``, ``OMP_NUM_THREADS`` and
``torch.set_num_threads`` equal to ``--threads``, the same torch build and the same
structures (sent as JSON). The driver sends JSON lines over stdin/stdout and times
nothing itself: each worker times its own calls with ``time.perf_counter``.

Interleaved: after warm-up calls on both sides, each round runs ``k`` calls of ours and
``k`` of theirs, in the order ours-theirs on even rounds and theirs-ours on odd ones; a
round's value is its mean time per call, and the table gives the median of the rounds.
So both codes see the same machine load, and neither always runs first.

Works (random weights, fixed seeds; the cost does not depend on the weights), float32:

* PaiNN, 128 features x 3 interactions, 20 radial functions, 5 Å cutoff, on one H2O,
  the 192-atom water box and the 1,536-atom box (not with ``--quick``);
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

Run ``bash benchmarks/anchors/setup_anchors.sh`` once, then
``python benchmarks/anchors/bench_anchors.py [--threads 2] [--quick]`` from the
repository root (with the interpreter that has ase_mpnn). ``--quick`` (fewer rounds, no
1,536-atom box) is for checking that it works, in under 2 minutes.
"""

from __future__ import annotations

import os

os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # for this process and, inherited, the workers

import argparse
import datetime
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


class Worker:
    """One worker subprocess; ``ask`` sends a JSON line and returns the JSON answer."""

    def __init__(self, name: str, python: str, script: str, threads: int, logdir: str):
        if not os.path.exists(python):
            raise SystemExit(f"{python} is missing: run `bash benchmarks/anchors/setup_anchors.sh` first")
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.stderr")
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in close())
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(threads),
                   PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [python, os.path.join(HERE, script)], cwd=HERE, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )
        self.info = self.ask({"cmd": "hello", "threads": threads})

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
    mode: str  # "calc" | "bare"
    system: str  # key of SYSTEMS
    calls: int  # calls per round and side
    rounds: int
    warmup: int  # calls per side before the rounds


SYSTEM_NAMES = {"w1": "1 H2O", "box": "192-atom box", "big": "1,536-atom box"}
ARCH_NAMES = {"painn": "PaiNN 128x3", "mace": "MACE 64x0e+64x1o L=3 ν=3 2 layers"}


def work_label(w: Work, periodic: bool) -> str:
    if w.mode == "calc":
        what = "ASE call E+F+stress" if periodic else "ASE call E+F"
    else:
        what = "model E+F"
    return f"{ARCH_NAMES[w.arch]}, {SYSTEM_NAMES[w.system]}: {what}"


def plan(quick: bool) -> list[Work]:
    """Rounds and calls per round: each side's round takes ≳ 0.1 s on this 2-core machine."""
    if quick:
        return [
            Work("painn", "calc", "w1", 10, 5, 10),
            Work("painn", "bare", "w1", 10, 5, 10),
            Work("painn", "calc", "box", 1, 3, 1),
            Work("painn", "bare", "box", 1, 3, 1),
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
        Work("mace", "calc", "w1", 5, 15, 5),
        Work("mace", "bare", "w1", 5, 15, 5),
        Work("mace", "calc", "box", 1, 11, 2),
        Work("mace", "bare", "box", 1, 11, 2),
    ]


def structure_json(atoms) -> dict:
    return {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(), "pbc": atoms.pbc.tolist()}


def run_work(w: Work, ours: Worker, theirs: Worker, structure: dict) -> dict:
    """Interleaved rounds; returns the per-call medians (s) and the details."""
    key = f"{w.arch}-{w.mode}-{w.system}"
    loaded = {}
    for side in (ours, theirs):
        loaded[side.name] = side.ask({"cmd": "load", "key": key, "arch": w.arch, "mode": w.mode,
                                      "structure": structure})
    for side in (ours, theirs):
        if w.warmup:
            side.ask({"cmd": "time", "key": key, "calls": w.warmup})
    per_round = {ours.name: [], theirs.name: []}
    for r in range(w.rounds):
        for side in ((ours, theirs) if r % 2 == 0 else (theirs, ours)):
            times = side.ask({"cmd": "time", "key": key, "calls": w.calls})["times"]
            per_round[side.name].append(sum(times) / len(times))
    for side in (ours, theirs):
        side.ask({"cmd": "drop", "key": key})
    return {
        "ours": statistics.median(per_round[ours.name]),
        "theirs": statistics.median(per_round[theirs.name]),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every process (default 2)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no 1,536-atom box (< 2 min)")
    args = parser.parse_args()

    start_time = time.time()
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    print(f"load average before (1/5/15 min): {fmt_load(load_before)}", file=sys.stderr, flush=True)

    box = systems.water_box(4)
    atoms = {"w1": systems.water_molecule(), "box": box, "big": box.repeat(2)}
    structures = {k: structure_json(a) for k, a in atoms.items()}

    logdir = tempfile.mkdtemp(prefix="bench_anchors_")
    infos: dict[str, dict] = {}
    rows, details = [], []
    work_list = plan(args.quick)
    # One pair of fresh processes per anchor: ours and theirs run the same sequence of
    # works, so neither carries another code's allocations or caches into its timings.
    for arch, anchor, venv_name, script in (("painn", "schnetpack", "schnetpack", "worker_schnetpack.py"),
                                            ("mace", "mace", "mace", "worker_mace.py")):
        pair: list[Worker] = []
        try:
            pair.append(Worker(f"ours ({ARCH_NAMES[arch].split()[0]})", sys.executable, "worker_ours.py",
                               args.threads, logdir))
            pair.append(Worker(anchor, os.path.join(VENVS, venv_name, "bin", "python"), script,
                               args.threads, logdir))
            ours, theirs = pair
            infos.setdefault("ours", ours.info)
            infos[anchor] = theirs.info
            for w in (w for w in work_list if w.arch == arch):
                periodic = bool(atoms[w.system].pbc.all())
                label = work_label(w, periodic)
                t0 = time.time()
                r = run_work(w, ours, theirs, structures[w.system])
                print(f"{label}: ours {r['ours'] * 1e3:.2f} ms, {theirs.name} {r['theirs'] * 1e3:.2f} ms "
                      f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
                rows.append((label, r))
                spread = "; ".join(
                    f"{name} {min(v) * 1e3:.3g}–{max(v) * 1e3:.3g} ms" for name, v in r["rounds"].items())
                edges = ", ".join(f"{name} {n}" for name, n in r["edges"].items())
                details.append(f"* {label}: {w.rounds} rounds x {w.calls} call(s) per side after "
                               f"{w.warmup} warm-up; round means {spread}; pairs: {edges}")
                if len(set(r["edges"].values())) != 1:
                    details.append("  (pair counts differ: the codes do not see the same graph)")
        finally:
            for worker in pair:
                worker.close()
    load_after = os.getloadavg()
    elapsed = time.time() - start_time

    cmd = "python benchmarks/anchors/bench_anchors.py" + (f" --threads {args.threads}" if args.threads != 2 else "")
    cmd += " --quick" if args.quick else ""
    print(f"Command: `{cmd}`{' (--quick: not numbers to quote)' if args.quick else ''}")
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC; run took {elapsed:.0f} s")
    print(f"Machine: {cpu_model()}, os.cpu_count() = {os.cpu_count()}, {platform.system()} {platform.release()}")
    print(f"Load average (1/5/15 min): before {fmt_load(load_before)}, after {fmt_load(load_after)}")
    print(f"Threads: torch.set_num_threads({args.threads}), OMP_NUM_THREADS={args.threads}, "
          f"OMP_WAIT_POLICY=PASSIVE in every process")
    for name, info in infos.items():
        extra = f", e3nn {info['e3nn']}" if "e3nn" in info else ""
        print(f"* {name}: {info['package']}, Python {info['python']}, torch {info['torch']} "
              f"(threads {info['threads']}, interop {info['interop_threads']}){extra}, ase {info['ase']}, "
              f"vesin {info['vesin']}; neighbor list: {info['neighbors']}")
    print("Float32, random weights (fixed seeds). Medians of interleaved rounds (order flipped each round), "
          "ms per call. PaiNN is against schnetpack, MACE against mace-torch.")
    print()
    print("| work | ours (ms) | theirs (ms) | ratio theirs/ours (>1: we are faster) |")
    print("|---|---:|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {systems.fmt_ms(r['ours'])} | {systems.fmt_ms(r['theirs'])} "
              f"| {r['theirs'] / r['ours']:.2f} |")
    print()
    print("\n".join(details))


if __name__ == "__main__":
    main()
