"""Representation + heads -> energy, forces, stress, charges, dipole, polarizability.

:class:`AtomisticModel` is the one contract every architecture in :mod:`ase_mpnn.model.zoo`
shares. A representation (:class:`~ase_mpnn.model.nn.representation.Representation`) maps
``(species, edge_index, edge_vectors, edge_lengths)`` to
:class:`~ase_mpnn.model.nn.representation.Features`: invariant scalars ``s`` (n_nodes, F)
and, optionally, vectors ``v`` (n_nodes, 3, F) and symmetric tensors (n_nodes, 3, 3);
everything physical happens here:

* Atomic energy ``E_i = E0[Z_i] + scale · (y(s_i) − y(s_iso[Z_i]))``: ``y`` is a learned
  read-out and ``s_iso[Z]`` the features of an isolated atom of element Z, computed in
  the same forward pass (one extra node per element, no edges). An isolated atom
  therefore has exactly its reference energy ``E0[Z]`` (fitted per element by least
  squares in training), and ``scale`` sets the size of the interaction energy.
* Forces ``F = −∂E/∂r`` and stress ``σ = (1/V) ∂E/∂ε`` by autograd, where ε is a
  symmetric strain applied to positions and cell: ``r → r (1 + ε)``, ``cell → cell (1 + ε)``.
  Only what is asked is computed: no autograd without forces or stress.
* Charges, dipole and polarizability: see :mod:`ase_mpnn.model.heads`. The per-atom
  symmetric tensors of a representation (e3nn models, from 0e + 2e features) are summed
  into the polarizability.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, Collection, Mapping

import torch
from ase.data import atomic_masses, chemical_symbols, covalent_radii
from torch import nn

from .graph import Graph
from .heads import (
    BondPolarizability,
    ScalarReadout,
    VectorReadout,
    centre_of_mass,
    corrected_charges,
)
from .nn import scatter_sum
from .properties import MODEL_PROPERTIES

PROPERTIES = MODEL_PROPERTIES  # see ase_mpnn.model.properties for shapes and units

# Buffers kept in float64 when the model is converted to float32.
_FLOAT64_BUFFERS = ("atomic_energies", "energy_scale")
# Columns of the shared scalar read-out.
_ENERGY, _CHARGE, _ALPHA_ISO = 0, 1, 2
# Channels of the vector read-out.
_DIPOLE, _ALPHA_VEC = 0, 1

#: Largest cutoff (Å) a model may have. Message-passing potentials use 3-12 Å; a larger
#: value is a typo or a damaged file, and its neighbor lists would not fit in memory.
MAX_CUTOFF = 100.0
#: A pair of atoms closer than this fraction of the shortest distance of the same two
#: elements in a trained model's training data (or, for pairs it has no record of, of
#: the covalent bond length) is refused: the model never saw anything like it, and its
#: energy there is arbitrary (−3e10 eV for a pair at 0.1 Å was seen).
CLOSE_CONTACT_FRACTION = 0.5


class InputError(ValueError):
    """A structure the model cannot evaluate (unknown element, overlapping atoms, ...)."""


class NonFiniteResultError(ValueError):
    """The model returned NaN or infinity from finite inputs (never returned to the caller)."""


def pair_key(z1: int, z2: int) -> str:
    """Key of an element pair in ``training_min_distances``: symbols by atomic number, e.g. "H-O"."""
    a, b = sorted((int(z1), int(z2)))
    return f"{chemical_symbols[a]}-{chemical_symbols[b]}"


class AtomisticModel(nn.Module):
    """An architecture's representation with the shared physical output heads.

    Build one with :func:`ase_mpnn.build_model`; call it on a :class:`~ase_mpnn.model.graph.Graph`.
    """

    def __init__(
        self,
        representation: nn.Module,
        species: Collection[int],
        cutoff: float,
        architecture: str,
        hyperparameters: dict[str, Any],
        min_distance: float = 0.1,
        training_min_distances: Mapping[str, float] | None = None,
    ):
        super().__init__()
        species = sorted(int(z) for z in species)
        if not species or len(set(species)) != len(species) or not all(0 < z < len(chemical_symbols) for z in species):
            raise ValueError(f"species must be distinct atomic numbers, got {species}")
        cutoff, min_distance = float(cutoff), float(min_distance)
        if not (math.isfinite(cutoff) and 0 < cutoff <= MAX_CUTOFF):
            raise ValueError(f"cutoff must be a number of Å in (0, {MAX_CUTOFF:g}], got {cutoff}")
        if not (math.isfinite(min_distance) and 0 < min_distance < cutoff):
            raise ValueError(f"min_distance must be a number of Å above 0 and below the cutoff {cutoff:g}, "
                             f"got {min_distance}")
        self.representation = representation
        self.species = species
        self.cutoff = float(cutoff)
        self.architecture = architecture
        self.hyperparameters = dict(hyperparameters)
        self.min_distance = float(min_distance)
        self.training_min_distances: dict[str, float] | None = None
        self.set_training_min_distances(training_min_distances)

        index = torch.full((len(chemical_symbols),), -1, dtype=torch.long)
        index[torch.tensor(species)] = torch.arange(len(species))
        self.register_buffer("species_index", index)
        self.register_buffer("masses", torch.tensor(atomic_masses[species], dtype=torch.float64))
        self.register_buffer("atomic_energies", torch.zeros(len(species), dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))

        n_features = representation.n_features
        self.scalar_head = ScalarReadout(n_features, 3)
        self.bond_polarizability = BondPolarizability(n_features, cutoff)
        self.vector_head = VectorReadout(n_features, 2) if representation.has_vectors else None

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, (nn.Module, nn.Parameter)):
            self.__dict__.pop("_parameter_list", None)  # a new submodule: other parameters
            self.__dict__.pop("_compiled_readout", None)  # compiled around the old one
        super().__setattr__(name, value)

    def _apply(self, fn, recurse=True):
        # Reference energies stay float64 whatever the model's dtype: a float32 total of
        # −2080 eV (one water) would be rounded to 0.1 meV.
        self.__dict__.pop("_parameter_list", None)
        super()._apply(fn, recurse)
        for name in _FLOAT64_BUFFERS:
            self._buffers[name] = self._buffers[name].to(torch.float64)
        return self

    def compile_representation(self) -> None:
        """Run the representation and the scalar read-out through ``torch.compile`` (dynamic shapes).

        The compiled module is kept outside the module tree, so weights, state-dict keys
        and model files are unchanged. It pays for small molecules (see
        ``MPNNCalculator(compile=True)``); graphs for which the representation's
        ``compiled_pays_for`` says no (PaiNN's chunked path) run eagerly. Inference only:
        training does not use it.
        """
        if not getattr(self.representation, "compilable", False):
            raise ValueError(f"compile=True does not work for {self.architecture}: torch.compile cannot trace its "
                             "e3nn blocks; it works for painn, schnet, bpnn and egnn (and pays for small molecules)")
        self.__dict__["_compiled_readout"] = torch.compile(_Readout(self.representation, self.scalar_head),
                                                           dynamic=True)

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model (saved in model files)."""
        return {
            "architecture": self.architecture,
            "species": list(self.species),
            "cutoff": self.cutoff,
            "hyperparameters": dict(self.hyperparameters),
            "min_distance": self.min_distance,
            **({"training_min_distances": dict(self.training_min_distances)}
               if self.training_min_distances is not None else {}),
        }

    def set_training_min_distances(self, distances: Mapping[str, float] | None) -> None:
        """Record the shortest distance (Å) of each element pair in the training data.

        ``distances`` maps :func:`pair_key` ("H-O") to Å; pairs that never came within
        the cutoff may be missing, and then the covalent bond length stands in (``{}``:
        a trained model with no record, e.g. a file from before the record existed).
        Structures with a pair closer than :data:`CLOSE_CONTACT_FRACTION` of it are
        refused. ``None`` (an untrained model): only ``min_distance`` is enforced.
        Training sets it; it is saved in model files.
        """
        if distances is None:
            self.training_min_distances = None
        else:
            if not isinstance(distances, Mapping):
                raise ValueError(f"training_min_distances must map element pairs like 'H-O' to Å, got {distances!r}")
            valid = {pair_key(a, b) for a in self.species for b in self.species}
            checked = {}
            for key, value in distances.items():
                if key not in valid:
                    raise ValueError(f"training_min_distances: {key!r} is not a pair of this model's elements "
                                     f"(expected keys like {sorted(valid)[0]!r})")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                    raise ValueError(f"training_min_distances[{key!r}] must be a positive number of Å, got {value!r}")
                checked[key] = float(value)
            self.training_min_distances = checked
        self.__dict__.pop("_contact_limit_table", None)

    def close_contact_limit(self, z1: int, z2: int) -> tuple[float, str]:
        """The shortest distance (Å) this model accepts between elements ``z1`` and ``z2``, and why."""
        if self.training_min_distances is None:  # untrained: nothing to compare with
            return self.min_distance, f"less than the model's min_distance {self.min_distance:g} Å"
        key = pair_key(z1, z2)
        seen = self.training_min_distances.get(key)
        if seen is not None:
            limit = CLOSE_CONTACT_FRACTION * seen
            why = (f"closer than {CLOSE_CONTACT_FRACTION:g} × the shortest {key} distance in the model's training "
                   f"data ({seen:.3g} Å)")
        else:
            bond = float(covalent_radii[z1] + covalent_radii[z2])
            limit = CLOSE_CONTACT_FRACTION * bond
            why = f"closer than {CLOSE_CONTACT_FRACTION:g} × the {key} covalent bond length ({bond:.3g} Å)"
        if limit < self.min_distance:
            return self.min_distance, f"less than the model's min_distance {self.min_distance:g} Å"
        return limit, why

    def _contact_limits(self, device: torch.device) -> torch.Tensor:
        """(n_species, n_species) float64 table of :meth:`close_contact_limit`, cached."""
        cached = self.__dict__.get("_contact_limit_table")
        if cached is None or cached.device != device:
            table = [[self.close_contact_limit(a, b)[0] for b in self.species] for a in self.species]
            cached = torch.tensor(table, dtype=torch.float64, device=device)
            self.__dict__["_contact_limit_table"] = cached
        return cached

    @property
    def elements(self) -> list[str]:
        return [chemical_symbols[z] for z in self.species]

    def species_of(self, numbers: torch.Tensor) -> torch.Tensor:
        """Map atomic numbers to species indices, naming any element the model lacks."""
        size = self.species_index.shape[0]
        # Clamped lookup: an out-of-range index would be a device-side assert on CUDA.
        index = self.species_index[numbers.clamp(0, size - 1)]
        unknown = (index < 0) | (numbers >= size)
        if bool(unknown.any()):
            bad = sorted({int(z) for z in numbers[unknown].tolist()})
            names = ", ".join(chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}" for z in bad)
            raise InputError(
                f"element(s) {names} not supported: this model was trained on {', '.join(self.elements)} only. "
                "Use a model trained on these elements or remove those atoms."
            )
        return index

    def forward(
        self,
        graph: Graph,
        properties: Collection[str] = ("energy",),
        create_graph: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Predict ``properties`` (a subset of :data:`PROPERTIES`) for every structure in ``graph``.

        Returns tensors: energy (n_graphs,) and energies (n_atoms,) in float64, forces (n_atoms, 3),
        stress (n_graphs, 3, 3) in eV/Å³ (NaN for structures that are not periodic in
        all three directions), charges (n_atoms,), dipole (n_graphs, 3) in e·Å,
        polarizability (n_graphs, 3, 3) in e²Å²/eV. ``create_graph=True`` keeps the graph
        of forces and stress for training on them.
        """
        unknown = set(properties) - set(PROPERTIES)
        if unknown:
            raise ValueError(f"unknown properties {sorted(unknown)}; choose from {PROPERTIES}")
        want_forces = "forces" in properties
        want_stress = "stress" in properties
        want_energy = want_forces or want_stress or "energy" in properties or "energies" in properties
        species = self.species_of(graph.numbers)
        with torch.enable_grad() if (want_forces or want_stress) else nullcontext():
            positions = graph.positions.detach().requires_grad_(True) if want_forces else graph.positions
            strain = torch.zeros_like(graph.cell, requires_grad=True) if want_stress else None
            vectors, lengths = self.edge_geometry(graph, positions, strain)
            self._check_distances(lengths, graph, species)
            asked = set(properties) | ({"energy"} if want_energy else set())
            out = self.predict_from_edges(graph, species, vectors, lengths, self._cached_isolated_scalars(), asked)
            if want_forces or want_stress:
                inputs = ([positions] if want_forces else []) + ([strain] if want_stress else [])
                grads = torch.autograd.grad(out["energy"].sum(), inputs, create_graph=create_graph)
                if want_forces:
                    out["forces"] = -grads[0]
                if want_stress:
                    out["stress"] = grads[-1] / _periodic_volume(graph)[:, None, None]
        return out

    @staticmethod
    def edge_geometry(
        graph: Graph, positions: torch.Tensor, strain: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge vectors r_ij (n_edges, 3) and lengths of ``positions``, strained by ``strain`` if given.

        The strain ε (n_graphs, 3, 3) is applied symmetrised, r → r (1 + ε) and
        cell → cell (1 + ε), so that ∂E/∂ε at ε = 0 is the virial.
        """
        cell = graph.cell
        if strain is not None:
            symmetric = 0.5 * (strain + strain.transpose(-1, -2))
            positions = positions + torch.einsum("ni,nij->nj", positions, symmetric[graph.batch])
            cell = cell + torch.matmul(cell, symmetric)
        vectors = _edge_vectors(positions, cell, graph)
        return vectors, torch.linalg.vector_norm(vectors, dim=1)

    def predict_from_edges(
        self,
        graph: Graph,
        species: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        isolated: torch.Tensor | None,
        properties: Collection[str],
    ) -> dict[str, torch.Tensor]:
        """Energy (with "energy" or "energies"), charges, dipole, polarizability from edge vectors; no derivatives.

        ``isolated`` holds the read-outs of isolated atoms (n_species, 3), or None to
        compute them in this pass (trainable parameters). This is the part of
        :meth:`forward` that a committee maps over its members with ``torch.func.vmap``
        (see :mod:`ase_mpnn.model.committee_model`); it must not branch on tensor values.
        """
        n_atoms, n_graphs = graph.n_atoms, graph.n_graphs
        if isolated is None:
            # One isolated atom per element rides along as extra nodes without edges,
            # so gradients reach the parameters through it too.
            node_species = torch.cat([species, torch.arange(len(self.species), device=species.device)])
        else:
            node_species = species
        compiled = self.__dict__.get("_compiled_readout")
        if compiled is None or not self.representation.compiled_pays_for(lengths):
            features = self.representation(node_species, graph.edge_index, vectors, lengths)
            scalars = self.scalar_head(features.scalars)  # (n_nodes, 3)
        else:
            features, scalars = compiled(node_species, graph.edge_index, vectors, lengths)
        s, v, tensors = features.scalars, features.vectors, features.tensors
        if isolated is None:
            scalars, isolated = scalars[:n_atoms], scalars[n_atoms:]

        out: dict[str, torch.Tensor] = {}
        if {"energy", "energies"} & set(properties):
            y = scalars[:, _ENERGY] - isolated[species, _ENERGY]
            # Summed in float64 (see _apply); forces keep the model's dtype.
            atomic = self.atomic_energies[species] + self.energy_scale * y.to(torch.float64)
            out["energy"], out["energies"] = scatter_sum(atomic, graph.batch, n_graphs), atomic
        if {"charges", "dipole"} & set(properties):
            charges = corrected_charges(scalars[:, _CHARGE], graph.batch, n_graphs, graph.total_charge)
            out["charges"] = charges
            if "dipole" in properties:
                dipole = scatter_sum(charges[:, None] * graph.positions, graph.batch, n_graphs)
                if graph.origin is not None:  # positions are relative to it: Σ q (r + o) = Σ q r + Q o
                    dipole = dipole + (graph.total_charge[:, None] * graph.origin).to(dipole.dtype)
                if self.vector_head is not None:
                    atomic_dipoles = self.vector_head(v[:n_atoms])[:, :, _DIPOLE]
                    dipole = dipole + scatter_sum(atomic_dipoles, graph.batch, n_graphs)
                out["dipole"] = dipole
        if "polarizability" in properties:
            out["polarizability"] = self._polarizability(graph, species, scalars, s, v, tensors, vectors, lengths)
        return out

    def _polarizability(self, graph, species, scalars, s, v, tensors, vectors, lengths) -> torch.Tensor:
        n_atoms, n_graphs = graph.n_atoms, graph.n_graphs
        eye = torch.eye(3, dtype=s.dtype, device=s.device)
        iso = scatter_sum(scalars[:, _ALPHA_ISO], graph.batch, n_graphs)
        alpha = iso[:, None, None] * eye
        alpha = alpha + self.bond_polarizability(
            s[:n_atoms], graph.edge_index, vectors.detach(), lengths.detach(), graph.batch, n_graphs
        )
        if self.vector_head is not None:
            masses = self.masses[species].to(s.dtype)
            centred = graph.positions - centre_of_mass(graph.positions, masses, graph.batch, n_graphs)[graph.batch]
            nu = self.vector_head(v[:n_atoms])[:, :, _ALPHA_VEC]
            outer = nu[:, :, None] * centred[:, None, :]
            alpha = alpha + scatter_sum(outer + outer.transpose(1, 2), graph.batch, n_graphs)
        if tensors is not None:
            alpha = alpha + scatter_sum(tensors[:n_atoms], graph.batch, n_graphs)
        return alpha

    def _cached_isolated_scalars(self) -> torch.Tensor | None:
        """Read-outs of isolated atoms (n_species, 3) when the parameters are frozen, else None.

        They depend on the parameters only, so a frozen model (the calculator's) computes
        them once instead of carrying one extra node per element through every call, a
        large share of the work for small molecules. The cache key is each parameter's
        storage and in-place version counter, so optimizer steps, ``load_state_dict`` and
        ``.to()`` all invalidate it.
        """
        # The parameter list is cached too (walking the module tree is most of the cost of
        # this check for a small molecule); _apply drops it, in-place updates bump _version.
        parameters = self.__dict__.get("_parameter_list")
        if parameters is None:
            parameters = self.__dict__["_parameter_list"] = list(self.parameters())
        if any(p.requires_grad for p in parameters):
            return None
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in parameters)
        cache = self.__dict__.get("_isolated_cache")
        if cache is None or cache[0] != key:
            species = torch.arange(len(self.species), device=self.species_index.device)
            no_edges = species.new_zeros((2, 0))
            vectors = parameters[0].new_zeros((0, 3))
            with torch.no_grad():
                s = self.representation(species, no_edges, vectors, vectors[:, 0]).scalars
                cache = (key, self.scalar_head(s))
            self.__dict__["_isolated_cache"] = cache
        return cache[1]

    def _check_distances(self, lengths: torch.Tensor, graph: Graph, species: torch.Tensor) -> None:
        """Refuse pairs much closer than anything the model was trained on (see :meth:`close_contact_limit`)."""
        if lengths.numel() == 0:
            return
        lengths = lengths.detach()
        receiver, sender = graph.edge_index[0], graph.edge_index[1]
        n = len(self.species)
        limits = self._contact_limits(lengths.device).reshape(-1)
        edge_limits = limits.index_select(0, species.index_select(0, receiver) * n + species.index_select(0, sender))
        ratio = lengths.to(torch.float64) / edge_limits
        k = int(torch.argmin(ratio))
        if not bool(ratio[k] < 1.0):
            return
        i, j = int(receiver[k]), int(sender[k])
        zi, zj = int(graph.numbers[i]), int(graph.numbers[j])
        limit, why = self.close_contact_limit(zi, zj)
        # Report indices within the structure, not within the batch.
        g = int(graph.batch[i])
        first = int((graph.batch < g).sum())
        where = f"structure {g}: " if graph.n_graphs > 1 else ""
        raise InputError(
            f"{where}atoms {i - first} and {j - first} ({chemical_symbols[zi]}, {chemical_symbols[zj]}) are "
            f"{float(lengths[k]):.3g} Å apart, {why}; refused below {limit:.3g} Å. Such overlapping atoms give "
            "meaningless results: check the structure (duplicated atoms? wrong length unit?)."
        )


class _Readout(nn.Module):
    """Representation + scalar read-out as one module: what ``compile_representation`` compiles.

    The float64 energy sums stay outside it (Inductor's float64 scatter fails on some
    graphs in torch 2.13).
    """

    def __init__(self, representation: nn.Module, scalar_head: nn.Module):
        super().__init__()
        self.representation, self.scalar_head = representation, scalar_head

    def forward(self, species, edge_index, vectors, lengths):
        features = self.representation(species, edge_index, vectors, lengths)
        return features, self.scalar_head(features.scalars)


def _edge_vectors(positions: torch.Tensor, cell: torch.Tensor, graph: Graph) -> torch.Tensor:
    """r_ij = r_j − r_i + S·cell for every edge (index_select: cheap backward on CPU)."""
    receiver, sender = graph.edge_index[0], graph.edge_index[1]
    vectors = positions.index_select(0, sender) - positions.index_select(0, receiver)
    if not graph.periodic:  # all shifts are zero: skip the product (small molecules in MD)
        return vectors
    if graph.n_graphs == 1:
        shift_vectors = graph.shifts @ cell[0]
    else:
        edge_cells = cell.index_select(0, graph.batch.index_select(0, receiver))
        shift_vectors = torch.einsum("ei,eij->ej", graph.shifts, edge_cells)
    return vectors + shift_vectors


def _periodic_volume(graph: Graph) -> torch.Tensor:
    """Cell volume of structures periodic in all directions, NaN for the others (no stress)."""
    volume = torch.linalg.det(graph.cell).abs()
    periodic = graph.pbc.all(dim=1)
    return torch.where(periodic, volume, torch.full_like(volume, float("nan")))
