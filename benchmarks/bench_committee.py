"""Committee cost: MPNNCalculator([m, m, m]) against three separate calculators, interleaved.

    python benchmarks/bench_committee.py

Energy + forces, float32, painn_water.pt three times (the cost does not depend on the
weights), one water and a 192-atom periodic water box; medians of 7 rounds, interleaved
with the order flipped every round, and the machine's load printed. Three ways:

* **one pass**: ``MPNNCalculator([m, m, m])``, the members stacked and mapped over with
  ``torch.func.vmap`` (one forward and one backward pass for all of them) up to
  ``ONE_PASS_MAX_EDGES`` edges, one after another above (the 192-atom box);
* **one after another**: the same calculator with stacking switched off (members share
  the neighbor list and graph, and run in turn);
* **3 calculators**: three separate calculators, as a committee without support costs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ase_mpnn import MPNNCalculator
from systems import thread_info, water_box, water_molecule

MODEL = Path(__file__).resolve().parents[1] / "models" / "painn_water.pt"
MEMBERS = 3


def water_pair():
    """The first two molecules of the 192-atom box, without a cell: 30 edges within 5 Å."""
    pair = water_box(4)[:6]
    pair.pbc, pair.cell = False, None
    return pair


def per_call(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    print(f"{thread_info()}; load average {os.getloadavg()[0]:.2f}")
    print("| system | one pass | one after another | 3 calculators | 3 calculators / one pass |")
    print("|---|---:|---:|---:|---:|")
    for name, atoms, repeats in (("1 H2O", water_molecule(), 50), ("2 H2O (30 edges)", water_pair(), 50),
                                 ("192-atom box", water_box(4), 5)):
        committee = MPNNCalculator([MODEL] * MEMBERS)
        in_turn = MPNNCalculator([MODEL] * MEMBERS)
        in_turn._stacked = None  # the members one after another on the shared graph
        singles = [MPNNCalculator(MODEL) for _ in range(MEMBERS)]

        def together():
            committee.calculate(atoms, ["energy", "forces"], ["positions"])

        def sequential():
            in_turn.calculate(atoms, ["energy", "forces"], ["positions"])

        def apart():
            for calc in singles:
                calc.calculate(atoms, ["energy", "forces"], ["positions"])

        order = [together, sequential, apart]
        for fn in order:  # warm-up: neighbor lists, caches
            fn()
        times = {fn: [] for fn in order}
        for round_ in range(7):
            for fn in (order if round_ % 2 == 0 else order[::-1]):
                times[fn].append(per_call(fn, repeats))
        t, s, a = (np.median(times[fn]) for fn in order)
        print(f"| {name} | {t * 1e3:.2f} ms | {s * 1e3:.2f} ms | {a * 1e3:.2f} ms | {a / t:.2f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
