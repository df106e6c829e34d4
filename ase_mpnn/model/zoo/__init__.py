"""Architectures, one per file, all under the contract of :class:`~ase_mpnn.model.potential.AtomisticModel`."""

from __future__ import annotations

import inspect
import math
from numbers import Real
from typing import Any, Collection

import torch
from ase.data import atomic_numbers

from ..potential import MAX_CUTOFF, AtomisticModel
from .bpnn import BPNN
from .egnn import EGNN
from .mace import MACE
from .nequip import NequIP
from .painn import PaiNN
from .schnet import SchNet
from .segnn import SEGNN
from .so3net import SO3Net

REPRESENTATIONS = {
    "bpnn": BPNN,
    "egnn": EGNN,
    "mace": MACE,
    "nequip": NequIP,
    "painn": PaiNN,
    "schnet": SchNet,
    "segnn": SEGNN,
    "so3net": SO3Net,
}


class HyperparameterError(TypeError, ValueError):
    """An unknown hyperparameter name (a TypeError as for any bad keyword, and a ValueError
    so that the command line reports it as one line)."""


def _as_atomic_numbers(species: Collection[int | str]) -> list[int]:
    numbers = []
    for z in species:
        if isinstance(z, str):
            if z not in atomic_numbers:
                raise ValueError(f"unknown element symbol {z!r}")
            z = atomic_numbers[z]
        numbers.append(int(z))
    return numbers


def build_model(
    architecture: str,
    species: Collection[int | str],
    cutoff: float = 5.0,
    min_distance: float = 0.1,
    **hyperparameters: Any,
) -> AtomisticModel:
    """Build an untrained model.

    Args:
        architecture: one of :data:`REPRESENTATIONS` ("painn", "schnet", ...).
        species: elements the model handles, as symbols or atomic numbers.
        cutoff: radial cutoff in Å.
        min_distance: closer atoms are refused as overlapping (Å).
        **hyperparameters: keyword arguments of the architecture's class (see its
            docstring); an unknown name raises :class:`HyperparameterError` (a ``TypeError``
            and ``ValueError``) listing the valid names.
    """
    name = architecture.lower()
    if name not in REPRESENTATIONS:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {sorted(REPRESENTATIONS)}")
    if not (isinstance(cutoff, Real) and math.isfinite(cutoff) and 0 < cutoff <= MAX_CUTOFF):
        raise ValueError(f"cutoff must be a number of Å in (0, {MAX_CUTOFF:g}], got {cutoff!r}")
    numbers = sorted(set(_as_atomic_numbers(species)))
    cls = REPRESENTATIONS[name]
    valid = [k for k in inspect.signature(cls).parameters if k not in ("n_species", "cutoff")]
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise HyperparameterError(
            f"unknown hyperparameter(s) {unknown} for {name}; its hyperparameters are {valid} "
            f"(and min_distance); see the docstring of ase_mpnn.model.zoo.{cls.__name__}"
        )
    representation = cls(len(numbers), cutoff, **hyperparameters)
    # Save every hyperparameter, defaults included, so a file rebuilds the same model
    # even if a later version changes a default.
    defaults = {
        k: p.default
        for k, p in inspect.signature(cls).parameters.items()
        if k not in ("n_species", "cutoff") and p.default is not inspect.Parameter.empty
    }
    full = {**defaults, **hyperparameters}
    model = AtomisticModel(representation, numbers, cutoff, name, full, min_distance)
    return model.to(torch.get_default_dtype())  # buffers and parameters in one dtype
