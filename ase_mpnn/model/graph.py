"""Atoms (one or many) -> one batched graph of tensors for a single forward pass.

Every tensor the models read is a field of :class:`Graph`; the shape comments are
the contract. Edges point from neighbor ``j`` (source) to centre ``i`` (receiver)
and carry integer cell shifts ``S`` so that the edge vector is

    r_ij = r_j − r_i + S · cell        (ASE's ``neighbor_list("D")`` convention).

Structures of different sizes and species are concatenated; ``batch`` says which
structure each atom belongs to.

Positions are stored relative to a per-structure ``origin`` (its first atom), subtracted
in float64 before the cast to the model's dtype: in float32 a molecule 1e6 Å from the
origin would otherwise keep 0.06 Å of its geometry (15 meV and 0.8 eV/Å of error, and
atoms "0 Å apart" at 1e8 Å). Everything but the dipole of a charged structure depends
on differences of positions only; the dipole adds ``total_charge · origin`` back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from ase import Atoms

from .neighbors import PairList, neighbor_list


@dataclass
class Graph:
    numbers: torch.Tensor  # (n_atoms,) int64 atomic numbers
    positions: torch.Tensor  # (n_atoms, 3) Å
    cell: torch.Tensor  # (n_graphs, 3, 3) Å, rows are cell vectors
    pbc: torch.Tensor  # (n_graphs, 3) bool
    edge_index: torch.Tensor  # (2, n_edges) int64: [receiver i, source j]
    shifts: torch.Tensor  # (n_edges, 3) integer cell shifts stored in the float dtype
    batch: torch.Tensor  # (n_atoms,) int64 structure index of each atom
    total_charge: torch.Tensor  # (n_graphs,) e
    n_graphs: int
    periodic: bool = True  # False when every structure is non-periodic (all shifts zero)
    origin: torch.Tensor | None = None  # (n_graphs, 3) float64 Å: positions are relative to it (None: absolute)

    @property
    def n_atoms(self) -> int:
        return int(self.numbers.shape[0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Graph":
        """Copy to a device and/or float dtype (integer tensors keep their type)."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return Graph(
            numbers=move(self.numbers),
            positions=move(self.positions),
            cell=move(self.cell),
            pbc=move(self.pbc),
            edge_index=move(self.edge_index),
            shifts=move(self.shifts),
            batch=move(self.batch),
            total_charge=move(self.total_charge),
            n_graphs=self.n_graphs,
            periodic=self.periodic,
            # Kept in float64 whatever the dtype: it carries the absolute position.
            origin=None if self.origin is None else self.origin.to(device=device),
        )


def total_charge_of(atoms: Atoms) -> float:
    """Net charge of a structure: ``atoms.info["charge"]`` (ASE's convention), default 0.

    Raises :class:`~ase_mpnn.model.potential.InputError` if it is not a finite number.
    """
    value = atoms.info.get("charge", 0.0)
    try:
        charge = float(value)
    except (TypeError, ValueError):
        charge = math.nan
    if not math.isfinite(charge):
        from .potential import InputError  # potential imports this module

        raise InputError(
            f"atoms.info['charge'] is {value!r}: the total charge must be a finite number of elementary "
            "charges (0 for a neutral structure, the default when the key is absent)"
        )
    return charge


def build_graph(
    structures: Sequence[Atoms],
    cutoff: float,
    pairs: Sequence[PairList] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Graph:
    """Batch ``structures`` into one :class:`Graph`.

    ``pairs`` optionally gives precomputed ``(i, j, shifts)`` per structure (e.g. from a
    :class:`~ase_mpnn.model.neighbors.VerletNeighborList`); otherwise they are computed here.
    All concatenation is done in numpy so the host->device copy happens once per field.
    """
    if len(structures) == 0:
        raise ValueError("build_graph needs at least one structure")
    if pairs is None:
        pairs = [
            neighbor_list(a.positions, a.cell.array, a.pbc, cutoff) for a in structures
        ]
    counts = np.array([len(a) for a in structures])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    senders, receivers, shifts = [], [], []
    for (i, j, s), offset in zip(pairs, offsets):
        receivers.append(i + offset)
        senders.append(j + offset)
        shifts.append(s)
    edge_index = np.stack([np.concatenate(receivers), np.concatenate(senders)])
    numbers = np.concatenate([a.numbers for a in structures])
    origin = np.stack([a.positions[0] if len(a) else np.zeros(3) for a in structures])
    positions = np.concatenate([a.positions for a in structures]) - np.repeat(origin, counts, axis=0)
    cells = np.stack([a.cell.array for a in structures])
    graph = Graph(
        numbers=torch.from_numpy(numbers.astype(np.int64)),
        positions=torch.from_numpy(positions),
        cell=torch.from_numpy(cells),
        pbc=torch.from_numpy(np.stack([a.pbc for a in structures])),
        edge_index=torch.from_numpy(edge_index.astype(np.int64)),
        shifts=torch.from_numpy(np.concatenate(shifts).astype(np.float64)),
        batch=torch.from_numpy(np.repeat(np.arange(len(structures)), counts)),
        # Built on the host like the numpy fields; graph.to(device) below moves all at once.
        total_charge=torch.tensor([total_charge_of(a) for a in structures], dtype=torch.float64, device="cpu"),
        n_graphs=len(structures),
        periodic=any(a.pbc.any() for a in structures),
        origin=torch.from_numpy(origin),
    )
    return graph.to(device=device, dtype=dtype)
