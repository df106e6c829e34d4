"""Anchor worker for ase_mpnn itself (run with the interpreter that has ase_mpnn).

Same protocol as the other workers (see worker_common.py), so ours and theirs are timed
under the same conditions: one process each, the same torch thread count, the same
OMP_WAIT_POLICY, the same MD-like steps.

* calc: ``MPNNCalculator(model, dtype=torch.float32, num_threads=None)``, default skin
  (0.5 Å: the Verlet list is built once and reused along the 0.005 Å steps). Energy,
  forces and, for periodic cells, stress come from one pass (its default).
  ``num_threads=None`` makes it use the thread count set for every process; with
  ``bench_anchors.py --ours-threads auto`` it keeps its default "auto" (one thread for
  graphs under 500 edges, e.g. one molecule or 32 beads of water).
* bare: ``model(graph, ("energy", "forces"))`` on a graph built once with
  ``ase_mpnn.build_graph``, the calculator's frozen float32 copy of the model.
* langevin: ``ase_mpnn.md.langevin(atoms, 300 K, 0.5 fs, 0.01/fs, seed)``, which is
  ASE's own ``ase.md.langevin.Langevin(timestep=0.5 * fs, temperature_K=300,
  friction=0.01 / fs, fixcm=False, rng=Generator)``, with the calculator above; momenta
  thermalized at 300 K from a fixed seed. A timed call is ``dyn.run(steps)``.
* rpmd: ``ase_mpnn.md.RingPolymerMD(atoms, calculator, n_beads, 300 K, 0.25 fs,
  thermostat="pile_l", tau=100 fs, seed=0, observables=())`` with the calculator above:
  all beads in one batched ``predict`` call per step (one graph of n_beads copies of the
  molecule), one Verlet list per bead (skin 0.5 Å). Forces only. A timed call is
  ``md.run(steps)``.

The model's element list is H and O plus any other element of the structure (C for
aspirin); the embedding table's size does not change the cost.

Device (``bench_anchors.py --device``, sent in "hello"): the calculator is
``MPNNCalculator(..., device=worker_common.DEVICE)`` (its frozen model copy on that
device; the neighbor list stays on the CPU and the graph goes over once per call), and
the bare graph is built on that device (``build_graph(..., device=...)``).
"""

from __future__ import annotations

# isort: off
# worker_common first: it sets OMP_WAIT_POLICY before torch and routes library output to
# stderr.
import worker_common
# isort: on

import os

import numpy as np
import torch

import ase_mpnn

CUTOFF = 5.0


def make_model(arch: str, elements: list[str]):
    torch.manual_seed(0)
    if arch == "painn":
        return ase_mpnn.build_model("painn", elements, cutoff=CUTOFF, n_features=128,
                                    n_interactions=3, n_rbf=20)
    if arch == "mace":
        # 64x0e + 64x1o hidden (n_channels 64, l_max_hidden 1), spherical harmonics up to
        # l = 3, correlation 3, 2 layers, 8 Bessel functions; radial MLP 3 x 64 (default).
        return ase_mpnn.build_model("mace", elements, cutoff=CUTOFF, n_channels=64,
                                    l_max_hidden=1, l_max_sh=3, correlation=3, n_layers=2,
                                    n_rbf=8)
    raise ValueError(f"unknown arch {arch!r}")


_models: dict[tuple, object] = {}


def elements_of(atoms) -> list[str]:
    from ase.data import atomic_numbers

    return sorted({"H", "O", *atoms.get_chemical_symbols()}, key=atomic_numbers.get)


def build(arch: str, mode: str, atoms, options: dict | None = None):
    options = options or {}
    elements = elements_of(atoms)
    if (arch, *elements) not in _models:
        _models[(arch, *elements)] = make_model(arch, elements)
    # bench_anchors.py --compile: the representation through torch.compile (MD and call rows)
    compiled = os.environ.get("ASE_MPNN_BENCH_COMPILE") == "1"
    device = worker_common.DEVICE
    threads = "auto" if os.environ.get("ASE_MPNN_BENCH_THREADS") == "auto" else None
    calc = ase_mpnn.MPNNCalculator(_models[(arch, *elements)], device=device, dtype=torch.float32,
                                   num_threads=threads, compile=compiled)
    graph = ase_mpnn.build_graph([atoms], calc.model.cutoff, dtype=torch.float32, device=device)
    n_edges = graph.edge_index.shape[1]
    if mode == "langevin":
        from ase_mpnn.md import langevin

        moving = worker_common.thermalized(atoms)
        moving.calc = calc
        dyn = langevin(moving, worker_common.TEMPERATURE_K, worker_common.LANGEVIN_DT_FS,
                       worker_common.LANGEVIN_FRICTION_PER_FS, seed=worker_common.SEED + 1)
        return worker_common.MDSteps(dyn.run, options["steps"], worker_common.ase_md_state(moving)), n_edges
    if mode == "rpmd":
        from ase import units

        from ase_mpnn.md import RingPolymerMD

        n_beads = int(options["n_beads"])
        md = RingPolymerMD(atoms, calc, n_beads=n_beads, temperature_K=worker_common.TEMPERATURE_K,
                           timestep=worker_common.RPMD_DT_FS * units.fs, thermostat="pile_l",
                           tau=worker_common.RPMD_CENTROID_TAU_FS * units.fs, seed=0, observables=())
        if not md.batched:
            raise RuntimeError("RingPolymerMD did not take the batched path")
        md.run(0)  # the first forces

        def state() -> tuple[float, float]:
            return float(md.potential_energy), float(np.abs(md.bead_forces).max())

        return worker_common.MDSteps(md.run, options["steps"], state), n_beads * n_edges
    if mode == "calc":
        return worker_common.MDLikeCalls(atoms, calc), n_edges
    if mode == "bare":
        model = calc.model  # frozen float32 copy

        def run():
            out = model(graph, ("energy", "forces"))
            return out["energy"], out["forces"]

        return worker_common.BareCalls(run), n_edges
    raise ValueError(f"unknown mode {mode!r}")


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import ase
    import vesin

    try:
        package = "ase_mpnn " + version("ase_mpnn")
    except PackageNotFoundError:  # not installed: imported from the source tree (PYTHONPATH)
        source = os.path.dirname(os.path.dirname(ase_mpnn.__file__))
        package = f"ase_mpnn {ase_mpnn.__version__} (not installed; from {source})"
    return {"package": package, "ase": ase.__version__,
            "vesin": vesin.__version__, "neighbors": "ase_mpnn.VerletNeighborList (vesin), skin 0.5 Å"}


if __name__ == "__main__":
    worker_common.serve("ours", build, versions)
