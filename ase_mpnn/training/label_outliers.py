"""Find labels that cannot be right before a model is trained on them.

One wrong label (a force of 1e30 eV/Å, an energy in Hartree among energies in eV) decides
the loss of every batch it is in; a fit "works" and the model is garbage. Each label is
compared with the rest of its kind by a robust z-score,

    z = (x − median) / (1.4826 · MAD),

which one outlier cannot mask (the median and the median absolute deviation ignore it,
unlike a mean and a standard deviation). Per label, a frame's score is its largest |z|:

* energy: per atom, after subtracting per-element reference energies fitted to the data
  (so that different compositions compare); a first pass on the raw energy per atom
  catches values so large that they would spoil that fit;
* forces: every component of every atom, pooled over the data set;
* stress, dipole, polarizability: each component against the same component of the
  other frames (a molecule's dipole has a direction).

A score above :data:`ERROR_Z` (1e6: a value a million typical spreads away, such as
1e30) is an error naming the file and frame; a score above :data:`WARN_Z` (50) is a loud
warning (rare but real geometries, a wrong unit in some frames) that lists the frames.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..model.properties import ERROR_UNITS
from .data import DataError, Dataset, fit_atomic_energies

__all__ = ["ERROR_Z", "WARN_Z", "LabelOutlier", "check_label_outliers", "find_label_outliers", "robust_z"]

#: |z| above which a label is refused (absurd: nothing physical is that far out).
ERROR_Z = 1e6
#: |z| above which a label is reported in a warning.
WARN_Z = 50.0
# Smallest spread a label's z-score is measured in: labels that are all (nearly) equal,
# e.g. zero dipoles of non-polar molecules, do not turn a tiny difference into an outlier.
_SCALE_FLOOR = {"energy": 1e-3, "forces": 1e-3, "stress": 1e-5, "dipole": 1e-3, "polarizability": 1e-3}


@dataclass
class LabelOutlier:
    """One frame whose ``label`` lies ``z`` robust spreads from the data set's median."""

    label: str
    frame: int  # index in the data set (across files)
    origin: str  # file and frame in it
    z: float
    value: float  # the most extreme component (energy: per atom, after reference energies)
    median: float


def robust_z(values: np.ndarray, floor: float = 0.0) -> tuple[np.ndarray, float, float]:
    """(z, median, scale) of ``values`` by median and MAD (mean absolute deviation where
    more than half the values are equal); the scale is at least ``floor``."""
    values = np.asarray(values, dtype=np.float64)
    median = float(np.median(values))
    deviation = np.abs(values - median)
    scale = 1.4826 * float(np.median(deviation))
    if scale == 0.0:
        scale = 1.2533 * float(np.mean(deviation))
    scale = max(scale, floor)
    if scale == 0.0:  # every value equal
        return np.zeros_like(values), median, scale
    return (values - median) / scale, median, scale


def _pooled_scores(label: str, rows: list[np.ndarray], frames: list[int], dataset: Dataset) -> list[LabelOutlier]:
    """Score each frame by its most extreme component, all components pooled (forces:
    every atom's components share one distribution, whatever the orientation)."""
    flat = np.concatenate([r.reshape(-1) for r in rows])
    z, median, _ = robust_z(flat, _SCALE_FLOOR[label])
    found, start = [], 0
    for k, row in zip(frames, rows):
        zs = z[start:start + row.size]
        start += row.size
        worst = int(np.argmax(np.abs(zs)))
        found.append(LabelOutlier(label, k, _origin(dataset, k), float(zs[worst]), float(row.reshape(-1)[worst]),
                                  median))
    return found


def _componentwise_scores(label: str, rows: list[np.ndarray], frames: list[int], dataset: Dataset) -> list[LabelOutlier]:
    """Score each frame by its most extreme component, each component against its own
    distribution (a molecule's dipole points one way: its x and z components differ)."""
    table = np.stack([r.reshape(-1) for r in rows])  # (frames, components)
    columns = [robust_z(table[:, c], _SCALE_FLOOR[label]) for c in range(table.shape[1])]
    z = np.stack([col[0] for col in columns], axis=1)
    found = []
    for i, k in enumerate(frames):
        c = int(np.argmax(np.abs(z[i])))
        found.append(LabelOutlier(label, k, _origin(dataset, k), float(z[i, c]), float(table[i, c]), columns[c][1]))
    return found


