"""ase_mpnn: equivariant message-passing neural-network potentials inside ASE.

>>> from ase_mpnn import MPNNCalculator
>>> atoms.calc = MPNNCalculator("models/painn_water.pt")
"""

__version__ = "0.1.0"

from .calculator import MPNNCalculator  # noqa: E402
from .graph import Graph, build_graph  # noqa: E402
from .io import ModelFileError, load_model, read_header, save_model  # noqa: E402
from .neighbors import NeighborListError, VerletNeighborList, neighbor_list  # noqa: E402
from .potential import PROPERTIES, AtomisticModel, InputError  # noqa: E402
from .zoo import REPRESENTATIONS, build_model  # noqa: E402

__all__ = [
    "MPNNCalculator",
    "AtomisticModel",
    "Graph",
    "build_graph",
    "build_model",
    "save_model",
    "load_model",
    "read_header",
    "neighbor_list",
    "VerletNeighborList",
    "ModelFileError",
    "InputError",
    "NeighborListError",
    "PROPERTIES",
    "REPRESENTATIONS",
]
