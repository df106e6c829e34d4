"""MPNNCalculator cost per energy + forces (+ stress) call, against the bare model.

Systems: (a) 64 H2O in a periodic 12.42 Å box (192 atoms), (b) (a) repeated 2x2x2
(1,536 atoms; skipped with --quick) and (c) one gas-phase H2O. Model: untrained PaiNN,
128 features x 3 interactions, 20 radial functions, 5 Å cutoff, float32.

Along an MD-like sequence (every atom moves 0.005 Å per call, outside the timed
region) it times, interleaved so that both see the same machine load:

* call: ``atoms.get_potential_energy(); atoms.get_forces()`` through ASE with the
  default Verlet skin (0.5 Å; the list is built once and reused). MPNNCalculator
  computes forces and, for periodic cells, stress in the same pass as the energy;
* model fwd+bwd: ``model(graph, ("energy", "forces", "stress"))`` on a prebuilt graph
  (no stress for the non-periodic molecule, as in the calculator);
* skin=0: the same call with a calculator that rebuilds the list every call.

Target: with skin reuse, less than 10 % of a call is spent outside the model.

No comparison with other codes here: schnetpack and mace-torch are timed side by side
with ase_mpnn, in one run under the same load, by ``benchmarks/anchors/bench_anchors.py``.

Run: ``python benchmarks/bench_calculator.py [--threads N] [--quick]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import systems  # noqa: E402

import ase_mpnn  # noqa: E402
from ase_mpnn.calculator import torch_threads  # noqa: E402

TARGET_OUTSIDE_SHARE = 10.0  # % of a call spent outside the model, with skin reuse
ANCHORS = "benchmarks/anchors/bench_anchors.py"


def measure(atoms, model, n_calls: int, warmup: int, step: float = 0.005, seed: int = 1) -> dict:
    """Interleaved medians (s) of calculator call (skin 0.5 and 0), and bare model."""
    properties = ("energy", "forces", "stress") if atoms.pbc.all() else ("energy", "forces")
    graph = ase_mpnn.build_graph([atoms], model.cutoff, dtype=torch.float32)
    calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32, skin=0.5)
    calc0 = ase_mpnn.MPNNCalculator(model, dtype=torch.float32, skin=0.0)
    moving, moving0 = atoms.copy(), atoms.copy()
    moving.calc, moving0.calc = calc, calc0

    def timed_call(a) -> float:
        start = time.perf_counter()
        a.get_potential_energy()
        a.get_forces()
        return time.perf_counter() - start

    # The bare model as the calculator runs it: its frozen copy, under its thread policy.
    frozen, threads = calc.model, calc.threads_for(graph)

    def timed_bare() -> float:
        start = time.perf_counter()
        with torch_threads(threads):
            frozen(graph, properties)
        return time.perf_counter() - start

    rng = np.random.default_rng(seed)
    call, bare, call0 = [], [], []
    for k in range(warmup + n_calls):
        displacement = systems.random_steps(rng, len(atoms), step)
        moving.positions += displacement
        moving0.positions += displacement
        t_call, t_bare, t_call0 = timed_call(moving), timed_bare(), timed_call(moving0)
        if k >= warmup:
            call.append(t_call)
            bare.append(t_bare)
            call0.append(t_call0)
    return {
        "call": statistics.median(call),
        "bare": statistics.median(bare),
        "call0": statistics.median(call0),
        "builds": calc._neighbor_lists[0].n_builds,
        "builds0": calc0._neighbor_lists[0].n_builds,
        "n": n_calls,
        "stress": "stress" in calc.results,
    }


def neighbor_and_graph_time(atoms, cutoff: float, repeats: int = 200) -> float:
    """Seconds per call for the non-model work the share above measures by difference:
    Verlet-list update (reused) and graph building, timed directly."""
    moving = atoms.copy()
    verlet = ase_mpnn.VerletNeighborList(cutoff, 0.5)

    def step():
        moving.positions[0, 0] += 1e-5
        pairs = verlet.update(moving.positions, moving.cell.array, moving.pbc, moving.numbers)
        ase_mpnn.build_graph([moving], cutoff, [pairs], dtype=torch.float32)

    return systems.median_time(step, repeats, warmup=20)


def time_model_files(paths: list[str], n_calls: int) -> None:
    """The gas-phase water row for trained model files (float32, skin 0.5)."""
    print("1 H2O, gas phase, float32; MD-like sequence: 0.005 Å random step per atom per call; "
          "medians of interleaved repeats.")
    print()
    print("| model file | parameters | call ms | model fwd+bwd ms |")
    print("|---|---:|---:|---:|")
    for path in paths:
        model = ase_mpnn.load_model(path, dtype=torch.float32)
        r = measure(systems.water_molecule(), model, n_calls, 10)
        n_parameters = sum(p.numel() for p in model.parameters())
        print(f"| {path} | {n_parameters:,} | {systems.fmt_ms(r['call'])} | {systems.fmt_ms(r['bare'])} |")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip the 1,536-atom box")
    parser.add_argument("--models", nargs="+", metavar="FILE",
                        help="instead: one gas-phase H2O with each of these model files (e.g. the shipped ones)")
    args = parser.parse_args()
    systems.set_threads(args.threads)
    print(systems.thread_info())
    if args.models:
        time_model_files(args.models, 100 if args.quick else 300)
        return

    model = systems.painn_128x3().to(dtype=torch.float32).eval()
    box = systems.water_box(4)
    cases = [
        ("c", "1 H2O, gas phase", systems.water_molecule(), 100 if args.quick else 300, 10),
        ("a", "64 H2O, 12.42 Å box", box, 10 if args.quick else 20, 2),
    ]
    if not args.quick:
        cases.append(("b", "(a) x 2x2x2, 24.84 Å box", box.repeat(2), 5, 1))

    print(f"PaiNN 128x3, 20 RBF, cutoff {model.cutoff} Å, float32, untrained; "
          "MD-like sequence: 0.005 Å random step per atom per call; medians of interleaved repeats.")
    print()
    print("| system | atoms | pairs (5 Å) | call ms | model fwd+bwd ms | outside-model share % "
          "| (skin=0) call ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = {}
    notes = []
    for key, name, atoms, n_calls, warmup in cases:
        r = measure(atoms, model, n_calls, warmup)
        results[key] = r
        share = 100.0 * (r["call"] - r["bare"]) / r["call"]
        print(f"| ({key}) {name} | {len(atoms)} | {systems.count_pairs(atoms)} | {systems.fmt_ms(r['call'])} "
              f"| {systems.fmt_ms(r['bare'])} | {share:.1f} | {systems.fmt_ms(r['call0'])} |")
        sys.stdout.flush()
        notes.append(f"({key}): {r['n']} timed calls; list builds with skin 0.5: {r['builds']}, "
                     f"with skin 0: {r['builds0']}; stress computed: {r['stress']}")
    print()
    for note in notes:
        print(note)
    print("Outside-model share = (call - model fwd+bwd) / call: neighbor list, graph, ASE and "
          "result handling. It is a difference of two noisy medians; on a busy machine it can "
          "even come out negative.")
    print()
    print("Targets:")
    for key in results:
        r = results[key]
        share = 100.0 * (r["call"] - r["bare"]) / r["call"]
        ok = "met" if share < TARGET_OUTSIDE_SHARE else "NOT met"
        print(f"- ({key}) outside-model share with skin reuse {share:.1f} % "
              f"(target < {TARGET_OUTSIDE_SHARE:g} %): {ok}")
    direct = neighbor_and_graph_time(box, model.cutoff)
    print(f"- (a) measured directly: Verlet-list update + graph building {direct * 1e3:.2f} ms per call")
    print()
    print(f"Comparisons with schnetpack and mace-torch: `python {ANCHORS}` times them side by side "
          "with ase_mpnn in one run (same load, same threads); see benchmarks/README.md.")


if __name__ == "__main__":
    main()
