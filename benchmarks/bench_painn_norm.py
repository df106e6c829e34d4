"""PaiNN's smooth vector norm against the old near-corner one, timed interleaved in one run.

sqrt(‖Vv‖² + ε²) with ε = 1 (the default, smooth) and ε = 1e-4 (the former norm) are the
same operations; this checks that the smooth surface costs no time. The order of the
two calls flips every round. PaiNN 128×3, 20 RBF,
5 Å, float32, energy + forces, 2 threads; the two models alternate call by call and the
load average is printed before and after.

    python benchmarks/bench_painn_norm.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

import ase_mpnn  # noqa: E402
import systems  # noqa: E402


def main() -> None:
    systems.set_threads(2)
    print(systems.thread_info())
    print("load average before:", os.getloadavg())
    print("| system | ε = 1e-4 (old) | ε = 1 (smooth) | smooth / old |")
    print("|---|---:|---:|---:|")
    for name, atoms, repeats in (("192-atom water box", systems.water_box(), 40),
                                 ("1 water", systems.water_molecule(), 300)):
        models = {}
        for eps in (1e-4, 1.0):
            torch.manual_seed(0)
            models[eps] = ase_mpnn.build_model("painn", ["H", "O"], cutoff=systems.CUTOFF, n_features=128,
                                               n_interactions=3, n_rbf=20, norm_softening=eps).eval()
        graph = ase_mpnn.build_graph([atoms], systems.CUTOFF, dtype=torch.float32)
        times: dict[float, list[float]] = {eps: [] for eps in models}
        for k in range(repeats):
            order = list(models.items()) if k % 2 == 0 else list(models.items())[::-1]  # no first-call bias
            for eps, model in order:
                start = time.perf_counter()
                model(graph, ("energy", "forces"))
                times[eps].append(time.perf_counter() - start)
        old, new = (statistics.median(times[eps][2:]) for eps in (1e-4, 1.0))
        print(f"| {name} | {old * 1e3:.2f} ms | {new * 1e3:.2f} ms | {new / old:.3f} |")
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
