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
import importlib.abc
import importlib.util
import sys
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_PUBLIC = {
    "MPNNCalculator": "calculator",
    "Graph": "model.graph",
    "build_graph": "model.graph",
    "ModelFileError": "model.io",
    "load_model": "model.io",
    "read_header": "model.io",
    "save_model": "model.io",
    "NeighborListError": "model.neighbors",
    "VerletNeighborList": "model.neighbors",
    "neighbor_list": "model.neighbors",
    "PROPERTIES": "model.potential",
    "AtomisticModel": "model.potential",
    "InputError": "model.potential",
    "REPRESENTATIONS": "model.zoo",
    "build_model": "model.zoo",
}

__all__ = list(_PUBLIC)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports lazily
    from .calculator import MPNNCalculator  # noqa: F401
    from .model.graph import Graph, build_graph  # noqa: F401
    from .model.io import ModelFileError, load_model, read_header, save_model  # noqa: F401
    from .model.neighbors import NeighborListError, VerletNeighborList, neighbor_list  # noqa: F401
    from .model.potential import PROPERTIES, AtomisticModel, InputError  # noqa: F401
    from .model.zoo import REPRESENTATIONS, build_model  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'ase_mpnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


# Modules that moved into ase_mpnn.model and ase_mpnn.training: the old import paths keep
# working (the same module object, with a DeprecationWarning naming the new path).
_MOVED = {
    "neighbors": "model.neighbors",
    "graph": "model.graph",
    "heads": "model.heads",
    "potential": "model.potential",
    "io": "model.io",
    "properties": "model.properties",
    "committee_model": "model.committee_model",
    "nn": "model.nn",
    "zoo": "model.zoo",
    "data": "training.data",
    "train": "training.train",
    "evaluate": "training.evaluate",
    "committee": "training.committee",
    "training_plots": "training.plots",
    "label_outliers": "training.label_outliers",
    "config_checks": "training.config_checks",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``ase_mpnn.potential`` as ``ase_mpnn.model.potential`` (and so on, submodules too)."""

    @staticmethod
    def new_name(fullname: str) -> str | None:
        head, _, rest = fullname.partition(".")
        if head != __name__ or not rest:
            return None
        first, _, tail = rest.partition(".")
        if first not in _MOVED:
            return None
        return f"{__name__}.{_MOVED[first]}" + (f".{tail}" if tail else "")

    def find_spec(self, fullname, path=None, target=None):
        if self.new_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = self.new_name(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        pass  # the module object is the new one, already executed


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())
