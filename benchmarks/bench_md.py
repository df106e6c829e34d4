"""Langevin MD speed with MPNNCalculator, and where the time of one step goes.

A gas-phase H2O in ASE's Langevin integrator (0.5 fs, 300 K, ``friction=0.01`` in
ASE units, ``fixcm=False``) with an untrained PaiNN (128 features x 3 interactions,
20 radial functions, 5 Å cutoff, float32) and the default Verlet skin (0.5 Å). Steps
per second are timed with 1 thread and with ``--threads`` (tiny systems are usually
fastest on one thread): median over several runs after warm-up steps, each run
continuing the same trajectory.

The per-step breakdown times each piece on its own:

* model fwd+bwd: ``model(graph, ("energy", "forces"))`` on a prebuilt graph;
* neighbor list + graph: ``VerletNeighborList.update`` (list reused) + ``build_graph``;
* results to numpy: the calculator's conversion of the output tensors;
* ASE calculator bookkeeping: ``atoms.get_forces()`` with a calculator that returns
  zeros (state check, atoms copy, results dict);
* Langevin integrator: ``dyn.run(100) / 100`` with that zero calculator, minus the above;
* rest of MPNNCalculator: a full ``atoms.get_forces()`` minus all the pieces above
  (property selection, grad mode, Python glue; not measured on its own).

Also the 192-atom periodic water box in Langevin (skipped with --quick).

No comparison with other codes here: schnetpack's ASE calculator in the same ASE
Langevin is timed side by side with ase_mpnn, in one run under the same load, by
``benchmarks/anchors/bench_anchors.py`` (row ``painn-langevin-w1``).

Run: ``python benchmarks/bench_md.py [--threads N] [--quick]``.
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
from ase import units  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import systems  # noqa: E402

import ase_mpnn  # noqa: E402
from ase_mpnn.calculator import torch_threads  # noqa: E402

try:  # ASE >= 3.27
    from ase.md.velocitydistribution import thermalize_momenta as _thermalize
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as _thermalize

TIMESTEP_FS = 0.5
TEMPERATURE_K = 300.0
FRICTION = 0.01
ANCHORS = "benchmarks/anchors/bench_anchors.py"


class ZeroCalculator(Calculator):
    """Energy 0 and zero forces: what ASE itself costs around any calculator."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "free_energy": 0.0, "forces": np.zeros((len(self.atoms), 3))}


def make_dynamics(atoms, calc, seed: int = 0):
    atoms = atoms.copy()
    atoms.calc = calc
    _thermalize(atoms, temperature_K=TEMPERATURE_K, rng=np.random.default_rng(seed))
    dyn = Langevin(
        atoms,
        timestep=TIMESTEP_FS * units.fs,
        temperature_K=TEMPERATURE_K,
        friction=FRICTION,
        fixcm=False,
        rng=np.random.default_rng(seed + 1),
    )
    return atoms, dyn


def steps_per_second(atoms, calc, n_steps: int, n_runs: int, warmup: int) -> tuple[float, list[float]]:
    """Median steps/s over ``n_runs`` runs of ``n_steps`` after ``warmup`` steps."""
    _, dyn = make_dynamics(atoms, calc)
    dyn.run(warmup)
    rates = []
    for _ in range(n_runs):
        start = time.perf_counter()
        dyn.run(n_steps)
        rates.append(n_steps / (time.perf_counter() - start))
    return statistics.median(rates), rates


