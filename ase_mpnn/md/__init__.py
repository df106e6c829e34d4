"""Molecular dynamics: recorders for ASE dynamics, classical drivers, ring-polymer MD,
and an i-PI client.

    from ase_mpnn.md import MDRecorder, RingPolymerMD, langevin, nve, run_md
"""

from .classical import langevin, load_checkpoint, nve, run_md, save_checkpoint
from .recorder import MDRecorder, RecorderError, read_record, read_units
from .rpmd import RingPolymerMD

__all__ = [
    "MDRecorder",
    "RecorderError",
    "RingPolymerMD",
    "langevin",
    "load_checkpoint",
    "nve",
    "read_record",
    "read_units",
    "run_md",
    "save_checkpoint",
]
