"""Committee cost: MPNNCalculator([m, m, m]) against three separate calculators, interleaved.

    python benchmarks/bench_committee.py

Energy + forces, float32, painn_water.pt three times (the cost does not depend on the
weights), one water and a 192-atom periodic water box; medians of 7 rounds, interleaved
with the order flipped every round, and the machine's load printed. The members share
the neighbor list and the graph but run one after another, so a committee saves only
the graph building.
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


def per_call(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    print(f"{thread_info()}; load average {os.getloadavg()[0]:.2f}")
    print("| system | committee of 3 | 3 calculators | ratio |")
    print("|---|---:|---:|---:|")
    for name, atoms, repeats in (("1 H2O", water_molecule(), 50), ("192-atom box", water_box(4), 5)):
        committee = MPNNCalculator([MODEL] * MEMBERS)
        singles = [MPNNCalculator(MODEL) for _ in range(MEMBERS)]

        def together():
            committee.calculate(atoms, ["energy", "forces"], ["positions"])

        def apart():
            for calc in singles:
                calc.calculate(atoms, ["energy", "forces"], ["positions"])

        together(), apart()  # warm-up: neighbor lists, caches
        times = {together: [], apart: []}
        for round_ in range(7):
            for fn in ((together, apart) if round_ % 2 == 0 else (apart, together)):
                times[fn].append(per_call(fn, repeats))
        t, a = np.median(times[together]), np.median(times[apart])
        print(f"| {name} | {t * 1e3:.2f} ms | {a * 1e3:.2f} ms | {a / t:.2f} |")


if __name__ == "__main__":
    main()
