"""Several models of one architecture evaluated in one batched pass (a committee).

Members that share architecture, hyperparameters, elements and cutoff differ only in
their weights, so their parameters can be stacked along a new leading axis and one
forward pass maps over it with ``torch.func.vmap``: every matrix product becomes a
batched one, and the per-operation overhead (which dominates for small molecules) is
paid once instead of once per member. Forces and stress come from one backward pass:
each member differentiates its own copy of the positions and strain, so
``∂(Σ_m E_m)/∂r_m = ∂E_m/∂r_m`` gives every member's forces separately.

The batched pass pays where per-operation overhead dominates, i.e. for small graphs:
with three PaiNN members (``benchmarks/bench_committee.py``) it is 1.4× faster than the
members one after another for one water (6 edges), 1.13× at 78 edges, and slower from a
few hundred edges on (0.66× at 306, 0.48× for a 192-atom box), where vmap's batched
gathers and scatters cost more than the overhead saved. The calculator therefore uses it
up to :data:`ONE_PASS_MAX_EDGES` edges. Members of different architectures cannot be
stacked (:func:`stackable`); they always run one after another on the same graph.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Collection

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .graph import Graph
from .potential import AtomisticModel, _periodic_volume

#: Largest graph (edges) the calculator evaluates as one batched pass; larger graphs run
#: the members one after another (bench_committee.py: faster at 78 edges, slower at 306).
ONE_PASS_MAX_EDGES = 128


def stackable(members: list[AtomisticModel]) -> bool:
    """True when the members differ only in their weights (same config apart from training records)."""
    def shape(model: AtomisticModel) -> tuple:
        return (model.architecture, tuple(model.species), model.cutoff, repr(sorted(model.hyperparameters.items())),
                tuple((name, p.shape, p.dtype) for name, p in model.state_dict().items()))
    return len(members) > 1 and all(shape(m) == shape(members[0]) for m in members[1:])


class _MemberOutputs(nn.Module):
    """``forward`` = one member's :meth:`AtomisticModel.predict_from_edges` on its own positions/strain."""

    def __init__(self, model: AtomisticModel):
        super().__init__()
        self.model = model

    def forward(self, graph, species, positions, strain, isolated, properties):
        vectors, lengths = self.model.edge_geometry(graph, positions, strain)
        return self.model.predict_from_edges(graph, species, vectors, lengths, isolated, properties)


class StackedCommittee:
    """Frozen members of one architecture, evaluated together; results carry a leading member axis.

    The members must be frozen (``requires_grad_(False)``) and must not change after this
    is built: their weights are copied into stacked tensors once.
    """

    def __init__(self, members: list[AtomisticModel]):
        if not stackable(members):
            raise ValueError("committee members must share architecture, hyperparameters, elements and cutoff "
                             "to be evaluated in one pass")
        self.members = members
        self._wrapper = _MemberOutputs(members[0])
        wrappers = [_MemberOutputs(m) for m in members]
        params, buffers = stack_module_state(wrappers)
        self._state = {**{k: v.detach() for k, v in params.items()}, **buffers}
        self._isolated = torch.stack([m._cached_isolated_scalars() for m in members])

    def __len__(self) -> int:
        return len(self.members)

    def __call__(self, graph: Graph, properties: Collection[str]) -> dict[str, torch.Tensor]:
        """Like ``member(graph, properties)`` for every member, stacked: (n_members, ...) tensors."""
        first = self.members[0]
        want_forces = "forces" in properties
        want_stress = "stress" in properties
        species = first.species_of(graph.numbers)
        # The members see the same geometry: refuse close contacts once, on the shared graph.
        first._check_distances(first.edge_geometry(graph, graph.positions, None)[1], graph, species)
        n = len(self.members)
        asked = tuple(set(properties) | ({"energy"} if (want_forces or want_stress) else set()))
        with torch.enable_grad() if (want_forces or want_stress) else nullcontext():
            positions = graph.positions.detach().expand(n, -1, -1).clone().requires_grad_(want_forces)
            strain = (torch.zeros((n,) + tuple(graph.cell.shape), dtype=graph.cell.dtype, device=graph.cell.device,
                                  requires_grad=True) if want_stress else None)

            def member(state, positions, strain, isolated):
                return functional_call(self._wrapper, state, (graph, species, positions, strain, isolated, asked))

            out = vmap(member, in_dims=(0, 0, 0 if want_stress else None, 0))(self._state, positions, strain,
                                                                             self._isolated)
            if want_forces or want_stress:
                inputs = ([positions] if want_forces else []) + ([strain] if want_stress else [])
                grads = torch.autograd.grad(out["energy"].sum(), inputs)
                if want_forces:
                    out["forces"] = -grads[0]
                if want_stress:
                    out["stress"] = grads[-1] / _periodic_volume(graph)[None, :, None, None]
        return {k: v.detach() for k, v in out.items()}
