"""Molecular dynamics: recorders for ASE dynamics, classical drivers, ring-polymer MD,
and an i-PI client.

    from ase_mpnn.md import MDRecorder, RingPolymerMD, langevin, nve, run_md
"""

from .classical import langevin, load_checkpoint, nve, run_md, save_checkpoint
from .recorder import MDRecorder, RecorderError, read_attributes, read_record, read_units
from .rpmd import RingPolymerMD
from .rpmd_recorder import RingPolymerRecorder, run_rpmd

__all__ = [
    "MDRecorder",
    "RecorderError",
    "RingPolymerMD",
    "RingPolymerRecorder",
    "langevin",
    "load_checkpoint",
    "nve",
    "read_attributes",
    "read_record",
    "read_units",
    "run_md",
    "run_rpmd",
    "save_checkpoint",
]
