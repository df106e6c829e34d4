"""MPNNCalculator: any ase_mpnn model as an ASE calculator.

Energy, forces and stress come from one forward + backward pass; dipole, charges and
polarizability from the same forward pass when asked for. Neighbor lists are reused
between calls with a Verlet skin (see :mod:`ase_mpnn.model.neighbors`), so MD steps pay
for a list rebuild only every few dozen steps.

``calc.predict(list_of_atoms)`` evaluates many structures in one batched forward
pass (ring-polymer beads, data sets) and returns one dict of results per structure.

``MPNNCalculator([path1, path2, ...])`` is a committee: the members (same cutoff and
elements, e.g. the same recipe trained with different seeds) share one neighbor list and
one graph per call; members of one architecture are evaluated in one batched pass for
small graphs (see :mod:`ase_mpnn.model.committee_model`), otherwise one after the other on
the shared graph. The results are their
mean, and ``energy_std``, ``forces_std``, ``stress_std``, ``dipole_std``,
``charges_std`` and ``polarizability_std`` their standard deviation (numpy's ``std``,
ddof 0), in the units of the property: a measure of how far a structure lies from the
members' common training data.
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.calculators.calculator import equal as ase_equal
from ase.stress import full_3x3_to_voigt_6_stress

from .checks import check_device, check_dtype, non_finite_parameters
from .model.committee_model import ONE_PASS_MAX_EDGES, StackedCommittee, stackable
from .model.graph import build_graph, total_charge_of
from .model.io import load_model
from .model.neighbors import VerletNeighborList, update_lists
from .model.potential import AtomisticModel, InputError, NonFiniteResultError
from .model.properties import (
    MODEL_PROPERTIES,
    PROPERTY_TABLE,
    fully_periodic,
    register_polarizability,
)

register_polarizability()

_ENERGY_LIKE = {"energy", "free_energy", "energies", "forces", "stress"}
# Committee spreads: "<property>_std" for every model property but the per-atom energies
# (a split of the energy that only its sum defines).
_SPREAD = tuple(name for name in MODEL_PROPERTIES if name != "energies")
# Below this many edges a call is a few hundred tiny operations, each slower when it
# wakes a second thread (one water: 2.1 ms on 1 thread, 2.7 ms on 2 threads).
_SMALL_GRAPH_EDGES = 500


@contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch threads (None: unchanged), then restore the setting."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class ExtraProperties:
    """A request, made with :meth:`MPNNCalculator.computing`, for more properties per call.

    ``active`` switches it on and off; ``close()`` (or the end of its ``with`` block)
    withdraws it.
    """

    def __init__(self, calc: "MPNNCalculator", properties: tuple[str, ...]):
        self.calc, self.properties, self.active = calc, properties, True

    def close(self) -> None:
        self.active = False
        self.calc._requests[:] = [r for r in self.calc._requests if r is not self]

    def __enter__(self) -> "ExtraProperties":
        self.active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class MPNNCalculator(Calculator):
    """ASE calculator for an ase_mpnn model.

    Args:
        model: path to a model file (see :func:`ase_mpnn.save_model`) or a loaded
            :class:`~ase_mpnn.model.potential.AtomisticModel`.
        device: torch device, e.g. "cpu" or "cuda".
        dtype: torch.float32 (default for files) or torch.float64; None keeps a
            loaded model's dtype. A model object is copied (and frozen), never
            changed in place: later changes to it do not reach the calculator.
        skin: Verlet skin in Å. Neighbor lists are built with cutoff + skin and reused
            until an atom moves more than skin/2; results equal a fresh list. 0 rebuilds
            every call.
        forces_with_energy: compute forces (and stress for periodic cells) whenever
            the energy is asked for, in the same pass. MD and optimizers ask for both,
            so this halves their cost; set False for energy-only scans without autograd.
        also_compute: properties computed with every energy/forces call, in the same
            forward pass (e.g. ("dipole", "polarizability") for a whole MD run). For a
            while only, use :meth:`computing`.
        num_threads: torch threads during this calculator's calls (restored after each
            call). "auto": one thread for small graphs (under 500 edges: a few atoms),
            where waking more threads costs more than it gains, torch's setting
            otherwise. None: never touch torch's setting.
        compile: compile the model's representation and scalar read-out with
            ``torch.compile`` (dynamic shapes) on first use. It pays for small molecules,
            whose calls are hundreds of tiny operations: for one water with PaiNN 128×3 on one
            thread, about 1.25× more ASE Langevin steps per second than eagerly
            (``benchmarks/anchors/bench_anchors.py --compile``), after 15–25 s of compiling
            on first use (a C++ compiler is needed). A compiled PaiNN traces the torch path,
            not the C kernels; graphs of more than ~512 edges run eagerly, with them. For
            single models of PaiNN, SchNet, BPNN or EGNN (not committees; torch.compile
            cannot trace the e3nn-based architectures).

    Units: eV, Å, e; dipole e·Å; stress eV/Å³ (Voigt order); polarizability e²Å²/eV
    (ASE's convention: × 14.3996 for Å³).
    """

    implemented_properties = ["energy", "free_energy", *MODEL_PROPERTIES[1:]]

    def __init__(
        self,
        model: AtomisticModel | str | os.PathLike | Sequence[AtomisticModel | str | os.PathLike],
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        skin: float = 0.5,
        forces_with_energy: bool = True,
        num_threads: int | str | None = "auto",
        also_compute: Sequence[str] = (),
        compile: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_dtype(dtype)
        device = check_device(device)
        given = list(model) if isinstance(model, (list, tuple)) else [model]
        if not given:
            raise ValueError("a committee needs at least one model")
        self.members = [_frozen_member(m, device, dtype) for m in given]
        model = self.members[0]
        _check_committee(self.members, given)
        if compile:
            if len(self.members) > 1:
                raise ValueError("compile=True is for a single model, not a committee")
            model.compile_representation()
        # Members differing only in their weights run as one batched pass.
        self._stacked = StackedCommittee(self.members) if stackable(self.members) else None
        self.model = model
        self.device = torch.device(device)
        self.dtype = check_dtype(next(model.parameters()).dtype, "the model's dtype")
        if len(self.members) > 1:  # the spreads, on this instance only
            self.implemented_properties = self.implemented_properties + [f"{p}_std" for p in _SPREAD]
        self.skin = float(skin)
        self.forces_with_energy = forces_with_energy
        if not (num_threads is None or num_threads == "auto" or (isinstance(num_threads, int) and num_threads > 0)):
            raise ValueError(f"num_threads must be a positive int, 'auto' or None, got {num_threads!r}")
        self.num_threads = num_threads
        unknown = set(also_compute) - set(self.implemented_properties)
        if unknown:
            raise ValueError(f"also_compute: unknown properties {sorted(unknown)}")
        self.also_compute = tuple(also_compute)
        self._requests: list[ExtraProperties] = []
        self._neighbor_lists: list[VerletNeighborList] = []

    # ASE entry point -------------------------------------------------------------
    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        self.results = self._evaluate([self.atoms], properties, strict=True)[0]

    def get_property(self, name: str, atoms: Atoms | None = None, allow_calculation: bool = True) -> Any:
        """ASE's ``get_property``; a committee spread asked of a single model says what is needed."""
        if name.endswith("_std") and name[:-4] in _SPREAD and len(self.members) == 1:
            raise PropertyNotImplementedError(f"{name} needs a committee: MPNNCalculator([model_1, model_2, ...])")
        return super().get_property(name, atoms, allow_calculation)

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's checks (:func:`_system_changes`) plus the total charge
        (``atoms.info["charge"]``), which ASE ignores."""
        changes = _system_changes(self.atoms, atoms, tol, set(self.ignored_changes))
        if self.atoms is not None and total_charge_of(atoms) != total_charge_of(self.atoms):
            changes.append("charge")
        return changes

    def predict(
        self, structures: Sequence[Atoms], properties: Iterable[str] | None = None
    ) -> list[dict[str, np.ndarray | float]]:
        """Evaluate many structures in one batched forward pass.

        ``properties`` defaults to energy, forces, stress (for fully periodic cells),
        dipole, charges and polarizability. Returns one dict per structure, with the
        same keys and units as ``calc.results`` after a single calculation. The i-th
        structure reuses the i-th neighbor list between calls (ring-polymer beads).
        """
        if properties is None:
            properties = ("energy", "forces", "stress", "dipole", "charges", "polarizability")
        return self._evaluate(list(structures), properties, strict=False)

    def computing(self, *properties: str) -> ExtraProperties:
        """Compute ``properties`` in every energy/forces call while the returned request is active.

        ``with calc.computing("dipole", "polarizability"): dyn.run(100)`` gets the dipole
        and polarizability from the forces pass of every step, at no extra model call.
        The request is active inside a ``with`` block; an MD recorder that needs them only
        before recorded steps keeps the request and sets ``request.active`` per step,
        then calls ``request.close()``.
        """
        unknown = set(properties) - set(self.implemented_properties)
        if unknown:
            raise ValueError(f"computing: unknown properties {sorted(unknown)}; choose from "
                             f"{self.implemented_properties}")
        request = ExtraProperties(self, tuple(dict.fromkeys(properties)))
        self._requests.append(request)
        return request

    # Internals ---------------------------------------------------------------------
    def _evaluate(
        self, structures: list[Atoms], properties: Iterable[str], strict: bool
    ) -> list[dict[str, Any]]:
        if not structures:
            raise InputError("no structures given")
        for k, atoms in enumerate(structures):
            if len(atoms) == 0:
                raise InputError(f"structure {k} has no atoms: nothing to calculate")
        wanted = self._model_properties(structures, set(properties), strict)
        pairs = update_lists([self._neighbors(k) for k in range(len(structures))], structures)
        graph = build_graph(structures, self.model.cutoff, pairs, dtype=self.dtype, device=self.device)
        grad_needed = bool({"forces", "stress"} & wanted)
        with torch.no_grad() if not grad_needed else torch.enable_grad(), torch_threads(self.threads_for(graph)):
            if len(self.members) == 1:
                single = self.model(graph, wanted)
            elif self._stacked is not None and graph.edge_index.shape[1] <= ONE_PASS_MAX_EDGES:
                stacked = self._stacked(graph, wanted)
            else:
                outs = [member(graph, wanted) for member in self.members]
                stacked = {k: torch.stack([o[k].detach() for o in outs]) for k in outs[0]}
        if len(self.members) == 1:
            results = self._split(single, structures)
        else:
            mean = self._split({k: v.mean(dim=0) for k, v in stacked.items()}, structures)
            spread = self._split({k: v.std(dim=0, correction=0) for k, v in stacked.items()}, structures)
            results = [{**m, **{f"{k}_std": v for k, v in sd.items() if k in _SPREAD}}
                       for m, sd in zip(mean, spread)]
        # One check of the batched outputs; per structure only to name the culprit (or
        # where rows are NaN by design: the stress of non-periodic members of a batch).
        outputs = single if len(self.members) == 1 else stacked
        if not all(bool(torch.isfinite(v).all()) for v in outputs.values()):
            for k, r in enumerate(results):
                self._check_finite(r, structures[k], k if len(structures) > 1 else None)
        return results

    def _check_finite(self, results: dict[str, Any], atoms: Atoms, k: int | None) -> None:
        """Never hand NaN or infinity to the caller: say which input made them."""
        bad = [name for name, value in results.items() if not np.isfinite(value).all()]
        if not bad:
            return
        where = f"structure {k} ({atoms.get_chemical_formula()})" if k is not None else atoms.get_chemical_formula()
        if not np.isfinite(atoms.cell.array).all():
            cause = "the cell contains NaN or infinite values: fix atoms.cell"
        elif self.dtype != torch.float64:
            cause = (f"positions, cell, charge and weights are finite, so {self.dtype} overflowed or the structure "
                     "is far outside the training data: evaluate in float64 (dtype=torch.float64) and check "
                     "the structure")
        else:
            cause = ("positions, cell, charge and weights are finite: the structure is far outside the model's "
                     "training data; check it")
        raise NonFiniteResultError(f"the model returned non-finite {', '.join(bad)} for {where}; {cause}")

    def _model_properties(self, structures: list[Atoms], asked: set[str], strict: bool) -> set[str]:
        unknown = asked - set(self.implemented_properties)
        if unknown:
            spreads = sorted(u for u in unknown if u.endswith("_std"))
            if spreads and len(self.members) == 1:
                raise PropertyNotImplementedError(
                    f"{spreads} need a committee: MPNNCalculator([model_1, model_2, ...])")
            raise PropertyNotImplementedError(f"{sorted(unknown)} not available from {type(self).__name__}")
        asked = {a[:-4] if a.endswith("_std") else a for a in asked}
        periodic = fully_periodic(structures)
        if "stress" in asked and not periodic:
            if strict:
                raise PropertyNotImplementedError(
                    "stress needs a cell that is periodic in all three directions (atoms.pbc = True)"
                )
        wanted = asked - {"free_energy"}
        if asked & _ENERGY_LIKE:
            wanted.add("energy")
            wanted.update(self.also_compute)
            for request in self._requests:
                if request.active:
                    wanted.update(request.properties)
            if self.forces_with_energy:
                wanted.add("forces")
                if periodic:
                    wanted.add("stress")
        if not any(fully_periodic([a]) for a in structures):
            wanted.discard("stress")
        return wanted

    def threads_for(self, graph) -> int | None:
        """Torch threads this calculator uses for ``graph`` (None: torch's setting)."""
        if self.num_threads == "auto":
            return 1 if graph.edge_index.shape[1] < _SMALL_GRAPH_EDGES else None
        return self.num_threads

    def _neighbors(self, k: int) -> VerletNeighborList:
        while len(self._neighbor_lists) <= k:
            self._neighbor_lists.append(VerletNeighborList(self.model.cutoff, self.skin))
        return self._neighbor_lists[k]

    @staticmethod
    def _split(out: dict[str, torch.Tensor], structures: list[Atoms]) -> list[dict[str, Any]]:
        host = {k: v.detach().to("cpu", torch.float64).numpy() for k, v in out.items()}
        counts = np.array([len(a) for a in structures])
        bounds = np.concatenate([[0], np.cumsum(counts)])
        results = []
        for k, atoms in enumerate(structures):
            lo, hi = bounds[k], bounds[k + 1]
            r: dict[str, Any] = {}
            periodic = fully_periodic([atoms])
            for name, value in host.items():
                prop = PROPERTY_TABLE[name]
                if prop.needs_periodic and not periodic:
                    continue
                if prop.per_atom:
                    r[name] = value[lo:hi].copy()
                elif prop.shape == ():
                    r[name] = float(value[k])
                else:
                    r[name] = value[k].copy()
            if "stress" in r:  # ASE's results hold the Voigt form
                r["stress"] = full_3x3_to_voigt_6_stress(r["stress"])
            if "energy" in r:
                r["free_energy"] = r["energy"]
            results.append(r)
        return results


def _system_changes(before: Atoms | None, now: Atoms, tol: float, excluded: set[str]) -> list[str]:
    """ASE's ``compare_atoms(before, now, tol, excluded)``, answered bitwise where it can be.

    ASE compares cell, pbc and every array with ``np.allclose`` to ``tol`` on every
    property request; an MD step asks three times (forces, energy, and the observers'),
    which costs a tenth of a one-molecule step. Bitwise-equal values are within any
    tolerance, so only the values that differ bitwise (the positions, in MD) go through
    ASE's own comparison, and the answer is always ASE's.
    """
    if before is None:
        return list(all_changes)
    changes = []
    watched = set(all_changes) - set(excluded)
    for prop in ("cell", "pbc"):
        if prop not in watched:
            continue
        a, b = getattr(before, prop), getattr(now, prop)
        a, b = (a.array, b.array) if prop == "cell" else (a, b)
        if not (np.array_equal(a, b) or ase_equal(a, b, atol=tol)):
            changes.append(prop)
    watched -= {"cell", "pbc"}
    arrays_before, arrays_now = set(before.arrays), set(now.arrays)
    changes += watched & (arrays_before ^ arrays_now)
    for prop in watched & arrays_before & arrays_now:
        a, b = before.arrays[prop], now.arrays[prop]
        if not ((a.shape == b.shape and np.array_equal(a, b)) or ase_equal(a, b, atol=tol)):
            changes.append(prop)
    return changes


def _frozen_member(model: AtomisticModel | str | os.PathLike, device: torch.device,
                   dtype: torch.dtype | None) -> AtomisticModel:
    """A model of its own for the calculator: loaded, or a frozen copy of the caller's."""
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model, device=device, dtype=dtype)
    elif not isinstance(model, AtomisticModel):
        raise TypeError(
            f"model must be a path to a model file or an AtomisticModel (or a list of them), "
            f"got {type(model).__name__}"
        )
    else:
        # The calculator works on its own frozen copy: the caller's model keeps its
        # device, dtype and trainable parameters, and frozen parameters let the model
        # skip autograd bookkeeping for weights and cache isolated-atom read-outs.
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
    model.eval().requires_grad_(False)
    bad = non_finite_parameters(model)
    if bad:
        raise ValueError(
            f"the model's weights contain NaN or infinite values ({', '.join(bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}): it would return NaN for every structure. A training run "
            "diverged, or the weights were damaged: use another model file or checkpoint"
        )
    return model


def _check_committee(members: list[AtomisticModel], given: list) -> None:
    """Members share one graph: the same cutoff, elements and dtype."""
    first = members[0]
    for k, member in enumerate(members[1:], 1):
        name = given[k] if isinstance(given[k], (str, os.PathLike)) else f"model {k}"
        if member.cutoff != first.cutoff:
            raise ValueError(f"committee member {name} has cutoff {member.cutoff} Å, the first {first.cutoff} Å: "
                             "members share one neighbor list, so they need one cutoff")
        if list(member.elements) != list(first.elements):
            raise ValueError(f"committee member {name} knows {list(member.elements)}, the first "
                             f"{list(first.elements)}: members must know the same elements")
        if next(member.parameters()).dtype != next(first.parameters()).dtype:
            raise ValueError(f"committee member {name} has another dtype than the first: pass dtype=")
