"""Committee cost: MPNNCalculator([m, m, m]) against three separate calculators, interleaved.

    python benchmarks/bench_committee.py

Energy + forces, float32, painn_water.pt three times (the cost does not depend on the
weights), one water and a 192-atom periodic water box; medians of 7 rounds, interleaved
with the order flipped every round, and the machine's load printed. Three ways:

* **calculator**: ``MPNNCalculator([m, m, m])`` as it runs by default: one batched pass
  (the members stacked and mapped over with ``torch.func.vmap``, one forward and one
  backward pass for all) up to ``ONE_PASS_MAX_EDGES`` edges, members in turn above;
* **one pass, forced**: the same calculator with the batched pass at every size (the
  measurement behind ``ONE_PASS_MAX_EDGES``);
* **one after another**: stacking switched off (members share the neighbor list and
  graph, and run in turn);
* **3 calculators**: three separate calculators, as a committee without support costs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import ase_mpnn.calculator
from ase_mpnn import MPNNCalculator
from systems import thread_info, water_box, water_molecule

MODEL = Path(__file__).resolve().parents[1] / "models" / "painn_water.pt"
MEMBERS = 3


def water_cluster(n_molecules: int):
    """The first ``n_molecules`` molecules of the 192-atom box, without a cell."""
    cluster = water_box(4)[: 3 * n_molecules]
    cluster.pbc, cluster.cell = False, None
    return cluster


def per_call(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    print(f"{thread_info()}; load average {os.getloadavg()[0]:.2f}")
    print("| system | edges | calculator | one pass, forced | one after another | 3 calculators "
          "| 3 calculators / calculator | one after another / forced one pass |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    systems_ = (("1 H2O", water_molecule(), 50), ("2 H2O", water_cluster(2), 50), ("4 H2O", water_cluster(4), 30),
                ("8 H2O", water_cluster(8), 20), ("192-atom box", water_box(4), 3))
    for name, atoms, repeats in systems_:
        committee = MPNNCalculator([MODEL] * MEMBERS)
        in_turn = MPNNCalculator([MODEL] * MEMBERS)
        in_turn._stacked = None  # the members one after another on the shared graph
        singles = [MPNNCalculator(MODEL) for _ in range(MEMBERS)]

        def default():
            committee.calculate(atoms, ["energy", "forces"], ["positions"])

        def forced():
            limit = ase_mpnn.calculator.ONE_PASS_MAX_EDGES
            ase_mpnn.calculator.ONE_PASS_MAX_EDGES = 10**12  # the batched pass at any size
            try:
                committee.calculate(atoms, ["energy", "forces"], ["positions"])
            finally:
                ase_mpnn.calculator.ONE_PASS_MAX_EDGES = limit

        def sequential():
            in_turn.calculate(atoms, ["energy", "forces"], ["positions"])

        def apart():
            for calc in singles:
                calc.calculate(atoms, ["energy", "forces"], ["positions"])

        order = [default, forced, sequential, apart]
        for fn in order:  # warm-up: neighbor lists, caches
            fn()
        edges = len(committee._neighbors(0).update(atoms.positions, atoms.cell.array, atoms.pbc,
                                                   atoms.numbers)[0])
        times = {fn: [] for fn in order}
        for round_ in range(7):
            for fn in (order if round_ % 2 == 0 else order[::-1]):
                # calculate() is called with "positions" changed: the full call every time
                times[fn].append(per_call(fn, repeats))
        d, f, s, a = (np.median(times[fn]) for fn in order)
        print(f"| {name} | {edges:,} | {d * 1e3:.2f} ms | {f * 1e3:.2f} ms | {s * 1e3:.2f} ms | {a * 1e3:.2f} ms "
              f"| {a / d:.2f} | {s / f:.2f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