def breakdown(model, repeats: int, seed: int = 2) -> dict[str, float]:
    """Seconds per step of each piece, for one H2O (see the module docstring)."""
    water = systems.water_molecule()
    rng = np.random.default_rng(seed)
    properties = ("energy", "forces")

    def jiggle(a):  # tiny move so that ASE does not return cached results
        a.positions += systems.random_steps(rng, len(a), 1e-4)

    graph = ase_mpnn.build_graph([water], model.cutoff, dtype=torch.float32)
    # The bare model as the calculator runs it: its frozen copy, under its thread policy.
    calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32)
    frozen, threads = calc.model, calc.threads_for(graph)

    def bare_model():
        with torch_threads(threads):
            frozen(graph, properties)

    t_model = systems.median_time(bare_model, repeats, warmup=20)

    verlet = ase_mpnn.VerletNeighborList(model.cutoff, 0.5)
    cell, pbc, numbers = water.cell.array, water.pbc, water.numbers

    def neighbors_and_graph():
        pairs = verlet.update(water.positions, cell, pbc, numbers)
        ase_mpnn.build_graph([water], model.cutoff, [pairs], dtype=torch.float32)

    t_graph = systems.median_time(neighbors_and_graph, repeats, warmup=20)

    out = model(graph, properties)
    split = ase_mpnn.MPNNCalculator._split  # the calculator's tensor -> numpy step
    t_split = systems.median_time(lambda: split(out, [water]), repeats, warmup=20)

    zero = water.copy()
    zero.calc = ZeroCalculator()

    def zero_call():
        jiggle(zero)
        zero.get_forces()

    t_jiggle = systems.median_time(lambda: jiggle(zero), repeats, warmup=20)
    t_ase = systems.median_time(zero_call, repeats, warmup=20) - t_jiggle

    _, zero_dyn = make_dynamics(water, ZeroCalculator())
    block = 100  # steps per timed run, so that run()'s own setup is spread out
    t_zero_step = systems.median_time(lambda: zero_dyn.run(block), max(5, repeats // 50)) / block

    full = water.copy()
    full.calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32, skin=0.5)

    def full_call():
        jiggle(full)
        full.get_forces()

    t_call = systems.median_time(full_call, repeats, warmup=20) - t_jiggle
    return {
        "model fwd+bwd (prebuilt graph)": t_model,
        "neighbor list update + build_graph": t_graph,
        "results to numpy (MPNNCalculator._split)": t_split,
        "ASE calculator bookkeeping (zero calculator get_forces)": t_ase,
        "Langevin integrator (zero-calculator step - bookkeeping)": t_zero_step - t_ase,
        "rest of MPNNCalculator (call - pieces above, derived)": t_call - t_model - t_graph - t_split - t_ase,
        "_call": t_call,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="largest torch thread count (default 2)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs, no 192-atom box")
    args = parser.parse_args()
    systems.set_threads(args.threads)
    print(systems.thread_info())

    model = systems.painn_128x3().to(dtype=torch.float32).eval()
    water = systems.water_molecule()
    n_steps, n_runs, warmup = (200, 3, 50) if args.quick else (500, 5, 100)
    thread_counts = sorted({1, args.threads})

    print(f"Langevin {TIMESTEP_FS} fs, {TEMPERATURE_K:g} K, friction={FRICTION} (ASE units), fixcm=False; "
          "PaiNN 128x3, 20 RBF, 5 Å, float32, untrained; skin 0.5 Å")
    print(f"1 H2O: median of {n_runs} runs x {n_steps} steps after {warmup} warm-up steps")
    print()
    print("| system | threads | steps/s | ms/step | runs (steps/s) |")
    print("|---|---:|---:|---:|---|")
    rates = {}
    for n in thread_counts:
        systems.set_threads(n)
        calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32, skin=0.5)
        rate, runs = steps_per_second(water, calc, n_steps, n_runs, warmup)
        rates[n] = rate
        print(f"| 1 H2O (3 atoms) | {n} | {rate:.0f} | {1e3 / rate:.2f} | {', '.join(f'{x:.0f}' for x in runs)} |")
        sys.stdout.flush()

    if args.threads > 1:  # the calculator's one-thread rule for tiny graphs switched off
        systems.set_threads(args.threads)
        calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32, skin=0.5, num_threads=None)
        rate, runs = steps_per_second(water, calc, n_steps, n_runs, warmup)
        print(f"| 1 H2O, num_threads=None (without the one-thread rule) | {args.threads} | {rate:.0f} "
              f"| {1e3 / rate:.2f} | {', '.join(f'{x:.0f}' for x in runs)} |")
        sys.stdout.flush()

    box_rate = None
    if not args.quick:
        systems.set_threads(args.threads)
        box = systems.water_box(4)
        calc = ase_mpnn.MPNNCalculator(model, dtype=torch.float32, skin=0.5)
        box_rate, runs = steps_per_second(box, calc, n_steps=10, n_runs=3, warmup=3)
        print(f"| 64 H2O box (192 atoms) | {args.threads} | {box_rate:.2f} | {1e3 / box_rate:.0f} "
              f"| {', '.join(f'{x:.2f}' for x in runs)} |")

    best = max(rates, key=rates.get)
    systems.set_threads(best)
    repeats = 300 if args.quick else 1000
    pieces = breakdown(model, repeats)
    step = 1.0 / rates[best]
    call = pieces.pop("_call")
    print()
    print(f"One step of 1 H2O with {best} thread(s) (fastest above), each piece timed on its own "
          f"(median of {repeats}):")
    print()
    print("| piece | ms/step | % of step |")
    print("|---|---:|---:|")
    for name, seconds in pieces.items():
        print(f"| {name} | {seconds * 1e3:.3f} | {100 * seconds / step:.0f} |")
    total = sum(pieces.values())
    print(f"| sum of pieces | {total * 1e3:.3f} | {100 * total / step:.0f} |")
    print(f"| measured Langevin step (1 / steps/s) | {step * 1e3:.3f} | 100 |")
    print()
    print(f"MPNNCalculator call through ASE (get_forces): {call * 1e3:.3f} ms; "
          f"everything but the model: {(call - pieces['model fwd+bwd (prebuilt graph)']) * 1e3:.3f} ms "
          f"per call, plus the integrator.")
    print()
    print(f"Comparison with schnetpack (its ASE calculator in the same Langevin): `python {ANCHORS} "
          "--only painn-langevin-w1` times both side by side in one run; see benchmarks/README.md.")


if __name__ == "__main__":
    main()
