"""Anchor worker for schnetpack's PaiNN (run with .venvs/schnetpack/bin/python).

Same protocol as the other workers (see worker_common.py). Written against schnetpack's
public API (the model as its tutorials build it):

* model: ``spk.representation.PaiNN(n_atom_basis=128, n_interactions=3,
  radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=5), cutoff_fn=spk.nn.CosineCutoff(5))``
  in ``spk.model.NeuralNetworkPotential`` with ``PairwiseDistances`` as input module,
  ``Atomwise(n_in=128)`` energy and ``Forces`` output modules; float32, random weights.
* neighbor list: schnetpack's own ``spk.transform.VesinNeighborList(cutoff=5)`` (the
  same vesin library ase_mpnn uses), rebuilt every call (schnetpack's calculator has no
  list reuse unless one adds its ``SkinNeighborList`` transform).
* calc: ``spk.interfaces.SpkCalculator(model, neighbor_list, energy_unit="eV",
  dtype=torch.float32)``; for periodic cells with ``stress_key="stress"``, so that it
  computes what ase_mpnn's calculator computes there (energy, forces and stress).
* bare: ``model(dict(inputs))`` on inputs built once by ``spk.interfaces.AtomsConverter``
  with the same neighbor list; energy and forces.
"""

from __future__ import annotations

# isort: off
# worker_common first: it sets OMP_WAIT_POLICY before torch and routes library output to
# stderr.
import worker_common
# isort: on

import schnetpack as spk
import schnetpack.transform as trn
import torch

CUTOFF = 5.0


def make_model():
    """A fresh model (SpkCalculator changes the model it is given when it adds stress)."""
    torch.manual_seed(0)
    representation = spk.representation.PaiNN(
        n_atom_basis=128,
        n_interactions=3,
        radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=CUTOFF),
        cutoff_fn=spk.nn.CosineCutoff(CUTOFF),
    )
    model = spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=128, output_key="energy"),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
    )
    return model.to(torch.float32).eval()


def build(arch: str, mode: str, atoms):
    if arch != "painn":
        raise ValueError(f"the schnetpack worker has PaiNN only, not {arch!r}")
    model = make_model()
    neighbors = trn.VesinNeighborList(cutoff=CUTOFF)
    converter = spk.interfaces.AtomsConverter(neighbor_list=neighbors, dtype=torch.float32)
    inputs = converter(atoms)
    n_edges = inputs[spk.properties.idx_i].numel()
    if mode == "calc":
        calc = spk.interfaces.SpkCalculator(
            model=model,
            neighbor_list=trn.VesinNeighborList(cutoff=CUTOFF),
            energy_key="energy",
            force_key="forces",
            stress_key="stress" if atoms.pbc.all() else None,
            energy_unit="eV",
            position_unit="Angstrom",
            dtype=torch.float32,
        )
        return worker_common.MDLikeCalls(atoms, calc), n_edges
    if mode == "bare":
        def run():
            out = model(dict(inputs))
            return out["energy"], out["forces"]

        return worker_common.BareCalls(run), n_edges
    raise ValueError(f"unknown mode {mode!r}")


def versions() -> dict:
    from importlib.metadata import version

    import ase
    import vesin

    return {"package": "schnetpack " + version("schnetpack"), "ase": ase.__version__,
            "vesin": vesin.__version__,
            "neighbors": "schnetpack.transform.VesinNeighborList, rebuilt every call"}


if __name__ == "__main__":
    worker_common.serve("schnetpack", build, versions)
