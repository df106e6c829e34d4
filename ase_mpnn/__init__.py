"""ase_mpnn: equivariant message-passing neural-network potentials inside ASE.

>>> from ase.build import molecule
>>> from ase_mpnn import MPNNCalculator
>>> atoms = molecule("H2O")
>>> atoms.calc = MPNNCalculator("models/painn_water.pt")

The public names are imported on first use (PEP 562), so ``import ase_mpnn`` and the
``ase-mpnn`` command line start without loading torch: the command line sets
``OMP_WAIT_POLICY=PASSIVE`` (unless set) before torch's OpenMP runtime reads it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_PUBLIC = {
    "MPNNCalculator": "calculator",
    "Graph": "graph",
    "build_graph": "graph",
    "ModelFileError": "io",
    "load_model": "io",
    "read_header": "io",
    "save_model": "io",
    "NeighborListError": "neighbors",
    "VerletNeighborList": "neighbors",
    "neighbor_list": "neighbors",
    "PROPERTIES": "potential",
    "AtomisticModel": "potential",
    "InputError": "potential",
    "REPRESENTATIONS": "zoo",
    "build_model": "zoo",
}

__all__ = list(_PUBLIC)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports lazily
    from .calculator import MPNNCalculator  # noqa: F401
    from .graph import Graph, build_graph  # noqa: F401
    from .io import ModelFileError, load_model, read_header, save_model  # noqa: F401
    from .neighbors import NeighborListError, VerletNeighborList, neighbor_list  # noqa: F401
    from .potential import PROPERTIES, AtomisticModel, InputError  # noqa: F401
    from .zoo import REPRESENTATIONS, build_model  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'ase_mpnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