def _origin(dataset: Dataset, k: int) -> str:
    return dataset.samples[k].origin or f"{dataset.source} frame {k}"


def _energy_scores(dataset: Dataset) -> list[LabelOutlier]:
    frames = [k for k, s in enumerate(dataset.samples) if "energy" in s.labels]
    if len(frames) < 3:
        return []
    per_atom = np.array([float(dataset.samples[k].labels["energy"]) / len(dataset.samples[k].atoms) for k in frames])
    raw = _componentwise_scores("energy", [np.array([e]) for e in per_atom], frames, dataset)
    if any(abs(o.z) > ERROR_Z for o in raw):
        return raw  # a fit of reference energies through such a value would spoil every residual
    species = sorted({int(z) for k in frames for z in dataset.samples[k].atoms.numbers})
    e0 = fit_atomic_energies(dataset.subset(frames), species)
    index = {z: i for i, z in enumerate(species)}
    residual = [
        (float(dataset.samples[k].labels["energy"])
         - sum(e0[index[int(z)]] for z in dataset.samples[k].atoms.numbers)) / len(dataset.samples[k].atoms)
        for k in frames
    ]
    return _componentwise_scores("energy", [np.array([r]) for r in residual], frames, dataset)


def find_label_outliers(dataset: Dataset, threshold: float = WARN_Z) -> list[LabelOutlier]:
    """Frames whose label scores |z| > ``threshold``, most extreme first (see the module docstring)."""
    scores = _energy_scores(dataset)
    for label in ("forces", "stress", "dipole", "polarizability"):
        frames = [k for k, s in enumerate(dataset.samples) if label in s.labels]
        rows = [dataset.samples[k].labels[label] for k in frames]
        if label == "forces" and frames:
            scores += _pooled_scores(label, rows, frames, dataset)
        elif len(frames) >= 3:
            scores += _componentwise_scores(label, rows, frames, dataset)
    outliers = [o for o in scores if abs(o.z) > threshold]
    return sorted(outliers, key=lambda o: -abs(o.z))


def _describe(o: LabelOutlier) -> str:
    what = "energy per atom (after reference energies)" if o.label == "energy" else o.label
    return (f"{o.origin}: {what} {o.value:.6g} {ERROR_UNITS[o.label]} is {abs(o.z):.3g} robust spreads from the "
            f"median {o.median:.6g}")


def check_label_outliers(dataset: Dataset, warn_z: float = WARN_Z, error_z: float = ERROR_Z) -> list[LabelOutlier]:
    """Refuse absurd labels (|z| > ``error_z``) and warn about outliers (|z| > ``warn_z``).

    Raises :class:`~ase_mpnn.training.data.DataError` naming the file and frame of the most
    extreme absurd label; returns the outliers that were only warned about.
    """
    outliers = find_label_outliers(dataset, warn_z)
    absurd = [o for o in outliers if abs(o.z) > error_z]
    if absurd:
        more = f" ({len(absurd) - 1} more such labels)" if len(absurd) > 1 else ""
        raise DataError(
            f"{_describe(absurd[0])}: no physical label is that far out{more}. Fix or remove that frame "
            "(a unit error, an unconverged calculation, a parsing error?)"
        )
    if outliers:
        shown = "; ".join(_describe(o) for o in outliers[:5])
        more = f"; and {len(outliers) - 5} more" if len(outliers) > 5 else ""
        warnings.warn(
            f"{len(outliers)} label(s) lie more than {warn_z:g} robust spreads from the rest of the data: {shown}{more}. "
            "They may be real (rare geometries) or wrong (units, failed calculations): check them, because each "
            "dominates the loss of its batch",
            UserWarning, stacklevel=2,
        )
    return outliers
