"""Anchor worker for ase_mpnn itself (run with the interpreter that has ase_mpnn).

Same protocol as the other workers (see worker_common.py), so ours and theirs are timed
under the same conditions: one process each, the same torch thread count, the same
OMP_WAIT_POLICY, the same MD-like steps.

* calc: ``MPNNCalculator(model, dtype=torch.float32, num_threads=None)``, default skin
  (0.5 Å: the Verlet list is built once and reused along the 0.005 Å steps). Energy,
  forces and, for periodic cells, stress come from one pass (its default).
  ``num_threads=None`` makes it use the thread count set for every process (its default
  "auto" would use one thread for graphs under 500 edges, e.g. one molecule).
* bare: ``model(graph, ("energy", "forces"))`` on a graph built once with
  ``ase_mpnn.build_graph``, the calculator's frozen float32 copy of the model.
"""

from __future__ import annotations

# isort: off
# worker_common first: it sets OMP_WAIT_POLICY before torch and routes library output to
# stderr.
import worker_common
# isort: on

import torch

import ase_mpnn

CUTOFF = 5.0


def make_model(arch: str):
    torch.manual_seed(0)
    if arch == "painn":
        return ase_mpnn.build_model("painn", ["H", "O"], cutoff=CUTOFF, n_features=128,
                                    n_interactions=3, n_rbf=20)
    if arch == "mace":
        # 64x0e + 64x1o hidden (n_channels 64, l_max_hidden 1), spherical harmonics up to
        # l = 3, correlation 3, 2 layers, 8 Bessel functions; radial MLP 3 x 64 (default).
        return ase_mpnn.build_model("mace", ["H", "O"], cutoff=CUTOFF, n_channels=64,
                                    l_max_hidden=1, l_max_sh=3, correlation=3, n_layers=2,
                                    n_rbf=8)
    raise ValueError(f"unknown arch {arch!r}")


_models: dict[str, object] = {}


def build(arch: str, mode: str, atoms):
    if arch not in _models:
        _models[arch] = make_model(arch)
    calc = ase_mpnn.MPNNCalculator(_models[arch], dtype=torch.float32, num_threads=None)
    graph = ase_mpnn.build_graph([atoms], calc.model.cutoff, dtype=torch.float32)
    n_edges = graph.edge_index.shape[1]
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
    from importlib.metadata import version

    import ase
    import vesin

    return {"package": "ase_mpnn " + version("ase_mpnn"), "ase": ase.__version__,
            "vesin": vesin.__version__, "neighbors": "ase_mpnn.VerletNeighborList (vesin), skin 0.5 Å"}


if __name__ == "__main__":
    worker_common.serve("ours", build, versions)
