"""Anchor worker for mace-torch's MACE (run with .venvs/mace/bin/python).

Same protocol as the other workers (see worker_common.py). Written against mace-torch's
public API; the model is what ``mace_run_train --model MACE`` builds with these settings
(its defaults for everything not named here):

* ``mace.modules.ScaleShiftMACE``: r_max 5 Å, 8 Bessel functions, polynomial cutoff p = 5,
  max_ell 3, 2 interactions (RealAgnosticInteractionBlock first, then
  RealAgnosticResidualInteractionBlock), hidden irreps 64x0e + 64x1o, correlation 3,
  MLP_irreps 16x0e, SiLU gate, radial MLP [64, 64, 64], avg_num_neighbors 20 (as
  ase_mpnn's default), elements H and O, zero atomic energies; float32, random weights.
  As in mace-torch by default, the last interaction keeps scalars only (64x0e), while
  ase_mpnn's MACE keeps 0e + 1o + 2e there (it reads vectors and a tensor out of it).
* neighbor list: mace-torch's own (``AtomicData.from_config`` -> matscipy), rebuilt every
  call (the calculator has no list reuse).
* calc: ``mace.calculators.MACECalculator(models=model, default_dtype="float32")``, no
  compilation, no cuequivariance; it computes energy, forces and stress every call
  (also for a molecule without a cell).
* shim: ``shim_e3nn_torch_load`` (imported first) lets e3nn 0.4.4 load its constants
  under torch >= 2.6; see that file.
* bare: ``model(batch, compute_force=True, compute_stress=False)`` on a batch built once
  with ``mace.data.config_from_atoms`` / ``AtomicData.from_config`` /
  ``torch_geometric.Batch.from_data_list``.

Device (``bench_anchors.py --device``, sent in "hello"): ``MACECalculator(...,
device=...)``; for the bare work the model and the batch's tensors are moved there.
"""

from __future__ import annotations

# isort: off
# worker_common first: it sets OMP_WAIT_POLICY before torch and routes library output to
# stderr; then the shim, before e3nn (see shim_e3nn_torch_load.py).
import worker_common
import shim_e3nn_torch_load  # noqa: F401
# isort: on

import logging

import numpy as np
import torch
from e3nn import o3
from mace import data, modules, tools
from mace.calculators import MACECalculator
from mace.tools.torch_geometric.batch import Batch

CUTOFF = 5.0
ELEMENTS = [1, 8]


def make_model():
    torch.manual_seed(0)
    model = modules.ScaleShiftMACE(
        r_max=CUTOFF,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2,
        num_elements=len(ELEMENTS),
        hidden_irreps=o3.Irreps("64x0e + 64x1o"),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(ELEMENTS)),
        avg_num_neighbors=20.0,
        atomic_numbers=ELEMENTS,
        correlation=3,
        gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64],
        atomic_inter_scale=1.0,
        atomic_inter_shift=[0.0],
    )
    return model.to(torch.float32).eval()


def build(arch: str, mode: str, atoms, options: dict | None = None):
    if arch != "mace":
        raise ValueError(f"the mace worker has MACE only, not {arch!r}")
    model = make_model()
    config = data.config_from_atoms(atoms)
    graph = data.AtomicData.from_config(
        config, z_table=tools.AtomicNumberTable(ELEMENTS), cutoff=CUTOFF, heads=["Default"]
    )
    device = worker_common.DEVICE
    batch = Batch.from_data_list([graph]).to_dict()
    for key, value in batch.items():
        if torch.is_tensor(value) and torch.is_floating_point(value):
            batch[key] = value.to(torch.float32)
        if torch.is_tensor(batch[key]):
            batch[key] = batch[key].to(device)
    n_edges = batch["edge_index"].shape[1]
    if mode == "calc":
        logging.getLogger().setLevel(logging.ERROR)
        calc = MACECalculator(models=model, device=device, default_dtype="float32")
        return worker_common.MDLikeCalls(atoms, calc), n_edges
    if mode == "bare":
        model = model.to(device)

        def run():
            out = model(batch, training=False, compute_force=True, compute_stress=False)
            return out["energy"], out["forces"]

        return worker_common.BareCalls(run), n_edges
    raise ValueError(f"unknown mode {mode!r}")


def versions() -> dict:
    from importlib.metadata import version

    import ase
    import vesin

    return {"package": "mace-torch " + version("mace-torch"), "e3nn": version("e3nn"),
            "ase": ase.__version__, "vesin": vesin.__version__,
            "neighbors": f"mace-torch's (matscipy {version('matscipy')}), rebuilt every call"}


if __name__ == "__main__":
    worker_common.serve("mace", build, versions)
